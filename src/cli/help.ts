import type { Command } from "./commands/command.js";
import { type FlagName, flagSpec, GLOBAL_FLAGS } from "./flags.js";
import { renderTable } from "./table.js";

/** The exit codes, as every help text states them. */
const EXIT_CODES =
  "Exit codes: 0 done, 1 the server refused (or verify denied, or cancelled),\n" +
  "2 usage error, 3 the server could not be reached.";

function flagRows(names: readonly FlagName[]): string[][] {
  return names.map((name) => {
    const s = flagSpec(name);
    const short = s.short === undefined ? "" : `-${s.short}, `;
    const value = s.value === undefined ? "" : ` ${s.value}`;
    return [`  ${short}--${name}${value}${s.multiple === true ? " ..." : ""}`, s.help];
  });
}

function indentTable(rows: string[][]): string {
  return renderTable(["", ""], rows).split("\n").slice(1).join("\n");
}

function usageLine(c: Command): string {
  return `latchkey ${c.name}${c.args === undefined ? "" : ` ${c.args}`}${c.flags.length > 0 ? " [flags]" : ""}`;
}

/** `latchkey --help`: every command with its summary, the global flags and exit codes. */
export function mainHelp(commands: readonly Command[]): string {
  const rows = [
    ...commands.map((c) => [`  ${c.name}${c.args === undefined ? "" : ` ${c.args}`}`, c.summary]),
    ["  completion bash|zsh|fish", "print a shell completion script"],
    ["  help [COMMAND]", "show help (also: COMMAND --help)"],
  ];
  return [
    "latchkey — the token authority's command line",
    "",
    "Usage: latchkey <command> [flags]",
    "",
    "Commands:",
    indentTable(rows),
    "",
    "Global flags:",
    indentTable(flagRows([...GLOBAL_FLAGS, "version"])),
    "",
    "The caller token is --token, else LATCHKEY_TOKEN, else the one 'latchkey login' saved.",
    "The server is --server, else LATCHKEY_SERVER, else the saved one, else 127.0.0.1:50051.",
    "TLS (https:// only): --ca-cert, else LATCHKEY_CACERT, else the CA saved with the server;",
    "--client-cert/--client-key, else LATCHKEY_CLIENT_CERT/LATCHKEY_CLIENT_KEY (never saved).",
    EXIT_CODES,
    "Run 'latchkey help <command>' (or '<command> --help') for its flags.",
  ].join("\n");
}

/** `latchkey help tokens`: the commands of one group. */
export function groupHelp(group: string, commands: readonly Command[]): string {
  const members = commands.filter((c) => c.name.startsWith(`${group} `));
  return [
    `Usage: latchkey ${group} <command> [flags]`,
    "",
    "Commands:",
    indentTable(members.map((c) => [`  ${usageLine(c).replace(/^latchkey /, "")}`, c.summary])),
    "",
    `Run 'latchkey help ${group} <command>' for its flags.`,
  ].join("\n");
}

/** `latchkey help tokens create` and `latchkey tokens create --help`. */
export function commandHelp(c: Command): string {
  return [
    `Usage: ${usageLine(c)}`,
    ...(c.aliases === undefined
      ? []
      : [`Alias: ${c.aliases.map((a) => `latchkey ${a}`).join(", ")}`]),
    "",
    c.summary,
    ...(c.details === undefined ? [] : ["", c.details]),
    ...(c.flags.length === 0 ? [] : ["", "Flags:", indentTable(flagRows(c.flags))]),
    "",
    "Global flags:",
    indentTable(flagRows(GLOBAL_FLAGS)),
    "",
    EXIT_CODES,
  ].join("\n");
}
