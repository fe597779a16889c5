import type { Sql } from "./db.js";

/**
 * Reader of `token_events`, the durable, ordered log of token changes that the `tokens`
 * triggers write in the same transaction as the change (migrations/0002_token_events.sql).
 * Instances poll it so that a revocation reaches them whatever Redis does, and
 * WatchRevocations streams it with resumable cursors.
 */

/** What happened to a token, as the trigger classifies it. */
export type TokenEventKind = "revoked" | "rotated" | "expiry_shortened" | "updated";

/** One log entry. Never carries a secret: `secretHash` is the stored SHA-256. */
export interface TokenEvent {
  /** Opaque position of this entry; reading after it yields the entries that follow. */
  readonly cursor: string;
  readonly time: Date;
  readonly tokenId: string;
  readonly orgId: string;
  readonly kind: TokenEventKind;
  readonly reason: string;
  /** tokens.version after the change. */
  readonly version: bigint;
  /**
   * Until when the token stays valid after the change: its revocation time, the end of a
   * rotation's grace, its (new) expiry; null when it has no end, or the entry predates
   * migration 0006.
   */
  readonly validUntil: Date | null;
  readonly secretHash: Buffer;
}

/** The position before every entry. */
export const LOG_START = "0.0";

const CURSOR = /^(\d{1,20})\.(\d{1,20})$/;

/** Whether `cursor` has the shape of a log position (it may still lie beyond the head). */
export function isCursor(cursor: string): boolean {
  return CURSOR.test(cursor);
}

function parts(cursor: string): { txid: string; seq: string } {
  const m = CURSOR.exec(cursor);
  if (m === null || m[1] === undefined || m[2] === undefined) {
    throw new RangeError("not a token event cursor");
  }
  return { txid: m[1], seq: m[2] };
}

interface EventRow {
  readonly txid: string;
  readonly seq: string;
  readonly time: Date;
  readonly token_id: string;
  readonly org_id: string;
  readonly kind: string;
  readonly reason: string;
  readonly version: string;
  readonly secret_hash: Buffer;
  readonly valid_until: Date | null;
}

function toEvent(r: EventRow): TokenEvent {
  return {
    cursor: `${r.txid}.${r.seq}`,
    time: r.time,
    tokenId: r.token_id,
    orgId: r.org_id,
    kind: r.kind as TokenEventKind,
    reason: r.reason,
    version: BigInt(r.version),
    secretHash: r.secret_hash,
    validUntil: r.valid_until,
  };
}

/**
 * The position of the newest entry that is final (no entry can appear before it any more);
 * {@link LOG_START} on an empty log. A reader that starts "from now" starts here.
 */
export async function headCursor(sql: Sql): Promise<string> {
  const [row] = await sql<{ txid: string; seq: string }[]>`
    SELECT txid::text AS txid, seq::text AS seq FROM token_events
    WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY txid DESC, seq DESC LIMIT 1`;
  return row === undefined ? LOG_START : `${row.txid}.${row.seq}`;
}

/**
 * Up to `limit` entries after `after`, oldest first, only from transactions older than every
 * transaction still running: an entry returned here is final, and no later call can return one
 * that sorts before it. With `orgId`, only that org's entries.
 */
export async function readEvents(
  sql: Sql,
  after: string,
  opts: { readonly orgId?: string | undefined; readonly limit: number },
): Promise<TokenEvent[]> {
  const { txid, seq } = parts(after);
  const org = opts.orgId === undefined ? sql`` : sql`AND org_id = ${opts.orgId}`;
  const rows = await sql<EventRow[]>`
    SELECT txid::text AS txid, seq::text AS seq, time, token_id, org_id, kind, reason,
           version::text AS version, secret_hash, valid_until
    FROM token_events
    WHERE (txid, seq) > (${txid}::xid8, ${seq}::bigint)
      AND txid < pg_snapshot_xmin(pg_current_snapshot())
      ${org}
    ORDER BY txid, seq
    LIMIT ${opts.limit}`;
  return rows.map(toEvent);
}

/**
 * The newest final entries, newest first, at most `limit`: how a reader that starts now learns
 * of the changes made just before it started (a cache may still hold copies older than them),
 * at the cost of one short backward index scan whatever the size of the log.
 */
export async function latestEvents(sql: Sql, limit: number): Promise<TokenEvent[]> {
  const rows = await sql<EventRow[]>`
    SELECT txid::text AS txid, seq::text AS seq, time, token_id, org_id, kind, reason,
           version::text AS version, secret_hash, valid_until
    FROM token_events
    WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY txid DESC, seq DESC
    LIMIT ${limit}`;
  return rows.map(toEvent);
}
