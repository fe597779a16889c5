import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { MAX_LISTED_REVOKED } from "../../domain/admin-rules.js";
import { deriveState } from "../../domain/state.js";
import {
  type AuditEvent,
  AuditEventSchema,
  RateLimitSchema,
  type Token,
  TokenSchema,
  TokenState,
} from "../../gen/latchkey/v1/token_pb.js";
import type { AuditEventRow } from "../../store/audit-repo.js";
import type { StateFilter, TokenRow } from "../../store/token-repo.js";

/**
 * Maps a row to the Token message. State and remaining uses are derived here, at read time,
 * with the same rule the verifier applies, so Get, List and Verify agree. The secret hash is
 * deliberately not copied.
 */
export function tokenMessage(row: TokenRow, nowMs: number): Token {
  const useCount = BigInt(row.use_count);
  const maxUses = row.max_uses === null ? undefined : BigInt(row.max_uses);
  const state = deriveState(
    {
      revokeTime: row.revoke_time === null ? null : row.revoke_time.getTime(),
      expireTime: row.expire_time === null ? null : row.expire_time.getTime(),
      maxUses: maxUses === undefined ? null : Number(maxUses),
      useCount: Number(useCount),
    },
    nowMs,
  );
  const token = create(TokenSchema, {
    id: row.id,
    name: row.name,
    type: row.type,
    orgId: row.org_id,
    teamId: row.team_id,
    ownerId: row.owner_id,
    createdBy: row.created_by,
    createTime: timestampFromDate(row.create_time),
    updateTime: timestampFromDate(row.update_time),
    lastUsedIp: row.last_used_ip ?? "",
    useCount,
    state,
    revokedBy: row.revoked_by ?? "",
    revokeReason: row.revoke_reason ?? "",
    rotatedFrom: row.rotated_from ?? "",
    replacedBy: row.replaced_by ?? "",
    lineageId: row.lineage_id,
    role: row.role,
    permissions: [...row.permissions],
    allowedCidrs: [...row.allowed_cidrs],
    metadata: { ...row.metadata },
    rateLimits: row.rate_limits.map((r) =>
      create(RateLimitSchema, {
        name: r.name,
        limit: BigInt(r.limit),
        window: durationFromMs(r.window_ms),
      }),
    ),
    maxConcurrent: row.max_concurrent,
    slotsInUse: row.slots_in_use,
    displayHint: row.display_hint,
  });
  if (row.expire_time !== null) token.expireTime = timestampFromDate(row.expire_time);
  if (row.last_used_time !== null) token.lastUsedTime = timestampFromDate(row.last_used_time);
  if (row.revoke_time !== null) token.revokeTime = timestampFromDate(row.revoke_time);
  if (maxUses !== undefined) {
    token.maxUses = maxUses;
    const left = maxUses - useCount;
    token.remainingUses = left > 0n ? left : 0n;
  }
  return token;
}

/** Maps an audit row to its message. */
export function auditEventMessage(row: AuditEventRow): AuditEvent {
  const event = create(AuditEventSchema, {
    id: row.id,
    time: timestampFromDate(row.time),
    orgId: row.org_id,
    actorId: row.actor_id,
    action: row.action,
    tokenId: row.token_id,
    decision: row.decision,
    code: row.code,
    clientIp: row.client_ip,
    method: row.method,
    path: row.path,
    requestId: row.request_id,
  });
  if (row.details !== null) event.details = row.details;
  return event;
}

/** A requested TokenState as the store filters on it (UNSPECIFIED: any state). */
export function stateFilter(state: TokenState): StateFilter | undefined {
  switch (state) {
    case TokenState.UNSPECIFIED:
      return undefined;
    case TokenState.ACTIVE:
      return "active";
    case TokenState.EXPIRED:
      return "expired";
    case TokenState.REVOKED:
      return "revoked";
    case TokenState.EXHAUSTED:
      return "exhausted";
  }
}

/** A BatchRevokeTokens answer: the count and the first MAX_LISTED_REVOKED tokens. */
export function batchRevokeAnswer(rows: readonly TokenRow[], count: number, nowMs: number) {
  return {
    tokens: rows.slice(0, MAX_LISTED_REVOKED).map((r) => tokenMessage(r, nowMs)),
    count,
  };
}
