import { toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AuditDecision, AuditEventSchema } from "../../gen/latchkey/v1/token_pb.js";
import { parseDuration } from "../duration.js";
import { ExitCode, UsageError } from "../errors.js";
import { intFlag, lookup } from "../flags.js";
import { DECISIONS } from "./audit.js";
import type { Command, Context } from "./command.js";

const EXPORT_DETAILS = `Writes every matching audit event to stdout as JSON Lines (one AuditEvent in protobuf JSON
per line, newest first), fetching every page of ListAuditEvents. It takes the filters of
'audit list'. --since/--until take an RFC 3339 time (2026-01-31 or 2026-01-31T12:00:00Z)
or a duration before now (30d, 12h). --until defaults to the moment the export starts, so
the window does not move while it runs. A progress line goes to stderr when stderr is a
terminal and stdout is not. Exit code 0 also when the reader closes the pipe early.`;

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
async function auditExport({ flags, clients }: Context): Promise<void> {
  const output = flags.string("output");
  if (output !== undefined && output !== "json") {
    throw new UsageError(`--output ${output}: the export is always JSON Lines`);
  }
  const now = Date.now();
  const sinceFlag = flags.string("since");
  const untilFlag = flags.string("until");
  const since = sinceFlag === undefined ? undefined : timeFlag("since", sinceFlag, now);
  const until = untilFlag === undefined ? new Date(now) : timeFlag("until", untilFlag, now);
  if (since !== undefined && since.getTime() >= until.getTime()) {
    throw new UsageError("--since: must be before --until (default: now)");
  }
  const decision = flags.string("decision");
  const pageSize = flags.string("page-size");
  const request = {
    tokenId: flags.string("token-id") ?? "",
    actorId: flags.string("actor-id") ?? "",
    action: flags.string("action") ?? "",
    decision:
      decision === undefined ? AuditDecision.UNSPECIFIED : lookup(DECISIONS, "decision", decision),
    orgId: flags.string("org") ?? "",
    ...(since === undefined ? {} : { startTime: timestampFromDate(since) }),
    endTime: timestampFromDate(until),
    pageSize: pageSize === undefined ? 1000 : intFlag("page-size", pageSize, 1, 1000),
  };
  const admin = clients().admin;

  const sink = stdoutSink();
  const progress = process.stderr.isTTY === true && process.stdout.isTTY !== true;
  let exported = 0;
  let pageToken = "";
  do {
    const page = await admin.listAuditEvents({ ...request, pageToken });
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

/** `audit export`. Its flags live in the shared FLAGS table like every other command's. */
export const auditExportCommands: readonly Command[] = [
  {
    name: "audit export",
    arity: [0, 0],
    summary: "stream audit events of a time window as JSON Lines (backups, SIEM)",
    flags: ["since", "until", "token-id", "actor-id", "action", "decision", "org", "page-size"],
    details: EXPORT_DETAILS,
    run: auditExport,
  },
];
