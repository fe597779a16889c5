import { once } from "node:events";
import { newAuditId } from "../domain/ids.js";
import type { NewAuditEvent } from "./audit-repo.js";
import type { Sql } from "./db.js";
import { isRetryableDbError, RetryableError } from "./pg-errors.js";

/**
 * One verification audit row as the hot path records it: the admin row's fields with the time
 * as epoch ms and no id (the id and Date are made at flush time, off the request). Never holds
 * the token. `details` is set only on the few rows that summarise many (sampled denials).
 */
export type VerifyAuditRow = Omit<NewAuditEvent, "id" | "time" | "details"> & {
  readonly timeMs: number;
  readonly details?: Readonly<Record<string, string | number>> | undefined;
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

/**
 * Batches verification audit rows into Postgres. The request thread only pushes a small object;
 * ids, timestamps and the wire format are built once per batch. One write is in flight at a
 * time. A write that fails because the connection did (Postgres restarting, a socket reset, a
 * COPY whose completion never comes) keeps its rows in front of the buffer and is retried with
 * a capped backoff; only a write Postgres refuses for its data is dropped. Memory is bounded:
 * when the buffer is full new rows are dropped, counted in `dropped` (exposed in the metrics)
 * and reported through `onDropped`, instead of growing without limit.
 */
export class AuditWriter {
  private buffer: VerifyAuditRow[] = [];
  private inFlight: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** Rows dropped because the buffer was full. */
  dropped = 0;
  /** Rows written. */
  written = 0;
  /** Failed writes. */
  failures = 0;
  /** Reserved connections not handed back after a failed COPY (see copy()). */
  abandoned = 0;
  /** Failed writes in a row (0 after a success); sets the backoff. */
  /** Writes attempted, and the seconds they took in all (flush latency for the metrics). */
  flushes = 0;
  flushSeconds = 0;
  private streak = 0;
  private retryAtMs = 0;
  /**
   * A COPY did not complete in time: until then, batches go by INSERT, which reports its errors
   * and runs on pooled connections.
   */
  private copyPausedUntilMs = 0;
  private readonly maxBuffered: number;
  private readonly batchSize: number;
  private readonly method: AuditWriteMethod;

  constructor(private readonly options: AuditWriterOptions) {
    this.maxBuffered = options.maxBuffered ?? 200_000;
    this.batchSize = options.batchSize ?? 5_000;
    this.method = options.method ?? "copy";
    this.timer = setInterval(() => {
      this.kick();
    }, options.flushIntervalMs ?? 200);
    this.timer.unref();
  }

  /** Records one row; O(1), never blocks, never throws. */
  push(row: VerifyAuditRow): void {
    const buffer = this.buffer;
    if (buffer.length >= this.maxBuffered || this.closed) {
      this.dropped++;
      this.options.onDropped?.();
      return;
    }
    buffer.push(row);
    if (buffer.length === this.batchSize) this.kick();
  }

  get pending(): number {
    return this.buffer.length;
  }

  private kick(force = false): void {
    if (this.inFlight !== undefined || this.buffer.length === 0) return;
    if (!force && this.streak > 0 && Date.now() < this.retryAtMs) return;
    const started = performance.now();
    this.inFlight = this.writeOnce().finally(() => {
      this.flushes++;
      this.flushSeconds += (performance.now() - started) / 1_000;
      this.inFlight = undefined;
      if (this.streak === 0 && this.buffer.length >= this.batchSize) this.kick();
    });
  }

  private async writeOnce(): Promise<void> {
    const rows = this.buffer;
    this.buffer = [];
    let done = 0;
    try {
      while (done < rows.length) {
        const chunk = rows.length <= 10_000 ? rows : rows.slice(done, done + 10_000);
        if (this.method === "copy" && Date.now() >= this.copyPausedUntilMs) await this.copy(chunk);
        else await this.insert(chunk);
        this.written += chunk.length;
        done += chunk.length;
      }
      this.streak = 0;
    } catch (err) {
      this.failures++;
      this.streak++;
      this.retryAtMs = Date.now() + backoffMs(this.streak, this.options.maxBackoffMs ?? 2_000);
      this.options.onError?.(err);
      const left = done === 0 ? rows : rows.slice(done);
      if (err instanceof RetryableError) this.copyPausedUntilMs = Date.now() + 60_000;
      else if (!isRetryableDbError(err)) {
        // Postgres refused the data itself: retrying would block every later row.
        this.dropped += left.length;
        return;
      }
      // The connection failed, not the data: the rows go back in front, ahead of newer ones.
      // The buffer may overflow its bound by one batch here rather than lose rows already taken.
      this.buffer = left.concat(this.buffer);
    }
  }

  private async copy(rows: readonly VerifyAuditRow[]): Promise<void> {
    const scrub = this.options.scrub ?? same;
    let text = "";
    let lastMs = -1;
    let lastIso = "";
    for (const r of rows) {
      if (r.timeMs !== lastMs) {
        lastMs = r.timeMs;
        lastIso = new Date(r.timeMs).toISOString();
      }
      text +=
        `${newAuditId()}\t${lastIso}\t${esc(r.orgId)}\t${esc(r.actorId)}\t${r.action}\t` +
        `${esc(r.tokenId)}\t${r.decision}\t${r.code}\t${esc(scrub(r.clientIp))}\t` +
        `${esc(scrub(r.method))}\t${esc(scrub(r.path))}\t${esc(scrub(r.requestId))}\t` +
        `${r.details === undefined ? "\\N" : esc(JSON.stringify(r.details))}\n`;
    }
    // COPY runs on a reserved connection: on a pooled one postgres.js may pipeline another
    // query onto the connection while it is in copy-in mode, and Postgres then drops the
    // connection ("protocol synchronization was lost"), failing verifications that shared it.
    const timeoutMs = this.options.copyTimeoutMs ?? 5_000;
    const reserving = this.options.sql.reserve();
    const reserved = await bounded(reserving, timeoutMs, "reserving a connection for COPY");
    let reusable = false;
    try {
      const stream = await reserved`
        COPY audit_events (id, time, org_id, actor_id, action, token_id, decision, code,
                           client_ip, method, path, request_id, details) FROM STDIN`.writable();
      stream.end(text);
      // postgres.js resolves the COPY when the server asks for data and reports completion
      // only through the stream's finish; if the connection dies (or the server refuses the
      // data) after the data was sent, finish never comes. Bounded, and retried.
      await bounded(once(stream, "finish"), timeoutMs, "COPY completion");
      reusable = true;
    } catch (err) {
      // A server error leaves the connection usable; a connection error or a timeout may not.
      reusable = !(err instanceof RetryableError) && !isRetryableDbError(err);
      throw err;
    } finally {
      // postgres.js puts a released connection back among the open ones even when it closed
      // meanwhile, and the next query on it throws from a timer (an uncaught TypeError, which
      // kills the process). A connection that failed is left to the pool's own reconnect
      // (a closed one is already back in its closed queue), at worst one wedged slot leaked.
      if (reusable) reserved.release();
      else this.abandoned++;
    }
  }

  private async insert(rows: readonly VerifyAuditRow[]): Promise<void> {
    const scrub = this.options.scrub ?? same;
    const values = rows.map((r) => ({
      id: newAuditId(),
      time: new Date(r.timeMs),
      org_id: noNul(r.orgId),
      actor_id: noNul(r.actorId),
      action: r.action,
      token_id: noNul(r.tokenId),
      decision: r.decision,
      code: r.code,
      client_ip: noNul(scrub(r.clientIp)),
      method: noNul(scrub(r.method)),
      path: noNul(scrub(r.path)),
      request_id: noNul(scrub(r.requestId)),
      details: r.details === undefined ? null : JSON.stringify(r.details),
    }));
    const sql = this.options.sql;
    // 13 columns × 5 000 rows stays under Postgres' 65 535 parameters.
    for (let i = 0; i < values.length; i += 5_000) {
      await sql`INSERT INTO audit_events ${sql(values.slice(i, i + 5_000))}`;
    }
  }

  /**
   * Writes everything buffered now (tests, shutdown). Returns early, rows kept, when a write
   * fails (the timer retries them), so a caller never spins against a Postgres that is down.
   */
  async flush(): Promise<void> {
    while (this.inFlight !== undefined || this.buffer.length > 0) {
      if (this.inFlight !== undefined) await this.inFlight;
      else {
        const before = this.failures;
        this.kick(true);
        if (this.inFlight !== undefined) await this.inFlight;
        if (this.failures !== before) return; // Postgres is failing: do not spin.
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
      () => this.buffer.length === 0,
      () => this.retryAtMs,
    );
    if (this.buffer.length > 0) {
      this.dropped += this.buffer.length;
      this.buffer = [];
      this.options.onDropped?.();
    }
  }
}

/**
 * `p`, or a RetryableError after `ms`. A value that arrives late is a reserved connection
 * nobody will use: it is released then (close-safe: it was open when it arrived).
 */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new RetryableError(`${what} did not complete in ${ms} ms`));
    }, ms);
  });
  p.then(
    (v) => {
      if (late && typeof v === "function" && "release" in v && typeof v.release === "function") {
        v.release();
      }
    },
    () => {},
  );
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Shutdown of a batch writer: flushes, and while that fails waits for the writer's next retry
 * time and flushes again, until `done()` or `graceMs` has passed.
 */
export async function flushWithin(
  graceMs: number,
  flush: () => Promise<void>,
  done: () => boolean,
  retryAtMs: () => number,
): Promise<void> {
  const until = Date.now() + graceMs;
  for (;;) {
    await flush();
    if (done() || Date.now() >= until) return;
    const wait = Math.max(0, Math.min(retryAtMs(), until) - Date.now());
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** Wait before retry number `streak` (1, 2, …): 100 ms doubling, capped. */
export function backoffMs(streak: number, capMs: number): number {
  return Math.min(capMs, 100 * 2 ** Math.min(streak - 1, 16));
}

function same(text: string): string {
  return text;
}

/** Strips NUL, which a Postgres text value cannot hold. */
function noNul(s: string): string {
  return s.includes("\0") ? s.replaceAll("\0", "") : s;
}

const NEEDS_ESCAPE = /[\\\t\n\r\0]/;

/** COPY text-format escaping (backslash, tab, newline, carriage return); NUL cannot be stored. */
function esc(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/[\\\t\n\r\0]/g, (c) =>
    c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : c === "\r" ? "\\r" : "",
  );
}
