import type { RateLimitRule } from "./token-record.js";

interface Window {
  start: number;
  end: number;
  count: number;
}

/**
 * Fixed-window rate limiting in process: what a single instance uses without Redis, and what
 * any instance falls back to while Redis is away (limits are then per instance, the best that
 * can be done without shared state). Same semantics as the Redis script: every rule is checked
 * first and counted only when all pass, so a refused call consumes nothing.
 */
export class LocalRateLimiter {
  private readonly windows = new Map<string, Window>();

  /**
   * Returns 0 when the call may pass (and counts it), otherwise the milliseconds until the
   * first full window ends.
   */
  check(tokenId: string, rules: readonly RateLimitRule[], nowMs: number): number {
    for (const r of rules) {
      const w = this.windows.get(`${tokenId}\u0000${r.name}\u0000${r.windowMs}`);
      const start = nowMs - (nowMs % r.windowMs);
      if (w !== undefined && w.start === start && w.count >= r.limit) {
        return start + r.windowMs - nowMs;
      }
    }
    for (const r of rules) {
      const key = `${tokenId}\u0000${r.name}\u0000${r.windowMs}`;
      const start = nowMs - (nowMs % r.windowMs);
      const w = this.windows.get(key);
      if (w === undefined) this.windows.set(key, { start, end: start + r.windowMs, count: 1 });
      else if (w.start !== start) {
        w.start = start;
        w.end = start + r.windowMs;
        w.count = 1;
      } else w.count++;
    }
    return 0;
  }

  /** Forgets windows that have ended, so memory follows the active tokens only. */
  sweep(nowMs: number): void {
    for (const [key, w] of this.windows) {
      if (w.end <= nowMs) this.windows.delete(key);
    }
  }
}

/** Milliseconds until the fixed window of `rule` that contains `nowMs` ends. */
export function windowRemainingMs(rule: RateLimitRule, nowMs: number): number {
  return rule.windowMs - (nowMs % rule.windowMs);
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * A token bucket per key (e.g. per peer address), bounded in keys: what keeps one caller from
 * spending another's share of an expensive path. A token is taken before the work and can be
 * refunded when the work turned out not to be the kind the budget limits.
 */
export class KeyedBudget {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}

  private refill(key: string, nowMs: number): Bucket | undefined {
    const b = this.buckets.get(key);
    if (b === undefined) return undefined;
    if (nowMs > b.atMs) {
      b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.atMs) * this.perSecond) / 1000);
      b.atMs = nowMs;
    }
    return b;
  }

  /**
   * Takes one token from `key` if it has one (true), else takes nothing (false). Taking before
   * the costly work, not after, keeps concurrent callers from all passing on the last token.
   */
  take(key: string, nowMs: number): boolean {
    let b = this.refill(key, nowMs);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      b = { tokens: this.burst, atMs: nowMs };
      this.buckets.set(key, b);
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Gives back a token taken for work that turned out not to be the costly kind. */
  refund(key: string): void {
    const b = this.buckets.get(key);
    if (b !== undefined) b.tokens = Math.min(this.burst, b.tokens + 1);
  }

  /** Milliseconds until `key` has a token again (0 when it has one). */
  waitMs(key: string, nowMs: number): number {
    const b = this.refill(key, nowMs);
    if (b === undefined || b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) * 1000) / this.perSecond);
  }

  /** Forgets keys whose bucket is full again, so memory follows the active keys only. */
  sweep(nowMs: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((nowMs - b.atMs) * this.perSecond) / 1000 >= this.burst) {
        this.buckets.delete(key);
      }
    }
  }
}
