import { LRUCache } from "lru-cache";
import type { CompiledRecord } from "../../domain/token-record.js";
import type { CacheEntry } from "./types.js";

/**
 * The in-process tier: a bounded LRU of compiled records keyed by the hex SHA-256 of the
 * secret, an id index so a change can drop a token by id, a separate, smaller LRU of NOT_FOUND
 * answers (so a flood of well-formed unknown tokens cannot evict real ones), and the version
 * floors learnt from the change log (a record below its floor is never kept).
 */
export class LocalTier {
  private readonly entries: LRUCache<string, CacheEntry>;
  private readonly byId = new Map<string, string>();
  private readonly negative: LRUCache<string, number>;
  private readonly floors: LRUCache<string, number>;

  /**
   * `floorTtlMs` is how long a floor is kept: at least the longest a record may be served
   * after its Postgres read, so that any record older than a change has aged out by the time
   * the floor goes.
   */
  constructor(maxEntries: number, maxNegative: number, floorTtlMs = 60_000) {
    this.entries = new LRUCache<string, CacheEntry>({
      max: Math.max(1, maxEntries),
      dispose: (entry, key) => {
        if (this.byId.get(entry.record.id) === key) this.byId.delete(entry.record.id);
      },
    });
    this.negative = new LRUCache<string, number>({ max: Math.max(1, maxNegative) });
    this.floors = new LRUCache<string, number>({
      max: 100_000,
      ttl: Math.max(1, floorTtlMs),
    });
    this.enabled = maxEntries > 0;
  }

  /** A size of 0 turns the tier off (every lookup goes to Redis or Postgres). */
  readonly enabled: boolean;

  get(hashHex: string): CacheEntry | undefined {
    return this.entries.get(hashHex);
  }

  /**
   * Keeps `record` unless the tier holds a newer one (higher version, or the same version read
   * later) or the record is below the token's floor; returns the entry to use either way.
   */
  set(hashHex: string, record: CompiledRecord, fromSource: boolean): CacheEntry {
    const entry: CacheEntry = {
      record,
      loadedAtMs: record.readAtMs,
      fromSource,
      usesSeen: record.useCount,
    };
    if (!this.enabled || record.version < this.floor(hashHex)) return entry;
    const held = this.entries.get(hashHex);
    if (held !== undefined && held.record.id === record.id) {
      const newer =
        held.record.version > record.version ||
        (held.record.version === record.version && held.loadedAtMs > record.readAtMs);
      if (newer) return held;
      if (held.usesSeen > entry.usesSeen) entry.usesSeen = held.usesSeen;
    }
    this.entries.set(hashHex, entry);
    this.byId.set(record.id, hashHex);
    this.negative.delete(hashHex);
    return entry;
  }

  /** The lowest version still acceptable for this hash (0: no change known). */
  floor(hashHex: string): number {
    return this.floors.get(hashHex) ?? 0;
  }

  /** Raises the floor of a hash (never lowers it) and drops what it holds below it. */
  raiseFloor(hashHex: string, version: number): void {
    if (version > this.floor(hashHex)) this.floors.set(hashHex, version);
    const held = this.entries.get(hashHex);
    if (held !== undefined && held.record.version < version) this.entries.delete(hashHex);
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

  /** Forgets every entry (floors stay: they only ever make the tier stricter). */
  clear(): void {
    this.entries.clear();
    this.negative.clear();
    this.byId.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
