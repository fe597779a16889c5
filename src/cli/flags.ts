import { parseArgs } from "node:util";
import { parseDuration } from "./duration.js";
import { UsageError } from "./errors.js";

/** Every flag any command takes; parsed once so global flags may appear anywhere. */
const OPTIONS = {
  server: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  name: { type: "string" },
  type: { type: "string" },
  role: { type: "string" },
  permission: { type: "string", multiple: true },
  ttl: { type: "string" },
  cidr: { type: "string", multiple: true },
  meta: { type: "string", multiple: true },
  "max-uses": { type: "string" },
  team: { type: "string" },
  owner: { type: "string" },
  org: { type: "string" },
  state: { type: "string" },
  "unused-for": { type: "string" },
  "never-used": { type: "boolean", default: false },
  all: { type: "boolean", default: false },
  reason: { type: "string" },
  grace: { type: "string" },
  "token-id": { type: "string" },
  "actor-id": { type: "string" },
  action: { type: "string" },
  ip: { type: "string" },
} as const;

/**
 * Splits the command line into flags and positionals. Unknown flags throw
 * ERR_PARSE_ARGS_UNKNOWN_OPTION, which `reportError` turns into a usage failure.
 */
export function parseCommandLine(argv: readonly string[]) {
  return parseArgs({ args: [...argv], allowPositionals: true, options: OPTIONS });
}

/** The parsed flags, as every command receives them. */
export type Flags = ReturnType<typeof parseCommandLine>["values"];

/** Maps a word flag (`--type cicd`) onto its enum, naming the accepted words when it fails. */
export function lookup<T>(table: Readonly<Record<string, T>>, flag: string, value: string): T {
  const found = table[value.toLowerCase()];
  if (found === undefined) {
    throw new UsageError(`--${flag}: expected one of ${Object.keys(table).join(", ")}`);
  }
  return found;
}

/** A duration flag in milliseconds; a typo is a usage error, never a silent lifetime. */
export function durationFlag(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new UsageError(`--${flag}: expected a duration like 90s, 15m, 12h, 30d`);
  return ms;
}

/** Repeated `--meta k=v` flags as a map; a later key overrides an earlier one. */
export function keyValues(flag: string, values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of values) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--${flag}: expected key=value, got "${kv}"`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}
