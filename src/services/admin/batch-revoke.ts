import { Code } from "@connectrpc/connect";
import { MAX_BATCH_IDS, MAX_REASON, MAX_REQUEST_ID } from "../../domain/admin-rules.js";
import { checkRequestId } from "../../domain/request-id.js";
import { checkFreeText, checkIdentifier, checkIds } from "../../domain/validation.js";
import { type FieldViolation, refused, throwIfInvalid } from "../../errors.js";
import type { BatchRevokeTokensRequest } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenState, TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { TokenQueryFilter, TokenRow } from "../../store/token-repo.js";
import { type Caller, callerOf } from "../context.js";
import { type AuditFrame, auditRows, requestIdOf, tokenSummary } from "./audit-rows.js";
import { revokeFiltered } from "./batch-revoke-filter.js";
import { type AdminDeps, announce, type Handlers } from "./deps.js";
import { readFilter } from "./filter.js";
import { requireAll } from "./ids.js";
import { batchRevokeAnswer } from "./mappers.js";
import { orgScope, reachById, targetOrg } from "./scope.js";

/** The batch's filter, checked (set, not asking for revoked tokens); undefined in ids mode. */
function readBatchFilter(
  req: BatchRevokeTokensRequest,
  v: FieldViolation[],
): TokenQueryFilter | undefined {
  const byIds = req.ids.length > 0;
  if (byIds && req.filter !== undefined) {
    v.push({ field: "filter", description: "give ids or filter, not both" });
  } else if (byIds) {
    v.push(...checkIds(req.ids, "ids", { max: MAX_BATCH_IDS }));
  } else if (req.filter === undefined) {
    v.push({ field: "ids", description: "give ids (1-1000) or a filter" });
  } else {
    const f = req.filter;
    const filter = readFilter(f, "filter", v);
    const empty =
      f.type === TokenType.UNSPECIFIED &&
      f.teamId === "" &&
      f.ownerId === "" &&
      f.state === TokenState.UNSPECIFIED &&
      f.unusedSince === undefined &&
      !f.neverUsed;
    if (empty) v.push({ field: "filter", description: "set at least one filter field" });
    if (f.state === TokenState.REVOKED) {
      v.push({ field: "filter.state", description: "revoked tokens cannot be revoked again" });
    }
    return filter;
  }
  return undefined;
}

/** By ids: each in reach, none revoked, all or nothing, in one transaction. */
async function revokeIds(deps: AdminDeps, req: BatchRevokeTokensRequest, frame: AuditFrame) {
  const nowMs = frame.at.getTime();
  const selection = { ids: req.ids, scope: reachById(frame.caller) };
  const accept = (rows: TokenRow[]) =>
    requireAll(req.ids, rows, (r) =>
      refused(
        Code.FailedPrecondition,
        "ALREADY_REVOKED",
        `token ${r.id} is already revoked; nothing was revoked`,
        { token_id: r.id },
      ),
    );
  if (req.dryRun) {
    const rows = accept(await deps.tokens.select(selection));
    return batchRevokeAnswer(rows, rows.length, nowMs);
  }
  const revoked = await deps.tokens.batchRevoke(selection, {
    revocation: { by: frame.caller.tokenId, reason: req.reason, at: frame.at },
    accept,
    audit: (after) =>
      auditRows(frame, "token.batch_revoke", after, (r) => ({
        ...tokenSummary(r),
        reason: req.reason,
        batch_size: after.length,
      })),
  });
  await announce(deps, revoked, "revoked", req.reason);
  return batchRevokeAnswer(revoked, revoked.length, nowMs);
}

/**
 * BatchRevokeTokens: many ids (each in reach, none revoked; one transaction) or every token a
 * filter selects (in bounded transactions); `dry_run` only shows the selection. The answer
 * carries the count and the first MAX_LISTED_REVOKED tokens.
 */
export function batchRevokeTokens(deps: AdminDeps): Handlers["batchRevokeTokens"] {
  return async (req, ctx) => {
    const caller: Caller = callerOf(ctx);
    const v: FieldViolation[] = [];
    const filter = readBatchFilter(req, v);
    v.push(...checkIdentifier(req.orgId, "org_id", { required: false, max: 128 }));
    v.push(...checkFreeText(req.reason, "reason", MAX_REASON));
    v.push(...checkRequestId(req.requestId, "request_id", MAX_REQUEST_ID));
    throwIfInvalid(v);
    const at = new Date(deps.now());
    const frame = { caller, ctx, at, requestId: requestIdOf(req.requestId, ctx) };
    if (filter === undefined) return await revokeIds(deps, req, frame);
    const scope = orgScope(caller, targetOrg(caller, req.orgId));
    return await revokeFiltered(deps, req, frame, scope, filter);
  };
}
