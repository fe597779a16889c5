import { toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  AuditDecision,
  type AuditEvent,
  AuditEventSchema,
} from "../../gen/latchkey/v1/token_pb.js";
import { parseDuration } from "../duration.js";
import { UsageError } from "../errors.js";
import { lookup } from "../flags.js";
import { emit } from "../output.js";
import { collectPages } from "../paging.js";
import { renderTable } from "../table.js";
import type { Command, Context } from "./command.js";
import { limitFlag } from "./tokens-read.js";

/** `--decision` words, for `audit list` and `audit export`. */
export const DECISIONS: Readonly<Record<string, AuditDecision>> = {
  allow: AuditDecision.ALLOW,
  deny: AuditDecision.DENY,
};

/** `--since 24h` (that long ago) or `--since 2026-01-01T00:00:00Z`. */
function whenFlag(flag: string, value: string | undefined): { ts?: Timestamp } {
  if (value === undefined) return {};
  const ago = parseDuration(value);
  if (ago !== undefined) return { ts: timestampFromMs(Date.now() - ago) };
  const ms = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(`--${flag}: expected a duration ago (24h, 7d) or an RFC 3339 time`);
  }
  return { ts: timestampFromMs(ms) };
}

function eventTable(events: readonly AuditEvent[]): string {
  if (events.length === 0) return "no audit events";
  return renderTable(
    ["TIME", "ACTION", "DECISION", "CODE", "ACTOR", "TOKEN", "CLIENT IP"],
    events.map((e) => [
      e.time === undefined ? "-" : new Date(timestampMs(e.time)).toISOString(),
      e.action,
      (AuditDecision[e.decision] ?? "").replace(/^AUDIT_DECISION_/, "").toLowerCase(),
      e.code,
      e.actorId || "-",
      e.tokenId || "-",
      e.clientIp || "-",
    ]),
  );
}

async function list({ flags, clients, format }: Context): Promise<void> {
  const decision = flags.string("decision");
  const since = whenFlag("since", flags.string("since")).ts;
  const until = whenFlag("until", flags.string("until")).ts;
  const admin = clients().admin;
  const events = await collectPages(
    "listing audit events",
    limitFlag(flags),
    async (pageToken, pageSize) => {
      const res = await admin.listAuditEvents({
        tokenId: flags.string("token-id") ?? "",
        actorId: flags.string("actor-id") ?? "",
        action: flags.string("action") ?? "",
        decision:
          decision === undefined
            ? AuditDecision.UNSPECIFIED
            : lookup(DECISIONS, "decision", decision),
        orgId: flags.string("org") ?? "",
        ...(since === undefined ? {} : { startTime: since }),
        ...(until === undefined ? {} : { endTime: until }),
        pageSize,
        pageToken,
      });
      return { items: res.events, next: res.nextPageToken };
    },
  );
  emit(
    format,
    events.map((e) => toJson(AuditEventSchema, e)),
    () => eventTable(events),
  );
}

/** `audit list`. */
export const auditCommands: readonly Command[] = [
  {
    name: "audit list",
    arity: [0, 0],
    summary: "audit rows by token, actor, action, decision and time, every page",
    flags: ["token-id", "actor-id", "action", "decision", "since", "until", "org", "limit"],
    details:
      "Newest first. --since/--until take a duration ago (24h, 7d) or an RFC 3339 time.\n" +
      "Every page is fetched unless --limit N.\n" +
      "To stream the trail as JSON Lines (backups, SIEM): latchkey audit export --help.",
    run: list,
  },
];
