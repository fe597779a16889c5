import { Code } from "@connectrpc/connect";
import {
  MAX_BATCH_IDS,
  MAX_FILTER_REVOKE,
  MAX_REASON,
  MAX_REQUEST_ID,
} from "../../domain/admin-rules.js";
import { checkFreeText, checkIdentifier, checkIds } from "../../domain/validation.js";
import {
  type FieldViolation,
  invalidArgument,
  notFound,
  refused,
  throwIfInvalid,
} from "../../errors.js";
import type { BatchRevokeTokensRequest } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenState, TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { TokenQueryFilter, TokenRow, TokenSelection } from "../../store/token-repo.js";
import { type Caller, callerOf } from "../context.js";
import { auditFor, auditRows, requestIdOf, tokenSummary } from "./audit-rows.js";
import { type AdminDeps, announce, type Handlers } from "./deps.js";
import { readFilter } from "./filter.js";
import { checkIdField, requireAll } from "./ids.js";
import { tokenMessage } from "./mappers.js";
import { orgScope, reachById, targetOrg } from "./scope.js";

/** RevokeToken: one token in reach, at once and for good, with its audit row. */
export function revokeToken(deps: AdminDeps): Handlers["revokeToken"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    const nowMs = deps.now();
    throwIfInvalid([
      ...checkIdField(req.id, "id"),
      ...checkFreeText(req.reason, "reason", MAX_REASON),
      ...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID),
    ]);
    const at = new Date(nowMs);
    const frame = { caller, ctx, at, requestId: requestIdOf(req.requestId, ctx) };
    const row = await deps.tokens.revoke(reachById(caller), req.id, {
      revocation: { by: caller.tokenId, reason: req.reason, at },
      check(before) {
        if (before.revoke_time !== null) {
          throw refused(
            Code.FailedPrecondition,
            "ALREADY_REVOKED",
            `token ${req.id} is already revoked`,
            {
              token_id: req.id,
            },
          );
        }
      },
      audit: (after) => [
        auditFor(frame, "token.revoke", after, { ...tokenSummary(after), reason: req.reason }),
      ],
    });
    if (row === undefined) throw notFound(`token ${req.id}`);
    await announce(deps, [row], "revoked", req.reason);
    return { token: tokenMessage(row, nowMs) };
  };
}

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

/** What the batch acts on, and the rule its rows must pass (all or nothing). */
function selection(
  req: BatchRevokeTokensRequest,
  caller: Caller,
  filter: TokenQueryFilter | undefined,
  at: Date,
): { selection: TokenSelection; accept(rows: TokenRow[]): TokenRow[] } {
  if (filter === undefined) {
    return {
      selection: { ids: req.ids, scope: reachById(caller) },
      accept: (rows) =>
        requireAll(req.ids, rows, (r) =>
          refused(
            Code.FailedPrecondition,
            "ALREADY_REVOKED",
            `token ${r.id} is already revoked; nothing was revoked`,
            { token_id: r.id },
          ),
        ),
    };
  }
  const scope = orgScope(caller, targetOrg(caller, req.orgId));
  return {
    selection: { filter, scope, now: at, limit: MAX_FILTER_REVOKE + 1 },
    accept(rows) {
      if (rows.length > MAX_FILTER_REVOKE) {
        throw invalidArgument([
          {
            field: "filter",
            description: `matches more than ${MAX_FILTER_REVOKE} tokens; narrow it`,
          },
        ]);
      }
      return rows;
    },
  };
}

/**
 * BatchRevokeTokens: many ids (each in reach, none revoked) or a filter (at most 10,000
 * matches) revoked in one transaction, one audit row each; `dry_run` only shows the selection.
 */
export function batchRevokeTokens(deps: AdminDeps): Handlers["batchRevokeTokens"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    const nowMs = deps.now();
    const v: FieldViolation[] = [];
    const filter = readBatchFilter(req, v);
    v.push(...checkIdentifier(req.orgId, "org_id", { required: false, max: 128 }));
    v.push(...checkFreeText(req.reason, "reason", MAX_REASON));
    v.push(...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID));
    throwIfInvalid(v);
    const at = new Date(nowMs);
    const frame = { caller, ctx, at, requestId: requestIdOf(req.requestId, ctx) };
    const target = selection(req, caller, filter, at);

    if (req.dryRun) {
      const rows = target.accept(await deps.tokens.select(target.selection));
      return { tokens: rows.map((r) => tokenMessage(r, nowMs)), count: rows.length };
    }
    const revoked = await deps.tokens.batchRevoke(target.selection, {
      revocation: { by: caller.tokenId, reason: req.reason, at },
      accept: target.accept,
      audit: (after) =>
        auditRows(frame, "token.batch_revoke", after, (r) => ({
          ...tokenSummary(r),
          reason: req.reason,
          batch_size: after.length,
        })),
    });
    await announce(deps, revoked, "revoked", req.reason);
    return { tokens: revoked.map((r) => tokenMessage(r, nowMs)), count: revoked.length };
  };
}
