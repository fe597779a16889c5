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
