import type { AuditMode } from "../../config.js";
import { normalizeIp } from "../../domain/cidr.js";
import { KeyedBudget } from "../../domain/rate-window.js";
import { hashTokenHex, parseToken, tokenLength } from "../../domain/token-format.js";
import { type CompiledRecord, compileRecord } from "../../domain/token-record.js";
import { decide } from "../../domain/verify-decision.js";
import { unavailable } from "../../errors.js";
import { VerifyCode } from "../../gen/latchkey/v1/token_verify_service_pb.js";
import type { CacheEntry, TokenCache } from "../../store/cache/types.js";
import { CODE_NAMES, createAuditRows, peerOf } from "./audit-rows.js";
import { AuditSampler } from "./audit-sampler.js";
import type {
  AuditSink,
  Clock,
  PeerTrust,
  RateLimiter,
  TokenSource,
  UsageSink,
  Warn,
} from "./ports.js";
import { createTokenLoader } from "./token-loader.js";
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
  /**
   * Lookups of tokens this instance does not know, per peer: `perSecond` on average, `burst`
   * at once (default 50 and 100). Spent only by lookups that found nothing; past it, unknown
   * tokens from that peer are answered RATE_LIMITED without a lookup. Cached tokens are not
   * affected. 0 per second turns the limit off.
   */
  readonly unknownLookups?: { readonly perSecond: number; readonly burst: number } | undefined;
  /**
   * Audit rows of denials naming no token (MALFORMED, NOT_FOUND) are sampled per peer over this
   * window (default 1 000 ms; 0 writes every row). See AuditSampler.
   */
  readonly auditSampleMs?: number | undefined;
  /**
   * Gateways whose `client_ip` names the client the per-peer budget and sampling count against
   * (LATCHKEY_TRUSTED_PROXIES); default none: the connection's address.
   */
  readonly trustedPeers?: PeerTrust | undefined;
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
  | "unknownLimited"
  | "auditSampled"
  | "sharedRefused"
>;

/** The decision pipeline: what the verifier does, without the resources it owns. */
export interface VerifyPipeline {
  verify(input: VerifyInput): Promise<VerifyOutcome>;
  /** {@link verify} without a promise when the local tier decides (see Verifier.verifyNow). */
  verifyNow(input: VerifyInput): VerifyOutcome | Promise<VerifyOutcome>;
  tokensChanged(changes: readonly TokenChange[]): Promise<void>;
  /** Housekeeping, about once a second: writes ended audit samples, forgets idle peers. */
  tick(nowMs: number): void;
  /** Writes every pending audit sample now (flush, shutdown). */
  drainSamples(): void;
  stats(): PipelineStats;
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
  const sampler =
    audit === undefined ? undefined : new AuditSampler(audit, parts.auditSampleMs ?? 1_000);
  const hardTtl = parts.maxStalenessMs ?? 30_000;
  const softTtl = Math.floor(hardTtl / 2);
  const negativeTtl = parts.negativeTtlMs ?? 2_000;
  const warn: Warn = parts.warn ?? (() => {});
  const limit = parts.unknownLookups ?? { perSecond: 50, burst: 100 };
  const unknown =
    limit.perSecond > 0 ? new KeyedBudget(limit.perSecond, Math.max(1, limit.burst)) : undefined;

  const byCode = new Array<number>(CODE_NAMES.length + 1).fill(0);
  let localHits = 0;
  let negativeHits = 0;
  let unavailableCount = 0;
  let unknownLimited = 0;

  const loader = createTokenLoader({
    cache,
    source,
    clock,
    hardTtl,
    softTtl,
    negativeTtl,
    warn,
  });
  const { resolve, isFresh, tokensChanged } = loader;
  const counts = loader.counts;
  const writeAuditRow =
    audit === undefined || sampler === undefined
      ? undefined
      : createAuditRows(audit, sampler, auditMode, parts.trustedPeers);

  const finish = (
    input: VerifyInput,
    code: VerifyCode,
    record: CompiledRecord | undefined,
    nowMs: number,
    remainingUses: number | undefined,
    retryAfterMs: number | undefined,
  ): VerifyOutcome => {
    byCode[code] = (byCode[code] ?? 0) + 1;
    if (writeAuditRow !== undefined) writeAuditRow(input, code, record, nowMs);
    return { code, record, remainingUses, retryAfterMs };
  };

  const expectedLength = tokenLength(tokenPrefix);

  /**
   * The verification, synchronous when the local tier decides (a fresh entry, no rate limit,
   * no use limit, or a denial): no promise, no closure. A string of a token's length is hashed
   * before it is parsed: a local entry exists only for a hash whose token passed parseToken in
   * this process (entries are filled only by loads that follow it), so a hit proves the format
   * and the CRC-32 is computed only on a miss. Same checks, order and answers as before.
   */
  const verifyNow = (input: VerifyInput): VerifyOutcome | Promise<VerifyOutcome> => {
    const nowMs = clock();
    const raw = input.token;
    let entry: CacheEntry | undefined;
    let hashHex = "";
    if (raw.length === expectedLength) {
      hashHex = hashTokenHex(raw);
      entry = cache.get(hashHex);
    }
    if (entry === undefined) {
      if (parseToken(raw, tokenPrefix) === undefined) {
        return finish(input, VerifyCode.MALFORMED, undefined, nowMs, undefined, undefined);
      }
      if (hashHex === "") hashHex = hashTokenHex(raw);
    }
    if (entry !== undefined && isFresh(entry, input.purpose === "admin", nowMs)) {
      localHits++;
      return decideFound(input, hashHex, entry, nowMs);
    }
    return lookUp(input, hashHex, entry, nowMs);
  };

  /** The local tier could not answer: negative cache, per-peer budget, then the tiers below. */
  const lookUp = async (
    input: VerifyInput,
    hashHex: string,
    held: CacheEntry | undefined,
    nowMs: number,
  ): Promise<VerifyOutcome> => {
    let entry = held;
    const admin = input.purpose === "admin";
    if (entry === undefined && cache.isKnownMissing(hashHex, nowMs)) {
      negativeHits++;
      return finish(input, VerifyCode.NOT_FOUND, undefined, nowMs, undefined, undefined);
    }
    // A token this instance holds nothing for costs a lookup: budgeted per peer, refunded
    // when the token exists, so only unknown tokens spend it.
    const peer = peerOf(input, parts.trustedPeers);
    const budgeted = entry === undefined && unknown !== undefined;
    if (budgeted && !unknown.take(peer, nowMs)) {
      unknownLimited++;
      const wait = unknown.waitMs(peer, nowMs);
      return finish(input, VerifyCode.RATE_LIMITED, undefined, nowMs, undefined, wait);
    }
    if (entry !== undefined && nowMs - entry.loadedAtMs >= hardTtl) entry = undefined;
    try {
      entry = await resolve(hashHex, Buffer.from(hashHex, "hex"), entry, admin);
    } catch (err) {
      if (budgeted) unknown.refund(peer);
      throw err;
    }
    if (entry === undefined) {
      return finish(input, VerifyCode.NOT_FOUND, undefined, nowMs, undefined, undefined);
    }
    if (budgeted) unknown.refund(peer);
    return decideFound(input, hashHex, entry, nowMs);
  };

  /** `decide`, then (for a VALID answer) usage; limited tokens continue in {@link consume}. */
  const decideFound = (
    input: VerifyInput,
    hashHex: string,
    entry: CacheEntry,
    nowMs: number,
  ): VerifyOutcome | Promise<VerifyOutcome> => {
    const record = entry.record;
    const code = decide(record, input, nowMs, entry.usesSeen);
    if (code !== VerifyCode.VALID) {
      return finish(input, code, record, nowMs, undefined, undefined);
    }
    if (record.rateLimits.length > 0 || record.maxUses !== null) {
      return consume(input, hashHex, entry, nowMs);
    }
    usage.record(record.id, nowMs, input.clientIp);
    return finish(input, code, record, nowMs, undefined, undefined);
  };

  /** A VALID decision for a token with a rate limit or a use limit: count it, or refuse. */
  const consume = async (
    input: VerifyInput,
    hashHex: string,
    entry: CacheEntry,
    nowMs: number,
  ): Promise<VerifyOutcome> => {
    let record = entry.record;
    let code: VerifyCode = VerifyCode.VALID;
    let remaining: number | undefined;
    let retryAfter: number | undefined;
    if (record.rateLimits.length > 0) {
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

  const verify = (input: VerifyInput): Promise<VerifyOutcome> => {
    try {
      const outcome = verifyNow(input);
      return outcome instanceof Promise ? outcome : Promise.resolve(outcome);
    } catch (err) {
      return Promise.reject(err);
    }
  };

  const stats = (): PipelineStats => ({
    byCode,
    localHits,
    redisHits: counts.redisHits,
    postgresLoads: counts.postgresLoads,
    negativeHits,
    staleServed: counts.staleServed,
    unavailable: unavailableCount + counts.unavailable,
    unknownLimited,
    auditSampled: sampler?.suppressed ?? 0,
    sharedRefused: counts.sharedRefused,
  });

  return {
    verify,
    verifyNow,
    tokensChanged,
    tick(nowMs) {
      sampler?.tick(nowMs);
      unknown?.sweep(nowMs);
    },
    drainSamples() {
      sampler?.tick(Number.POSITIVE_INFINITY);
    },
    stats,
  };
}
