import { Code } from "@connectrpc/connect";
import { isTokenId } from "../../domain/ids.js";
import { type FieldViolation, LatchkeyError } from "../../errors.js";
import type { TokenRow } from "../../store/token-repo.js";

/** A required token id field: present and shaped `tok_…` (a pasted secret never reaches SQL). */
export function checkIdField(id: string, field: string): FieldViolation[] {
  if (id === "") return [{ field, description: "required" }];
  if (!isTokenId(id)) return [{ field, description: "must be a token id (tok_…)" }];
  return [];
}

/**
 * The by-ids rule of both batch calls, all or nothing: every id must be in reach (else
 * NOT_FOUND naming the first missing one) and none revoked (else `revoked(row)`). Returns the
 * rows in the order of `ids`.
 */
export function requireAll(
  ids: readonly string[],
  rows: readonly TokenRow[],
  revoked: (row: TokenRow) => LatchkeyError,
): TokenRow[] {
  const found = new Map(rows.map((r) => [r.id, r]));
  const missing = ids.find((id) => !found.has(id));
  if (missing !== undefined) {
    throw new LatchkeyError(Code.NotFound, "TOKEN_NOT_FOUND", `token ${missing} not found`, {
      metadata: { token_id: missing },
    });
  }
  const gone = rows.find((r) => r.revoke_time !== null);
  if (gone !== undefined) throw revoked(gone);
  return ids.flatMap((id) => {
    const r = found.get(id);
    return r === undefined ? [] : [r];
  });
}
