import { parseArgs } from "node:util";
import { parseDuration } from "./duration.js";
import { UsageError } from "./errors.js";

/** One flag: how it parses, and the words `--help` and the completion scripts show for it. */
interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly short?: string;
  /** The value's placeholder in help (`--ttl DURATION`). */
  readonly value?: string;
  readonly help: string;
  /** The fixed words the value may take, for completion. */
  readonly choices?: readonly string[];
}

/** Every flag any command takes. Global ones are accepted everywhere (see GLOBAL_FLAGS). */
export const FLAGS = {
  server: { type: "string", value: "URL", help: "gRPC listener: host:port or http(s)://host:port" },
  "ca-cert": {
    type: "string",
    value: "FILE",
    help: "PEM CA bundle to trust for an https:// server",
  },
  "client-cert": {
    type: "string",
    value: "FILE",
    help: "PEM client certificate for mTLS (with --client-key)",
  },
  "client-key": { type: "string", value: "FILE", help: "PEM private key of --client-cert" },
  token: { type: "string", value: "TOKEN", help: "caller token ('-' reads it from stdin)" },
  json: { type: "boolean", help: "print one JSON document (same as --output json)" },
  output: {
    type: "string",
    short: "o",
    value: "FORMAT",
    help: "table (default), json or yaml",
    choices: ["table", "json", "yaml"],
  },
  help: { type: "boolean", short: "h", help: "show help" },
  version: { type: "boolean", help: "print the CLI version" },
  yes: { type: "boolean", short: "y", help: "do not ask for confirmation" },
  name: { type: "string", value: "NAME", help: "human label" },
  type: {
    type: "string",
    value: "TYPE",
    help: "personal, team, cicd or ephemeral",
    choices: ["personal", "team", "cicd", "ephemeral"],
  },
  role: {
    type: "string",
    value: "ROLE",
    help: "viewer, ops, deployer, cicd or admin",
    choices: ["viewer", "ops", "deployer", "cicd", "admin"],
  },
  permission: { type: "string", multiple: true, value: "PERM", help: "resource:action (repeat)" },
  ttl: { type: "string", value: "DURATION", help: "lifetime: 90s, 15m, 12h, 30d, 2w, 1y" },
  cidr: {
    type: "string",
    multiple: true,
    value: "CIDR",
    help: "allowed client IP or CIDR (repeat)",
  },
  meta: { type: "string", multiple: true, value: "K=V", help: "metadata entry (repeat)" },
  "max-uses": { type: "string", value: "N", help: "use limit" },
  "max-concurrent": { type: "string", value: "N", help: "concurrency slots" },
  team: { type: "string", value: "TEAM", help: "team id" },
  owner: { type: "string", value: "OWNER", help: "owner (user) id" },
  org: { type: "string", value: "ORG", help: "org id (platform callers only, for another org)" },
  state: {
    type: "string",
    value: "STATE",
    help: "active (default), expired, revoked, exhausted or all",
    choices: ["active", "expired", "revoked", "exhausted", "all"],
  },
  "unused-for": { type: "string", value: "DURATION", help: "not used for this long (or never)" },
  "never-used": { type: "boolean", help: "never used at all" },
  limit: { type: "string", value: "N", help: "stop after N items (default: every page)" },
  reason: { type: "string", value: "TEXT", help: "why (kept in the audit trail)" },
  grace: { type: "string", value: "DURATION", help: "how long the old secret keeps working" },
  filter: {
    type: "string",
    multiple: true,
    value: "K=V[,K=V]",
    help: "type, team, owner, state, unused-for, never-used",
  },
  "dry-run": { type: "boolean", help: "show what would be revoked; change nothing" },
  "token-id": { type: "string", value: "ID", help: "audit rows about this token" },
  "actor-id": { type: "string", value: "ID", help: "audit rows by this caller token" },
  action: { type: "string", value: "ACTION", help: "e.g. token.revoke, token.verify" },
  decision: {
    type: "string",
    value: "DECISION",
    help: "allow or deny",
    choices: ["allow", "deny"],
  },
  since: { type: "string", value: "WHEN", help: "from: a duration ago (24h) or an RFC 3339 time" },
  until: { type: "string", value: "WHEN", help: "to: a duration ago (1h) or an RFC 3339 time" },
  ip: { type: "string", value: "ADDR", help: "client IP the gateway saw" },
  "page-size": {
    type: "string",
    value: "N",
    help: "rows per ListAuditEvents call, 1 to 1000 (default 1000)",
  },
} as const satisfies Record<string, FlagSpec>;

/** A flag's name. */
export type FlagName = keyof typeof FLAGS;

/** Flags every command accepts. */
export const GLOBAL_FLAGS: readonly FlagName[] = [
  "server",
  "ca-cert",
  "client-cert",
  "client-key",
  "token",
  "json",
  "output",
  "help",
];

/** The spec of a flag, typed loosely for help and completion. */
export function flagSpec(name: FlagName): FlagSpec {
  return FLAGS[name];
}

function parseOptions() {
  const options: Record<
    string,
    { type: "string" | "boolean"; multiple?: boolean; short?: string }
  > = {};
  for (const [name, spec] of Object.entries(FLAGS) as [string, FlagSpec][]) {
    options[name] = {
      type: spec.type,
      ...(spec.multiple === true ? { multiple: true } : {}),
      ...(spec.short === undefined ? {} : { short: spec.short }),
    };
  }
  return options;
}

const STRING_FLAGS: ReadonlySet<string> = new Set(
  Object.entries(FLAGS)
    .filter(([, s]) => s.type === "string")
    .flatMap(([name, s]) => [`--${name}`, ...("short" in s ? [`-${s.short}`] : [])]),
);

/** The parsed flags, as every command receives them. */
export interface Flags {
  readonly string: (name: FlagName) => string | undefined;
  readonly list: (name: FlagName) => readonly string[] | undefined;
  readonly bool: (name: FlagName) => boolean;
  /** The flags that were given, for checking them against the command. */
  readonly given: readonly FlagName[];
}

/** The command line split into flags and positional words. */
export interface CommandLine {
  readonly flags: Flags;
  readonly positionals: readonly string[];
}

/**
 * Splits the command line into flags and positionals. A string flag always takes the next word
 * as its value, even one starting with "-" (`--reason "-x"`, `--max-uses -1`), as Go's flag
 * package and most CLIs do; the value is then validated by the command.
 */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    const next = argv[i + 1];
    if (a === "--") {
      args.push(...argv.slice(i));
      break;
    }
    if (STRING_FLAGS.has(a) && next !== undefined) {
      args.push(a.startsWith("--") ? `${a}=${next}` : a + next);
      i++;
    } else args.push(a);
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, allowPositionals: true, strict: true, options: parseOptions() });
  } catch (err) {
    // ERR_PARSE_ARGS_UNKNOWN_OPTION, a missing value, a value given to a boolean flag.
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const values = parsed.values as Record<
    string,
    string | boolean | (string | boolean)[] | undefined
  >;
  const given = Object.keys(values).filter((k): k is FlagName => Object.hasOwn(FLAGS, k));
  return {
    positionals: parsed.positionals,
    flags: {
      given,
      string: (name) => {
        const v = values[name];
        return typeof v === "string" ? v : undefined;
      },
      list: (name) => {
        const v = values[name];
        return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : undefined;
      },
      bool: (name) => values[name] === true,
    },
  };
}

/**
 * Maps a word flag (`--type cicd`) onto its value, naming the accepted words when it fails.
 * Own keys only: `--type constructor` must not find Object.prototype.constructor.
 */
export function lookup<T>(table: Readonly<Record<string, T>>, flag: string, value: string): T {
  const key = value.toLowerCase();
  const found = Object.hasOwn(table, key) ? table[key] : undefined;
  if (found === undefined) {
    throw new UsageError(`--${flag}: expected one of ${Object.keys(table).join(", ")}`);
  }
  return found;
}

/** A duration flag in milliseconds; a typo is a usage error, never a silent lifetime. */
export function durationFlag(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms === 0) {
    throw new UsageError(`--${flag}: expected a duration like 90s, 15m, 12h, 30d, 2w, 1y`);
  }
  return ms;
}

/** A whole-number flag within [min, max]; `-1`, `1.5` and `ten` are usage errors. */
export function intFlag(flag: string, value: string, min: number, max: number): number {
  const n = /^\d{1,15}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max)) {
    throw new UsageError(`--${flag}: expected a whole number from ${min} to ${max}`);
  }
  return n;
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
