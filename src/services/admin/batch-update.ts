import { Code } from "@connectrpc/connect";
import { MAX_BATCH_IDS, MAX_METADATA_KEYS, MAX_REQUEST_ID } from "../../domain/admin-rules.js";
import { checkRequestId } from "../../domain/request-id.js";
import { checkIds, checkMetadata } from "../../domain/validation.js";
import { type FieldViolation, invalidArgument, refused, throwIfInvalid } from "../../errors.js";
import type { MetadataPatch, TokenRow } from "../../store/token-repo.js";
import { callerOf } from "../context.js";
import { auditRows, requestIdOf } from "./audit-rows.js";
import { type AdminDeps, announce, type Handlers } from "./deps.js";
import { requireAll } from "./ids.js";
import { tokenMessage } from "./mappers.js";
import { assertCoversToken, reachById } from "./scope.js";

/** Splits a request's metadata into keys to set and keys to remove (empty values). */
function patchOf(metadata: Readonly<Record<string, string>>): MetadataPatch {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const [k, value] of Object.entries(metadata)) {
    if (value === "") remove.push(k);
    else set[k] = value;
  }
  return { set, remove };
}

/** Refuses the batch if any token would end up with more metadata keys than allowed. */
function assertKeyLimit(rows: readonly TokenRow[], patch: MetadataPatch): void {
  const tooMany = rows.find((r) => {
    const keys = new Set(Object.keys(r.metadata));
    for (const k of Object.keys(patch.set)) keys.add(k);
    for (const k of patch.remove) keys.delete(k);
    return keys.size > MAX_METADATA_KEYS;
  });
  if (tooMany !== undefined) {
    throw invalidArgument([
      {
        field: "metadata",
        description: `token ${tooMany.id} would hold more than ${MAX_METADATA_KEYS} keys`,
      },
    ]);
  }
}

/**
 * BatchUpdateTokens: one metadata change (set keys; an empty value removes one) over many
 * tokens in reach, none revoked, each covered by the caller, all or nothing, one audit row
 * each with the map before.
 */
export function batchUpdateTokens(deps: AdminDeps): Handlers["batchUpdateTokens"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    const nowMs = deps.now();
    const v: FieldViolation[] = [];
    if (req.ids.length === 0) v.push({ field: "ids", description: "give 1-1000 token ids" });
    else v.push(...checkIds(req.ids, "ids", { max: MAX_BATCH_IDS }));
    if (Object.keys(req.metadata).length === 0) {
      v.push({ field: "metadata", description: "give at least one key to set or remove" });
    } else {
      v.push(...checkMetadata(req.metadata, "metadata", { allowEmptyValues: true }));
    }
    v.push(...checkRequestId(req.requestId, "request_id", MAX_REQUEST_ID));
    throwIfInvalid(v);
    const patch = patchOf(req.metadata);
    const at = new Date(nowMs);
    const frame = { caller, ctx, at, requestId: requestIdOf(req.requestId, ctx) };
    const updated = await deps.tokens.batchPatchMetadata(reachById(caller), req.ids, {
      patch,
      at,
      accept(rows) {
        const found = requireAll(req.ids, rows, (r) =>
          refused(
            Code.FailedPrecondition,
            "TOKEN_REVOKED",
            `token ${r.id} is revoked and cannot be changed; nothing was changed`,
            { token_id: r.id },
          ),
        );
        // A weaker caller must not rewrite the metadata a stronger token's verifiers act on.
        for (const r of found) assertCoversToken(caller, r);
        assertKeyLimit(rows, patch);
        return found;
      },
      audit(before, after) {
        const was = new Map(before.map((r) => [r.id, r.metadata]));
        return auditRows(frame, "token.batch_update", after, (r) => ({
          set: { ...patch.set },
          removed: [...patch.remove],
          metadata_before: { ...(was.get(r.id) ?? {}) },
          batch_size: after.length,
        }));
      },
    });
    await announce(deps, updated, "updated", "metadata updated");
    return { tokens: updated.map((r) => tokenMessage(r, nowMs)) };
  };
}
