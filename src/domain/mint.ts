import type { TokenType } from "../gen/latchkey/v1/token_pb.js";
import { newTokenId } from "./ids.js";
import { displayHint, generateToken, hashToken } from "./token-format.js";
import type { TypePolicy } from "./token-types.js";

/** What is stored of a secret: its SHA-256 and the display hint, never the secret itself. */
export interface StoredSecret {
  readonly secretHash: Buffer;
  readonly displayHint: string;
}

/** A freshly minted token: its new id, the plain secret (shown once) and its stored form. */
export interface Minted extends StoredSecret {
  readonly id: string;
  readonly secret: string;
}

/**
 * The stored form of a secret. Every writer of the tokens table goes through here, so the hash
 * the verifier looks up and the hint people see are made one way only.
 */
export function storedSecret(secret: string): StoredSecret {
  return { secretHash: hashToken(secret), displayHint: displayHint(secret) };
}

/**
 * The one place a token is minted (CreateToken, RotateToken, bootstrap, test seeding, the
 * bench): a new id and a new secret from the secure generator, with its stored form. Callers
 * keep `secret` apart from what they hand to the store.
 */
export function mint(prefix: string, type: TokenType): Minted {
  const secret = generateToken(prefix, type);
  return { id: newTokenId(), secret, ...storedSecret(secret) };
}

/**
 * Expiry of a token whose request named none: the type's default lifetime (or its cap) from
 * `nowMs`; null where the type allows a token that never expires.
 */
export function defaultExpireMs(policy: TypePolicy, nowMs: number): number | null {
  const lifetime = policy.defaultLifetimeMs ?? policy.maxLifetimeMs;
  return lifetime === null ? null : nowMs + lifetime;
}

/** The use limit a type gives a token that asked for none (1 for ephemeral tokens). */
export function defaultMaxUses(policy: TypePolicy): bigint | null {
  return policy.defaultMaxUses === null ? null : BigInt(policy.defaultMaxUses);
}

/**
 * Expiry of a rotation's successor. A caller that could issue the token afresh (`mayRenew`:
 * it holds `tokens:create` and covers the token) gets now plus the old token's original
 * lifetime, capped by the type's maximum (a token that never expired gets the type's default).
 * Anyone else — a token rotating itself — renews the secret, never the life: the result is
 * never later than the old token's current expiry, so an expiry an admin cut stays cut.
 */
export function rotatedExpireMs(
  policy: TypePolicy,
  old: { readonly createTime: Date; readonly expireTime: Date | null },
  nowMs: number,
  mayRenew: boolean,
): number | null {
  if (old.expireTime === null) return defaultExpireMs(policy, nowMs);
  const current = old.expireTime.getTime();
  const lifetime = current - old.createTime.getTime();
  const cap = policy.maxLifetimeMs;
  const renewed = nowMs + (cap === null ? lifetime : Math.min(lifetime, cap));
  return mayRenew ? renewed : Math.min(renewed, current);
}

/**
 * Uses left to a rotation's successor: rotating must never refill a use limit, so the new
 * token carries only what the old one had left (at least 1, as the schema requires).
 */
export function remainingMaxUses(maxUses: string | null, useCount: string): bigint | null {
  if (maxUses === null) return null;
  const left = BigInt(maxUses) - BigInt(useCount);
  return left > 1n ? left : 1n;
}
