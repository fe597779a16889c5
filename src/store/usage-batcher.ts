import { normalizeIp } from "../domain/cidr.js";
import type { Sql } from "./db.js";
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
}

/**
 * Aggregates last_used_time, last_used_ip and use_count per token in memory and writes them in
 * one UPDATE per interval, instead of one write per verification (20k writes/s would make
 * Postgres the bottleneck of every product behind latchkey). Additive, so any number of
 * instances can flush the same tokens. Bounded: at most `maxTokens` entries.
 */
export class UsageBatcher {
  private pending = new Map<string, Pending>();
  private inFlight: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly maxTokens: number;
  /** Uses dropped because the map was full (counted, never silently lost). */
  dropped = 0;
  failures = 0;
  /** Writes attempted, and the seconds they took in all (flush latency for the metrics). */
  flushes = 0;
  flushSeconds = 0;

  constructor(private readonly options: UsageBatcherOptions) {
    this.maxTokens = options.maxTokens ?? 200_000;
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
      return;
    }
    this.pending.set(tokenId, { uses: 1, lastUsedMs: nowMs, lastIp: clientIp });
  }

  private kick(): void {
    if (this.inFlight !== undefined || this.pending.size === 0) return;
    this.inFlight = this.writeOnce().finally(() => {
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
    const started = performance.now();
    try {
      for (let i = 0; i < deltas.length; i += 5_000) {
        await applyUsage(this.options.sql, deltas.slice(i, i + 5_000));
      }
    } catch (err) {
      this.failures++;
      this.options.onError?.(err);
      // Merge back (newer uses may have arrived meanwhile) while the bound allows.
      for (const [id, p] of batch) {
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
        }
      }
    } finally {
      this.flushes++;
      this.flushSeconds += (performance.now() - started) / 1_000;
    }
  }

  /** Distinct tokens with uses waiting for the next flush (metrics). */
  get pendingTokens(): number {
    return this.pending.size;
  }

  /** Writes what is pending now (tests, shutdown). */
  async flush(): Promise<void> {
    if (this.inFlight !== undefined) await this.inFlight;
    this.kick();
    if (this.inFlight !== undefined) await this.inFlight;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
