import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { MAX_GRACE_MS, MAX_REQUEST_ID } from "../../domain/admin-rules.js";
import { type Minted, mint, remainingMaxUses, rotatedExpireMs } from "../../domain/mint.js";
import { holds } from "../../domain/permissions.js";
import { typePolicy } from "../../domain/token-types.js";
import { checkFreeText } from "../../domain/validation.js";
import { type FieldViolation, notFound, refused, throwIfInvalid } from "../../errors.js";
import { AuditDecision, TokenState, type TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { NewToken, TokenRow } from "../../store/token-repo.js";
import { METHOD_PERMISSIONS, permissionDenied } from "../auth.js";
import { type CallContext, type Caller, callerOf } from "../context.js";
import { type AuditFrame, auditFor, auditRow, isoOrNull, requestIdOf } from "./audit-rows.js";
import { type AdminDeps, announce, type Handlers } from "./deps.js";
import { checkIdField } from "./ids.js";
import { tokenMessage } from "./mappers.js";
import { assertCovered, reachById } from "./scope.js";

/**
 * A token may rotate itself; rotating another needs the method's permission, checked before
 * anything is looked up (the authenticator waived it for this method). A refusal is audited.
 */
async function assertMayRotate(deps: AdminDeps, caller: Caller, ctx: CallContext, id: string) {
  const permission = METHOD_PERMISSIONS.rotateToken;
  if (id === caller.tokenId || holds(caller.permissions, permission)) return;
  const frame = { caller, ctx, at: new Date(deps.now()), requestId: "" };
  await deps.audit.insert([
    {
      ...auditRow(frame, "auth.denied", caller, { permission }),
      decision: AuditDecision.DENY,
      code: "INSUFFICIENT_PERMISSIONS",
      requestId: ctx.header("x-request-id") ?? "",
    },
  ]);
  throw permissionDenied(permission);
}

/** Only an active token that was not rotated before can be rotated. */
function assertRotatable(old: TokenRow, nowMs: number): void {
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

/** The successor: the old token's grants and metadata, a new secret, a recomputed expiry. */
function successor(
  old: TokenRow,
  minted: Omit<Minted, "secret">,
  f: AuditFrame,
  expireMs: number | null,
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
  };
}

/**
 * RotateToken: a new secret with the same grants and metadata and an expiry of now plus the
 * old token's original lifetime (capped by the type); the old token is revoked at once, or
 * expires after `grace_period`. Both tokens get a `token.rotate` audit row.
 */
export function rotateToken(deps: AdminDeps): Handlers["rotateToken"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    await assertMayRotate(deps, caller, ctx, req.id);
    const nowMs = deps.now();
    const v: FieldViolation[] = [...checkIdField(req.id, "id")];
    const graceMs = req.gracePeriod === undefined ? 0 : durationMs(req.gracePeriod);
    if (!(graceMs >= 0)) v.push({ field: "grace_period", description: "must not be negative" });
    else if (graceMs > MAX_GRACE_MS) {
      v.push({ field: "grace_period", description: "must be at most 7 days" });
    }
    v.push(...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID));
    throwIfInvalid(v);
    const at = new Date(nowMs);
    const frame = { caller, ctx, at, requestId: requestIdOf(req.requestId, ctx) };
    let secret = "";
    const result = await deps.tokens.rotate(reachById(caller), req.id, {
      retirement: {
        revokedBy: caller.tokenId,
        now: at,
        graceEnd: graceMs === 0 ? null : new Date(nowMs + graceMs),
      },
      plan(old) {
        assertRotatable(old, nowMs);
        // Rotating another token hands its grants to the caller (it receives the new secret).
        if (req.id !== caller.tokenId) assertCovered(caller, old.permissions);
        const type = old.type as TokenType;
        const expireMs = rotatedExpireMs(
          typePolicy(deps.policies, type),
          { createTime: old.create_time, expireTime: old.expire_time },
          nowMs,
        );
        const { secret: fresh, ...minted } = mint(deps.prefix, type);
        secret = fresh;
        return successor(old, minted, frame, expireMs);
      },
      audit(previous, fresh) {
        const details = {
          grace_period_ms: graceMs,
          previous_id: previous.id,
          replacement_id: fresh.id,
          previous_expire_time: isoOrNull(previous.expire_time),
          previous_revoked: previous.revoke_time !== null,
          replacement_expire_time: isoOrNull(fresh.expire_time),
        };
        return [
          auditFor(frame, "token.rotate", previous, { ...details, role: "previous" }),
          auditFor(frame, "token.rotate", fresh, { ...details, role: "replacement" }),
        ];
      },
    });
    if (result === undefined) throw notFound(`token ${req.id}`);
    await announce(deps, [result.previous], "rotated", "rotated");
    return {
      token: tokenMessage(result.fresh, nowMs),
      secret,
      previous: tokenMessage(result.previous, nowMs),
    };
  };
}
