import type { AuditMode, RedisTarget } from "../../config.js";
import { LocalRateLimiter, windowRemainingMs } from "../../domain/rate-window.js";
import { scrubRequestId } from "../../domain/request-id.js";
import { type AuditWriteMethod, AuditWriter } from "../../store/audit-writer.js";
import { LocalTier } from "../../store/cache/local.js";
import { RedisTier } from "../../store/cache/redis.js";
import { TieredTokenCache } from "../../store/cache/tiered.js";
import { type Sql, serverKey } from "../../store/db.js";
import { UsageBatcher } from "../../store/usage-batcher.js";
import { postgresTokenSource } from "../../store/verify-repo.js";
import { ChangeFeed } from "./change-feed.js";
import { createVerifyPipeline, type VerifyPipelineParts } from "./pipeline.js";
import type { Clock, RateLimiter, TokenSource, Warn } from "./ports.js";
import type { LatchkeyVerifier, VerifierStats } from "./types.js";

/** Longest free text (path, method, request id) an audit row keeps; the pipeline clips to it. */
const MAX_AUDIT_TEXT = 1_024;

/** The few log calls the verifier makes (a pino logger fits). */
export interface VerifierLog {
  warn(obj: object, msg: string): void;
}

/** The settings of the production verifier; only `sql` and `tokenPrefix` are required. */
export interface VerifierDeps {
  readonly sql: Sql;
  /** Prefix of issued tokens: tokens with another prefix are MALFORMED without a lookup. */
  readonly tokenPrefix: string;
  /** Which verifications write an audit row (default all). */
  readonly auditMode?: AuditMode | undefined;
  /** Entries in the in-process tier (default 100 000; 0 turns it off). */
  readonly cacheSize?: number | undefined;
  /**
   * The oldest a local entry may be and still be used (default 30 000 ms). Entries are re-read
   * after half of it; when Postgres is down they keep verifying until the full window has
   * passed, then UNAVAILABLE.
   */
  readonly cacheMaxStalenessMs?: number | undefined;
  /**
   * Redis (or Valkey) connection string (`redis+sentinel://…` too) or a parsed target (Sentinel,
   * Cluster; see store/redis-client.ts); unset: the in-process tier alone (one instance).
   */
  readonly redisUrl?: string | RedisTarget | undefined;
  /** Prefix of Redis keys and of the invalidation channel (default `latchkey:`). */
  readonly redisKeyPrefix?: string | undefined;
  /** TTL of records cached in Redis (default 60 000 ms). */
  readonly redisRecordTtlMs?: number | undefined;
  /** TTL of a NOT_FOUND answer in the local tier (default 2 000 ms; creation does not invalidate). */
  readonly negativeTtlMs?: number | undefined;
  /** How audit rows reach Postgres (default copy: measured cheaper than INSERT). */
  readonly auditWriteMethod?: AuditWriteMethod | undefined;
  /** How often buffered audit rows are written (default: the writer's). */
  readonly auditFlushIntervalMs?: number | undefined;
  /** Audit rows held in memory at most; beyond it they are dropped and counted. */
  readonly auditMaxBuffered?: number | undefined;
  /** How often batched usage is written (default: the batcher's). */
  readonly usageFlushIntervalMs?: number | undefined;
  /** Per-peer limit on lookups of unknown tokens (see VerifyPipelineParts.unknownLookups). */
  readonly unknownLookups?: VerifyPipelineParts["unknownLookups"];
  /** Window of the per-peer audit sampling of MALFORMED / NOT_FOUND (default 1 000 ms; 0: off). */
  readonly auditSampleMs?: number | undefined;
  /** See VerifyPipelineParts.trustedPeers (main.ts: LATCHKEY_TRUSTED_PROXIES). */
  readonly trustedPeers?: VerifyPipelineParts["trustedPeers"];
  /** How often the token change log is polled (default 500 ms). */
  readonly changePollMs?: number | undefined;
  /** Where tokens are read and uses consumed (default: Postgres on `sql`); tests wrap it. */
  readonly source?: TokenSource | undefined;
  readonly log?: VerifierLog | undefined;
  /** Clock (epoch ms), for tests. */
  readonly now?: Clock | undefined;
}

/** Name of the `settings` row holding the key that signs records in Redis. */
export const CACHE_KEY_SETTING = "cache_record_key";

/**
 * Builds the production verifier: the Redis tier (when configured) behind the in-process tier,
 * the COPY audit writer, the usage batcher and the Redis-backed rate limiter, handed to the
 * decision pipeline; owns their timers and their shutdown, and reports their counters.
 */
export function createVerifier(deps: VerifierDeps): LatchkeyVerifier {
  const { sql, tokenPrefix } = deps;
  const clock = deps.now ?? Date.now;
  const auditMode: AuditMode = deps.auditMode ?? "all";
  const cacheSize = deps.cacheSize ?? 100_000;
  const warn = throttledWarn(deps.log, clock);

  const hardTtl = deps.cacheMaxStalenessMs ?? 30_000;
  const recordTtl = deps.redisRecordTtlMs ?? 60_000;
  // A version floor outlives every copy read before its change (see LocalTier).
  const floorTtl = Math.max(hardTtl, recordTtl) + 5_000;
  const local = new LocalTier(cacheSize, Math.min(Math.max(cacheSize, 1), 10_000), floorTtl);
  const redisUrl = deps.redisUrl;
  const cache = new TieredTokenCache(
    local,
    redisUrl === undefined
      ? undefined
      : (events) =>
          new RedisTier({
            target: redisUrl,
            keyPrefix: deps.redisKeyPrefix ?? "latchkey:",
            recordTtlMs: recordTtl,
            tombstoneMs: 5_000,
            floorTtlMs: floorTtl,
            loadKey: () => serverKey(sql, CACHE_KEY_SETTING),
            commandTimeoutMs: 250,
            events,
            warn,
          }),
  );
  const redis = cache.shared;
  const limiter = new LocalRateLimiter();

  const audit =
    auditMode === "none"
      ? undefined
      : new AuditWriter({
          sql,
          method: deps.auditWriteMethod ?? "copy",
          ...(deps.auditFlushIntervalMs === undefined
            ? {}
            : { flushIntervalMs: deps.auditFlushIntervalMs }),
          ...(deps.auditMaxBuffered === undefined ? {} : { maxBuffered: deps.auditMaxBuffered }),
          // A gateway may pass a path whose query string carries the token: never store it.
          // Token shapes of any prefix, and percent-encoded ones, too (see scrubRequestId).
          scrub: (text) =>
            text.includes("_") || text.includes("%") ? scrubRequestId(text, MAX_AUDIT_TEXT) : text,
          onError: (err) => warn("audit write failed; rows kept and retried", err),
          onDropped: () => warn("audit buffer full: rows dropped (see latchkey audit metrics)"),
        });
  const usage = new UsageBatcher({
    sql,
    ...(deps.usageFlushIntervalMs === undefined
      ? {}
      : { flushIntervalMs: deps.usageFlushIntervalMs }),
    onError: (err) => warn("usage flush failed; counts kept and retried", err),
    onDropped: () => warn("usage counts dropped (buffer full or refused by Postgres)"),
  });

  const pipeline = createVerifyPipeline({
    tokenPrefix,
    cache,
    source: deps.source ?? postgresTokenSource(sql, clock),
    audit,
    auditMode,
    usage,
    rateLimiter: redis === undefined ? limiter : sharedRateLimiter(redis, limiter),
    clock,
    maxStalenessMs: hardTtl,
    negativeTtlMs: deps.negativeTtlMs,
    unknownLookups: deps.unknownLookups,
    auditSampleMs: deps.auditSampleMs,
    trustedPeers: deps.trustedPeers,
    warn,
  });
  const feed = new ChangeFeed({
    sql,
    target: cache,
    intervalMs: deps.changePollMs,
    lookbackMs: hardTtl,
    warn,
  });

  const maintenance = setInterval(() => {
    const now = clock();
    limiter.sweep(now);
    pipeline.tick(now);
    if (redis !== undefined) void redis.retryUndelivered();
  }, 1_000);
  maintenance.unref();

  let closing: Promise<void> | undefined;
  return {
    verify: pipeline.verify,
    verifyNow: pipeline.verifyNow,
    tokensChanged: pipeline.tokensChanged,
    async flush() {
      pipeline.drainSamples();
      await Promise.all([usage.flush(), audit?.flush()]);
    },
    close() {
      closing ??= (async () => {
        clearInterval(maintenance);
        pipeline.drainSamples();
        await feed.close();
        await Promise.all([usage.close(), audit?.close()]);
        await redis?.close();
      })();
      return closing;
    },
    stats: (): VerifierStats => ({
      ...pipeline.stats(),
      localEntries: cache.size,
      auditWritten: audit?.written ?? 0,
      auditDropped: audit?.dropped ?? 0,
      auditPending: audit?.pending ?? 0,
      usageDropped: usage.dropped,
      redisErrors: redis?.errors ?? 0,
      redisUndelivered: redis?.undeliveredCount ?? 0,
      auditFlushes: audit?.schedule.flushes ?? 0,
      auditFlushSeconds: audit?.schedule.flushSeconds ?? 0,
      usagePending: usage.pendingTokens,
      usageFlushes: usage.schedule.flushes,
      usageFlushSeconds: usage.schedule.flushSeconds,
      redisReady: redis?.ready,
      redisSubscribed: redis?.subscribed,
      recordsRejected: redis?.rejected ?? { signature: 0, malformed: 0 },
      changesApplied: feed.applied,
      changePollFailures: feed.failures,
    }),
    redisHealthy: async () => (redis === undefined ? true : redis.ping()),
  };
}

/**
 * Rate limits shared by every instance through Redis; while Redis cannot answer, each instance
 * limits locally (the best that can be done without shared state).
 */
function sharedRateLimiter(redis: RedisTier, fallback: LocalRateLimiter): RateLimiter {
  return {
    async check(tokenId, rules, nowMs) {
      const denied = await redis.rateLimit(tokenId, rules, nowMs);
      if (denied === undefined) return fallback.check(tokenId, rules, nowMs);
      if (denied === 0) return 0;
      const rule = rules[denied - 1];
      return rule === undefined ? 0 : windowRemainingMs(rule, nowMs);
    },
  };
}

/** One log line per message per 10 s, so an outage does not flood the log. */
function throttledWarn(log: VerifierLog | undefined, clock: Clock): Warn {
  const lastWarn = new Map<string, number>();
  return (msg, err) => {
    if (log === undefined) return;
    const now = clock();
    if ((lastWarn.get(msg) ?? 0) + 10_000 > now) return;
    lastWarn.set(msg, now);
    log.warn({ err: err instanceof Error ? err.message : err }, msg);
  };
}
