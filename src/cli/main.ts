#!/usr/bin/env node
import { createClients } from "./client.js";
import type { Context } from "./commands/command.js";
import { COMMANDS, findCommand, GROUPS } from "./commands/index.js";
import { completionScript } from "./completion.js";
import { callerToken } from "./config-file.js";
import { loadCliEnvironment } from "./environment.js";
import { ExitCode, reportError, UsageError } from "./errors.js";
import { GLOBAL_FLAGS, parseCommandLine } from "./flags.js";
import { commandHelp, groupHelp, mainHelp } from "./help.js";
import { outputFormat, printLine } from "./output.js";
import { readStdin } from "./prompt.js";
import { resolveServer } from "./server-url.js";
import { type CliTls, resolveTls } from "./tls.js";
import { cliVersion } from "./version.js";

/** `latchkey help [words…]`, `latchkey <group>` and `--help`: the right usage text. */
function help(words: readonly string[]): void {
  printLine(helpText(words));
}

function helpText(words: readonly string[]): string {
  if (words.length === 0) return mainHelp(COMMANDS);
  const found = findCommand(words);
  if (found !== undefined && found.rest.length === 0) return commandHelp(found.command);
  const group = words[0] ?? "";
  if (words.length === 1 && GROUPS.has(group)) return groupHelp(group, COMMANDS);
  throw new UsageError(`no help for unknown command "${words.join(" ")}"`);
}

/** Where `reportError` says it could not connect, and whether a client certificate went along. */
let serverForErrors: string | undefined;
let clientCertForErrors = false;

async function run(argv: readonly string[]): Promise<void> {
  const { flags, positionals } = parseCommandLine(argv);
  if (flags.bool("version") || (positionals[0] === "version" && positionals.length === 1)) {
    return printLine(`latchkey ${cliVersion()}`);
  }
  const [first, ...more] = positionals;
  if (first === undefined) return help([]);
  if (first === "help") return help(more);
  if (first === "completion") {
    if (flags.bool("help")) return printLine("Usage: latchkey completion bash|zsh|fish");
    const script = completionScript(more[0] ?? "", COMMANDS);
    if (script === undefined || more.length !== 1) {
      throw new UsageError("completion: expected one of bash, zsh, fish");
    }
    process.stdout.write(script);
    return;
  }

  const found = findCommand(positionals);
  if (found === undefined) {
    if (positionals.length === 1 && GROUPS.has(first)) return help([first]);
    const err = new UsageError(`unknown command "${positionals.join(" ")}"`);
    if (GROUPS.has(first)) err.command = first;
    throw err;
  }
  const { command, rest } = found;
  if (flags.bool("help")) return help(command.name.split(" "));
  try {
    const [min, max] = command.arity;
    if (rest.length < min)
      throw new UsageError(`${command.name}: give ${command.args ?? "the arguments"}`);
    if (rest.length > max) {
      throw new UsageError(`${command.name}: unexpected argument "${rest[max] ?? ""}"`);
    }
    const allowed = new Set([...GLOBAL_FLAGS, ...command.flags]);
    const stray = flags.given.find((f) => !allowed.has(f));
    if (stray !== undefined)
      throw new UsageError(`${command.name}: --${stray} does not apply here`);
    const env = loadCliEnvironment();
    const format = outputFormat(flags);
    const server = resolveServer(flags.string("server"), env);
    serverForErrors = server;
    const flagToken = flags.string("token");
    const token = flagToken === "-" ? (await readStdin()).trim() : callerToken(flagToken, env);
    let tls: CliTls | undefined;
    let clients: ReturnType<typeof createClients> | undefined;
    const ctx: Context = {
      args: rest,
      flags,
      env,
      format,
      server,
      token,
      tls: () => {
        tls ??= resolveTls(flags, env, server);
        clientCertForErrors = tls.nodeOptions.cert !== undefined;
        return tls;
      },
      clients: () => {
        clients ??= createClients(server, token, ctx.tls().nodeOptions);
        return clients;
      },
    };
    await command.run(ctx);
  } catch (err) {
    if (err instanceof UsageError) err.command ??= command.name;
    throw err;
  }
}

// `latchkey tokens list | head -2`: the reader went away; stop quietly, as Unix tools do.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(ExitCode.ok);
  process.stderr.write(`latchkey: cannot write output: ${err.message}\n`);
  process.exit(ExitCode.refused);
});

try {
  await run(process.argv.slice(2));
} catch (err) {
  process.exitCode = reportError(err, serverForErrors, clientCertForErrors);
}
