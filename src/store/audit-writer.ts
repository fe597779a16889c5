import { once } from "node:events";
import { newAuditId } from "../domain/ids.js";
import type { NewAuditEvent } from "./audit-repo.js";
import type { Sql } from "./db.js";

/**
 * One verification audit row as the hot path records it: the admin row's fields with the time
 * as epoch ms, no id and no details (the id and Date are made at flush time, off the request).
 * Never holds the token.
 */
export type VerifyAuditRow = Omit<NewAuditEvent, "id" | "time" | "details"> & {
  readonly timeMs: number;
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
}

/**
 * Batches verification audit rows into Postgres. The request thread only pushes a small object;
 * ids, timestamps and the wire format are built once per batch. Memory is bounded: when the
 * buffer is full (Postgres slow or down) new rows are dropped and counted in `dropped`, which
 * the metrics expose, instead of growing without limit. One write is in flight at a time;
 * rows of a failed write go back to the buffer while there is room.
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
  /** Writes attempted, and the seconds they took in all (flush latency for the metrics). */
  flushes = 0;
  flushSeconds = 0;
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
      return;
    }
    buffer.push(row);
    if (buffer.length === this.batchSize) this.kick();
  }

  get pending(): number {
    return this.buffer.length;
  }

  private kick(): void {
    if (this.inFlight !== undefined || this.buffer.length === 0) return;
    this.inFlight = this.writeOnce().finally(() => {
      this.inFlight = undefined;
      if (this.buffer.length >= this.batchSize) this.kick();
    });
  }

  private async writeOnce(): Promise<void> {
    const rows = this.buffer;
    this.buffer = [];
    const started = performance.now();
    try {
      for (let i = 0; i < rows.length; i += 10_000) {
        const chunk = rows.length <= 10_000 ? rows : rows.slice(i, i + 10_000);
        if (this.method === "copy") await this.copy(chunk);
        else await this.insert(chunk);
        this.written += chunk.length;
      }
    } catch (err) {
      this.failures++;
      this.options.onError?.(err);
      if (isServerError(err)) {
        // Postgres refused the data itself: retrying would block every later row.
        this.dropped += rows.length;
        return;
      }
      // Connection trouble: put the rows back in front while there is room.
      const room = this.maxBuffered - this.buffer.length;
      const keep = Math.max(0, Math.min(room, rows.length));
      this.dropped += rows.length - keep;
      this.buffer = rows.slice(rows.length - keep).concat(this.buffer);
    } finally {
      this.flushes++;
      this.flushSeconds += (performance.now() - started) / 1_000;
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
        `${esc(scrub(r.method))}\t${esc(scrub(r.path))}\t${esc(scrub(r.requestId))}\n`;
    }
    // COPY runs on a reserved connection: on a pooled one postgres.js may pipeline another
    // query onto the connection while it is in copy-in mode, and Postgres then drops the
    // connection ("protocol synchronization was lost"), failing verifications that shared it.
    const reserved = await this.options.sql.reserve();
    try {
      const stream = await reserved`
        COPY audit_events (id, time, org_id, actor_id, action, token_id, decision, code,
                           client_ip, method, path, request_id) FROM STDIN`.writable();
      stream.end(text);
      await once(stream, "finish");
    } finally {
      reserved.release();
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
    }));
    const sql = this.options.sql;
    // 12 columns × 5 000 rows stays under Postgres' 65 535 parameters.
    for (let i = 0; i < values.length; i += 5_000) {
      await sql`INSERT INTO audit_events ${sql(values.slice(i, i + 5_000))}`;
    }
  }

  /** Writes everything buffered now (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.inFlight !== undefined || this.buffer.length > 0) {
      if (this.inFlight !== undefined) await this.inFlight;
      else {
        const before = this.failures;
        this.kick();
        if (this.inFlight !== undefined) await this.inFlight;
        if (this.failures !== before) return; // Postgres is failing: do not spin.
      }
    }
  }

  /** Final flush; rows pushed afterwards are dropped. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    this.closed = true;
  }
}

function same(text: string): string {
  return text;
}

/** A Postgres server error (it has a severity) as opposed to a connection failure. */
function isServerError(err: unknown): boolean {
  return typeof err === "object" && err !== null && "severity" in err;
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
