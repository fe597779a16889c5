import postgres from "postgres";
import { Counter, type Registry } from "prom-client";
import type { Sql } from "./db.js";

/**
 * Audit retention (LATCHKEY_AUDIT_RETENTION) and the token change log's horizon. Once a day,
 * one instance of a deployment (an advisory lock decides which):
 *
 * - detaches and drops every partition of `audit_events` whose upper bound lies at or before
 *   `now - retention` (a whole month past it: never the current month, never DEFAULT);
 * - deletes rows older than the retention from the DEFAULT partition, in bounded batches (rows
 *   land there only when a month's partition was missing, and must not outlive the policy);
 * - deletes `token_events` entries older than the retention (30 days when it is unset), in
 *   bounded batches, always keeping the newest entry so the log's head never moves back.
 *
 * See docs/storage.md ("Retention").
 */

const DAY_MS = 86_400_000;

/** How long `token_events` entries are kept when LATCHKEY_AUDIT_RETENTION is unset. */
export const TOKEN_EVENTS_DEFAULT_HORIZON_MS = 30 * DAY_MS;

/**
 * Session advisory lock held for a whole run, so two instances never run it at once. Arbitrary
 * but fixed forever: the first 8 bytes of sha256("latchkey.audit_retention") as a signed bigint.
 * Exported so an operator (or a test) can hold it to pause retention.
 */
export const RETENTION_LOCK_KEY = "5179735800213622366";

/** Rows per DELETE: short transactions, little WAL at a time, no long row locks. */
const DEFAULT_BATCH = 5_000;
/** Batches per table per run (1 M rows by default); the rest waits for the next day. */
const MAX_BATCHES = 200;

/** Where the job reports; pino's logger fits. */
export interface RetentionLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface RetentionOptions {
  /** Audit retention in ms; undefined keeps audit rows forever (token_events: 30 days). */
  readonly retentionMs: number | undefined;
  /** The clock; default now. */
  readonly now?: Date;
  readonly log?: RetentionLog;
  /** Rows per DELETE batch; default 5,000. */
  readonly batchSize?: number;
  /** Called once per dropped partition (the metric). */
  readonly onDropped?: (partition: string) => void;
  /** Stops between batches and partitions (shutdown). */
  readonly signal?: AbortSignal;
}

export interface RetentionResult {
  /** False when another instance held the lock: this one did nothing. */
  readonly ran: boolean;
  readonly droppedPartitions: readonly string[];
  readonly defaultRowsDeleted: number;
  readonly tokenEventsDeleted: number;
}

const quiet: RetentionLog = { info: () => {}, warn: () => {} };

/**
 * One retention run. Takes a session advisory lock on a connection reserved from `sql` for the
 * run (a few statements; seconds at most) and returns `ran: false` at once when another
 * instance holds it, so a deployment of many instances drops each partition exactly once.
 */
export async function runAuditRetention(
  sql: Sql,
  opts: RetentionOptions,
): Promise<RetentionResult> {
  const now = opts.now ?? new Date();
  const log = opts.log ?? quiet;
  const conn = await sql.reserve();
  try {
    const [lock] = await conn<{ ok: boolean }[]>`
      SELECT pg_try_advisory_lock(${RETENTION_LOCK_KEY}::bigint) AS ok`;
    if (lock?.ok !== true) {
      return { ran: false, droppedPartitions: [], defaultRowsDeleted: 0, tokenEventsDeleted: 0 };
    }
    try {
      const batch = opts.batchSize ?? DEFAULT_BATCH;
      const dropped: string[] = [];
      let defaultRowsDeleted = 0;
      if (opts.retentionMs !== undefined) {
        const cutoff = new Date(now.getTime() - opts.retentionMs);
        for (const p of await expiredPartitions(conn, cutoff, now)) {
          if (opts.signal?.aborted === true) break;
          if (await dropPartition(conn, p.name, log)) {
            dropped.push(p.name);
            opts.onDropped?.(p.name);
            log.info(
              { partition: p.name, until: p.until.toISOString(), cutoff: cutoff.toISOString() },
              `audit partition ${p.name} dropped: every row is older than the retention`,
            );
          }
        }
        defaultRowsDeleted = await inBatches(
          opts.signal,
          (limit) => conn`
          DELETE FROM audit_events_default WHERE (time, id) IN (
            SELECT time, id FROM audit_events_default WHERE time < ${cutoff} LIMIT ${limit})`,
          batch,
        );
        if (defaultRowsDeleted > 0) {
          log.info(
            { rows: defaultRowsDeleted, cutoff: cutoff.toISOString() },
            "audit rows older than the retention deleted from the DEFAULT partition",
          );
        }
      }
      const horizon = new Date(
        now.getTime() - (opts.retentionMs ?? TOKEN_EVENTS_DEFAULT_HORIZON_MS),
      );
      // The newest entry stays, whatever its age: WatchRevocations refuses a cursor beyond the
      // log's head, and a head that moved back would refuse every cursor handed out before.
      const tokenEventsDeleted = await inBatches(
        opts.signal,
        (limit) => conn`
        DELETE FROM token_events WHERE seq IN (
          SELECT seq FROM token_events
          WHERE time < ${horizon}
            AND (txid, seq) < (SELECT txid, seq FROM token_events ORDER BY txid DESC, seq DESC LIMIT 1)
          ORDER BY seq LIMIT ${limit})`,
        batch,
      );
      return { ran: true, droppedPartitions: dropped, defaultRowsDeleted, tokenEventsDeleted };
    } finally {
      // A failure here means the connection is gone, and the lock with it (or, on a broken
      // but open one, with the pool's 60 s idle timeout); never mask the run's own error.
      await conn`SELECT pg_advisory_unlock(${RETENTION_LOCK_KEY}::bigint)`.catch(() => {});
    }
  } finally {
    conn.release();
  }
}

type Reserved = postgres.ReservedSql;

/**
 * Partitions of audit_events whose every row is older than `cutoff`: the upper bound (read back
 * from the partition's own bound, so any range partition counts, not only latchkey's monthly
 * ones) is at or before both the cutoff and the start of the current UTC month. DEFAULT and
 * MINVALUE/MAXVALUE bounds never match.
 */
async function expiredPartitions(
  conn: Reserved,
  cutoff: Date,
  now: Date,
): Promise<{ name: string; until: Date }[]> {
  const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const rows = await conn<{ name: string; until: Date }[]>`
    SELECT name, until FROM (
      SELECT c.relname AS name,
        substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)$')::timestamptz
          AS until
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_class parent ON parent.oid = i.inhparent
      WHERE i.inhparent = 'audit_events'::regclass
        AND c.relnamespace = parent.relnamespace
        AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
    ) p
    WHERE until IS NOT NULL AND until <= ${cutoff} AND until <= ${monthStart}
    ORDER BY until`;
  return rows;
}

/**
 * DETACH then DROP in one transaction with a short lock timeout: both take an exclusive lock on
 * audit_events, and every audit insert would queue behind one that waits for a long query.
 * True when dropped; a lock timeout (or a partition someone else removed) is logged and left
 * for the next run.
 */
async function dropPartition(conn: Reserved, name: string, log: RetentionLog): Promise<boolean> {
  await conn`BEGIN`;
  try {
    await conn`SET LOCAL lock_timeout = '5s'`;
    await conn`ALTER TABLE audit_events DETACH PARTITION ${conn(name)}`;
    await conn`DROP TABLE ${conn(name)}`;
    await conn`COMMIT`;
    return true;
  } catch (err) {
    await conn`ROLLBACK`.catch(() => {});
    if (!(err instanceof postgres.PostgresError)) throw err;
    const why = err.code === "55P03" ? "lock timeout, will retry tomorrow" : err.message;
    log.warn({ partition: name, code: err.code }, `audit partition ${name} not dropped: ${why}`);
    return false;
  }
}

/** Runs `step(limit)` until it deletes fewer than `limit` rows (or the cap); returns the total. */
async function inBatches(
  signal: AbortSignal | undefined,
  step: (limit: number) => Promise<{ count: number }>,
  limit: number,
): Promise<number> {
  let total = 0;
  for (let i = 0; i < MAX_BATCHES && signal?.aborted !== true; i++) {
    const { count } = await step(limit);
    total += count;
    if (count < limit) break;
  }
  return total;
}

/** A running daily schedule. */
export interface RetentionSchedule {
  /** Resolves once no run is in progress (the one started at schedule time included). */
  settled(): Promise<void>;
  /** Cancels the schedule; a run in progress stops at its next batch boundary, then resolves. */
  stop(): Promise<void>;
}

export interface RetentionScheduleOptions {
  readonly sql: Sql;
  readonly retentionMs: number | undefined;
  readonly log: RetentionLog;
  /** Where `latchkey_audit_partitions_dropped_total` is registered (/metrics). */
  readonly registry?: Registry | undefined;
  /** Between runs; default one day. */
  readonly intervalMs?: number;
}

/**
 * Runs retention now and then once a day, in the background (a failure is logged and retried
 * the next day, never thrown). Every instance schedules it; the advisory lock lets one run it.
 */
export function scheduleAuditRetention(opts: RetentionScheduleOptions): RetentionSchedule {
  const dropped = new Counter({
    name: "latchkey_audit_partitions_dropped_total",
    help: "Audit partitions this process detached and dropped under LATCHKEY_AUDIT_RETENTION.",
    registers: opts.registry === undefined ? [] : [opts.registry],
  });
  const abort = new AbortController();
  let inflight: Promise<void> | undefined;
  const tick = (): void => {
    if (inflight !== undefined || abort.signal.aborted) return;
    inflight = runAuditRetention(opts.sql, {
      retentionMs: opts.retentionMs,
      log: opts.log,
      signal: abort.signal,
      onDropped: () => dropped.inc(),
    })
      .then(
        () => {},
        (err: unknown) => opts.log.warn({ err }, "audit retention run failed; retrying tomorrow"),
      )
      .finally(() => {
        inflight = undefined;
      });
  };
  tick();
  const timer = setInterval(tick, opts.intervalMs ?? DAY_MS);
  timer.unref();
  return {
    async settled() {
      await inflight;
    },
    async stop() {
      clearInterval(timer);
      abort.abort();
      await inflight;
    },
  };
}
