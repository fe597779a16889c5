import type { TokenRecord } from "../../domain/token-record.js";
import type { VerifyCode } from "../../gen/latchkey/v1/token_verify_service_pb.js";

/** One verification request, from VerifyToken, the admin authentication or a gateway check. */
export interface VerifyInput {
  /** The presented token string (plain; hashed on arrival, never stored or logged). */
  readonly token: string;
  readonly requiredPermissions: readonly string[];
  /** "" when unknown. */
  readonly clientIp: string;
  /** "" when any org will do. */
  readonly orgId: string;
  readonly method: string;
  readonly path: string;
  readonly requestId: string;
  /**
   * The address of the connection the request came on (a gateway's, not its client's): the
   * key of the per-peer limits and audit sampling. Defaults to `clientIp` when not given.
   */
  readonly peer?: string | PeerSource | undefined;
  /**
   * Who asks: "verify" (VerifyToken and gateway checks: audited per the audit mode) or
   * "admin" (authentication of a caller — TokenAdminService, or TokenVerifyService under
   * LATCHKEY_VERIFY_AUTH=token: only denials are audited, with action `auth.denied`; the token
   * is taken from Postgres or from a local record read from Postgres at most 1 s ago, never
   * from a Redis record alone).
   */
  readonly purpose: "verify" | "admin";
}

/**
 * Where the peer address can be read when it is needed (a CallContext fits): a cache hit never
 * reads it, so the listener need not parse its peer string for every call.
 */
export interface PeerSource {
  readonly peerAddress: string;
}

/** The decision and, when the token exists, its record. */
export interface VerifyOutcome {
  readonly code: VerifyCode;
  /** Set whenever the token was found (even when denied). */
  readonly record: TokenRecord | undefined;
  /** Uses left after this one, for tokens with a use limit and a VALID decision. */
  readonly remainingUses: number | undefined;
  /** When RATE_LIMITED: milliseconds until a verification may pass. */
  readonly retryAfterMs: number | undefined;
}

/** A token whose stored state changed; caches keyed by secret hash or id must drop it. */
export interface TokenChange {
  readonly id: string;
  /** SHA-256 of the secret (32 bytes), as stored in tokens.secret_hash. */
  readonly secretHash: Uint8Array;
  /** Why, for revocation watchers ("revoked", "rotated", "updated", …). */
  readonly kind: "revoked" | "updated" | "rotated";
  readonly orgId: string;
  readonly reason: string;
}

/**
 * The verification core: one implementation behind VerifyToken, the admin authentication and
 * the gateway checks, so that a revoked, expired, exhausted or IP-restricted token is refused
 * the same way everywhere. Throws LatchkeyError UNAVAILABLE when it cannot decide (never
 * answers VALID when unsure).
 */
export interface Verifier {
  verify(input: VerifyInput): Promise<VerifyOutcome>;
  /**
   * The same verification, answered without a promise when the in-process tier decides (a
   * fresh entry and no rate or use limit to count, or a denial), else a promise: the hot path
   * of VerifyToken and the gateway checks then makes no promise hop on a cache hit.
   */
  verifyNow(input: VerifyInput): VerifyOutcome | Promise<VerifyOutcome>;
  /**
   * Called by the admin service right after a change commits: the local tier drops the tokens
   * before this resolves, and other instances hear of it through Redis pub/sub.
   */
  tokensChanged(changes: readonly TokenChange[]): Promise<void>;
  /** Flushes usage counters and audit rows (on shutdown, and by tests). */
  flush(): Promise<void>;
  close(): Promise<void>;
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
  /** Unknown tokens answered RATE_LIMITED by the per-peer limit, without a lookup. */
  readonly unknownLimited: number;
  /** Denials naming no token folded into a sampled audit row instead of written one by one. */
  readonly auditSampled: number;
  /** Shared-tier copies not used: older than a known change, or past the refresh point. */
  readonly sharedRefused: number;
  /** Shared-tier records whose MAC failed (forged, edited, moved) or in no known format. */
  readonly recordsRejected: { readonly signature: number; readonly malformed: number };
  /** Change-log entries applied to the caches, and failed polls of the log. */
  readonly changesApplied: number;
  readonly changePollFailures: number;
  readonly localEntries: number;
  readonly auditWritten: number;
  readonly auditDropped: number;
  readonly auditPending: number;
  readonly usageDropped: number;
  readonly redisErrors: number;
  readonly redisUndelivered: number;
  /** Audit and usage writes, and the seconds they took in all (flush latency). */
  readonly auditFlushes: number;
  readonly auditFlushSeconds: number;
  readonly usagePending: number;
  readonly usageFlushes: number;
  readonly usageFlushSeconds: number;
  /** Redis connection state; undefined without REDIS_URL. */
  readonly redisReady: boolean | undefined;
  readonly redisSubscribed: boolean | undefined;
}

/** The verifier with the extras main.ts wires to /metrics and /readyz. */
export interface LatchkeyVerifier extends Verifier {
  stats(): VerifierStats;
  /** True when Redis is configured and reachable (or not configured at all). */
  redisHealthy(): Promise<boolean>;
}
