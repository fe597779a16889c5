import type { AuditMode } from "../../config.js";
import { normalizeIp } from "../../domain/cidr.js";
import { hashToken, parseToken } from "../../domain/token-format.js";
import { type CompiledRecord, compileRecord, type TokenRecord } from "../../domain/token-record.js";
import { decide } from "../../domain/verify-decision.js";
import { unavailable } from "../../errors.js";
import { AuditDecision } from "../../gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../gen/latchkey/v1/token_verify_service_pb.js";
import type { CacheEntry, TokenCache } from "../../store/cache/types.js";
import type { AuditSink, Clock, RateLimiter, TokenSource, UsageSink, Warn } from "./ports.js";
import type { TokenChange, VerifierStats, VerifyInput, VerifyOutcome } from "./types.js";

/** The parts and settings of a pipeline; every part is an interface (see ports.ts). */
export interface VerifyPipelineParts {
  /** Tokens with another prefix are MALFORMED without a lookup. */
  readonly tokenPrefix: string;
  readonly cache: TokenCache;
  readonly source: TokenSource;
  /** Where audit rows go; undefined writes none (as does audit mode `none`). */
  readonly audit: AuditSink | undefined;
  /** Which verifications are audited (default all). */
  readonly auditMode?: AuditMode | undefined;
  readonly usage: UsageSink;
  readonly rateLimiter: RateLimiter;
  readonly clock: Clock;
  /**
   * The oldest a cached entry may be and still be used (default 30 000 ms). Entries are re-read
   * after half of it; when the source is down they keep verifying until the full window has
   * passed, then UNAVAILABLE.
   */
  readonly maxStalenessMs?: number | undefined;
  /** How long a NOT_FOUND answer is cached (default 2 000 ms; creation does not invalidate). */
  readonly negativeTtlMs?: number | undefined;
  readonly warn?: Warn | undefined;
}

/** The pipeline's own counters (the parts report theirs). */
export type PipelineStats = Pick<
  VerifierStats,
  | "byCode"
  | "localHits"
  | "redisHits"
  | "postgresLoads"
  | "negativeHits"
  | "staleServed"
  | "unavailable"
>;

/** The decision pipeline: what the verifier does, without the resources it owns. */
export interface VerifyPipeline {
  verify(input: VerifyInput): Promise<VerifyOutcome>;
  tokensChanged(changes: readonly TokenChange[]): Promise<void>;
  stats(): PipelineStats;
}

/** Short VerifyCode names as written in audit rows (`EXPIRED`, …), the admin service's form. */
const CODE_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [k, v] of Object.entries(VerifyCode)) if (typeof v === "number") names[v] = k;
  return names;
})();

/** While the cache may miss changes of other instances, entries are re-read this often. */
const DEGRADED_REFRESH_MS = 1_000;

const MAX_TEXT = 1_024;

function clip(s: string): string {
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s;
}

/**
 * The verification core shared by VerifyToken, the admin authentication and gateway checks,
 * written over injected parts so it can run over in-memory ones. Order of checks: format and
 * checksum (no I/O, MALFORMED) → lookup by SHA-256 (cache tiers → source; NOT_FOUND) → revoked →
 * expired → exhausted → org → client IP → permissions (all in `decide`) → rate limits →
 * consumption of a use, last, so a denied call consumes nothing. Tokens with a use limit consume
 * through the source (exact across instances); unlimited tokens go to the usage sink. Fails
 * closed: when it cannot decide it throws UNAVAILABLE, never answers VALID.
 */
export function createVerifyPipeline(parts: VerifyPipelineParts): VerifyPipeline {
  const { tokenPrefix, cache, source, usage, rateLimiter, clock } = parts;
  const auditMode: AuditMode = parts.auditMode ?? "all";
  const audit = auditMode === "none" ? undefined : parts.audit;
  const hardTtl = parts.maxStalenessMs ?? 30_000;
  const softTtl = Math.floor(hardTtl / 2);
  const negativeTtl = parts.negativeTtlMs ?? 2_000;
  const warn: Warn = parts.warn ?? (() => {});

  const byCode = new Array<number>(CODE_NAMES.length + 1).fill(0);
  let localHits = 0;
  let redisHits = 0;
  let postgresLoads = 0;
  let negativeHits = 0;
  let staleServed = 0;
  let unavailableCount = 0;

  const detached = (record: CompiledRecord, nowMs: number): CacheEntry => ({
    record,
    loadedAtMs: nowMs,
    usesSeen: record.useCount,
  });

  /** Loads a token from the shared tier, then the source; fills the cache unless a change raced. */
  const load = async (
    hashHex: string,
    hash: Buffer,
    stale: CacheEntry | undefined,
    nowMs: number,
  ): Promise<CacheEntry | undefined> => {
    const startEpoch = cache.epoch;
    const shared = cache.readShared(hashHex);
    if (shared !== undefined) {
      const cached = await shared;
      if (cached !== null && cached !== undefined) {
        redisHits++;
        const compiled = compileRecord(cached);
        return startEpoch === cache.epoch
          ? cache.set(hashHex, compiled, clock())
          : detached(compiled, nowMs);
      }
    }
    let record: TokenRecord | undefined;
    try {
      postgresLoads++;
      record = await source.findByHash(hash);
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
      if (startEpoch === cache.epoch) cache.setMissing(hashHex, clock() + negativeTtl);
      return undefined;
    }
    const compiled = compileRecord(record);
    if (startEpoch !== cache.epoch) return detached(compiled, nowMs);
    cache.share(hashHex, record);
    return cache.set(hashHex, compiled, clock());
  };

  /** One load per hash at a time: a hot token whose entry aged out costs one read, not N. */
  const resolve = (
    hashHex: string,
    hash: Buffer,
    stale: CacheEntry | undefined,
    nowMs: number,
  ): Promise<CacheEntry | undefined> => {
    const running = cache.running(hashHex);
    if (running !== undefined) return running;
    const p = load(hashHex, hash, stale, nowMs);
    cache.track(hashHex, p);
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

  const verify = async (input: VerifyInput): Promise<VerifyOutcome> => {
    const nowMs = clock();
    const raw = input.token;
    if (parseToken(raw, tokenPrefix) === undefined) {
      return finish(input, VerifyCode.MALFORMED, undefined, nowMs, undefined, undefined);
    }
    const hash = hashToken(raw);
    const hashHex = hash.toString("hex");
    let entry = cache.get(hashHex);
    if (entry !== undefined && nowMs - entry.loadedAtMs < currentSoftTtl()) {
      localHits++;
    } else {
      if (entry === undefined && cache.isKnownMissing(hashHex, nowMs)) {
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
      const wait = await rateLimiter.check(record.id, record.rateLimits, nowMs);
      if (wait > 0) {
        code = VerifyCode.RATE_LIMITED;
        retryAfter = wait;
      }
    }
    if (code === VerifyCode.VALID) {
      if (record.maxUses === null) {
        usage.record(record.id, nowMs, input.clientIp);
      } else {
        let result: Awaited<ReturnType<TokenSource["consumeUse"]>>;
        try {
          result = await source.consumeUse(record.id, normalizeIp(input.clientIp));
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
          cache.forget(hashHex, record.id);
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
    return cache.coherent ? softTtl : Math.min(softTtl, DEGRADED_REFRESH_MS);
  }

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

  const stats = (): PipelineStats => ({
    byCode,
    localHits,
    redisHits,
    postgresLoads,
    negativeHits,
    staleServed,
    unavailable: unavailableCount,
  });

  return { verify, tokensChanged, stats };
}
