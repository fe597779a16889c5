import { TokenType } from "../gen/latchkey/v1/token_pb.js";

/** Lifetime and use rules of one token type; configurable per deployment. */
export interface TypePolicy {
  /** Longest allowed lifetime; null = unlimited ("never expires" allowed). */
  readonly maxLifetimeMs: number | null;
  /** Lifetime when a request gives neither expire_time nor ttl. */
  readonly defaultLifetimeMs: number;
  /** max_uses when a request gives none; null = unlimited. */
  readonly defaultMaxUses: number | null;
}

const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** The contract's defaults: long-lived human tokens, shorter CI/CD ones, single-use ephemerals. */
export const DEFAULT_TYPE_POLICIES: Readonly<
  Record<Exclude<TokenType, TokenType.UNSPECIFIED>, TypePolicy>
> = Object.freeze({
  [TokenType.PERSONAL]: Object.freeze({
    maxLifetimeMs: 365 * DAY_MS,
    defaultLifetimeMs: 90 * DAY_MS,
    defaultMaxUses: null,
  }),
  [TokenType.TEAM]: Object.freeze({
    maxLifetimeMs: 365 * DAY_MS,
    defaultLifetimeMs: 90 * DAY_MS,
    defaultMaxUses: null,
  }),
  [TokenType.CICD]: Object.freeze({
    maxLifetimeMs: 90 * DAY_MS,
    defaultLifetimeMs: 30 * DAY_MS,
    defaultMaxUses: null,
  }),
  [TokenType.EPHEMERAL]: Object.freeze({
    maxLifetimeMs: 24 * HOUR_MS,
    defaultLifetimeMs: HOUR_MS,
    defaultMaxUses: 1,
  }),
});

/**
 * The policy of a type, or undefined for UNSPECIFIED or a value this server does not know
 * (e.g. a newer client's enum number). Use it where the type has not been validated yet.
 */
export function findTypePolicy(
  policies: Readonly<Record<Exclude<TokenType, TokenType.UNSPECIFIED>, TypePolicy>>,
  type: TokenType,
): TypePolicy | undefined {
  switch (type) {
    case TokenType.PERSONAL:
    case TokenType.TEAM:
    case TokenType.CICD:
    case TokenType.EPHEMERAL:
      return policies[type];
    case TokenType.UNSPECIFIED:
      return undefined;
    default:
      return undefined;
  }
}

/**
 * The policy of a type already known to be valid (validated request, stored row): every
 * lifetime cap and default goes through here so that one table decides. Throws for
 * UNSPECIFIED or an unknown value, which would be a programming error at that point; use
 * {@link findTypePolicy} to ask without throwing.
 */
export function typePolicy(
  policies: Readonly<Record<Exclude<TokenType, TokenType.UNSPECIFIED>, TypePolicy>>,
  type: TokenType,
): TypePolicy {
  const policy = findTypePolicy(policies, type);
  if (policy === undefined) throw new RangeError(`no policy for token type ${type}`);
  return policy;
}
