import { type CompiledRecord, compileRecord, type TokenRecord } from "../../domain/token-record.js";
import { unavailable } from "../../errors.js";
import type { CacheEntry, TokenCache } from "../../store/cache/types.js";
import type { Clock, TokenSource, Warn } from "./ports.js";
import type { TokenChange } from "./types.js";

/** While the cache may miss changes of other instances, entries are re-read this often. */
const DEGRADED_REFRESH_MS = 1_000;

/**
 * An admin caller is authenticated from a record this instance read from Postgres at most this
 * long ago, or from Postgres now: never from a shared-tier (Redis) record.
 */
const ADMIN_MAX_AGE_MS = 1_000;

/**
 * A record goes to the shared tier only if its Postgres read began at most this long ago: a
 * slow read may have raced a change, and the change's tombstone in Redis outlives this.
 */
const FILL_WINDOW_MS = 1_000;

/** What the loader needs from the pipeline. */
export interface TokenLoaderParts {
  readonly cache: TokenCache;
  readonly source: TokenSource;
  readonly clock: Clock;
  /** The oldest a stale entry may be and still answer when the source is down. */
  readonly hardTtl: number;
  /** The age at which an entry is re-read (while the cache is coherent). */
  readonly softTtl: number;
  /** How long a NOT_FOUND answer is cached. */
  readonly negativeTtl: number;
  readonly warn: Warn;
}

/** The loader's counters, read by the pipeline's stats. */
export interface TokenLoaderCounts {
  redisHits: number;
  postgresLoads: number;
  staleServed: number;
  unavailable: number;
  sharedRefused: number;
}

/**
 * The cache policy below the pipeline's decisions: which local entries may answer, loading the
 * others (shared tier, then the source), and dropping changed tokens.
 */
export interface TokenLoader {
  /** Whether a local entry may answer without a reload (admin: only a fresh Postgres read). */
  isFresh(entry: CacheEntry, admin: boolean, nowMs: number): boolean;
  /**
   * One load per hash at a time: a hot token whose entry aged out costs one read, not N. Admin
   * loads (straight from Postgres) do not join or register shared loads.
   */
  resolve(
    hashHex: string,
    hash: Buffer,
    stale: CacheEntry | undefined,
    admin: boolean,
  ): Promise<CacheEntry | undefined>;
  /** Drops changed tokens from every tier. */
  tokensChanged(changes: readonly TokenChange[]): Promise<void>;
  readonly counts: TokenLoaderCounts;
}

export function createTokenLoader(parts: TokenLoaderParts): TokenLoader {
  const { cache, source, clock, hardTtl, softTtl, negativeTtl, warn } = parts;
  const counts: TokenLoaderCounts = {
    redisHits: 0,
    postgresLoads: 0,
    staleServed: 0,
    unavailable: 0,
    sharedRefused: 0,
  };

  function currentSoftTtl(): number {
    return cache.coherent ? softTtl : Math.min(softTtl, DEGRADED_REFRESH_MS);
  }

  function isFresh(entry: CacheEntry, admin: boolean, nowMs: number): boolean {
    const age = nowMs - entry.loadedAtMs;
    return admin ? entry.fromSource && age < ADMIN_MAX_AGE_MS : age < currentSoftTtl();
  }

  const detached = (record: CompiledRecord, fromSource: boolean): CacheEntry => ({
    record,
    loadedAtMs: record.readAtMs,
    fromSource,
    usesSeen: record.useCount,
  });

  /** Postgres, read again once when the answer is older than a change this instance knows of. */
  const fromSource = async (
    hashHex: string,
    hash: Buffer,
    stale: CacheEntry | undefined,
  ): Promise<TokenRecord | undefined> => {
    for (let attempt = 0; ; attempt++) {
      let record: TokenRecord | undefined;
      try {
        counts.postgresLoads++;
        record = await source.findByHash(hash);
      } catch (err) {
        if (stale !== undefined && clock() - stale.loadedAtMs < hardTtl) {
          counts.staleServed++;
          throw new StaleServed(stale);
        }
        counts.unavailable++;
        warn("token lookup failed: Postgres unavailable", err);
        throw unavailable("token storage", err);
      }
      if (record === undefined || attempt > 0 || record.version >= cache.floor(hashHex)) {
        return record;
      }
    }
  };

  /**
   * Loads a token: from the shared tier when it holds a copy that is signed, current (not below
   * the floor) and young (read from Postgres less than the refresh point ago), else from
   * Postgres; fills the tiers unless a change raced the load. `admin` skips the shared tier.
   */
  const load = async (
    hashHex: string,
    hash: Buffer,
    stale: CacheEntry | undefined,
    admin: boolean,
  ): Promise<CacheEntry | undefined> => {
    const startEpoch = cache.epoch;
    const shared = admin ? undefined : cache.readShared(hashHex);
    if (shared !== undefined) {
      const cached = await shared;
      if (cached !== null && cached !== undefined) {
        const age = clock() - cached.readAtMs;
        if (cached.version >= cache.floor(hashHex) && age < currentSoftTtl()) {
          counts.redisHits++;
          const compiled = compileRecord(cached);
          return startEpoch === cache.epoch
            ? cache.set(hashHex, compiled, false)
            : detached(compiled, false);
        }
        counts.sharedRefused++;
      }
    }
    let record: TokenRecord | undefined;
    try {
      record = await fromSource(hashHex, hash, admin ? undefined : stale);
    } catch (err) {
      if (err instanceof StaleServed) return err.entry;
      throw err;
    }
    if (record === undefined) {
      if (startEpoch === cache.epoch) cache.setMissing(hashHex, clock() + negativeTtl);
      return undefined;
    }
    const compiled = compileRecord(record);
    if (startEpoch !== cache.epoch) return detached(compiled, true);
    if (clock() - record.readAtMs < FILL_WINDOW_MS) cache.share(hashHex, record);
    return cache.set(hashHex, compiled, true);
  };

  const resolve = (
    hashHex: string,
    hash: Buffer,
    stale: CacheEntry | undefined,
    admin: boolean,
  ): Promise<CacheEntry | undefined> => {
    if (admin) return load(hashHex, hash, stale, true);
    const running = cache.running(hashHex);
    if (running !== undefined) return running;
    const p = load(hashHex, hash, stale, false);
    cache.track(hashHex, p);
    return p;
  };

  const tokensChanged = async (changes: readonly TokenChange[]): Promise<void> => {
    if (changes.length === 0) return;
    await cache.invalidate(
      changes.map((c) => ({
        hashHex: Buffer.from(
          c.secretHash.buffer,
          c.secretHash.byteOffset,
          c.secretHash.length,
        ).toString("hex"),
        id: c.id,
      })),
    );
  };

  return { isFresh, resolve, tokensChanged, counts };
}

/** A lookup failed but a stale entry within the window may answer (internal to load). */
class StaleServed extends Error {
  constructor(readonly entry: CacheEntry) {
    super("stale entry served");
  }
}
