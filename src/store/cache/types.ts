import type { CompiledRecord, TokenRecord } from "../../domain/token-record.js";

/** One token as the verifier holds it in memory. */
export interface CacheEntry {
  readonly record: CompiledRecord;
  /**
   * When the record was read from Postgres (epoch ms; `record.readAtMs`), by this instance or by
   * the one that put it in the shared tier: its age bounds staleness, and a cache hit never
   * makes it younger.
   */
  readonly loadedAtMs: number;
  /** This instance read it from Postgres itself (not from the shared tier). */
  readonly fromSource: boolean;
  /**
   * Highest use count this instance has seen for a limited token (from its own consumptions),
   * so an exhausted single-use token is refused locally without another write.
   */
  usesSeen: number;
}

/** A changed token as the caches know it: by hex SHA-256 of the secret and by id. */
export interface CachedTokenKey {
  readonly hashHex: string;
  readonly id: string;
}

/** A change read from the token change log: records older than `version` are outdated. */
export interface VersionedChange extends CachedTokenKey {
  readonly version: number;
}

/**
 * The verifier's view of its caches: a synchronous in-process tier (the hot path), an optional
 * shared tier between instances, and the invalidation that keeps both honest. Every read that
 * fills a tier is guarded by `epoch`: a load that started before an invalidation must not put
 * the old record back.
 */
export interface TokenCache {
  /** The in-process entry for this hash, if any (no I/O). */
  get(hashHex: string): CacheEntry | undefined;
  /** True while a NOT_FOUND answer for this hash is younger than its TTL. */
  isKnownMissing(hashHex: string, nowMs: number): boolean;
  /**
   * True while this instance hears every change (no shared tier, or subscribed to its
   * invalidations); while false, entries must be re-read more often.
   */
  readonly coherent: boolean;
  /** Bumped by every invalidation; read before a load, compared before filling. */
  readonly epoch: number;
  /**
   * The lowest version of this token any tier may still serve (0 when no change is known):
   * raised by the change log, so a record read before a change is refused wherever it comes
   * from.
   */
  floor(hashHex: string): number;
  /**
   * Asks the shared tier: the record, null when it has none, undefined when it cannot answer
   * (or the token has an undelivered change). Returns undefined at once, without a promise,
   * when there is no shared tier.
   */
  readShared(hashHex: string): Promise<TokenRecord | null | undefined> | undefined;
  /**
   * Keeps a record in the in-process tier and returns the entry to use: the one given, or the
   * newer one the tier already holds (a tier never replaces a newer version with an older one,
   * nor keeps a version below the floor).
   */
  set(hashHex: string, record: CompiledRecord, fromSource: boolean): CacheEntry;
  /** Remembers a NOT_FOUND answer until `untilMs`. */
  setMissing(hashHex: string, untilMs: number): void;
  /** Offers a record read from Postgres to the shared tier (best effort, not awaited). */
  share(hashHex: string, record: TokenRecord): void;
  /** The load of this hash now running, if any; an invalidation of the hash forgets it. */
  running(hashHex: string): Promise<CacheEntry | undefined> | undefined;
  /** Registers the one running load of a hash until it settles. */
  track(hashHex: string, load: Promise<CacheEntry | undefined>): void;
  /**
   * Drops one token from this instance only (the stored token refused a use the cache
   * allowed), bumping the epoch.
   */
  forget(hashHex: string, id: string): void;
  /**
   * Drops changed tokens here before it returns, and then from the shared tier, which tells
   * every other instance.
   */
  invalidate(changes: readonly CachedTokenKey[]): Promise<void>;
  /**
   * Applies entries of the token change log (polled from Postgres by every instance): drops the
   * tokens here, raises their floors, and removes outdated copies from the shared tier.
   */
  applyChanges(changes: readonly VersionedChange[]): Promise<void>;
  /** Entries in the in-process tier (metrics). */
  readonly size: number;
}

/** What a shared tier tells the cache in front of it. */
export interface SharedTierEvents {
  /** Another instance (or this one) changed these tokens: drop them from the local tier. */
  invalidated(hashes: readonly string[], ids: readonly string[]): void;
  /**
   * The subscription came back after a disconnect: messages may have been missed, so the
   * local tier must be cleared.
   */
  resubscribed(): void;
}

/** The part of a shared tier (Redis) that caching uses. */
export interface SharedTier {
  /** This instance hears other instances' changes now. */
  readonly subscribed: boolean;
  getRecord(hashHex: string): Promise<TokenRecord | null | undefined>;
  fillRecord(hashHex: string, record: TokenRecord): void;
  invalidate(changes: readonly CachedTokenKey[]): Promise<void>;
  /** Refuses, from now on, copies older than each change's version, and deletes those it holds. */
  applyFloors(changes: readonly VersionedChange[]): Promise<void>;
}
