import { insertAuditEvents, type NewAuditEvent } from "./audit-repo.js";
import type { Sql } from "./db.js";
import {
  inOrder,
  type OrgScope,
  type Scope,
  type TokenQueryFilter,
  type TokenRow,
} from "./token-rows.js";
import {
  getToken,
  lockLineage,
  type Revocation,
  revokeTokens,
  selectUnrevoked,
} from "./token-statements.js";

/** A batch revocation by filter, run in bounded transactions (see revokeByFilter). */
export interface FilterRevocation {
  readonly scope: OrgScope;
  readonly filter: TokenQueryFilter;
  /** The clock the filter's state conditions use, fixed for the whole run. */
  readonly now: Date;
  readonly revocation: Revocation;
  /** Tokens revoked per transaction. */
  readonly chunkSize: number;
  /**
   * The audit rows of one chunk, written in its transaction. `total` is set only for the last
   * chunk: the batch's summary row belongs there, so it commits with the end of the run.
   */
  audit(revoked: readonly TokenRow[], total: number | undefined): NewAuditEvent[];
  /** Called after each chunk commits, with its tokens newest first (caches, the response). */
  committed(revoked: readonly TokenRow[]): Promise<void>;
}

/**
 * Revokes every not-yet-revoked token a filter selects, newest first, `chunkSize` per
 * transaction, so that no transaction holds thousands of row locks or builds an unbounded
 * audit insert. The run walks the ids downwards (keyset), so tokens created meanwhile are not
 * picked up and it always ends. Each chunk commits with its own audit rows; the summary row
 * commits with the last chunk, so a run cut short leaves whole chunks and no summary (the
 * service writes an incomplete one on its own; a repeat of the same call finishes the run).
 * Returns how many tokens were revoked.
 */
export async function revokeByFilter(sql: Sql, run: FilterRevocation): Promise<number> {
  let total = 0;
  let after: string | undefined;
  for (;;) {
    const chunk = await sql.begin(async (tx) => {
      const rows = await selectUnrevoked(
        tx,
        run.scope,
        run.filter,
        run.now,
        run.chunkSize,
        true,
        after,
      );
      const ids = rows.map((r) => r.id);
      const revoked = inOrder(ids, await revokeTokens(tx, ids, run.revocation));
      const last = rows.length < run.chunkSize;
      await insertAuditEvents(tx, run.audit(revoked, last ? total + revoked.length : undefined));
      return { revoked, last, lastId: rows[rows.length - 1]?.id };
    });
    total += chunk.revoked.length;
    await run.committed(chunk.revoked);
    if (chunk.last || chunk.lastId === undefined) return total;
    after = chunk.lastId;
  }
}

/** A lineage revocation (see revokeLineage). */
export interface LineageRevocation {
  readonly revocation: Revocation;
  /** Throws to refuse (e.g. nothing left to revoke); nothing is then written. */
  check(named: TokenRow, live: readonly TokenRow[]): void;
  audit(revoked: readonly TokenRow[]): NewAuditEvent[];
}

/** How often the lineage is re-read while a concurrent rotation keeps adding to it. */
const MAX_LINEAGE_READS = 10;

/**
 * Revokes every still-valid (not revoked, not expired) token of the lineage of `id`, in one
 * transaction with the audit rows. All members are locked in id order; the lineage is read
 * again until no member appears that a rotation committed while we waited for a lock (the
 * locks held then stop any further rotation). Undefined when `id` is not in reach.
 */
export async function revokeLineage(
  sql: Sql,
  scope: Scope,
  id: string,
  command: LineageRevocation,
): Promise<{ named: TokenRow; revoked: TokenRow[] } | undefined> {
  return await sql.begin(async (tx) => {
    const named = await getToken(tx, scope, id);
    if (named === undefined) return undefined;
    let members = await lockLineage(tx, scope, named.lineage_id);
    for (let i = 1; i < MAX_LINEAGE_READS; i++) {
      const again = await lockLineage(tx, scope, named.lineage_id);
      const grew = again.length !== members.length;
      members = again;
      if (!grew) break;
    }
    const at = command.revocation.at.getTime();
    const live = members.filter(
      (m) => m.revoke_time === null && (m.expire_time === null || m.expire_time.getTime() > at),
    );
    command.check(members.find((m) => m.id === id) ?? named, live);
    const ids = live.map((m) => m.id);
    const revoked = inOrder(ids, await revokeTokens(tx, ids, command.revocation));
    await insertAuditEvents(tx, command.audit(revoked));
    const after = revoked.find((m) => m.id === id) ?? members.find((m) => m.id === id) ?? named;
    return { named: after, revoked };
  });
}
