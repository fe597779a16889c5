import type { RateLimitRule, TokenRecord } from "../domain/token-record.js";
import type { TokenType } from "../gen/latchkey/v1/token_pb.js";
import type { Sql } from "./db.js";

/**
 * The Postgres side of verification: a lookup by secret hash, the atomic consumption of a
 * limited token's uses, and the batched usage update. Kept apart from the admin queries so the
 * hot path depends on three statements whose cost is known, and nothing else.
 */

/** The columns of `recordColumns`, as postgres.js returns them. */
interface RecordRow {
  readonly id: string;
  readonly name: string;
  readonly type: number;
  readonly org_id: string;
  readonly team_id: string;
  readonly owner_id: string;
  readonly permissions: string[];
  readonly allowed_cidrs: string[];
  readonly metadata: unknown;
  readonly expire_ms: number | null;
  readonly revoke_ms: number | null;
  readonly max_uses: number | null;
  readonly use_count: number;
  readonly rate_limits: unknown;
  readonly max_concurrent: number;
  readonly version: number;
}

/** The columns a TokenRecord is made of, as one postgres.js fragment for every record query. */
function recordColumns(sql: Sql) {
  return sql`
    id, name, type::int AS type, org_id, team_id, owner_id, permissions,
    allowed_cidrs::text[] AS allowed_cidrs, metadata,
    (extract(epoch FROM expire_time) * 1000)::float8 AS expire_ms,
    (extract(epoch FROM revoke_time) * 1000)::float8 AS revoke_ms,
    max_uses::float8 AS max_uses, use_count::float8 AS use_count,
    rate_limits, max_concurrent, version::float8 AS version`;
}

/**
 * Loads the verification record of the token whose secret hashes to `secretHash`, or undefined
 * when there is none. Times come back as epoch milliseconds and counts as float8, so the row
 * maps to a TokenRecord without Date or bigint allocations. `readAtMs` (taken before the query
 * is sent) is stamped on the record: its age bounds how long any cache may serve it. Throws
 * when Postgres fails (the caller turns that into UNAVAILABLE).
 */
export async function loadTokenByHash(
  sql: Sql,
  secretHash: Uint8Array,
  readAtMs: number = Date.now(),
): Promise<TokenRecord | undefined> {
  const rows = await sql<RecordRow[]>`
    SELECT ${recordColumns(sql)}
    FROM tokens WHERE secret_hash = ${toBuffer(secretHash)}`;
  const row = rows[0];
  return row === undefined ? undefined : rowToRecord(row, readAtMs);
}

function rowToRecord(row: RecordRow, readAtMs: number): TokenRecord {
  return {
    id: row.id,
    name: row.name,
    type: row.type as TokenType,
    orgId: row.org_id,
    teamId: row.team_id,
    ownerId: row.owner_id,
    permissions: row.permissions,
    allowedCidrs: row.allowed_cidrs,
    metadata: toStringMap(row.metadata),
    expireTimeMs: row.expire_ms === null ? null : Math.round(row.expire_ms),
    revokeTimeMs: row.revoke_ms === null ? null : Math.round(row.revoke_ms),
    maxUses: row.max_uses,
    useCount: row.use_count,
    rateLimits: toRateLimits(row.rate_limits),
    maxConcurrent: row.max_concurrent,
    version: row.version,
    readAtMs,
  };
}

function toStringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value !== "object" || value === null) return out;
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === "string") out[k] = v;
  }
  return out;
}

function toRateLimits(value: unknown): RateLimitRule[] {
  if (!Array.isArray(value)) return [];
  const out: RateLimitRule[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== "object" || item === null) continue;
    const r = item as { name?: unknown; limit?: unknown; window_ms?: unknown };
    const limit = Number(r.limit);
    const windowMs = Number(r.window_ms);
    if (!(limit > 0) || !(windowMs > 0)) continue;
    out.push({ name: typeof r.name === "string" ? r.name : "", limit, windowMs });
  }
  return out;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * Verification's reads and writes of tokens on `sql`, in the shape the verify pipeline takes
 * (its TokenSource). A read is safe to repeat, so a lookup is retried (twice) when a pooled
 * connection was dropped under it: after a Postgres restart every pooled connection fails once
 * before it reconnects, and a verification must not pay for that.
 */
export function postgresTokenSource(sql: Sql, clock: () => number = Date.now) {
  const find = async (
    secretHash: Uint8Array,
    attempt: number,
  ): Promise<TokenRecord | undefined> => {
    try {
      return await loadTokenByHash(sql, secretHash, clock());
    } catch (err) {
      if (attempt < 2 && isDroppedConnection(err)) return find(secretHash, attempt + 1);
      throw err;
    }
  };
  return {
    findByHash: (secretHash: Uint8Array): Promise<TokenRecord | undefined> => find(secretHash, 0),
    consumeUse: (id: string, clientIp: string | undefined): Promise<ConsumeResult> =>
      consumeUse(sql, id, clientIp, clock()),
  };
}

/** A pooled connection that was closed under the query (the next attempt opens a new one). */
function isDroppedConnection(err: unknown): boolean {
  const code = typeof err === "object" && err !== null && "code" in err ? err.code : undefined;
  return (
    code === "CONNECTION_ENDED" ||
    code === "CONNECTION_CLOSED" ||
    code === "CONNECTION_DESTROYED" ||
    code === "57P01" ||
    code === "57P02" ||
    code === "ECONNRESET"
  );
}

/** The answer of an atomic consumption. */
export type ConsumeResult =
  | { readonly ok: true; readonly useCount: number; readonly maxUses: number }
  /** Refused: `record` is the token as it is now (revoked, expired or exhausted), if it exists. */
  | { readonly ok: false; readonly record: TokenRecord | undefined };

/**
 * Takes one use of a limited token, exactly once across every instance: the row lock of the
 * UPDATE serialises concurrent verifications, and the WHERE clause re-checks revocation and
 * expiry so a cache that missed a revocation cannot spend a use. A single-use token therefore
 * verifies VALID once, ever. last_used_* are written in the same statement.
 */
export async function consumeUse(
  sql: Sql,
  id: string,
  clientIp: string | undefined,
  readAtMs: number = Date.now(),
): Promise<ConsumeResult> {
  const rows = await sql<{ use_count: number; max_uses: number }[]>`
    UPDATE tokens
       SET use_count = use_count + 1, last_used_time = now(),
           last_used_ip = ${clientIp ?? null}::inet
     WHERE id = ${id} AND max_uses IS NOT NULL AND use_count < max_uses
       AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now())
    RETURNING use_count::float8 AS use_count, max_uses::float8 AS max_uses`;
  const row = rows[0];
  if (row !== undefined) return { ok: true, useCount: row.use_count, maxUses: row.max_uses };
  const now = await sql<RecordRow[]>`
    SELECT ${recordColumns(sql)}
    FROM tokens WHERE id = ${id}`;
  const current = now[0];
  return {
    ok: false,
    record: current === undefined ? undefined : rowToRecord(current, readAtMs),
  };
}

/** Aggregated usage of one token since the last flush. */
export interface UsageDelta {
  readonly id: string;
  readonly uses: number;
  readonly lastUsedMs: number;
  /** Normalised IP, or null when the verification carried none (or an unparsable one). */
  readonly lastUsedIp: string | null;
}

/**
 * Applies many tokens' usage in one statement. Ids are sorted so that two instances flushing
 * at once lock rows in the same order (no deadlock). last_used_* only move forward in time.
 */
export async function applyUsage(sql: Sql, deltas: readonly UsageDelta[]): Promise<void> {
  if (deltas.length === 0) return;
  const sorted = [...deltas].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const ids = sorted.map((d) => d.id);
  const uses = sorted.map((d) => d.uses);
  const times = sorted.map((d) => d.lastUsedMs / 1000);
  const ips = sorted.map((d) => d.lastUsedIp ?? "");
  await sql`
    UPDATE tokens t
       SET use_count = t.use_count + u.n,
           last_used_time = greatest(t.last_used_time, to_timestamp(u.at)),
           last_used_ip = CASE
             WHEN t.last_used_time IS NULL OR to_timestamp(u.at) >= t.last_used_time
             THEN coalesce(nullif(u.ip, '')::inet, t.last_used_ip)
             ELSE t.last_used_ip END
      FROM unnest(${ids}::text[], ${uses}::int8[], ${times}::float8[], ${ips}::text[])
           AS u(id, n, at, ip)
     WHERE t.id = u.id`;
}
