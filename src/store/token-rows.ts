import postgres from "postgres";
import { PLATFORM_ADMIN } from "../domain/permissions.js";
import { ConflictError } from "../errors.js";

/**
 * Anything that runs a tagged-template query: the pool or a transaction. The repositories'
 * statements take it so that one command can run several of them inside one `sql.begin`.
 */
export type Queryable = postgres.ISql;

/** A rate limit as stored in tokens.rate_limits (jsonb). */
export interface StoredRateLimit {
  readonly name: string;
  readonly limit: number;
  readonly window_ms: number;
}

/**
 * A tokens row as the admin side reads it. int8 columns are selected as text (postgres.js
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
  /** The first token of this token's rotation chain (its own id when it starts one). */
  readonly lineage_id: string;
  readonly secret_hash: Buffer;
  /** Live concurrency-slot leases (slot_leases), 0 once the token is revoked or expired. */
  readonly slots_in_use: number;
}

/**
 * A token to insert; the caller has validated and normalized every field. Optional fields take
 * the schema's defaults (no team, owner, creator or role; no limits; empty lists and map).
 */
export interface NewToken {
  readonly id: string;
  readonly secretHash: Buffer;
  readonly displayHint: string;
  readonly name: string;
  /** latchkey.v1.TokenType number. */
  readonly type: number;
  readonly orgId: string;
  readonly teamId?: string;
  readonly ownerId?: string;
  readonly createdBy?: string;
  readonly role?: string;
  readonly permissions: readonly string[];
  readonly allowedCidrs?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly maxUses?: bigint | null;
  readonly rateLimits?: readonly StoredRateLimit[];
  readonly maxConcurrent?: number;
  readonly createTime: Date;
  readonly expireTime: Date | null;
  readonly requestId?: string | null;
  readonly rotatedFrom?: string | null;
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
  /**
   * Whether tokens holding `platform:admin` are in reach. Only platform callers (and a caller
   * reading its own token) see them: for everyone else they do not exist, so a tenant's
   * org-wide admin cannot read, change or revoke the platform's keys that live in its org.
   * Unset means not in reach.
   */
  readonly platform?: boolean;
}

/** A scope inside one named org (List, filters, the audit trail). */
export type OrgScope = Scope & { readonly orgId: string };

/** A derived token state as a filter can ask for it (state itself is never stored). */
export type StateFilter = "active" | "expired" | "revoked" | "exhausted";

/** A token filter as the List and batch-revoke queries apply it (all set fields AND-ed). */
export interface TokenQueryFilter {
  /** latchkey.v1.TokenType number; undefined: any type. */
  readonly type: number | undefined;
  readonly teamId: string;
  readonly ownerId: string;
  readonly state: StateFilter | undefined;
  readonly unusedSince: Date | undefined;
  readonly neverUsed: boolean;
}

export const TOKEN_COLUMNS = (q: Queryable) => q`
  id, display_hint, name, type, org_id, team_id, owner_id, created_by, role, permissions,
  allowed_cidrs::text[] AS allowed_cidrs, metadata, max_uses::text AS max_uses,
  use_count::text AS use_count, rate_limits, max_concurrent, create_time, update_time,
  expire_time, last_used_time, host(last_used_ip) AS last_used_ip, revoke_time, revoked_by,
  revoke_reason, rotated_from, replaced_by, request_id, lineage_id, secret_hash,
  (SELECT count(*)::int FROM slot_leases l
   WHERE l.token_id = tokens.id AND l.expire_time > now() AND tokens.revoke_time IS NULL
     AND (tokens.expire_time IS NULL OR tokens.expire_time > now())) AS slots_in_use`;

/** Rows that are not platform tokens, unless the scope reaches them. */
export function platformSql(q: Queryable, scope: Scope): postgres.Fragment {
  return scope.platform === true ? q`` : q`AND NOT (permissions @> ${[PLATFORM_ADMIN]}::text[])`;
}

/** The WHERE clause of a scope: its org (unless any org) and, when set, team and owner. */
export function scopeSql(q: Queryable, scope: Scope): postgres.Fragment {
  return q`${scope.orgId === undefined ? q`TRUE` : q`org_id = ${scope.orgId}`}
    ${scope.teamId === "" ? q`` : q`AND team_id = ${scope.teamId}`}
    ${scope.ownerId === "" ? q`` : q`AND owner_id = ${scope.ownerId}`}
    ${platformSql(q, scope)}`;
}

/**
 * The state filter in SQL, in the same order as deriveState and the verifier's decision:
 * revoked → expired → exhausted → active. `now` is passed in (not SQL now()) so a List and the
 * states it returns agree with the service clock. Revocation does not depend on any clock: a
 * non-null revoke_time is revoked, whichever instance's clock wrote it.
 */
function stateSql(q: Queryable, state: StateFilter | undefined, now: Date): postgres.Fragment {
  const revoked = q`(revoke_time IS NOT NULL)`;
  const expired = q`(expire_time IS NOT NULL AND expire_time <= ${now})`;
  const exhausted = q`(max_uses IS NOT NULL AND use_count >= max_uses)`;
  switch (state) {
    case undefined:
      return q``;
    case "revoked":
      return q`AND ${revoked}`;
    case "expired":
      return q`AND NOT ${revoked} AND ${expired}`;
    case "exhausted":
      return q`AND NOT ${revoked} AND NOT ${expired} AND ${exhausted}`;
    case "active":
      return q`AND NOT ${revoked} AND NOT ${expired} AND NOT ${exhausted}`;
  }
}

/** The AND-ed conditions of a token filter at `now`. */
export function filterSql(q: Queryable, f: TokenQueryFilter, now: Date): postgres.Fragment {
  return q`
    ${f.type === undefined ? q`` : q`AND type = ${f.type}`}
    ${f.teamId === "" ? q`` : q`AND team_id = ${f.teamId}`}
    ${f.ownerId === "" ? q`` : q`AND owner_id = ${f.ownerId}`}
    ${stateSql(q, f.state, now)}
    ${f.unusedSince === undefined ? q`` : q`AND (last_used_time IS NULL OR last_used_time < ${f.unusedSince})`}
    ${f.neverUsed ? q`AND last_used_time IS NULL` : q``}`;
}

/** The column values of a new token, with the schema's defaults filled in. */
export function insertRow(q: Queryable, t: NewToken) {
  return {
    id: t.id,
    secret_hash: t.secretHash,
    display_hint: t.displayHint,
    name: t.name,
    type: t.type,
    org_id: t.orgId,
    team_id: t.teamId ?? "",
    owner_id: t.ownerId ?? "",
    created_by: t.createdBy ?? "",
    role: t.role ?? "",
    permissions: [...t.permissions],
    allowed_cidrs: [...(t.allowedCidrs ?? [])],
    metadata: q.json({ ...t.metadata }),
    max_uses: t.maxUses === undefined || t.maxUses === null ? null : t.maxUses.toString(),
    rate_limits: q.json((t.rateLimits ?? []).map((r) => ({ ...r }))),
    max_concurrent: t.maxConcurrent ?? 0,
    create_time: t.createTime,
    update_time: t.createTime,
    expire_time: t.expireTime,
    request_id: t.requestId ?? null,
    rotated_from: t.rotatedFrom ?? null,
  };
}

/** A unique violation (23505) as the domain's ConflictError; anything else unchanged. */
export function asConflict(err: unknown): unknown {
  if (err instanceof postgres.PostgresError && err.code === "23505") {
    return new ConflictError(err.constraint_name ?? "", err);
  }
  return err;
}

/** Rows in the order of `ids` (statements return them in any order); absent ids are skipped. */
export function inOrder(ids: readonly string[], rows: readonly TokenRow[]): TokenRow[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.flatMap((id) => {
    const r = byId.get(id);
    return r === undefined ? [] : [r];
  });
}
