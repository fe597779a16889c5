import type { FieldViolation } from "../errors.js";
import { AuditDecision, TokenState, TokenType } from "../gen/latchkey/v1/token_pb.js";
import { compileCidrs, ipAllowed } from "./cidr.js";
import { MAX_IDS, MAX_METADATA_ENTRIES } from "./validation.js";

/** Ids per BatchRevokeTokens / BatchUpdateTokens call (one transaction each). */
export const MAX_BATCH_IDS = MAX_IDS;
/** Tokens a BatchRevokeTokens by filter revokes per transaction (it revokes all matches). */
export const REVOKE_CHUNK = 1000;
/**
 * Tokens a BatchRevokeTokens response lists (its `count` has them all): at the largest token
 * (100 permissions, 100 CIDRs, 32 metadata entries of 512 characters) 100 tokens stay well
 * under gRPC's 4 MB message limit.
 */
export const MAX_LISTED_REVOKED = 100;
/** Longest RotateToken grace period. */
export const MAX_GRACE_MS = 7 * 24 * 3600 * 1000;
/** Metadata keys a token may hold (also after a batch update). */
export const MAX_METADATA_KEYS = MAX_METADATA_ENTRIES;
/** Rate limits per token, and their window bounds. */
export const MAX_RATE_LIMITS = 5;
export const MIN_RATE_WINDOW_MS = 1000;
export const MAX_RATE_WINDOW_MS = 24 * 3600 * 1000;
/** Concurrency slots per token. */
export const MAX_CONCURRENT = 1000;
/** Length limits of free-text request fields. */
export const MAX_REQUEST_ID = 128;
export const MAX_REASON = 500;

/** The UpdateToken mask paths, in snake_case (camelCase spellings are accepted too). */
export const UPDATE_PATHS = [
  "name",
  "metadata",
  "allowed_cidrs",
  "expire_time",
  "permissions",
] as const;
export type UpdatePath = (typeof UPDATE_PATHS)[number];

/**
 * Maps a FieldMask path to the update it names. JSON clients send lowerCamelCase, which
 * protobuf-es turns back into snake_case, but binary clients may send either spelling.
 */
export function updatePath(path: string): UpdatePath | undefined {
  const snake = path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return UPDATE_PATHS.find((p) => p === snake);
}

/** A type's name as people write it, for error messages ("CI/CD tokens"). */
export function typeLabel(type: TokenType): string {
  switch (type) {
    case TokenType.PERSONAL:
      return "personal";
    case TokenType.TEAM:
      return "team";
    case TokenType.CICD:
      return "CI/CD";
    case TokenType.EPHEMERAL:
      return "ephemeral";
    case TokenType.UNSPECIFIED:
      return "unspecified";
  }
}

/** A duration for humans: "90-day", "24-hour", "1-year" style, as used in cap messages. */
export function durationLabel(ms: number): string {
  const day = 24 * 3600 * 1000;
  if (ms % (365 * day) === 0) return `${ms / (365 * day)}-year`;
  if (ms % day === 0) return `${ms / day}-day`;
  if (ms % (3600 * 1000) === 0) return `${ms / (3600 * 1000)}-hour`;
  if (ms % 60_000 === 0) return `${ms / 60_000}-minute`;
  return `${Math.round(ms / 1000)}-second`;
}

/** "ttl exceeds the 90-day maximum for CI/CD tokens": names the cap that was hit. */
export function capMessage(what: string, capMs: number, type: TokenType): string {
  return `${what} exceeds the ${durationLabel(capMs)} maximum for ${typeLabel(type)} tokens`;
}

/** True for a TokenType value this server knows (and that is not UNSPECIFIED). */
export function isKnownType(n: number): n is TokenType {
  return (
    n === TokenType.PERSONAL ||
    n === TokenType.TEAM ||
    n === TokenType.CICD ||
    n === TokenType.EPHEMERAL
  );
}

/** True for a TokenState value this server knows (UNSPECIFIED included: "any state"). */
export function isKnownState(n: number): n is TokenState {
  return (
    n === TokenState.UNSPECIFIED ||
    n === TokenState.ACTIVE ||
    n === TokenState.EXPIRED ||
    n === TokenState.REVOKED ||
    n === TokenState.EXHAUSTED
  );
}

/** True for an AuditDecision value this server knows (UNSPECIFIED included: "any"). */
export function isKnownDecision(n: number): n is AuditDecision {
  return n === AuditDecision.UNSPECIFIED || n === AuditDecision.ALLOW || n === AuditDecision.DENY;
}

/** A rate limit as given in a request, before it is stored. */
export interface RateLimitInput {
  readonly name: string;
  readonly limit: bigint;
  /** undefined when the request left the window unset. */
  readonly windowMs: number | undefined;
}

/** Rate limits of CreateToken: at most 5, unique names of 1-64 characters, sane bounds. */
export function checkRateLimits(list: readonly RateLimitInput[], field: string): FieldViolation[] {
  const out: FieldViolation[] = [];
  if (list.length > MAX_RATE_LIMITS) {
    out.push({ field, description: `at most ${MAX_RATE_LIMITS} rate limits` });
    return out;
  }
  const seen = new Set<string>();
  list.forEach((r, i) => {
    const f = `${field}[${i}]`;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(r.name)) {
      out.push({ field: `${f}.name`, description: "must be 1-64 characters of [A-Za-z0-9_.-]" });
    } else if (seen.has(r.name)) {
      out.push({ field: `${f}.name`, description: "duplicate rate limit name" });
    }
    seen.add(r.name);
    if (r.limit < 1n || r.limit > 1_000_000_000n) {
      out.push({ field: `${f}.limit`, description: "must be from 1 to 1000000000" });
    }
    if (
      r.windowMs === undefined ||
      r.windowMs < MIN_RATE_WINDOW_MS ||
      r.windowMs > MAX_RATE_WINDOW_MS
    ) {
      out.push({ field: `${f}.window`, description: "must be from 1 second to 1 day" });
    }
  });
  return out;
}

/** Whether the CIDR `inner` lies inside `outer` (same family, prefix at least as long). */
function cidrWithin(inner: string, outer: string): boolean {
  const slash = inner.lastIndexOf("/");
  const outerSlash = outer.lastIndexOf("/");
  if (slash < 0 || outerSlash < 0) return false;
  if (Number(inner.slice(slash + 1)) < Number(outer.slice(outerSlash + 1))) return false;
  return ipAllowed(compileCidrs([outer]), inner.slice(0, slash));
}

/**
 * Whether replacing the allowed IPs `before` by `after` (both normalized, `addr/prefix`) admits
 * no client that `before` refused: every new entry lies inside one old entry. An empty list
 * admits everyone, so anything narrows it and clearing a list never does. An entry covered
 * only by several old entries together counts as widening (the safe side).
 */
export function cidrsNarrowed(before: readonly string[], after: readonly string[]): boolean {
  if (before.length === 0) return true;
  if (after.length === 0) return false;
  return after.every((n) => before.some((o) => cidrWithin(n, o)));
}
