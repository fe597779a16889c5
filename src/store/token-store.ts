import { create, type JsonObject } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type postgres from "postgres";
import { deriveState } from "../domain/state.js";
import {
  type AuditEvent,
  AuditEventSchema,
  RateLimitSchema,
  type Token,
  TokenSchema,
  TokenState,
  type TokenType,
} from "../gen/latchkey/v1/token_pb.js";

/**
 * Anything that runs a tagged-template query: the pool or a transaction. Store functions take
 * it so that a service can run several of them inside one `sql.begin`.
 */
export type Queryable = postgres.ISql;

/** A rate limit as stored in tokens.rate_limits (jsonb). */
export interface StoredRateLimit {
  readonly name: string;
  readonly limit: number;
  readonly window_ms: number;
}

/**
 * A tokens row as the admin store reads it. int8 columns are selected as text (postgres.js
 * gives strings for int8 anyway, and text keeps that explicit); cidr[] and inet as text.
 * `secret_hash` is read only where a cache must be told about a change, and never copied into
 * a Token message.
 */
export interface TokenRow {
  readonly id: string;
  readonly display_hint: string;
  readonly name: string;
  readonly type: number;
  readonly org_id: string;
  readonly team_id: string;
  readonly owner_id: string;
  readonly created_by: string;
  readonly role: string;
  readonly permissions: string[];
  readonly allowed_cidrs: string[];
  readonly metadata: Record<string, string>;
  readonly max_uses: string | null;
  readonly use_count: string;
  readonly rate_limits: StoredRateLimit[];
  readonly max_concurrent: number;
  readonly create_time: Date;
  readonly update_time: Date;
  readonly expire_time: Date | null;
  readonly last_used_time: Date | null;
  readonly last_used_ip: string | null;
  readonly revoke_time: Date | null;
  readonly revoked_by: string | null;
  readonly revoke_reason: string | null;
  readonly rotated_from: string | null;
  readonly replaced_by: string | null;
  readonly request_id: string | null;
  readonly secret_hash: Buffer;
}

/**
 * Who may be reached by a query. `orgId` undefined means "any org" and is used only for a
 * platform caller reaching a token by id; every other query names its org. `teamId` and
 * `ownerId`, when not empty, narrow the reach to one team and/or one owner (team-scoped and
 * personal callers).
 */
export interface Scope {
  readonly orgId: string | undefined;
  readonly teamId: string;
  readonly ownerId: string;
}

/** A token filter as the List and batch-revoke queries apply it (all set fields AND-ed). */
export interface TokenQueryFilter {
  readonly type: TokenType | undefined;
  readonly teamId: string;
  readonly ownerId: string;
  readonly state: TokenState;
  readonly unusedSince: Date | undefined;
  readonly neverUsed: boolean;
}

const TOKEN_COLUMNS = (q: Queryable) => q`
  id, display_hint, name, type, org_id, team_id, owner_id, created_by, role, permissions,
  allowed_cidrs::text[] AS allowed_cidrs, metadata, max_uses::text AS max_uses,
  use_count::text AS use_count, rate_limits, max_concurrent, create_time, update_time,
  expire_time, last_used_time, host(last_used_ip) AS last_used_ip, revoke_time, revoked_by,
  revoke_reason, rotated_from, replaced_by, request_id, secret_hash`;

function scopeSql(q: Queryable, scope: Scope): postgres.Fragment {
  return q`${scope.orgId === undefined ? q`TRUE` : q`org_id = ${scope.orgId}`}
    ${scope.teamId === "" ? q`` : q`AND team_id = ${scope.teamId}`}
    ${scope.ownerId === "" ? q`` : q`AND owner_id = ${scope.ownerId}`}`;
}

/**
 * The state filter in SQL, in the same order as deriveState and the verifier's decision:
 * revoked → expired → exhausted → active. `now` is passed in (not SQL now()) so a List and the
 * states it returns agree with the service clock.
 */
function stateSql(q: Queryable, state: TokenState, now: Date): postgres.Fragment {
  const revoked = q`(revoke_time IS NOT NULL AND revoke_time <= ${now})`;
  const expired = q`(expire_time IS NOT NULL AND expire_time <= ${now})`;
  const exhausted = q`(max_uses IS NOT NULL AND use_count >= max_uses)`;
  switch (state) {
    case TokenState.UNSPECIFIED:
      return q``;
    case TokenState.REVOKED:
      return q`AND ${revoked}`;
    case TokenState.EXPIRED:
      return q`AND NOT ${revoked} AND ${expired}`;
    case TokenState.EXHAUSTED:
      return q`AND NOT ${revoked} AND NOT ${expired} AND ${exhausted}`;
    case TokenState.ACTIVE:
      return q`AND NOT ${revoked} AND NOT ${expired} AND NOT ${exhausted}`;
  }
}

function filterSql(q: Queryable, f: TokenQueryFilter, now: Date): postgres.Fragment {
  return q`
    ${f.type === undefined ? q`` : q`AND type = ${f.type}`}
    ${f.teamId === "" ? q`` : q`AND team_id = ${f.teamId}`}
    ${f.ownerId === "" ? q`` : q`AND owner_id = ${f.ownerId}`}
    ${stateSql(q, f.state, now)}
    ${f.unusedSince === undefined ? q`` : q`AND (last_used_time IS NULL OR last_used_time < ${f.unusedSince})`}
    ${f.neverUsed ? q`AND last_used_time IS NULL` : q``}`;
}

function toBigInt(value: string): bigint {
  return BigInt(value);
}

/**
 * Maps a row to the Token message. State and remaining uses are derived here, at read time,
 * with the same rule the verifier applies, so Get, List and Verify agree. The secret hash is
 * deliberately not copied.
 */
export function rowToToken(row: TokenRow, nowMs: number): Token {
  const useCount = toBigInt(row.use_count);
  const maxUses = row.max_uses === null ? undefined : toBigInt(row.max_uses);
  const state = deriveState(
    {
      revokeTime: row.revoke_time === null ? null : row.revoke_time.getTime(),
      expireTime: row.expire_time === null ? null : row.expire_time.getTime(),
      maxUses: maxUses === undefined ? null : Number(maxUses),
      useCount: Number(useCount),
    },
    nowMs,
  );
  const token = create(TokenSchema, {
    id: row.id,
    name: row.name,
    type: row.type,
    orgId: row.org_id,
    teamId: row.team_id,
    ownerId: row.owner_id,
    createdBy: row.created_by,
    createTime: timestampFromDate(row.create_time),
    updateTime: timestampFromDate(row.update_time),
    lastUsedIp: row.last_used_ip ?? "",
    useCount,
    state,
    revokedBy: row.revoked_by ?? "",
    revokeReason: row.revoke_reason ?? "",
    rotatedFrom: row.rotated_from ?? "",
    replacedBy: row.replaced_by ?? "",
    role: row.role,
    permissions: [...row.permissions],
    allowedCidrs: [...row.allowed_cidrs],
    metadata: { ...row.metadata },
    rateLimits: row.rate_limits.map((r) =>
      create(RateLimitSchema, {
        name: r.name,
        limit: BigInt(r.limit),
        window: durationFromMs(r.window_ms),
      }),
    ),
    maxConcurrent: row.max_concurrent,
    displayHint: row.display_hint,
  });
  if (row.expire_time !== null) token.expireTime = timestampFromDate(row.expire_time);
  if (row.last_used_time !== null) token.lastUsedTime = timestampFromDate(row.last_used_time);
  if (row.revoke_time !== null) token.revokeTime = timestampFromDate(row.revoke_time);
  if (maxUses !== undefined) {
    token.maxUses = maxUses;
    const left = maxUses - useCount;
    token.remainingUses = left > 0n ? left : 0n;
  }
  return token;
}

/** A token to insert; the caller has validated and normalized every field. */
export interface NewToken {
  readonly id: string;
  readonly secretHash: Buffer;
  readonly displayHint: string;
  readonly name: string;
  readonly type: TokenType;
  readonly orgId: string;
  readonly teamId: string;
  readonly ownerId: string;
  readonly createdBy: string;
  readonly role: string;
  readonly permissions: readonly string[];
  readonly allowedCidrs: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly maxUses: bigint | null;
  readonly rateLimits: readonly StoredRateLimit[];
  readonly maxConcurrent: number;
  readonly createTime: Date;
  readonly expireTime: Date | null;
  readonly requestId: string | null;
  readonly rotatedFrom: string | null;
}

function insertRow(q: Queryable, t: NewToken) {
  return {
    id: t.id,
    secret_hash: t.secretHash,
    display_hint: t.displayHint,
    name: t.name,
    type: t.type,
    org_id: t.orgId,
    team_id: t.teamId,
    owner_id: t.ownerId,
    created_by: t.createdBy,
    role: t.role,
    permissions: [...t.permissions],
    allowed_cidrs: [...t.allowedCidrs],
    metadata: q.json({ ...t.metadata }),
    max_uses: t.maxUses === null ? null : t.maxUses.toString(),
    rate_limits: q.json(t.rateLimits.map((r) => ({ ...r }))),
    max_concurrent: t.maxConcurrent,
    create_time: t.createTime,
    update_time: t.createTime,
    expire_time: t.expireTime,
    request_id: t.requestId,
    rotated_from: t.rotatedFrom,
  };
}

/**
 * Inserts tokens in one multi-row INSERT and returns them (in insertion order). Throws the
 * Postgres unique violation (23505) on a repeated (created_by, request_id); the service turns
 * that into the idempotent answer.
 */
export async function insertTokens(q: Queryable, tokens: readonly NewToken[]): Promise<TokenRow[]> {
  if (tokens.length === 0) return [];
  const rows = tokens.map((t) => insertRow(q, t));
  const inserted = await q<TokenRow[]>`
    INSERT INTO tokens ${q(rows)}
    RETURNING ${TOKEN_COLUMNS(q)}`;
  const byId = new Map(inserted.map((r) => [r.id, r]));
  return tokens.flatMap((t) => {
    const row = byId.get(t.id);
    return row === undefined ? [] : [row];
  });
}

/** The token a caller created earlier with this request_id, if any (idempotent CreateToken). */
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
 * One page of tokens, newest first (ids are ULIDs, so id order is creation order): keyset
 * pagination on id, `after` being the last id of the previous page. Asks for one row more
 * than `limit` so the caller knows whether a next page exists.
 */
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
 * The not-yet-revoked tokens a batch-revoke filter selects, newest first, locked; at most
 * `limit` rows (the caller asks for one more than its cap to detect an oversized filter).
 */
export async function selectForBatchRevoke(
  q: Queryable,
  scope: Scope,
  filter: TokenQueryFilter,
  now: Date,
  limit: number,
  forUpdate: boolean,
): Promise<TokenRow[]> {
  return await q<TokenRow[]>`
    SELECT ${TOKEN_COLUMNS(q)} FROM tokens
    WHERE ${scopeSql(q, scope)} AND revoke_time IS NULL ${filterSql(q, filter, now)}
    ORDER BY id DESC
    LIMIT ${limit}
    ${forUpdate ? q`FOR UPDATE` : q``}`;
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

/** Applies an UpdateToken change to one token (already locked and checked by the caller). */
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
  const row = rows[0];
  if (row === undefined) throw new Error(`token ${id} vanished inside its transaction`);
  return row;
}

/** Revokes the given (locked, not yet revoked) tokens at `now`. */
export async function revokeTokens(
  q: Queryable,
  ids: readonly string[],
  revokedBy: string,
  reason: string,
  now: Date,
): Promise<TokenRow[]> {
  if (ids.length === 0) return [];
  return await q<TokenRow[]>`
    UPDATE tokens SET revoke_time = ${now}, revoked_by = ${revokedBy},
      revoke_reason = ${reason}, update_time = ${now}
    WHERE id = ANY(${[...ids]}::text[]) AND revoke_time IS NULL
    RETURNING ${TOKEN_COLUMNS(q)}`;
}

/**
 * Sets and removes metadata keys on the given (locked) tokens in one statement: `set` is merged
 * over the existing map, then `remove` keys are dropped.
 */
export async function patchMetadata(
  q: Queryable,
  ids: readonly string[],
  set: Readonly<Record<string, string>>,
  remove: readonly string[],
  now: Date,
): Promise<TokenRow[]> {
  if (ids.length === 0) return [];
  return await q<TokenRow[]>`
    UPDATE tokens SET metadata = (metadata || ${q.json({ ...set })}) - ${[...remove]}::text[],
      update_time = ${now}
    WHERE id = ANY(${[...ids]}::text[])
    RETURNING ${TOKEN_COLUMNS(q)}`;
}

/**
 * Marks `id` as replaced by `replacedBy` and shortens its life: with `revokeAt` it is revoked
 * at once (a rotation with no grace period), otherwise it expires at `expireAt` (never later
 * than it would have).
 */
export async function markRotated(
  q: Queryable,
  id: string,
  replacedBy: string,
  change: { readonly revokedBy: string; readonly now: Date; readonly graceEnd: Date | null },
): Promise<TokenRow> {
  const { revokedBy, now, graceEnd } = change;
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
  const row = rows[0];
  if (row === undefined) throw new Error(`token ${id} vanished inside its transaction`);
  return row;
}

// ---------------------------------------------------------------------------------------------
// Audit

/** One audit row to write. Never holds a secret. */
export interface NewAuditEvent {
  readonly id: string;
  readonly time: Date;
  readonly orgId: string;
  readonly actorId: string;
  readonly action: string;
  readonly tokenId: string;
  readonly decision: number;
  readonly code: string;
  readonly clientIp: string;
  readonly method: string;
  readonly path: string;
  readonly requestId: string;
  readonly details: JsonObject | null;
}

/** Writes audit rows in one multi-row INSERT (inside the change's transaction). */
export async function insertAuditEvents(
  q: Queryable,
  events: readonly NewAuditEvent[],
): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((e) => ({
    id: e.id,
    time: e.time,
    org_id: e.orgId,
    actor_id: e.actorId,
    action: e.action,
    token_id: e.tokenId,
    decision: e.decision,
    code: e.code,
    client_ip: e.clientIp,
    method: e.method,
    path: e.path,
    request_id: e.requestId,
    details: e.details === null ? null : q.json(e.details),
  }));
  // One INSERT per 1000 rows keeps the statement under the 65,535-parameter limit.
  for (let i = 0; i < rows.length; i += 1000) {
    await q`INSERT INTO audit_events ${q(rows.slice(i, i + 1000))}`;
  }
}

/** An audit_events row as read back. */
export interface AuditRow {
  readonly id: string;
  readonly time: Date;
  readonly time_us: string;
  readonly org_id: string;
  readonly actor_id: string;
  readonly action: string;
  readonly token_id: string;
  readonly decision: number;
  readonly code: string;
  readonly client_ip: string;
  readonly method: string;
  readonly path: string;
  readonly request_id: string;
  readonly details: JsonObject | null;
}

/** Filters of ListAuditEvents; empty strings and undefined mean "any". */
export interface AuditQueryFilter {
  readonly tokenId: string;
  readonly actorId: string;
  readonly action: string;
  readonly decision: number;
  readonly startTime: Date | undefined;
  readonly endTime: Date | undefined;
}

/** Keyset position in the audit trail: microseconds since the epoch and the row id. */
export interface AuditCursor {
  readonly timeUs: bigint;
  readonly id: string;
}

/**
 * One page of audit rows of an org, newest first, keyset-paged on (time, id). When `scope`
 * names a team or owner, only rows about (or acted by) tokens in that team/owner are returned,
 * so a team-scoped caller does not read the rest of the org's trail.
 */
export async function listAuditEvents(
  q: Queryable,
  scope: Scope & { readonly orgId: string },
  f: AuditQueryFilter,
  limit: number,
  after: AuditCursor | undefined,
): Promise<AuditRow[]> {
  const restricted = scope.teamId !== "" || scope.ownerId !== "";
  const inScope = q`SELECT id FROM tokens WHERE ${scopeSql(q, scope)}`;
  return await q<AuditRow[]>`
    SELECT id, time, (extract(epoch FROM time) * 1000000)::bigint::text AS time_us, org_id,
      actor_id, action, token_id, decision, code, client_ip, method, path, request_id, details
    FROM audit_events
    WHERE org_id = ${scope.orgId}
      ${restricted ? q`AND (token_id IN (${inScope}) OR actor_id IN (${inScope}))` : q``}
      ${f.tokenId === "" ? q`` : q`AND token_id = ${f.tokenId}`}
      ${f.actorId === "" ? q`` : q`AND actor_id = ${f.actorId}`}
      ${f.action === "" ? q`` : q`AND action = ${f.action}`}
      ${f.decision === 0 ? q`` : q`AND decision = ${f.decision}`}
      ${f.startTime === undefined ? q`` : q`AND time >= ${f.startTime}`}
      ${f.endTime === undefined ? q`` : q`AND time < ${f.endTime}`}
      ${
        after === undefined
          ? q``
          : q`AND (time, id) < (timestamptz 'epoch' + ${after.timeUs.toString()}::bigint * interval '1 microsecond', ${after.id})`
      }
    ORDER BY time DESC, id DESC
    LIMIT ${limit}`;
}

/** Maps an audit row to its message. */
export function rowToAuditEvent(row: AuditRow): AuditEvent {
  const event = create(AuditEventSchema, {
    id: row.id,
    time: timestampFromDate(row.time),
    orgId: row.org_id,
    actorId: row.actor_id,
    action: row.action,
    tokenId: row.token_id,
    decision: row.decision,
    code: row.code,
    clientIp: row.client_ip,
    method: row.method,
    path: row.path,
    requestId: row.request_id,
  });
  if (row.details !== null) event.details = row.details;
  return event;
}
