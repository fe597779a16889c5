import { LRUCache } from "lru-cache";
import type { CompiledRecord } from "../../domain/token-record.js";
import type { CacheEntry } from "./types.js";

/**
 * The in-process tier: a bounded LRU of compiled records keyed by the hex SHA-256 of the
 * secret, an id index so a change can drop a token by id, and a separate, smaller LRU of
 * NOT_FOUND answers (so a flood of well-formed unknown tokens cannot evict real ones).
 */
export class LocalTier {
  private readonly entries: LRUCache<string, CacheEntry>;
  private readonly byId = new Map<string, string>();
  private readonly negative: LRUCache<string, number>;

  constructor(maxEntries: number, maxNegative: number) {
    this.entries = new LRUCache<string, CacheEntry>({
      max: Math.max(1, maxEntries),
      dispose: (entry, key) => {
        if (this.byId.get(entry.record.id) === key) this.byId.delete(entry.record.id);
      },
    });
    this.negative = new LRUCache<string, number>({ max: Math.max(1, maxNegative) });
    this.enabled = maxEntries > 0;
  }

  /** A size of 0 turns the tier off (every lookup goes to Redis or Postgres). */
  readonly enabled: boolean;

  get(hashHex: string): CacheEntry | undefined {
    return this.entries.get(hashHex);
  }

  set(hashHex: string, record: CompiledRecord, loadedAtMs: number): CacheEntry {
    const entry: CacheEntry = { record, loadedAtMs, usesSeen: record.useCount };
    if (this.enabled) {
      this.entries.set(hashHex, entry);
      this.byId.set(record.id, hashHex);
      this.negative.delete(hashHex);
    }
    return entry;
  }

  /** True while a NOT_FOUND answer for this hash is younger than its TTL. */
  isKnownMissing(hashHex: string, nowMs: number): boolean {
    const until = this.negative.get(hashHex);
    if (until === undefined) return false;
    if (until > nowMs) return true;
    this.negative.delete(hashHex);
    return false;
  }

  setMissing(hashHex: string, untilMs: number): void {
    if (this.enabled) this.negative.set(hashHex, untilMs);
  }

  /** Drops a token by hash and by id (either may be unknown). */
  drop(hashHex: string | undefined, id: string | undefined): void {
    if (hashHex !== undefined) {
      this.entries.delete(hashHex);
      this.negative.delete(hashHex);
    }
    if (id !== undefined) {
      const key = this.byId.get(id);
      if (key !== undefined) this.entries.delete(key);
      this.byId.delete(id);
    }
  }

  clear(): void {
    this.entries.clear();
    this.negative.clear();
    this.byId.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
