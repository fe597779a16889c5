import { Code } from "@connectrpc/connect";
import { MAX_GRACE_MS, MAX_REQUEST_ID } from "../../domain/admin-rules.js";
import { mint, rotatedExpireMs } from "../../domain/mint.js";
import { checkRequestId } from "../../domain/request-id.js";
import { checkDuration } from "../../domain/time-fields.js";
import { typePolicy } from "../../domain/token-types.js";
import {
  ConflictError,
  type FieldViolation,
  LatchkeyError,
  notFound,
  throwIfInvalid,
} from "../../errors.js";
import type { RotateTokenRequest } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import type { TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { TokenRow } from "../../store/token-repo.js";
import { type Caller, callerOf } from "../context.js";
import { auditFor, isoOrNull, requestIdOf } from "./audit-rows.js";
import { type AdminDeps, announce, type Handlers } from "./deps.js";
import { checkIdField } from "./ids.js";
import { tokenMessage } from "./mappers.js";
import {
  assertGraceAllowed,
  assertMayRotate,
  assertRotatable,
  mayRenewLifetime,
  successor,
} from "./rotate-rules.js";
import { assertCovered, reachById } from "./scope.js";

/** The grace period in ms, checked (0 when unset). */
function readGrace(req: RotateTokenRequest, v: FieldViolation[]): number {
  if (req.gracePeriod === undefined) return 0;
  const grace = checkDuration(req.gracePeriod, "grace_period");
  v.push(...grace.violations);
  if (grace.violations.length > 0) return 0;
  if (!(grace.ms >= 0)) v.push({ field: "grace_period", description: "must not be negative" });
  else if (grace.ms > MAX_GRACE_MS) {
    v.push({ field: "grace_period", description: "must be at most 7 days" });
  }
  return grace.ms;
}

/**
 * The answer to a retried rotation (same caller, same request_id): the successor made first,
 * as it is now, without its secret, and its predecessor; nothing is rotated again. A
 * request_id the caller used for something else is ALREADY_EXISTS.
 */
async function replay(
  deps: AdminDeps,
  caller: Caller,
  earlier: TokenRow,
  id: string,
  nowMs: number,
) {
  const previous =
    earlier.rotated_from === id ? await deps.tokens.get(reachById(caller), id) : undefined;
  if (previous === undefined) {
    throw new LatchkeyError(
      Code.AlreadyExists,
      "REQUEST_ID_REUSED",
      "this request_id was already used by the caller for another call",
      { metadata: { token_id: earlier.id } },
    );
  }
  return {
    token: tokenMessage(earlier, nowMs),
    secret: "",
    previous: tokenMessage(previous, nowMs),
  };
}

/** The caller's earlier call with this request_id, if any ("" never matches). */
function findEarlier(deps: AdminDeps, caller: Caller, requestId: string) {
  if (requestId === "") return Promise.resolve(undefined);
  return deps.tokens.findByRequestId(caller.tokenId, requestId);
}

/**
 * RotateToken: a new secret with the same grants and metadata; the old token is revoked at
 * once, or expires after `grace_period` (0 for use-limited tokens, whose successor carries
 * the uses left). The successor lives now plus the old token's original lifetime (capped by
 * the type) when the caller could create it afresh, else never beyond the old token's current
 * expiry. Idempotent on request_id. Both tokens get a `token.rotate` audit row.
 */
export function rotateToken(deps: AdminDeps): Handlers["rotateToken"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    await assertMayRotate(deps, caller, ctx, req.id);
    const nowMs = deps.now();
    const v: FieldViolation[] = [...checkIdField(req.id, "id")];
    const graceMs = readGrace(req, v);
    v.push(...checkRequestId(req.requestId, "request_id", MAX_REQUEST_ID));
    throwIfInvalid(v);
    const earlier = await findEarlier(deps, caller, req.requestId);
    if (earlier !== undefined) return await replay(deps, caller, earlier, req.id, nowMs);

    const at = new Date(nowMs);
    const frame = { caller, ctx, at, requestId: requestIdOf(req.requestId, ctx) };
    let secret = "";
    let result: { fresh: TokenRow; previous: TokenRow } | undefined;
    try {
      result = await deps.tokens.rotate(reachById(caller), req.id, {
        retirement: {
          revokedBy: caller.tokenId,
          now: at,
          graceEnd: graceMs === 0 ? null : new Date(nowMs + graceMs),
        },
        plan(old) {
          assertRotatable(old, nowMs);
          // Rotating another token hands its grants to the caller (it receives the new secret).
          if (req.id !== caller.tokenId) assertCovered(caller, old.permissions);
          assertGraceAllowed(old, graceMs);
          const type = old.type as TokenType;
          const expireMs = rotatedExpireMs(
            typePolicy(deps.policies, type),
            { createTime: old.create_time, expireTime: old.expire_time },
            nowMs,
            mayRenewLifetime(caller, old),
          );
          const { secret: fresh, ...minted } = mint(deps.prefix, type);
          secret = fresh;
          return successor(old, minted, frame, expireMs, req.requestId);
        },
        audit(previous, fresh) {
          const details = {
            grace_period_ms: graceMs,
            previous_id: previous.id,
            replacement_id: fresh.id,
            lineage_id: fresh.lineage_id,
            previous_expire_time: isoOrNull(previous.expire_time),
            previous_revoked: previous.revoke_time !== null,
            replacement_expire_time: isoOrNull(fresh.expire_time),
            replacement_max_uses: fresh.max_uses,
          };
          return [
            auditFor(frame, "token.rotate", previous, { ...details, role: "previous" }),
            auditFor(frame, "token.rotate", fresh, { ...details, role: "replacement" }),
          ];
        },
      });
    } catch (err) {
      // A concurrent retry won the race (it holds the request_id, or rotated the token first).
      const raced =
        err instanceof ConflictError ||
        (err instanceof LatchkeyError && err.reason === "ALREADY_ROTATED");
      const winner = raced ? await findEarlier(deps, caller, req.requestId) : undefined;
      if (winner !== undefined) return await replay(deps, caller, winner, req.id, nowMs);
      throw err;
    }
    if (result === undefined) throw notFound(`token ${req.id}`);
    await announce(deps, [result.previous], "rotated", "rotated");
    return {
      token: tokenMessage(result.fresh, nowMs),
      secret,
      previous: tokenMessage(result.previous, nowMs),
    };
  };
}
