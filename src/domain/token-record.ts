import type { TokenType } from "../gen/latchkey/v1/token_pb.js";
import { type CompiledCidrs, compileCidrs } from "./cidr.js";
import { type CompiledPermissions, compilePermissions } from "./permissions.js";

/** A per-token rate limit, window in milliseconds. */
export interface RateLimitRule {
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
}

/**
 * What verification needs to know about a token: the compact record kept in the in-process
 * cache and (as JSON) in Redis, loaded from Postgres by secret hash. It never contains the
 * secret or its hash. Times are epoch milliseconds so that checks do no Date allocation.
 */
export interface TokenRecord {
  readonly id: string;
  readonly name: string;
  readonly type: TokenType;
  readonly orgId: string;
  readonly teamId: string;
  readonly ownerId: string;
  readonly permissions: readonly string[];
  readonly allowedCidrs: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  /** null: never expires. */
  readonly expireTimeMs: number | null;
  /** null: not revoked. */
  readonly revokeTimeMs: number | null;
  /** null: unlimited uses. */
  readonly maxUses: number | null;
  /** Successful uses when the record was loaded (exact counts live in the use counter). */
  readonly useCount: number;
  readonly rateLimits: readonly RateLimitRule[];
  readonly maxConcurrent: number;
  /**
   * tokens.version when the record was read: bumped by every change a verifier acts on, so a
   * cache tier can refuse to replace a newer record with an older one.
   */
  readonly version: number;
  /**
   * When the record was read from Postgres (epoch ms, clock of the instance that read it). It
   * travels with the record through Redis, so staleness is always measured from the last
   * Postgres read, never from the last cache hit.
   */
  readonly readAtMs: number;
}

/** A record with its permission and CIDR lists compiled once, for the hot path. */
export interface CompiledRecord extends TokenRecord {
  readonly compiledPermissions: CompiledPermissions;
  readonly compiledCidrs: CompiledCidrs;
}

/** Compiles a record once when it enters the in-process cache. */
export function compileRecord(record: TokenRecord): CompiledRecord {
  return {
    ...record,
    compiledPermissions: compilePermissions(record.permissions),
    compiledCidrs: compileCidrs(record.allowedCidrs),
  };
}
