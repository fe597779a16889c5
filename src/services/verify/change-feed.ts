import type { CachedTokenKey, VersionedChange } from "../../store/cache/types.js";
import type { Sql } from "../../store/db.js";
import { LOG_START, latestEvents, readEvents, type TokenEvent } from "../../store/token-events.js";
import type { Warn } from "./ports.js";

/** Where polled changes go: the verifier's caches. */
export interface ChangeTarget {
  applyChanges(changes: readonly VersionedChange[]): Promise<void>;
}

export interface ChangeFeedOptions {
  readonly sql: Sql;
  readonly target: ChangeTarget;
  /** Time between polls (default 500 ms: a change reaches this instance within about that). */
  readonly intervalMs?: number | undefined;
  /**
   * At start, changes made this long before are applied too (default 30 000 ms: a copy read
   * before them may still be in Redis, and this instance has not heard of them).
   */
  readonly lookbackMs?: number | undefined;
  readonly warn: Warn;
}

const BATCH = 1_000;

function toChange(e: TokenEvent): VersionedChange & CachedTokenKey {
  return { hashHex: e.secretHash.toString("hex"), id: e.tokenId, version: Number(e.version) };
}

/**
 * Every instance polls the token change log in Postgres (`token_events`, written by triggers in
 * the same transaction as each change) and drops the changed tokens from its caches, raising
 * their version floors. This is what makes a revocation reach every instance within the poll
 * interval whatever Redis does: pub/sub only makes it faster.
 */
export class ChangeFeed {
  private cursor: string | undefined;
  private readonly timer: NodeJS.Timeout;
  private polling: Promise<void> | undefined;
  private closed = false;
  /** Entries applied, and polls that failed (metrics). */
  applied = 0;
  failures = 0;
  /** Epoch ms of the last poll that reached the head of the log. */
  lastSyncMs = 0;

  constructor(private readonly options: ChangeFeedOptions) {
    this.timer = setInterval(() => {
      void this.poll();
    }, options.intervalMs ?? 500);
    this.timer.unref();
    void this.poll();
  }

  /** One poll (joins the one running); never throws. */
  poll(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.polling ??= this.pollOnce()
      .catch((err: unknown) => {
        this.failures++;
        this.options.warn("token change log poll failed", err);
      })
      .finally(() => {
        this.polling = undefined;
      });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const { sql, target } = this.options;
    if (this.cursor === undefined) {
      const recent = await latestEvents(sql, 10 * BATCH);
      const since = Date.now() - (this.options.lookbackMs ?? 30_000);
      const changes = recent.filter((e) => e.time.getTime() >= since).map(toChange);
      await target.applyChanges(changes);
      this.applied += changes.length;
      this.cursor = recent[0]?.cursor ?? LOG_START;
    }
    for (;;) {
      const events = await readEvents(sql, this.cursor, { limit: BATCH });
      const last = events.at(-1);
      if (last === undefined) break;
      await target.applyChanges(events.map(toChange));
      this.applied += events.length;
      this.cursor = last.cursor;
      if (events.length < BATCH || this.closed) break;
    }
    this.lastSyncMs = Date.now();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.polling;
  }
}
