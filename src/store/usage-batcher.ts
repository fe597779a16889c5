import { normalizeIp } from "../domain/cidr.js";
import type { Sql } from "./db.js";
import { FlushSchedule, flushWithin } from "./flush-schedule.js";
import { isRetryableDbError } from "./pg-errors.js";
import { applyUsage, type UsageDelta } from "./verify-repo.js";

interface Pending {
  uses: number;
  lastUsedMs: number;
  /** Raw client_ip of the latest use; normalised once per flush, not per request. */
  lastIp: string;
}

export interface UsageBatcherOptions {
  readonly sql: Sql;
  /** Default 1 000 ms, so GetToken sees usage well within the 5 s the contract allows. */
  readonly flushIntervalMs?: number;
  /** Distinct tokens aggregated between flushes at most; beyond it uses are dropped and counted. */
  readonly maxTokens?: number;
  readonly onError?: (err: unknown) => void;
  /** Uses were dropped (the map was full, or Postgres refused a batch); throttle it. */
  readonly onDropped?: () => void;
  /** Longest wait between retries of a failed flush (default 2 000 ms). */
  readonly maxBackoffMs?: number;
}

/**
 * Aggregates last_used_time, last_used_ip and use_count per token in memory and writes them in
 * one UPDATE per interval, instead of one write per verification (20k writes/s would make
 * Postgres the bottleneck of every product behind latchkey). Additive, so any number of
 * instances can flush the same tokens. A flush that fails because the connection did (Postgres
 * restarting) is merged back and retried with a capped backoff; only a batch Postgres refuses
 * for its data is dropped. Bounded: at most `maxTokens` entries; beyond it uses are dropped,
 * counted and reported.
 */
export class UsageBatcher {
  private pending = new Map<string, Pending>();
  private inFlight: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly maxTokens: number;
  /** Uses dropped because the map was full (counted, never silently lost). */
  dropped = 0;
  /** Retry timing and the write counters (flushes, seconds, failures) the metrics read. */
  readonly schedule: FlushSchedule;

  constructor(private readonly options: UsageBatcherOptions) {
    this.maxTokens = options.maxTokens ?? 200_000;
    this.schedule = new FlushSchedule(options.maxBackoffMs ?? 2_000);
    this.timer = setInterval(() => {
      this.kick();
    }, options.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  /** Records one successful use; O(1) on the request path. */
  record(tokenId: string, nowMs: number, clientIp: string): void {
    const p = this.pending.get(tokenId);
    if (p !== undefined) {
      p.uses++;
      if (nowMs >= p.lastUsedMs) {
        p.lastUsedMs = nowMs;
        p.lastIp = clientIp;
      }
      return;
    }
    if (this.pending.size >= this.maxTokens) {
      this.dropped++;
      this.options.onDropped?.();
      return;
    }
    this.pending.set(tokenId, { uses: 1, lastUsedMs: nowMs, lastIp: clientIp });
  }

  private kick(force = false): void {
    if (this.inFlight !== undefined || this.pending.size === 0 || !this.schedule.due(force)) {
      return;
    }
    this.inFlight = this.schedule.timed(this.writeOnce()).finally(() => {
      this.inFlight = undefined;
    });
  }

  private async writeOnce(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const deltas: UsageDelta[] = [];
    for (const [id, p] of batch) {
      deltas.push({
        id,
        uses: p.uses,
        lastUsedMs: p.lastUsedMs,
        lastUsedIp: p.lastIp === "" ? null : (normalizeIp(p.lastIp) ?? null),
      });
    }
    let applied = 0;
    try {
      for (; applied < deltas.length; applied += 5_000) {
        await applyUsage(this.options.sql, deltas.slice(applied, applied + 5_000));
      }
      this.schedule.succeeded();
    } catch (err) {
      this.schedule.failed();
      this.options.onError?.(err);
      const appliedIds = new Set(deltas.slice(0, applied).map((d) => d.id));
      if (!isRetryableDbError(err)) {
        for (const [id, p] of batch) if (!appliedIds.has(id)) this.dropped += p.uses;
        this.options.onDropped?.();
        return;
      }
      // Merge back (newer uses may have arrived meanwhile); a token already pending always
      // merges, a new one only while the bound allows.
      for (const [id, p] of batch) {
        if (appliedIds.has(id)) continue;
        const now = this.pending.get(id);
        if (now !== undefined) {
          now.uses += p.uses;
          if (p.lastUsedMs > now.lastUsedMs) {
            now.lastUsedMs = p.lastUsedMs;
            now.lastIp = p.lastIp;
          }
        } else if (this.pending.size < this.maxTokens) {
          this.pending.set(id, p);
        } else {
          this.dropped += p.uses;
          this.options.onDropped?.();
        }
      }
    }
  }

  /** Distinct tokens with uses waiting for the next flush (metrics). */
  get pendingTokens(): number {
    return this.pending.size;
  }

  /** Writes what is pending now (tests, shutdown); a failed write stays pending. */
  async flush(): Promise<void> {
    if (this.inFlight !== undefined) await this.inFlight;
    this.kick(true);
    if (this.inFlight !== undefined) await this.inFlight;
  }

  /** Final flush, retried with the backoff for up to `graceMs` while Postgres fails. */
  async close(graceMs = 3_000): Promise<void> {
    clearInterval(this.timer);
    await flushWithin(
      graceMs,
      () => this.flush(),
      () => this.pending.size === 0,
      () => this.schedule.retryAtMs,
    );
    for (const p of this.pending.values()) this.dropped += p.uses;
    if (this.pending.size > 0) this.options.onDropped?.();
    this.pending.clear();
  }
}
