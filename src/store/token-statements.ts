import {
  filterSql,
  inOrder,
  insertRow,
  type NewToken,
  type Queryable,
  type Scope,
  scopeSql,
  TOKEN_COLUMNS,
  type TokenQueryFilter,
  type TokenRow,
} from "./token-rows.js";

/**
 * Inserts tokens in one multi-row INSERT and returns them (in insertion order). Throws the
 * driver's unique violation; the repository turns it into a ConflictError.
 */
export async function insertTokens(q: Queryable, tokens: readonly NewToken[]): Promise<TokenRow[]> {
  if (tokens.length === 0) return [];
  const rows = tokens.map((t) => insertRow(q, t));
  const inserted = await q<TokenRow[]>`
    INSERT INTO tokens ${q(rows)}
    RETURNING ${TOKEN_COLUMNS(q)}`;
  return inOrder(
    tokens.map((t) => t.id),
    inserted,
  );
}

/** The token a caller created earlier with this request_id, if any. */
export async function findByRequestId(
  q: Queryable,
  createdBy: string,
  requestId: string,
): Promise<TokenRow | undefined> {
  const rows = await q<TokenRow[]>`
    SELECT ${TOKEN_COLUMNS(q)} FROM tokens
    WHERE created_by = ${createdBy} AND request_id = ${requestId}`;
  return rows[0];
}

/** One page of tokens inside the scope, newest first, after the keyset position `after`. */
export async function listTokens(
  q: Queryable,
  scope: Scope,
  filter: TokenQueryFilter,
  now: Date,
  limit: number,
  after: string | undefined,
): Promise<TokenRow[]> {
  return await q<TokenRow[]>`
    SELECT ${TOKEN_COLUMNS(q)} FROM tokens
    WHERE ${scopeSql(q, scope)} ${filterSql(q, filter, now)}
    ${after === undefined ? q`` : q`AND id < ${after}`}
    ORDER BY id DESC
    LIMIT ${limit}`;
}

/**
 * One token by id inside the scope; undefined when it does not exist or is out of reach (the
 * two are indistinguishable on purpose). `forUpdate` locks the row for the enclosing
 * transaction.
 */
export async function getToken(
  q: Queryable,
  scope: Scope,
  id: string,
  forUpdate = false,
): Promise<TokenRow | undefined> {
  const rows = await q<TokenRow[]>`
    SELECT ${TOKEN_COLUMNS(q)} FROM tokens
    WHERE id = ${id} AND ${scopeSql(q, scope)}
    ${forUpdate ? q`FOR UPDATE` : q``}`;
  return rows[0];
}

/** Many tokens by id inside the scope, locked when asked; missing ones are simply absent. */
export async function getTokens(
  q: Queryable,
  scope: Scope,
  ids: readonly string[],
  forUpdate = false,
): Promise<TokenRow[]> {
  if (ids.length === 0) return [];
  return await q<TokenRow[]>`
    SELECT ${TOKEN_COLUMNS(q)} FROM tokens
    WHERE id = ANY(${[...ids]}::text[]) AND ${scopeSql(q, scope)}
    ORDER BY id
    ${forUpdate ? q`FOR UPDATE` : q``}`;
}

/**
 * The not-yet-revoked tokens a batch-revoke filter selects, newest first, after the keyset
 * position `after` (ids are creation-ordered), locked when asked; at most `limit` rows.
 */
export async function selectUnrevoked(
  q: Queryable,
  scope: Scope,
  filter: TokenQueryFilter,
  now: Date,
  limit: number,
  forUpdate: boolean,
  after?: string,
): Promise<TokenRow[]> {
  return await q<TokenRow[]>`
    SELECT ${TOKEN_COLUMNS(q)} FROM tokens
    WHERE ${scopeSql(q, scope)} AND revoke_time IS NULL ${filterSql(q, filter, now)}
    ${after === undefined ? q`` : q`AND id < ${after}`}
    ORDER BY id DESC
    LIMIT ${limit}
    ${forUpdate ? q`FOR UPDATE` : q``}`;
}

/** How many not-yet-revoked tokens a batch-revoke filter selects (a dry run's count). */
export async function countUnrevoked(
  q: Queryable,
  scope: Scope,
  filter: TokenQueryFilter,
  now: Date,
): Promise<number> {
  const rows = await q<{ n: string }[]>`
    SELECT count(*)::text AS n FROM tokens
    WHERE ${scopeSql(q, scope)} AND revoke_time IS NULL ${filterSql(q, filter, now)}`;
  return Number(rows[0]?.n ?? "0");
}

/**
 * Every token of a rotation lineage inside the scope, oldest first, locked. Locking all of
 * them in one statement in id order means two lineage revocations never deadlock.
 */
export async function lockLineage(
  q: Queryable,
  scope: Scope,
  lineageId: string,
): Promise<TokenRow[]> {
  return await q<TokenRow[]>`
    SELECT ${TOKEN_COLUMNS(q)} FROM tokens
    WHERE lineage_id = ${lineageId} AND ${scopeSql(q, scope)}
    ORDER BY id
    FOR UPDATE`;
}

/** The fields UpdateToken may change; undefined leaves a field alone. */
export interface TokenChanges {
  readonly name?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly allowedCidrs?: readonly string[];
  readonly expireTime?: Date;
  readonly permissions?: readonly string[];
  readonly role?: string;
}

/** Applies an UpdateToken change to one (locked, checked) token. */
export async function updateToken(
  q: Queryable,
  id: string,
  changes: TokenChanges,
  now: Date,
): Promise<TokenRow> {
  const rows = await q<TokenRow[]>`
    UPDATE tokens SET
      update_time = ${now}
      ${changes.name === undefined ? q`` : q`, name = ${changes.name}`}
      ${changes.metadata === undefined ? q`` : q`, metadata = ${q.json({ ...changes.metadata })}`}
      ${changes.allowedCidrs === undefined ? q`` : q`, allowed_cidrs = ${[...changes.allowedCidrs]}::text[]::cidr[]`}
      ${changes.expireTime === undefined ? q`` : q`, expire_time = ${changes.expireTime}`}
      ${changes.permissions === undefined ? q`` : q`, permissions = ${[...changes.permissions]}::text[]`}
      ${changes.role === undefined ? q`` : q`, role = ${changes.role}`}
    WHERE id = ${id}
    RETURNING ${TOKEN_COLUMNS(q)}`;
  return single(rows, id);
}

/** Who revokes, why and when. */
export interface Revocation {
  readonly by: string;
  readonly reason: string;
  readonly at: Date;
}

/** Revokes the given (locked, not yet revoked) tokens. */
export async function revokeTokens(
  q: Queryable,
  ids: readonly string[],
  r: Revocation,
): Promise<TokenRow[]> {
  if (ids.length === 0) return [];
  return await q<TokenRow[]>`
    UPDATE tokens SET revoke_time = ${r.at}, revoked_by = ${r.by},
      revoke_reason = ${r.reason}, update_time = ${r.at}
    WHERE id = ANY(${[...ids]}::text[]) AND revoke_time IS NULL
    RETURNING ${TOKEN_COLUMNS(q)}`;
}

/** Metadata keys to set (merged over the existing map) and keys to remove. */
export interface MetadataPatch {
  readonly set: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
}

/** Sets, then removes, metadata keys on the given (locked) tokens in one statement. */
export async function patchMetadata(
  q: Queryable,
  ids: readonly string[],
  patch: MetadataPatch,
  now: Date,
): Promise<TokenRow[]> {
  if (ids.length === 0) return [];
  return await q<TokenRow[]>`
    UPDATE tokens SET metadata = (metadata || ${q.json({ ...patch.set })}) - ${[...patch.remove]}::text[],
      update_time = ${now}
    WHERE id = ANY(${[...ids]}::text[])
    RETURNING ${TOKEN_COLUMNS(q)}`;
}

/** How a rotated token ends: revoked at once (no grace period) or expiring at `graceEnd`. */
export interface Retirement {
  readonly revokedBy: string;
  readonly now: Date;
  readonly graceEnd: Date | null;
}

/**
 * Marks `id` as replaced by `replacedBy` and shortens its life: without a grace period it is
 * revoked at once, otherwise it expires at the grace end (never later than it would have).
 */
export async function markRotated(
  q: Queryable,
  id: string,
  replacedBy: string,
  retirement: Retirement,
): Promise<TokenRow> {
  const { revokedBy, now, graceEnd } = retirement;
  const rows = await q<TokenRow[]>`
    UPDATE tokens SET replaced_by = ${replacedBy}, update_time = ${now}
      ${
        graceEnd === null
          ? q`, revoke_time = ${now}, revoked_by = ${revokedBy}, revoke_reason = 'rotated'`
          : q`, expire_time = CASE WHEN expire_time IS NULL OR expire_time > ${graceEnd}
                                   THEN ${graceEnd}::timestamptz ELSE expire_time END`
      }
    WHERE id = ${id}
    RETURNING ${TOKEN_COLUMNS(q)}`;
  return single(rows, id);
}

function single(rows: readonly TokenRow[], id: string): TokenRow {
  const row = rows[0];
  if (row === undefined) throw new Error(`token ${id} vanished inside its transaction`);
  return row;
}
