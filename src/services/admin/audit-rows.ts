import type { JsonObject } from "@bufbuild/protobuf";
import { MAX_REQUEST_ID } from "../../domain/admin-rules.js";
import { newAuditId } from "../../domain/ids.js";
import { scrubRequestId } from "../../domain/request-id.js";
import { AuditDecision, TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { NewAuditEvent } from "../../store/audit-repo.js";
import type { TokenRow } from "../../store/token-repo.js";
import type { CallContext, Caller } from "../context.js";

/**
 * The request id an audit row carries: the request's own (already checked: no token in it),
 * else the `x-request-id` header, scrubbed of anything shaped like a token.
 */
export function requestIdOf(fromRequest: string, ctx: CallContext): string {
  return fromRequest !== ""
    ? fromRequest
    : scrubRequestId(ctx.header("x-request-id"), MAX_REQUEST_ID);
}

/** A time for audit details: ISO 8601, or null for "never". */
export function isoOrNull(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}

/** The identifying, non-secret summary of a token for audit details. */
export function tokenSummary(row: TokenRow): JsonObject {
  return {
    name: row.name,
    type: TokenType[row.type] ?? String(row.type),
    team_id: row.team_id,
    owner_id: row.owner_id,
  };
}

/** Who acted, where and when: the part of an admin audit row every change shares. */
export interface AuditFrame {
  readonly caller: Caller;
  readonly ctx: CallContext;
  readonly at: Date;
  readonly requestId: string;
}

/**
 * The allowed admin change `action` on `target`, as one audit row. Every admin audit row is
 * built here so they all carry actor, client address, method and request id alike.
 */
export function auditRow(
  frame: AuditFrame,
  action: string,
  target: { readonly orgId: string; readonly tokenId: string },
  details: JsonObject,
): NewAuditEvent {
  return {
    id: newAuditId(),
    time: frame.at,
    orgId: target.orgId,
    actorId: frame.caller.tokenId,
    action,
    tokenId: target.tokenId,
    decision: AuditDecision.ALLOW,
    code: "OK",
    clientIp: frame.caller.clientIp,
    method: frame.ctx.method,
    path: "",
    requestId: frame.requestId,
    details,
  };
}

/** The audit row of a change to the token `row`. */
export function auditFor(
  frame: AuditFrame,
  action: string,
  row: TokenRow,
  details: JsonObject,
): NewAuditEvent {
  return auditRow(frame, action, { orgId: row.org_id, tokenId: row.id }, details);
}

/** One audit row per changed token, for the batch calls. */
export function auditRows(
  frame: AuditFrame,
  action: string,
  rows: readonly TokenRow[],
  details: (row: TokenRow) => JsonObject,
): NewAuditEvent[] {
  return rows.map((r) => auditFor(frame, action, r, details(r)));
}
