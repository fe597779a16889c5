/** Every permission: covered by `*` (except {@link PLATFORM_ADMIN}). */
export const WILDCARD = "*";
/** Cross-org power: never implied by `*`, only held (and granted) by name. */
export const PLATFORM_ADMIN = "platform:admin";
/** WatchRevocations: stream the revocations of the caller's org (every org for a platform caller). */
export const TOKENS_WATCH = "tokens:watch";
/** OAuth 2.0 token introspection (POST /oauth2/introspect). */
export const TOKENS_INTROSPECT = "tokens:introspect";

const PART = "[a-z][a-z0-9_.-]{0,63}";
const PERMISSION_RE = new RegExp(`^${PART}:(?:${PART}|\\*)$`);
const PLATFORM_RESOURCE = "platform";

/**
 * Syntax of a permission: `*`, `platform:admin`, `resource:action` or `resource:*`. The
 * `platform` resource is reserved: `platform:admin` is its only permission, so that no
 * wildcard (`platform:*` included) can ever stand for cross-org power.
 */
export function isValidPermission(p: string): boolean {
  if (p === WILDCARD || p === PLATFORM_ADMIN) return true;
  if (p.length > 129 || !PERMISSION_RE.test(p)) return false;
  return !p.startsWith(`${PLATFORM_RESOURCE}:`);
}

function resourceOf(p: string): string | undefined {
  const i = p.indexOf(":");
  return i > 0 ? p.slice(0, i) : undefined;
}

/**
 * Whether a set of held permissions covers one required permission. The single rule used for
 * both authorisation and escalation checks: `*` covers everything but `platform:admin`,
 * `res:*` covers `res:<anything>` (and `res:*`), anything else covers only itself.
 */
export function holds(held: readonly string[], required: string): boolean {
  if (required === PLATFORM_ADMIN) return held.includes(PLATFORM_ADMIN);
  if (held.includes(WILDCARD) || held.includes(required)) return true;
  const resource = resourceOf(required);
  return resource !== undefined && held.includes(`${resource}:*`);
}

/** Whether every required permission is held (VerifyToken's `required_permissions`). */
export function holdsAll(held: readonly string[], required: readonly string[]): boolean {
  return required.every((r) => holds(held, r));
}

/**
 * The requested permissions a caller could not grant, in request order without repeats. A
 * caller can only hand out what it holds itself (no escalation): `*` needs `*`, `deploy:*`
 * needs `*` or `deploy:*`, `platform:admin` needs `platform:admin`. Empty: all grantable.
 */
export function uncovered(callerHeld: readonly string[], requested: readonly string[]): string[] {
  const out: string[] = [];
  for (const r of requested) {
    if (!holds(callerHeld, r) && !out.includes(r)) out.push(r);
  }
  return out;
}

/** A token's permissions prepared once for O(1) checks on the verification hot path. */
export interface CompiledPermissions {
  /** `*` held. */
  readonly all: boolean;
  /** `platform:admin` held. */
  readonly platformAdmin: boolean;
  /** Every held permission, verbatim. */
  readonly exact: ReadonlySet<string>;
  /** Resources held with `resource:*`. */
  readonly wildcardResources: ReadonlySet<string>;
}

/** Compiles held permissions once (when a token enters the cache), not per verification. */
export function compilePermissions(held: readonly string[]): CompiledPermissions {
  const wildcardResources = new Set<string>();
  for (const p of held) {
    if (p.endsWith(":*")) {
      const resource = resourceOf(p);
      if (resource !== undefined) wildcardResources.add(resource);
    }
  }
  return {
    all: held.includes(WILDCARD),
    platformAdmin: held.includes(PLATFORM_ADMIN),
    exact: new Set(held),
    wildcardResources,
  };
}

/** {@link holds} over compiled permissions: same answers, Set lookups instead of scans. */
export function holdsCompiled(c: CompiledPermissions, required: string): boolean {
  if (required === PLATFORM_ADMIN) return c.platformAdmin;
  if (c.all || c.exact.has(required)) return true;
  if (c.wildcardResources.size === 0) return false;
  const resource = resourceOf(required);
  return resource !== undefined && c.wildcardResources.has(resource);
}

/**
 * Roles are names for permission sets, expanded once at creation: the token stores the
 * permissions, so later edits to a role never widen existing tokens.
 */
export const DEFAULT_ROLES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  viewer: Object.freeze(["tokens:read", "audit:read"]),
  ops: Object.freeze(["tokens:read", "tokens:update", "tokens:revoke", "audit:read"]),
  deployer: Object.freeze(["deploy:*", "tokens:read"]),
  cicd: Object.freeze(["deploy:*", "artifacts:*"]),
  admin: Object.freeze(["*"]),
});

/**
 * The permissions a role stands for, or undefined for an unknown role. Only own keys count,
 * so `constructor` or `__proto__` are unknown roles rather than prototype members.
 */
export function expandRole(
  roles: Readonly<Record<string, readonly string[]>>,
  role: string,
): readonly string[] | undefined {
  return Object.hasOwn(roles, role) ? roles[role] : undefined;
}
