import { Code } from "@connectrpc/connect";
import { type Minted, remainingMaxUses } from "../../domain/mint.js";
import { holds } from "../../domain/permissions.js";
import { invalidArgument, refused } from "../../errors.js";
import { AuditDecision, TokenState } from "../../gen/latchkey/v1/token_pb.js";
import type { NewToken, TokenRow } from "../../store/token-repo.js";
import { METHOD_PERMISSIONS, permissionDenied } from "../auth.js";
import type { CallContext, Caller } from "../context.js";
import { type AuditFrame, auditRow, requestIdOf } from "./audit-rows.js";
import type { AdminDeps } from "./deps.js";
import { tokenMessage } from "./mappers.js";
import { covers } from "./scope.js";

/**
 * A token may rotate itself; rotating another needs the method's permission, checked before
 * anything is looked up (the authenticator waived it for this method). A refusal is audited.
 */
export async function assertMayRotate(
  deps: AdminDeps,
  caller: Caller,
  ctx: CallContext,
  id: string,
): Promise<void> {
  const permission = METHOD_PERMISSIONS.rotateToken;
  if (id === caller.tokenId || holds(caller.permissions, permission)) return;
  const frame = { caller, ctx, at: new Date(deps.now()), requestId: requestIdOf("", ctx) };
  await deps.audit.insert([
    {
      ...auditRow(frame, "auth.denied", caller, { permission }),
      decision: AuditDecision.DENY,
      code: "INSUFFICIENT_PERMISSIONS",
    },
  ]);
  throw permissionDenied(permission);
}

/**
 * Whether the caller may give the successor a new full lifetime: only one that could create
 * the token afresh (holds `tokens:create` and covers it). A token rotating itself without
 * that keeps its current expiry (see rotatedExpireMs).
 */
export function mayRenewLifetime(caller: Caller, old: TokenRow): boolean {
  return (
    holds(caller.permissions, METHOD_PERMISSIONS.rotateToken) && covers(caller, old.permissions)
  );
}

/** Only an active token that was not rotated before can be rotated. */
export function assertRotatable(old: TokenRow, nowMs: number): void {
  if (old.replaced_by !== null) {
    throw refused(
      Code.FailedPrecondition,
      "ALREADY_ROTATED",
      `token ${old.id} was already rotated (replaced by ${old.replaced_by})`,
      { token_id: old.id, replaced_by: old.replaced_by },
    );
  }
  const state = tokenMessage(old, nowMs).state;
  switch (state) {
    case TokenState.REVOKED:
      throw refused(Code.FailedPrecondition, "TOKEN_REVOKED", "a revoked token cannot be rotated", {
        token_id: old.id,
      });
    case TokenState.EXPIRED:
      throw refused(
        Code.FailedPrecondition,
        "TOKEN_EXPIRED",
        "an expired token cannot be rotated",
        {
          token_id: old.id,
        },
      );
    case TokenState.EXHAUSTED:
      throw refused(
        Code.FailedPrecondition,
        "TOKEN_EXHAUSTED",
        "a token whose use limit is spent cannot be rotated",
        { token_id: old.id },
      );
    case TokenState.ACTIVE:
    case TokenState.UNSPECIFIED:
      break;
  }
}

/**
 * One use budget per lineage: a use-limited token cannot keep working beside its successor
 * (each would spend its own copy of the uses left), so it is rotated without a grace period
 * and the successor carries only the uses left (see remainingMaxUses).
 */
export function assertGraceAllowed(old: TokenRow, graceMs: number): void {
  if (old.max_uses !== null && graceMs > 0) {
    throw invalidArgument([
      {
        field: "grace_period",
        description:
          "must be 0 for a token with a use limit (max_uses): the old and new secrets would each spend the uses left; the new token carries them instead",
      },
    ]);
  }
}

/** The successor: the old token's grants and metadata, a new secret, the expiry decided. */
export function successor(
  old: TokenRow,
  minted: Omit<Minted, "secret">,
  f: AuditFrame,
  expireMs: number | null,
  requestId: string,
): NewToken {
  return {
    ...minted,
    name: old.name,
    type: old.type,
    orgId: old.org_id,
    teamId: old.team_id,
    ownerId: old.owner_id,
    createdBy: f.caller.tokenId,
    role: old.role,
    permissions: old.permissions,
    allowedCidrs: old.allowed_cidrs,
    metadata: old.metadata,
    maxUses: remainingMaxUses(old.max_uses, old.use_count),
    rateLimits: old.rate_limits,
    maxConcurrent: old.max_concurrent,
    createTime: f.at,
    expireTime: expireMs === null ? null : new Date(expireMs),
    rotatedFrom: old.id,
    requestId: requestId === "" ? null : requestId,
  };
}
