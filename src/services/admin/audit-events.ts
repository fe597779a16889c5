import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { isKnownDecision } from "../../domain/admin-rules.js";
import { checkTimestamp } from "../../domain/time-fields.js";
import { checkFreeText } from "../../domain/validation.js";
import { type FieldViolation, throwIfInvalid } from "../../errors.js";
import type { AuditCursor } from "../../store/audit-repo.js";
import { callerOf } from "../context.js";
import type { AdminDeps, Handlers } from "./deps.js";
import { auditEventMessage } from "./mappers.js";
import { listingOf, pageOf, readListing, readPageToken } from "./paging.js";
import { orgScope } from "./scope.js";

/** An audit page cursor, `<time in µs>.<id>`, back to its keyset position. */
function parseCursor(cursor: string): AuditCursor | undefined {
  const m = /^(\d{1,20})\.(\S{1,64})$/.exec(cursor);
  if (m === null || m[1] === undefined || m[2] === undefined) return undefined;
  return { timeUs: BigInt(m[1]), id: m[2] };
}

/** An optional time filter in epoch ms (undefined: unset or invalid, with a violation). */
function optionalTime(
  ts: Timestamp | undefined,
  field: string,
  v: FieldViolation[],
): number | undefined {
  if (ts === undefined) return undefined;
  const t = checkTimestamp(ts, field);
  v.push(...t.violations);
  return t.violations.length > 0 ? undefined : t.ms;
}

/**
 * ListAuditEvents: a filtered page of the org's audit trail (only the caller's team/owner's
 * part for a restricted caller), newest first, with a bound page token.
 */
export function listAuditEvents(deps: AdminDeps): Handlers["listAuditEvents"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    const v: FieldViolation[] = [];
    const size = readListing(req, v);
    v.push(...checkFreeText(req.tokenId, "token_id", 128));
    v.push(...checkFreeText(req.actorId, "actor_id", 128));
    v.push(...checkFreeText(req.action, "action", 64));
    if (!isKnownDecision(req.decision)) {
      v.push({ field: "decision", description: "unknown decision" });
    }
    const start = optionalTime(req.startTime, "start_time", v);
    const end = optionalTime(req.endTime, "end_time", v);
    if (start !== undefined && end !== undefined && !(start < end)) {
      v.push({ field: "end_time", description: "must be after start_time" });
    }
    throwIfInvalid(v);
    const { org, binding } = listingOf(caller, req.orgId, "audit", [
      req.tokenId,
      req.actorId,
      req.action,
      req.decision,
      start ?? "",
      end ?? "",
    ]);
    const after = readPageToken(deps.pageKey, binding, req.pageToken, parseCursor);
    const rows = await deps.audit.list(
      orgScope(caller, org),
      {
        tokenId: req.tokenId,
        actorId: req.actorId,
        action: req.action,
        decision: req.decision,
        startTime: start === undefined ? undefined : new Date(start),
        endTime: end === undefined ? undefined : new Date(end),
      },
      size + 1,
      after,
    );
    const { page, nextPageToken } = pageOf(
      deps.pageKey,
      binding,
      rows,
      size,
      (r) => `${r.time_us}.${r.id}`,
    );
    return { events: page.map(auditEventMessage), nextPageToken };
  };
}
