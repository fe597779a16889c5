import { insertAuditEvents, type NewAuditEvent } from "./audit-repo.js";
import type { Sql } from "./db.js";
import {
  type FilterRevocation,
  type LineageRevocation,
  revokeByFilter,
  revokeLineage,
} from "./token-revocations.js";
import {
  asConflict,
  inOrder,
  type NewToken,
  type OrgScope,
  type Queryable,
  type Scope,
  type TokenQueryFilter,
  type TokenRow,
} from "./token-rows.js";
import {
  countUnrevoked,
  findByRequestId,
  getToken,
  getTokens,
  insertTokens,
  listTokens,
  type MetadataPatch,
  markRotated,
  patchMetadata,
  type Retirement,
  type Revocation,
  revokeTokens,
  selectUnrevoked,
  type TokenChanges,
  updateToken,
} from "./token-statements.js";

export type { FilterRevocation, LineageRevocation } from "./token-revocations.js";
export type {
  NewToken,
  OrgScope,
  Scope,
  StateFilter,
  StoredRateLimit,
  TokenQueryFilter,
  TokenRow,
} from "./token-rows.js";
export type { MetadataPatch, Retirement, Revocation, TokenChanges } from "./token-statements.js";

/**
 * The tokens a batch revocation acts on: named ids inside a reach, or a filter inside an org
 * (at most `limit` rows, not yet revoked).
 */
export type TokenSelection =
  | { readonly ids: readonly string[]; readonly scope: Scope }
  | {
      readonly filter: TokenQueryFilter;
      readonly scope: OrgScope;
      readonly now: Date;
      readonly limit: number;
    };

/**
 * The tokens table as the admin service and bootstrap use it: queries, and commands that each
 * run in one transaction with their audit rows. Every command that changes a token locks it
 * first, hands it to the service's `check`/`decide` callback (which throws to refuse; nothing
 * is then written) and writes the rows the service's `audit` callback builds, so rules stay in
 * the services and transactions here. Commands on one token resolve undefined when it is not
 * in reach. A unique violation leaves as ConflictError.
 */
export interface TokenRepo {
  /** Inserts tokens as given, with no audit row (seeding, imports). */
  insert(tokens: readonly NewToken[]): Promise<TokenRow[]>;
  /** The token a caller created earlier with this request_id (idempotent CreateToken). */
  findByRequestId(createdBy: string, requestId: string): Promise<TokenRow | undefined>;
  get(scope: Scope, id: string): Promise<TokenRow | undefined>;
  /**
   * One page of tokens, newest first (ids are ULIDs, so id order is creation order): keyset
   * pagination on id, `after` being the last id of the previous page.
   */
  list(
    scope: OrgScope,
    filter: TokenQueryFilter,
    now: Date,
    limit: number,
    after: string | undefined,
  ): Promise<TokenRow[]>;
  /** The rows a selection names, unlocked (a dry run). */
  select(selection: TokenSelection): Promise<TokenRow[]>;
  /** How many not-yet-revoked tokens a filter selects inside an org scope (a dry run). */
  countUnrevoked(scope: OrgScope, filter: TokenQueryFilter, now: Date): Promise<number>;
  create(token: NewToken, audit: (row: TokenRow) => NewAuditEvent[]): Promise<TokenRow>;
  /**
   * Creates `token` only when the table is empty, under an advisory lock so that instances
   * starting together create one between them; undefined when a token existed.
   */
  createIfEmpty(
    token: NewToken,
    audit: (row: TokenRow) => NewAuditEvent[],
  ): Promise<TokenRow | undefined>;
  update(
    scope: Scope,
    id: string,
    command: {
      readonly at: Date;
      decide(before: TokenRow): TokenChanges;
      audit(before: TokenRow, after: TokenRow): NewAuditEvent[];
    },
  ): Promise<TokenRow | undefined>;
  revoke(
    scope: Scope,
    id: string,
    command: {
      readonly revocation: Revocation;
      check(before: TokenRow): void;
      audit(after: TokenRow): NewAuditEvent[];
    },
  ): Promise<TokenRow | undefined>;
  /** Revokes what `accept` keeps of the selection (in its order), all or nothing. */
  batchRevoke(
    selection: TokenSelection,
    command: {
      readonly revocation: Revocation;
      accept(rows: TokenRow[]): TokenRow[];
      audit(after: TokenRow[]): NewAuditEvent[];
    },
  ): Promise<TokenRow[]>;
  /**
   * Revokes everything a filter selects in bounded transactions, each with its audit rows;
   * resolves with the number revoked (see revokeByFilter).
   */
  revokeByFilter(run: FilterRevocation): Promise<number>;
  /**
   * Revokes every still-valid token of the rotation lineage of `id`, in one transaction with
   * its audit rows; undefined when `id` is not in reach.
   */
  revokeLineage(
    scope: Scope,
    id: string,
    command: LineageRevocation,
  ): Promise<{ named: TokenRow; revoked: TokenRow[] } | undefined>;
  /** Patches the metadata of every id (returned in `ids` order), all or nothing. */
  batchPatchMetadata(
    scope: Scope,
    ids: readonly string[],
    command: {
      readonly patch: MetadataPatch;
      readonly at: Date;
      accept(rows: TokenRow[]): TokenRow[];
      audit(before: TokenRow[], after: TokenRow[]): NewAuditEvent[];
    },
  ): Promise<TokenRow[]>;
  /**
   * Inserts the successor `plan` builds, retires the old token and writes the audit rows. A
   * successor whose request_id the caller already used leaves as ConflictError.
   */
  rotate(
    scope: Scope,
    id: string,
    command: {
      readonly retirement: Retirement;
      plan(old: TokenRow): NewToken;
      audit(previous: TokenRow, fresh: TokenRow): NewAuditEvent[];
    },
  ): Promise<{ fresh: TokenRow; previous: TokenRow } | undefined>;
}

function selectRows(q: Queryable, s: TokenSelection, lock: boolean): Promise<TokenRow[]> {
  if ("ids" in s) return getTokens(q, s.scope, s.ids, lock);
  return selectUnrevoked(q, s.scope, s.filter, s.now, s.limit, lock);
}

async function insertOne(q: Queryable, token: NewToken): Promise<TokenRow> {
  const [row] = await insertTokens(q, [token]);
  if (row === undefined) throw new Error("insert returned no row");
  return row;
}

/** The token repository over one `sql` pool. */
export function createTokenRepo(sql: Sql): TokenRepo {
  return {
    insert: (tokens) => insertTokens(sql, tokens),

    findByRequestId: (createdBy, requestId) => findByRequestId(sql, createdBy, requestId),

    get: (scope, id) => getToken(sql, scope, id),

    list: (scope, filter, now, limit, after) => listTokens(sql, scope, filter, now, limit, after),

    select: (selection) => selectRows(sql, selection, false),

    countUnrevoked: (scope, filter, now) => countUnrevoked(sql, scope, filter, now),

    revokeByFilter: (run) => revokeByFilter(sql, run),

    revokeLineage: (scope, id, command) => revokeLineage(sql, scope, id, command),

    async create(token, audit) {
      try {
        return await sql.begin(async (tx) => {
          const row = await insertOne(tx, token);
          await insertAuditEvents(tx, audit(row));
          return row;
        });
      } catch (err) {
        throw asConflict(err);
      }
    },

    async createIfEmpty(token, audit) {
      return await sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(hashtext('latchkey.bootstrap'))`;
        const existing = await tx<{ found: boolean }[]>`
          SELECT EXISTS (SELECT 1 FROM tokens) AS found`;
        if (existing[0]?.found !== false) return undefined;
        const row = await insertOne(tx, token);
        await insertAuditEvents(tx, audit(row));
        return row;
      });
    },

    async update(scope, id, command) {
      return await sql.begin(async (tx) => {
        const before = await getToken(tx, scope, id, true);
        if (before === undefined) return undefined;
        const after = await updateToken(tx, before.id, command.decide(before), command.at);
        await insertAuditEvents(tx, command.audit(before, after));
        return after;
      });
    },

    async revoke(scope, id, command) {
      return await sql.begin(async (tx) => {
        const before = await getToken(tx, scope, id, true);
        if (before === undefined) return undefined;
        command.check(before);
        const [after] = await revokeTokens(tx, [before.id], command.revocation);
        if (after === undefined) throw new Error("revoke updated no row");
        await insertAuditEvents(tx, command.audit(after));
        return after;
      });
    },

    async batchRevoke(selection, command) {
      return await sql.begin(async (tx) => {
        const rows = command.accept(await selectRows(tx, selection, true));
        const ids = rows.map((r) => r.id);
        const after = await revokeTokens(tx, ids, command.revocation);
        await insertAuditEvents(tx, command.audit(after));
        return inOrder(ids, after);
      });
    },

    async batchPatchMetadata(scope, ids, command) {
      return await sql.begin(async (tx) => {
        const rows = command.accept(await getTokens(tx, scope, ids, true));
        const after = await patchMetadata(tx, ids, command.patch, command.at);
        await insertAuditEvents(tx, command.audit(rows, after));
        return inOrder(ids, after);
      });
    },

    async rotate(scope, id, command) {
      try {
        return await sql.begin(async (tx) => {
          const old = await getToken(tx, scope, id, true);
          if (old === undefined) return undefined;
          const fresh = await insertOne(tx, command.plan(old));
          const previous = await markRotated(tx, old.id, fresh.id, command.retirement);
          await insertAuditEvents(tx, command.audit(previous, fresh));
          return { fresh, previous };
        });
      } catch (err) {
        throw asConflict(err);
      }
    },
  };
}
