import type { JsonObject } from "@bufbuild/protobuf";
import { MAX_LISTED_REVOKED, REVOKE_CHUNK } from "../../domain/admin-rules.js";
import { newAuditId } from "../../domain/ids.js";
import { revocationInterrupted } from "../../errors.js";
import type { BatchRevokeTokensRequest } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { NewAuditEvent } from "../../store/audit-repo.js";
import { isConnectionError } from "../../store/db.js";
import type { OrgScope, TokenQueryFilter, TokenRow } from "../../store/token-repo.js";
import { type AuditFrame, auditRow, auditRows, tokenSummary } from "./audit-rows.js";
import { type AdminDeps, announce } from "./deps.js";
import { batchRevokeAnswer } from "./mappers.js";

/** A filter as the batch's summary audit row records it (only the fields that were set). */
function filterDetails(f: TokenQueryFilter): JsonObject {
  const out: JsonObject = {};
  if (f.type !== undefined) out.type = TokenType[f.type] ?? String(f.type);
  if (f.teamId !== "") out.team_id = f.teamId;
  if (f.ownerId !== "") out.owner_id = f.ownerId;
  if (f.state !== undefined) out.state = f.state;
  if (f.unusedSince !== undefined) out.unused_since = f.unusedSince.toISOString();
  if (f.neverUsed) out.never_used = true;
  return out;
}

/** One run of a revocation by filter: what every chunk's audit rows share. */
interface FilterBatch {
  readonly id: string;
  readonly frame: AuditFrame;
  readonly scope: OrgScope;
  readonly filter: TokenQueryFilter;
  readonly reason: string;
}

/**
 * The batch's summary row (id = the batch id): the count and the filter. A run that stopped
 * part-way says `complete: false`; a finished run's row stays as it always was.
 */
function summaryRow(batch: FilterBatch, count: number, complete: boolean): NewAuditEvent {
  const row = auditRow(
    batch.frame,
    "token.batch_revoke",
    { orgId: batch.scope.orgId, tokenId: "" },
    {
      batch_id: batch.id,
      summary: true,
      ...(complete ? {} : { complete: false }),
      count,
      filter: filterDetails(batch.filter),
      reason: batch.reason,
    },
  );
  return { ...row, id: batch.id };
}

/** One chunk's rows: one per token (with the batch id), plus the summary with the last chunk. */
function chunkRows(
  batch: FilterBatch,
  revoked: readonly TokenRow[],
  total: number | undefined,
): NewAuditEvent[] {
  const rows = auditRows(batch.frame, "token.batch_revoke", revoked, (r) => ({
    ...tokenSummary(r),
    reason: batch.reason,
    batch_id: batch.id,
  }));
  return total === undefined ? rows : [...rows, summaryRow(batch, total, true)];
}

/**
 * What to throw for a run that failed after `revoked` tokens committed. The summary row is
 * written on a best-effort basis, in its own statement (storage may still be down: that
 * failure is logged and never replaces the original error). A storage failure becomes
 * UNAVAILABLE saying the revocation is partial; anything else is thrown as it was.
 */
async function interrupted(
  deps: AdminDeps,
  batch: FilterBatch,
  revoked: number,
  err: unknown,
): Promise<unknown> {
  if (revoked > 0) {
    try {
      await deps.audit.insert([summaryRow(batch, revoked, false)]);
    } catch (auditErr) {
      deps.log.warn(
        { err: auditErr, batch_id: batch.id, revoked },
        "summary audit row of an interrupted batch revocation not written",
      );
    }
  }
  return isConnectionError(err) ? revocationInterrupted(revoked, batch.id, err) : err;
}

/**
 * By filter: every match, in transactions of REVOKE_CHUNK tokens, one audit row per token
 * (with the batch id) and one summary row (id = the batch id; the count and the filter) that
 * commits with the last chunk. Caches hear of each chunk as it commits. If storage fails
 * part-way, the committed chunks stay revoked and the error says how many (see
 * {@link interrupted}); the same request again revokes the rest.
 */
export async function revokeFiltered(
  deps: AdminDeps,
  req: BatchRevokeTokensRequest,
  frame: AuditFrame,
  scope: OrgScope,
  filter: TokenQueryFilter,
) {
  const nowMs = frame.at.getTime();
  if (req.dryRun) {
    const [rows, count] = await Promise.all([
      deps.tokens.select({ filter, scope, now: frame.at, limit: MAX_LISTED_REVOKED }),
      deps.tokens.countUnrevoked(scope, filter, frame.at),
    ]);
    return batchRevokeAnswer(rows, count, nowMs);
  }
  const batch: FilterBatch = { id: newAuditId(), frame, scope, filter, reason: req.reason };
  const listed: TokenRow[] = [];
  let revoked = 0;
  try {
    const count = await deps.tokens.revokeByFilter({
      scope,
      filter,
      now: frame.at,
      revocation: { by: frame.caller.tokenId, reason: req.reason, at: frame.at },
      chunkSize: REVOKE_CHUNK,
      audit: (rows, total) => chunkRows(batch, rows, total),
      async committed(rows) {
        revoked += rows.length;
        for (const r of rows) if (listed.length < MAX_LISTED_REVOKED) listed.push(r);
        await announce(deps, rows, "revoked", req.reason);
      },
    });
    return batchRevokeAnswer(listed, count, nowMs);
  } catch (err) {
    throw await interrupted(deps, batch, revoked, err);
  }
}
