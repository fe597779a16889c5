import postgres from "postgres";
import { newAuditId } from "../domain/ids.js";
import { copyAuditBatch, insertAuditBatch } from "./audit-batch.js";
import type { NewAuditEvent } from "./audit-repo.js";
import { encodeAuditPrefix, esc } from "./copy-text.js";
import type { Sql } from "./db.js";
import { FlushSchedule, flushWithin } from "./flush-schedule.js";
import { isRetryableDbError, RetryableError } from "./pg-errors.js";

export { type AuditPrefixColumns, decodeCopyText, encodeAuditPrefix } from "./copy-text.js";

/**
 * One verification audit row as the hot path records it: the admin row's fields with the time
 * as epoch ms and no id (the id is made when the row is encoded, at push). Never holds the
 * token. `details` is set only on the few rows that summarise many (sampled denials). `prefix`
 * is {@link encodeAuditPrefix} of the row's constant columns when the caller keeps it cached
 * (the verifier does, per token and code); the writer encodes them otherwise.
 */
export type VerifyAuditRow = Omit<NewAuditEvent, "id" | "time" | "details"> & {
  readonly timeMs: number;
  readonly details?: Readonly<Record<string, string | number>> | undefined;
  readonly prefix?: string | undefined;
};

/** How rows reach Postgres: COPY … FROM STDIN (default, measured cheaper) or multi-row INSERT. */
export type AuditWriteMethod = "copy" | "insert";

export interface AuditWriterOptions {
  readonly sql: Sql;
  /** Rows kept in memory at most; beyond it rows are dropped and counted. */
  readonly maxBuffered?: number;
  /** A flush starts when this many rows wait, without waiting for the timer. */
  readonly batchSize?: number;
  readonly flushIntervalMs?: number;
  readonly method?: AuditWriteMethod;
  /** Applied to the free-text fields before writing (e.g. to scrub a token from a query string). */
  readonly scrub?: (text: string) => string;
  readonly onError?: (err: unknown) => void;
  /** Rows were dropped because the buffer was full (called once per dropping push; throttle it). */
  readonly onDropped?: () => void;
  /** Longest wait between retries of a failed write (default 2 000 ms; the first waits 100 ms). */
  readonly maxBackoffMs?: number;
  /** How long a COPY may take to complete before it is abandoned and retried (default 5 000 ms). */
  readonly copyTimeoutMs?: number;
}

/** Encoded rows taken for one write: COPY text bytes and how many rows they hold. */
interface Batch {
  readonly bytes: Buffer;
  readonly rows: number;
  /** The whole buffer `bytes` is a view of, handed back for reuse once the batch is written. */
  readonly owner: Buffer;
}

/** First size of the row buffer; it doubles as needed (rows are bounded by maxBuffered). */
const INITIAL_BYTES = 256 * 1024;
/** A written buffer larger than this (a backlog after an outage) is left to the GC. */
const MAX_SPARE_BYTES = 8 << 20;

/**
 * Batches verification audit rows into Postgres. A push encodes the row at once as one line of
 * COPY text (id, time, columns) into a byte buffer, so nothing per row stays on the JS heap
 * until the flush (a kept row object would survive young-generation collections and be copied
 * and promoted); the flush hands the bytes to COPY as they are. One write is in flight at a
 * time. A write that fails because the connection did (Postgres restarting, a socket reset, a
 * COPY whose completion never comes) keeps its bytes in front of the buffer and is retried with
 * a capped backoff, and a retry of rows that did reach Postgres skips them (see writeBatch);
 * only a batch Postgres refuses for its data is dropped. Memory is bounded:
 * when `maxBuffered` rows wait, new rows are dropped, counted in `dropped` (exposed in the
 * metrics) and reported through `onDropped`, instead of growing without limit.
 */
export class AuditWriter {
  /** Rows encoded since the last take, as COPY text in `bytes[0, length)`. */
  private bytes: Buffer = Buffer.allocUnsafe(INITIAL_BYTES);
  private length = 0;
  private rows = 0;
  /**
   * A written batch's buffer, kept for the next take: a fresh buffer of this size per flush
   * (several a second) kept V8 in incremental marking, which made every young-generation
   * collection about 3× dearer (7.7 vs 2.0 ms; ~12 µs per audited verification).
   */
  private spare: Buffer | undefined;
  /** Batches taken for a write that failed, oldest first: written before `bytes`. */
  private retry: Batch[] = [];
  private retryRows = 0;
  /** The ISO text of the last row time (rows of one millisecond share it). */
  private lastMs = -1;
  private lastIso = "";
  private inFlight: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** Rows dropped because the buffer was full. */
  dropped = 0;
  /** Rows written. */
  written = 0;
  /** Reserved connections not handed back after a failed COPY (see copy()). */
  abandoned = 0;
  /** Retry timing and the write counters (flushes, seconds, failures) the metrics read. */
  readonly schedule: FlushSchedule;
  /**
   * A COPY did not complete in time: until then, batches go by INSERT, which reports its errors
   * and runs on pooled connections.
   */
  private copyPausedUntilMs = 0;
  private readonly maxBuffered: number;
  private readonly batchSize: number;
  private readonly method: AuditWriteMethod;
  private readonly scrub: (text: string) => string;

  constructor(private readonly options: AuditWriterOptions) {
    this.maxBuffered = options.maxBuffered ?? 200_000;
    this.batchSize = options.batchSize ?? 5_000;
    this.method = options.method ?? "copy";
    this.scrub = options.scrub ?? same;
    this.schedule = new FlushSchedule(options.maxBackoffMs ?? 2_000);
    this.timer = setInterval(() => {
      this.kick();
    }, options.flushIntervalMs ?? 200);
    this.timer.unref();
  }

  /** Records one row; O(1) amortised, never blocks, never throws. */
  push(row: VerifyAuditRow): void {
    if (this.rows + this.retryRows >= this.maxBuffered || this.closed) {
      this.dropped++;
      this.options.onDropped?.();
      return;
    }
    const timeMs = row.timeMs;
    if (timeMs !== this.lastMs) {
      this.lastMs = timeMs;
      this.lastIso = new Date(timeMs).toISOString();
    }
    const scrub = this.scrub;
    const line =
      `${newAuditId(timeMs)}\t${this.lastIso}\t${row.prefix ?? encodeAuditPrefix(row)}` +
      `${esc(scrub(row.clientIp))}\t${esc(scrub(row.method))}\t${esc(scrub(row.path))}\t` +
      `${esc(scrub(row.requestId))}\t` +
      `${row.details === undefined ? "\\N" : esc(JSON.stringify(row.details))}\n`;
    // A UTF-16 unit takes at most 3 bytes of UTF-8: grow before a write could be cut short.
    const need = this.length + line.length * 3;
    if (need > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.bytes.length * 2));
      this.bytes.copy(grown, 0, 0, this.length);
      this.bytes = grown;
    }
    this.length += this.bytes.write(line, this.length);
    this.rows++;
    if (this.rows === this.batchSize) this.kick();
  }

  get pending(): number {
    return this.rows + this.retryRows;
  }

  private kick(force = false): void {
    if (this.inFlight !== undefined || this.pending === 0 || !this.schedule.due(force)) return;
    this.inFlight = this.schedule.timed(this.writeOnce()).finally(() => {
      this.inFlight = undefined;
      if (this.schedule.healthy && this.pending >= this.batchSize) this.kick();
    });
  }

  /** The rows encoded so far as one batch; later pushes go to a fresh buffer. */
  private take(): Batch {
    const batch = {
      bytes: this.bytes.subarray(0, this.length),
      rows: this.rows,
      owner: this.bytes,
    };
    this.bytes =
      this.spare ?? Buffer.allocUnsafe(Math.max(INITIAL_BYTES, Math.min(this.length, 8 << 20)));
    this.spare = undefined;
    this.length = 0;
    this.rows = 0;
    return batch;
  }

  private async writeOnce(): Promise<void> {
    const batches = this.retry;
    this.retry = [];
    this.retryRows = 0;
    if (this.rows > 0) batches.push(this.take());
    let done = 0;
    try {
      for (const batch of batches) {
        await this.writeBatch(batch.bytes);
        this.written += batch.rows;
        done++;
        // COPY and INSERT have copied the bytes out by now: the buffer can take new rows.
        if (batch.owner.length <= MAX_SPARE_BYTES) this.spare = batch.owner;
      }
      this.schedule.succeeded();
    } catch (err) {
      this.schedule.failed();
      this.options.onError?.(err);
      let left = batches.slice(done);
      if (err instanceof RetryableError) this.copyPausedUntilMs = Date.now() + 60_000;
      else if (!isRetryableDbError(err)) {
        // Postgres refused this batch's data: retrying it would block every later row. The
        // batches behind it were never tried and go back for the retry.
        this.dropped += left[0]?.rows ?? 0;
        left = left.slice(1);
      }
      // The connection failed, not the data: the rows go back in front, ahead of newer ones.
      // The buffer may overflow its bound by one batch here rather than lose rows already taken.
      this.retry = left.concat(this.retry);
      this.retryRows += left.reduce((n, b) => n + b.rows, 0);
    }
  }

  /**
   * One batch by COPY, or by INSERT while COPY is paused. A batch may already be in Postgres:
   * a write whose connection died after the server committed it but before its answer arrived
   * is retried like any other, and its rows (same ids) then violate the primary key. COPY has
   * no ON CONFLICT, so such a batch goes again by INSERT … ON CONFLICT DO NOTHING, which skips
   * the rows that are there and writes the rest (an INSERT retry of a batch of more than one
   * statement may have committed part of it).
   */
  private async writeBatch(bytes: Buffer): Promise<void> {
    const sql = this.options.sql;
    if (this.method !== "copy" || Date.now() < this.copyPausedUntilMs) {
      return insertAuditBatch(sql, bytes);
    }
    try {
      await copyAuditBatch(sql, bytes, this.options.copyTimeoutMs ?? 5_000, () => {
        this.abandoned++;
      });
    } catch (err) {
      if (!(err instanceof postgres.PostgresError && err.code === "23505")) throw err;
      await insertAuditBatch(sql, bytes);
    }
  }

  /**
   * Writes everything buffered now (tests, shutdown). Returns early, rows kept, when a write
   * fails (the timer retries them), so a caller never spins against a Postgres that is down.
   */
  async flush(): Promise<void> {
    while (this.inFlight !== undefined || this.pending > 0) {
      if (this.inFlight !== undefined) await this.inFlight;
      else {
        const before = this.schedule.failures;
        this.kick(true);
        if (this.inFlight !== undefined) await this.inFlight;
        if (this.schedule.failures !== before) return; // Postgres is failing: do not spin.
      }
    }
  }

  /**
   * Final flush, retried with the backoff for up to `graceMs` while Postgres fails; rows still
   * unwritten then are counted as dropped. Rows pushed afterwards are dropped.
   */
  async close(graceMs = 3_000): Promise<void> {
    clearInterval(this.timer);
    this.closed = true;
    await flushWithin(
      graceMs,
      () => this.flush(),
      () => this.pending === 0,
      () => this.schedule.retryAtMs,
    );
    if (this.pending > 0) {
      this.dropped += this.pending;
      this.retry = [];
      this.retryRows = 0;
      this.take();
      this.options.onDropped?.();
    }
  }
}

function same(text: string): string {
  return text;
}
