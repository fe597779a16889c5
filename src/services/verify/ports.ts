import type { RateLimitRule, TokenRecord } from "../../domain/token-record.js";
import type { VerifyAuditRow } from "../../store/audit-writer.js";
import type { ConsumeResult } from "../../store/verify-repo.js";

/**
 * The parts the verify pipeline is written over. Production passes the Postgres queries, the
 * COPY audit writer, the usage batcher and the Redis-backed limiter (see verifier.ts); tests
 * pass in-memory ones.
 */

/** Where tokens are stored: the lookup by secret hash and the exact consumption of a use. */
export interface TokenSource {
  /** The token whose secret hashes to `secretHash`, undefined when none; throws when storage fails. */
  findByHash(secretHash: Uint8Array): Promise<TokenRecord | undefined>;
  /**
   * Takes one use of a limited token, exactly once across every instance; refuses (with the
   * token as it is now) when it is revoked, expired or exhausted. Throws when storage fails.
   */
  consumeUse(id: string, clientIp: string | undefined): Promise<ConsumeResult>;
}

/**
 * The connection peers believed about `client_ip` (LATCHKEY_TRUSTED_PROXIES): a gateway that
 * relays many clients. See {@link peerOf}.
 */
export interface PeerTrust {
  trusts(ip: string): boolean;
}

/** Takes one verification audit row; must not block or throw (rows are written later). */
export interface AuditSink {
  push(row: VerifyAuditRow): void;
}

/** Takes one successful use of a token without a use limit; must not block or throw. */
export interface UsageSink {
  record(tokenId: string, nowMs: number, clientIp: string): void;
}

/** Per-token rate limits: every rule is checked first and counted only when all pass. */
export interface RateLimiter {
  /** 0 when the call may pass (and was counted), else milliseconds until it may. */
  check(tokenId: string, rules: readonly RateLimitRule[], nowMs: number): number | Promise<number>;
}

/** The clock of the pipeline, epoch milliseconds. */
export type Clock = () => number;

/** A warning worth a log line; the implementation throttles repeats. */
export type Warn = (msg: string, err?: unknown) => void;
