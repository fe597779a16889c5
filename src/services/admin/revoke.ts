import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { MAX_REASON, MAX_REQUEST_ID } from "../../domain/admin-rules.js";
import { checkRequestId } from "../../domain/request-id.js";
import { checkFreeText } from "../../domain/validation.js";
import { notFound, refused, throwIfInvalid } from "../../errors.js";
import type { RevokeTokenRequest } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import type { TokenRow } from "../../store/token-repo.js";
import { type CallContext, type Caller, callerOf } from "../context.js";
import { type AuditFrame, auditFor, requestIdOf, tokenSummary } from "./audit-rows.js";
import { type AdminDeps, announce, type Handlers } from "./deps.js";
import { checkIdField } from "./ids.js";
import { tokenMessage } from "./mappers.js";
import { reachById } from "./scope.js";

function alreadyRevoked(id: string, message: string) {
  return refused(Code.FailedPrecondition, "ALREADY_REVOKED", message, { token_id: id });
}

/**
 * RevokeToken with revoke_lineage: every still-valid token of the named token's rotation
 * lineage, in one transaction, one `token.revoke` audit row each (naming the lineage and the
 * id the caller gave). The named token may be revoked already (a leaked, rotated id); only a
 * lineage with nothing left to revoke is FAILED_PRECONDITION.
 */
async function revokeWholeLineage(
  deps: AdminDeps,
  caller: Caller,
  req: RevokeTokenRequest,
  frame: AuditFrame,
) {
  const nowMs = frame.at.getTime();
  const result = await deps.tokens.revokeLineage(reachById(caller), req.id, {
    revocation: { by: caller.tokenId, reason: req.reason, at: frame.at },
    check(_named, live) {
      if (live.length === 0) {
        throw alreadyRevoked(req.id, `no token of the lineage of ${req.id} is still valid`);
      }
    },
    audit: (revoked) =>
      revoked.map((r) =>
        auditFor(frame, "token.revoke", r, {
          ...tokenSummary(r),
          reason: req.reason,
          lineage_id: r.lineage_id,
          revoke_lineage: true,
          named_id: req.id,
          lineage_revoked: revoked.length,
        } satisfies JsonObject),
      ),
  });
  if (result === undefined) throw notFound(`token ${req.id}`);
  await announce(deps, result.revoked, "revoked", req.reason);
  return {
    token: tokenMessage(result.named, nowMs),
    lineageRevoked: result.revoked.map((r) => tokenMessage(r, nowMs)),
  };
}

/** The one-token revocation: at once and for good, with its audit row. */
async function revokeOne(
  deps: AdminDeps,
  caller: Caller,
  req: RevokeTokenRequest,
  frame: AuditFrame,
) {
  const row: TokenRow | undefined = await deps.tokens.revoke(reachById(caller), req.id, {
    revocation: { by: caller.tokenId, reason: req.reason, at: frame.at },
    check(before) {
      if (before.revoke_time !== null) {
        throw alreadyRevoked(req.id, `token ${req.id} is already revoked`);
      }
    },
    audit: (after) => [
      auditFor(frame, "token.revoke", after, { ...tokenSummary(after), reason: req.reason }),
    ],
  });
  if (row === undefined) throw notFound(`token ${req.id}`);
  await announce(deps, [row], "revoked", req.reason);
  return { token: tokenMessage(row, frame.at.getTime()) };
}

/**
 * RevokeToken: one token in reach (or, with revoke_lineage, every still-valid token of its
 * rotation lineage), at once and for good, with audit rows.
 */
export function revokeToken(deps: AdminDeps): Handlers["revokeToken"] {
  return async (req: RevokeTokenRequest, ctx: CallContext) => {
    const caller = callerOf(ctx);
    throwIfInvalid([
      ...checkIdField(req.id, "id"),
      ...checkFreeText(req.reason, "reason", MAX_REASON),
      ...checkRequestId(req.requestId, "request_id", MAX_REQUEST_ID),
    ]);
    const at = new Date(deps.now());
    const frame = { caller, ctx, at, requestId: requestIdOf(req.requestId, ctx) };
    return req.revokeLineage
      ? await revokeWholeLineage(deps, caller, req, frame)
      : await revokeOne(deps, caller, req, frame);
  };
}
