import type { AuditMode } from "../config.js";
import { normalizeIp } from "../domain/cidr.js";
import { LocalRateLimiter } from "../domain/rate-window.js";
import { hashToken, parseToken } from "../domain/token-format.js";
import { type CompiledRecord, compileRecord } from "../domain/token-record.js";
import { decide } from "../domain/verify-decision.js";
import { unavailable } from "../errors.js";
import { AuditDecision } from "../gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../gen/latchkey/v1/token_verify_service_pb.js";
import { type AuditWriteMethod, AuditWriter } from "../store/audit-writer.js";
import { type LocalEntry, LocalTier } from "../store/cache-local.js";
import { RedisTier } from "../store/cache-redis.js";
import type { Sql } from "../store/db.js";
import { UsageBatcher } from "../store/usage-batcher.js";
import { consumeUse, loadTokenByHash } from "../store/verify-queries.js";
import type { TokenChange, Verifier, VerifyInput, VerifyOutcome } from "./verify/types.js";

/** The few log calls the verifier makes (a pino logger fits). */
export interface VerifierLog {
  warn(obj: object, msg: string): void;
}

/** Everything the verifier needs; only `sql` and `tokenPrefix` are required. */
export interface VerifierDeps {
  readonly sql: Sql;
  /** LATCHKEY_TOKEN_PREFIX: tokens with another prefix are MALFORMED without a lookup. */
  readonly tokenPrefix: string;
  /** LATCHKEY_AUDIT_MODE (default all). */
  readonly auditMode?: AuditMode | undefined;
  /** LATCHKEY_CACHE_SIZE: entries in the in-process tier (default 100 000; 0 turns it off). */
  readonly cacheSize?: number | undefined;
  /**
   * LATCHKEY_CACHE_MAX_STALENESS_MS (default 30 000): the oldest a local entry may be and still
   * be used. Entries are re-read after half of it; when Postgres is down they keep verifying
   * until the full window has passed, then UNAVAILABLE.
   */
  readonly cacheMaxStalenessMs?: number | undefined;
  /** REDIS_URL; unset: the in-process tier alone (one instance). */
  readonly redisUrl?: string | undefined;
  /** Prefix of Redis keys and of the invalidation channel (default `latchkey:`). */
  readonly redisKeyPrefix?: string | undefined;
  /** TTL of records cached in Redis (default 60 000 ms). */
  readonly redisRecordTtlMs?: number | undefined;
  /** TTL of a NOT_FOUND answer in the local tier (default 2 000 ms; creation does not invalidate). */
  readonly negativeTtlMs?: number | undefined;
  /** How audit rows reach Postgres (default copy: measured cheaper than INSERT). */
  readonly auditWriteMethod?: AuditWriteMethod | undefined;
  readonly auditFlushIntervalMs?: number | undefined;
  readonly auditMaxBuffered?: number | undefined;
  readonly usageFlushIntervalMs?: number | undefined;
  readonly log?: VerifierLog | undefined;
  /** Clock (epoch ms), for tests. */
  readonly now?: (() => number) | undefined;
}

/** Counters for /metrics, read on scrape (the hot path only bumps numbers). */
export interface VerifierStats {
  /** Verifications by VerifyCode number. */
  readonly byCode: readonly number[];
  readonly localHits: number;
  readonly redisHits: number;
  readonly postgresLoads: number;
  readonly negativeHits: number;
  /** Verifications answered from a local entry because Postgres could not be reached. */
  readonly staleServed: number;
  readonly unavailable: number;
  readonly localEntries: number;
  readonly auditWritten: number;
  readonly auditDropped: number;
  readonly auditPending: number;
  readonly usageDropped: number;
  readonly redisErrors: number;
  readonly redisUndelivered: number;
}

/** The verifier with the extras main.ts wires to /metrics and /readyz. */
export interface LatchkeyVerifier extends Verifier {
  stats(): VerifierStats;
  /** True when Redis is configured and reachable (or not configured at all). */
  redisHealthy(): Promise<boolean>;
}

/** Short VerifyCode names as written in audit rows (`EXPIRED`, …), the admin service's form. */
const CODE_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [k, v] of Object.entries(VerifyCode)) if (typeof v === "number") names[v] = k;
  return names;
})();

/** While this instance is not subscribed to changes, local entries are re-read this often. */
const DEGRADED_REFRESH_MS = 1_000;

const MAX_TEXT = 1_024;

function clip(s: string): string {
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s;
}

/**
 * Builds the verification core shared by VerifyToken, the admin authentication and gateway
 * checks. Order of checks: format and checksum (no I/O, MALFORMED) → lookup by SHA-256 (local
 * LRU → Redis → Postgres; NOT_FOUND) → revoked → expired → exhausted → org → client IP →
 * permissions (all in `decide`) → rate limits → consumption of a use, last, so a denied call
 * consumes nothing. Tokens with a use limit consume through one conditional UPDATE in Postgres
 * (exact across instances); unlimited tokens are counted in memory and flushed in batches.
 * Fails closed: when it cannot decide it throws UNAVAILABLE, never answers VALID.
 */
export function createVerifier(deps: VerifierDeps): LatchkeyVerifier {
  const { sql, tokenPrefix } = deps;
  const clock = deps.now ?? Date.now;
  const auditMode: AuditMode = deps.auditMode ?? "all";
  const hardTtl = deps.cacheMaxStalenessMs ?? 30_000;
  const softTtl = Math.floor(hardTtl / 2);
  const negativeTtl = deps.negativeTtlMs ?? 2_000;
  const cacheSize = deps.cacheSize ?? 100_000;
  const log = deps.log;

  const local = new LocalTier(cacheSize, Math.min(Math.max(cacheSize, 1), 10_000));
  const limiter = new LocalRateLimiter();
  const inflight = new Map<string, Promise<LocalEntry | undefined>>();
  /** Bumped by every invalidation: a load that started before one does not fill the cache. */
  let epoch = 0;

  const lastWarn = new Map<string, number>();
  const warn = (msg: string, err?: unknown): void => {
    if (log === undefined) return;
    const now = clock();
    if ((lastWarn.get(msg) ?? 0) + 10_000 > now) return;
    lastWarn.set(msg, now);
    log.warn({ err: err instanceof Error ? err.message : err }, msg);
  };

  const secretPattern = new RegExp(`${escapeRegExp(tokenPrefix)}_[a-z]_[0-9A-Za-z]{8,}`, "g");
  const marker = `${tokenPrefix}_`;
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
          scrub: (text) =>
            text.includes(marker) ? text.replace(secretPattern, "[redacted]") : text,
          onError: (err) => warn("audit write failed", err),
        });
  const usage = new UsageBatcher({
    sql,
    ...(deps.usageFlushIntervalMs === undefined
      ? {}
      : { flushIntervalMs: deps.usageFlushIntervalMs }),
    onError: (err) => warn("usage flush failed", err),
  });

  const dropChanged = (hashes: readonly string[], ids: readonly string[]): void => {
    epoch++;
    for (const h of hashes) {
      local.drop(h, undefined);
      inflight.delete(h);
    }
    for (const id of ids) local.drop(undefined, id);
  };

  const redis =
    deps.redisUrl === undefined
      ? undefined
      : new RedisTier({
          url: deps.redisUrl,
          keyPrefix: deps.redisKeyPrefix ?? "latchkey:",
          recordTtlMs: deps.redisRecordTtlMs ?? 60_000,
          tombstoneMs: 5_000,
          commandTimeoutMs: 250,
          events: {
            invalidated: dropChanged,
            resubscribed: () => {
              epoch++;
              local.clear();
              inflight.clear();
            },
            warn,
          },
        });

  const maintenance = setInterval(() => {
    limiter.sweep(clock());
    if (redis !== undefined) void redis.retryUndelivered();
  }, 1_000);
  maintenance.unref();

  const byCode = new Array<number>(CODE_NAMES.length + 1).fill(0);
  let localHits = 0;
  let redisHits = 0;
  let postgresLoads = 0;
  let negativeHits = 0;
  let staleServed = 0;
  let unavailableCount = 0;

  /** Loads a token from Redis, then Postgres; fills the tiers unless a change raced the load. */
  const load = async (
    hashHex: string,
    hash: Buffer,
    stale: LocalEntry | undefined,
    nowMs: number,
  ): Promise<LocalEntry | undefined> => {
    const startEpoch = epoch;
    if (redis !== undefined) {
      const cached = await redis.getRecord(hashHex);
      if (cached !== null && cached !== undefined) {
        redisHits++;
        const compiled = compileRecord(cached);
        return startEpoch === epoch
          ? local.set(hashHex, compiled, clock())
          : { record: compiled, loadedAtMs: nowMs, usesSeen: compiled.useCount };
      }
    }
    let record: Awaited<ReturnType<typeof loadTokenByHash>>;
    try {
      postgresLoads++;
      // A read is safe to repeat: retry once when a pooled connection was dropped under us.
      record = await loadTokenByHash(sql, hash).catch((err: unknown) => {
        if (isDroppedConnection(err)) return loadTokenByHash(sql, hash);
        throw err;
      });
    } catch (err) {
      if (stale !== undefined && clock() - stale.loadedAtMs < hardTtl) {
        staleServed++;
        return stale;
      }
      unavailableCount++;
      warn("token lookup failed: Postgres unavailable", err);
      throw unavailable("token storage", err);
    }
    if (record === undefined) {
      if (startEpoch === epoch) local.setMissing(hashHex, clock() + negativeTtl);
      return undefined;
    }
    const compiled = compileRecord(record);
    if (startEpoch !== epoch) {
      return { record: compiled, loadedAtMs: nowMs, usesSeen: compiled.useCount };
    }
    redis?.fillRecord(hashHex, record);
    return local.set(hashHex, compiled, clock());
  };

  /** One load per hash at a time: a hot token whose entry aged out costs one read, not N. */
  const resolve = (
    hashHex: string,
    hash: Buffer,
    stale: LocalEntry | undefined,
    nowMs: number,
  ): Promise<LocalEntry | undefined> => {
    const running = inflight.get(hashHex);
    if (running !== undefined) return running;
    const p = load(hashHex, hash, stale, nowMs);
    inflight.set(hashHex, p);
    const done = (): void => {
      if (inflight.get(hashHex) === p) inflight.delete(hashHex);
    };
    p.then(done, done);
    return p;
  };

  const finish = (
    input: VerifyInput,
    code: VerifyCode,
    record: CompiledRecord | undefined,
    nowMs: number,
    remainingUses: number | undefined,
    retryAfterMs: number | undefined,
  ): VerifyOutcome => {
    byCode[code] = (byCode[code] ?? 0) + 1;
    if (audit !== undefined) {
      const admin = input.purpose === "admin";
      if (code !== VerifyCode.VALID || (!admin && auditMode === "all")) {
        audit.push({
          timeMs: nowMs,
          // Only a found token names the org: an unauthenticated caller must not be able to
          // write rows into another org's audit trail.
          orgId: record === undefined ? "" : record.orgId,
          actorId: record === undefined ? "" : record.id,
          action: admin ? "auth.denied" : "token.verify",
          tokenId: record === undefined ? "" : record.id,
          decision: code === VerifyCode.VALID ? AuditDecision.ALLOW : AuditDecision.DENY,
          code: CODE_NAMES[code] ?? "UNSPECIFIED",
          clientIp: clip(input.clientIp),
          method: clip(input.method),
          path: clip(input.path),
          requestId: clip(input.requestId),
        });
      }
    }
    return { code, record, remainingUses, retryAfterMs };
  };

  const rateLimit = async (record: CompiledRecord, nowMs: number): Promise<number> => {
    const rules = record.rateLimits;
    if (redis !== undefined) {
      const denied = await redis.rateLimit(record.id, rules, nowMs);
      if (denied !== undefined) {
        const rule = denied > 0 ? rules[denied - 1] : undefined;
        return rule === undefined ? 0 : rule.windowMs - (nowMs % rule.windowMs);
      }
    }
    return limiter.check(record.id, rules, nowMs);
  };

  const verify = async (input: VerifyInput): Promise<VerifyOutcome> => {
    const nowMs = clock();
    const raw = input.token;
    if (parseToken(raw, tokenPrefix) === undefined) {
      return finish(input, VerifyCode.MALFORMED, undefined, nowMs, undefined, undefined);
    }
    const hash = hashToken(raw);
    const hashHex = hash.toString("hex");
    let entry = local.get(hashHex);
    if (entry !== undefined && nowMs - entry.loadedAtMs < currentSoftTtl()) {
      localHits++;
    } else {
      if (entry === undefined && local.isKnownMissing(hashHex, nowMs)) {
        negativeHits++;
        return finish(input, VerifyCode.NOT_FOUND, undefined, nowMs, undefined, undefined);
      }
      if (entry !== undefined && nowMs - entry.loadedAtMs >= hardTtl) entry = undefined;
      entry = await resolve(hashHex, hash, entry, nowMs);
      if (entry === undefined) {
        return finish(input, VerifyCode.NOT_FOUND, undefined, nowMs, undefined, undefined);
      }
    }
    let record = entry.record;
    let code = decide(record, input, nowMs, entry.usesSeen);
    let remaining: number | undefined;
    let retryAfter: number | undefined;
    if (code === VerifyCode.VALID && record.rateLimits.length > 0) {
      const wait = await rateLimit(record, nowMs);
      if (wait > 0) {
        code = VerifyCode.RATE_LIMITED;
        retryAfter = wait;
      }
    }
    if (code === VerifyCode.VALID) {
      if (record.maxUses === null) {
        usage.record(record.id, nowMs, input.clientIp);
      } else {
        let result: Awaited<ReturnType<typeof consumeUse>>;
        try {
          result = await consumeUse(sql, record.id, normalizeIp(input.clientIp));
        } catch (err) {
          unavailableCount++;
          warn("use consumption failed: Postgres unavailable", err);
          throw unavailable("token storage", err);
        }
        if (result.ok) {
          if (result.useCount > entry.usesSeen) entry.usesSeen = result.useCount;
          remaining = Math.max(0, result.maxUses - result.useCount);
        } else {
          // The stored token refuses (exhausted, or changed under a stale cache): re-decide.
          epoch++;
          local.drop(hashHex, record.id);
          if (result.record === undefined) {
            return finish(input, VerifyCode.NOT_FOUND, undefined, nowMs, undefined, undefined);
          }
          record = compileRecord(result.record);
          code = decide(record, input, nowMs, record.useCount);
          if (code === VerifyCode.VALID) code = VerifyCode.USAGE_EXCEEDED;
        }
      }
    }
    return finish(input, code, record, nowMs, remaining, retryAfter);
  };

  function currentSoftTtl(): number {
    return redis === undefined || redis.subscribed
      ? softTtl
      : Math.min(softTtl, DEGRADED_REFRESH_MS);
  }

  const tokensChanged = async (changes: readonly TokenChange[]): Promise<void> => {
    if (changes.length === 0) return;
    const list = changes.map((c) => ({
      hashHex: Buffer.from(
        c.secretHash.buffer,
        c.secretHash.byteOffset,
        c.secretHash.length,
      ).toString("hex"),
      id: c.id,
    }));
    dropChanged(
      list.map((c) => c.hashHex),
      list.map((c) => c.id),
    );
    if (redis !== undefined) await redis.invalidate(list);
  };

  const flush = async (): Promise<void> => {
    await Promise.all([usage.flush(), audit?.flush()]);
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(maintenance);
      await Promise.all([usage.close(), audit?.close()]);
      await redis?.close();
    })();
    return closing;
  };

  const stats = (): VerifierStats => ({
    byCode,
    localHits,
    redisHits,
    postgresLoads,
    negativeHits,
    staleServed,
    unavailable: unavailableCount,
    localEntries: local.size,
    auditWritten: audit?.written ?? 0,
    auditDropped: audit?.dropped ?? 0,
    auditPending: audit?.pending ?? 0,
    usageDropped: usage.dropped,
    redisErrors: redis?.errors ?? 0,
    redisUndelivered: redis?.undeliveredCount ?? 0,
  });

  const redisHealthy = async (): Promise<boolean> => (redis === undefined ? true : redis.ping());

  return { verify, tokensChanged, flush, close, stats, redisHealthy };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** postgres.js errors for a connection that closed before or while a query was sent. */
function isDroppedConnection(err: unknown): boolean {
  const code = typeof err === "object" && err !== null && "code" in err ? err.code : undefined;
  return (
    code === "CONNECTION_ENDED" || code === "CONNECTION_CLOSED" || code === "CONNECTION_DESTROYED"
  );
}
