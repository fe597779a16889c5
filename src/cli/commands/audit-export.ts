import { parseArgs } from "node:util";
import { toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AuditDecision, AuditEventSchema } from "../../gen/latchkey/v1/token_pb.js";
import { createClients } from "../client.js";
import { callerToken } from "../config-file.js";
import { parseDuration } from "../duration.js";
import { loadCliEnvironment } from "../environment.js";
import { ExitCode, UsageError } from "../errors.js";
import { lookup } from "../flags.js";
import { printLine } from "../output.js";
import { resolveServer } from "../server-url.js";

/** The flags `audit export` takes: the global ones, the `audit list` filters, and the window. */
const OPTIONS = {
  server: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean", default: false }, // accepted: the output is JSON Lines anyway
  help: { type: "boolean", short: "h", default: false },
  org: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  "token-id": { type: "string" },
  "actor-id": { type: "string" },
  action: { type: "string" },
  decision: { type: "string" },
  "page-size": { type: "string" },
} as const;

const EXPORT_USAGE = `Usage: latchkey audit export [--since T] [--until T] [--token-id ID] [--actor-id ID]
                             [--action A] [--decision allow|deny] [--org O] [--page-size N]

Writes every matching audit event to stdout as JSON Lines (one AuditEvent in protobuf JSON
per line, newest first), fetching every page of ListAuditEvents. T is an RFC 3339 time
(2026-01-31 or 2026-01-31T12:00:00Z) or a duration before now (30d, 12h). --until defaults
to the moment the export starts, so the window does not move while it runs. A progress line
goes to stderr when stderr is a terminal and stdout is not.

Exit codes: 0 done (also when the reader closes the pipe early), 1 the server refused or
failed, 2 bad command line.`;

const DECISIONS: Readonly<Record<string, AuditDecision>> = {
  allow: AuditDecision.ALLOW,
  deny: AuditDecision.DENY,
};

/**
 * True when the command line is `audit export …` (global flags may come first). Parsed
 * leniently, so any other command line is left to the main parser untouched.
 */
export function isAuditExport(argv: readonly string[]): boolean {
  const { positionals } = parseArgs({
    args: [...argv],
    options: OPTIONS,
    strict: false,
    allowPositionals: true,
  });
  return positionals[0] === "audit" && positionals[1] === "export";
}

/** `--since` / `--until`: an RFC 3339 time or date, or a duration meaning "that long ago". */
function timeFlag(flag: string, value: string, now: number): Date {
  const ago = parseDuration(value);
  if (ago !== undefined) return new Date(now - ago);
  const ms = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(
    value,
  )
    ? Date.parse(value)
    : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `--${flag}: expected an RFC 3339 time (2026-01-31, 2026-01-31T12:00:00Z) or a duration ago (30d)`,
    );
  }
  return new Date(ms);
}

/** `--page-size`: rows per ListAuditEvents call, 1 to 1000 (the server's maximum). */
function pageSizeFlag(value: string | undefined): number {
  if (value === undefined) return 1000;
  const n = /^\d{1,4}$/.test(value) ? Number(value) : 0;
  if (n < 1 || n > 1000)
    throw new UsageError("--page-size: expected a whole number from 1 to 1000");
  return n;
}

/**
 * Stdout for a long stream: waits for `drain` so memory stays at one page, and notices the
 * reader going away (EPIPE, e.g. `| head`) so the export stops quietly instead of crashing.
 */
function stdoutSink(): { write(text: string): Promise<boolean>; error(): Error | undefined } {
  const out = process.stdout;
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  out.on("error", (err: Error) => {
    failed = err;
    wake?.();
  });
  return {
    async write(text) {
      if (failed !== undefined) return false;
      if (!out.write(text)) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          out.once("drain", resolve);
        });
      }
      return failed === undefined;
    },
    error: () => failed,
  };
}

/**
 * `latchkey audit export`: the audit trail of a time window as JSON Lines, for a SIEM, an
 * archive before retention drops a month, or `jq`. Pages through ListAuditEvents with the
 * same filters as `audit list`; nothing is buffered beyond one page.
 */
export async function auditExport(argv: readonly string[]): Promise<void> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true });
  } catch (err) {
    // node:util's own messages (unknown option, missing value) are usage errors: exit 2.
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { values: flags, positionals } = parsed;
  if (flags.help) {
    printLine(EXPORT_USAGE);
    return;
  }
  if (positionals.length > 2) {
    throw new UsageError(
      `audit export takes no arguments, got "${positionals.slice(2).join(" ")}"`,
    );
  }
  const now = Date.now();
  const since = flags.since === undefined ? undefined : timeFlag("since", flags.since, now);
  const until = flags.until === undefined ? new Date(now) : timeFlag("until", flags.until, now);
  if (since !== undefined && since.getTime() >= until.getTime()) {
    throw new UsageError("--since: must be before --until (default: now)");
  }
  const request = {
    tokenId: flags["token-id"] ?? "",
    actorId: flags["actor-id"] ?? "",
    action: flags.action ?? "",
    decision:
      flags.decision === undefined
        ? AuditDecision.UNSPECIFIED
        : lookup(DECISIONS, "decision", flags.decision),
    orgId: flags.org ?? "",
    ...(since === undefined ? {} : { startTime: timestampFromDate(since) }),
    endTime: timestampFromDate(until),
    pageSize: pageSizeFlag(flags["page-size"]),
  };
  const env = loadCliEnvironment();
  const clients = createClients(resolveServer(flags.server, env), callerToken(flags.token, env));

  const sink = stdoutSink();
  const progress = process.stderr.isTTY === true && process.stdout.isTTY !== true;
  let exported = 0;
  let pageToken = "";
  do {
    const page = await clients.admin.listAuditEvents({ ...request, pageToken });
    const lines = page.events.map((e) => `${toJsonString(AuditEventSchema, e)}\n`).join("");
    if (!(await sink.write(lines))) break;
    exported += page.events.length;
    if (progress) process.stderr.write(`\rlatchkey: exported ${exported} audit events`);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  if (progress) process.stderr.write("\n");

  const err = sink.error();
  if (err !== undefined && !("code" in err && err.code === "EPIPE")) {
    process.stderr.write(`latchkey: cannot write the export: ${err.message}\n`);
    process.exitCode = ExitCode.refused;
  }
}
