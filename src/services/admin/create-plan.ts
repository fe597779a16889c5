import {
  capMessage,
  checkRateLimits,
  isKnownType,
  MAX_CONCURRENT,
  MAX_REQUEST_ID,
  MIN_RATE_WINDOW_MS,
} from "../../domain/admin-rules.js";
import { defaultExpireMs, defaultMaxUses } from "../../domain/mint.js";
import { expandRole } from "../../domain/permissions.js";
import { checkRequestId } from "../../domain/request-id.js";
import { checkDuration, checkTimestamp, MAX_TIMESTAMP_MS } from "../../domain/time-fields.js";
import { typePolicy } from "../../domain/token-types.js";
import {
  checkCidrs,
  checkIdentifier,
  checkMetadata,
  checkName,
  checkPermissions,
} from "../../domain/validation.js";
import { type FieldViolation, throwIfInvalid } from "../../errors.js";
import type { CreateTokenRequest } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { Caller } from "../context.js";
import type { AdminDeps } from "./deps.js";
import { dedupe } from "./filter.js";
import { assertCovered, denied, isOrgWide, targetOrg } from "./scope.js";

/** A CreateToken request checked in full: every field the new token gets, decided. */
export interface CreatePlan {
  readonly org: string;
  readonly teamId: string;
  readonly ownerId: string;
  readonly role: string;
  readonly permissions: string[];
  readonly cidrs: string[];
  readonly expireMs: number | null;
  readonly maxUses: bigint | null;
  readonly requestId: string;
}

type Rules = Pick<AdminDeps, "policies" | "roles">;

/** Role or permissions (exactly one of them), expanded and de-duplicated. */
function grants(req: CreateTokenRequest, roles: Rules["roles"], v: FieldViolation[]) {
  if (req.role !== "" && req.permissions.length > 0) {
    v.push({ field: "role", description: "give a role or permissions, not both" });
  } else if (req.role !== "") {
    const expanded = expandRole(roles, req.role);
    if (expanded !== undefined) return { role: req.role, permissions: dedupe(expanded) };
    v.push({ field: "role", description: `unknown role; one of ${Object.keys(roles).join(", ")}` });
  } else if (req.permissions.length === 0) {
    v.push({ field: "permissions", description: "give a role or at least one permission" });
  } else {
    v.push(...checkPermissions(req.permissions, "permissions"));
    return { role: "", permissions: dedupe(req.permissions) };
  }
  return { role: "", permissions: [] };
}

/** The expiry asked for (expire_time or ttl, within the type's cap) or the type's default. */
function expiry(req: CreateTokenRequest, rules: Rules, nowMs: number, v: FieldViolation[]) {
  const policy = typePolicy(rules.policies, req.type);
  const cap = policy.maxLifetimeMs;
  if (req.expireTime !== undefined && req.ttl !== undefined) {
    v.push({ field: "ttl", description: "give expire_time or ttl, not both" });
    return null;
  }
  if (req.ttl !== undefined) {
    const { violations, ms } = checkDuration(req.ttl, "ttl");
    v.push(...violations);
    if (violations.length > 0) return null;
    if (!(ms > 0)) v.push({ field: "ttl", description: "must be positive" });
    else if (cap !== null && ms > cap) {
      v.push({ field: "ttl", description: capMessage("ttl", cap, req.type) });
    } else if (nowMs + ms > MAX_TIMESTAMP_MS) {
      v.push({ field: "ttl", description: "must end before the year 10000" });
    }
    return nowMs + ms;
  }
  if (req.expireTime !== undefined) {
    const { violations, ms: at } = checkTimestamp(req.expireTime, "expire_time");
    v.push(...violations);
    if (violations.length > 0) return null;
    if (!(at > nowMs)) v.push({ field: "expire_time", description: "must lie in the future" });
    else if (cap !== null && at - nowMs > cap) {
      v.push({ field: "expire_time", description: capMessage("expire_time", cap, req.type) });
    }
    return at;
  }
  return defaultExpireMs(policy, nowMs);
}

/** Every other field's bounds. */
function limits(req: CreateTokenRequest, v: FieldViolation[]): void {
  if (req.maxUses !== undefined && (req.maxUses < 1n || req.maxUses > 1_000_000_000_000n)) {
    v.push({ field: "max_uses", description: "must be from 1 to 1000000000000" });
  }
  const rateLimits = req.rateLimits.map((r, i) => {
    if (r.window === undefined) return { name: r.name, limit: r.limit, windowMs: undefined };
    const window = checkDuration(r.window, `rate_limits[${i}].window`);
    v.push(...window.violations);
    return {
      name: r.name,
      limit: r.limit,
      windowMs: window.violations.length > 0 ? MIN_RATE_WINDOW_MS : window.ms,
    };
  });
  v.push(...checkRateLimits(rateLimits, "rate_limits"));
  if (req.maxConcurrent < 0 || req.maxConcurrent > MAX_CONCURRENT) {
    v.push({ field: "max_concurrent", description: `must be from 0 to ${MAX_CONCURRENT}` });
  }
  v.push(...checkRequestId(req.requestId, "request_id", MAX_REQUEST_ID));
}

/**
 * "Creating for another owner or team needs org-wide rights": a restricted caller's tokens
 * carry exactly its own team and owner (the defaults planCreate picks), nothing else.
 */
function assertOwnScope(caller: Caller, teamId: string, ownerId: string): void {
  if (teamId !== caller.teamId) {
    throw denied(
      "SCOPE_DENIED",
      caller.teamId === ""
        ? "only an org-wide caller can create tokens for a team"
        : "a team-scoped caller can only create tokens in its own team",
      { team_id: teamId },
    );
  }
  if (ownerId !== caller.ownerId) {
    throw denied(
      "SCOPE_DENIED",
      caller.ownerId === ""
        ? "only an org-wide caller can create tokens for an owner"
        : "a personal caller can only create tokens it owns",
      { owner_id: ownerId },
    );
  }
}

/**
 * Checks a CreateToken request: every bad field in one INVALID_ARGUMENT first, then scope and
 * escalation (PERMISSION_DENIED), and decides the new token's fields and defaults.
 */
export function planCreate(
  req: CreateTokenRequest,
  caller: Caller,
  nowMs: number,
  rules: Rules,
): CreatePlan {
  const v: FieldViolation[] = [];
  v.push(...checkName(req.name, "name"));
  const typeOk = isKnownType(req.type);
  if (!typeOk) {
    v.push({
      field: "type",
      description:
        "required: TOKEN_TYPE_PERSONAL, TOKEN_TYPE_TEAM, TOKEN_TYPE_CICD or TOKEN_TYPE_EPHEMERAL",
    });
  }
  v.push(...checkIdentifier(req.orgId, "org_id", { required: false, max: 128 }));
  v.push(...checkIdentifier(req.teamId, "team_id", { required: false, max: 128 }));
  v.push(...checkIdentifier(req.ownerId, "owner_id", { required: false, max: 128 }));

  // Restricted callers' tokens stay inside their team/owner, so they can manage them later.
  const orgWide = isOrgWide(caller);
  const teamId = req.teamId !== "" || orgWide ? req.teamId : caller.teamId;
  const ownerId =
    req.ownerId !== ""
      ? req.ownerId
      : !orgWide || req.type === TokenType.PERSONAL
        ? caller.ownerId
        : "";
  if (req.type === TokenType.TEAM && teamId === "") {
    v.push({ field: "team_id", description: "required for team tokens" });
  }
  if (req.type === TokenType.PERSONAL && ownerId === "") {
    v.push({ field: "owner_id", description: "required for personal tokens" });
  }
  const { role, permissions } = grants(req, rules.roles, v);
  const cidrs = checkCidrs(req.allowedCidrs, "allowed_cidrs");
  v.push(...cidrs.violations);
  v.push(...checkMetadata(req.metadata, "metadata", { allowEmptyValues: false }));
  limits(req, v);
  const expireMs = typeOk ? expiry(req, rules, nowMs, v) : null;
  throwIfInvalid(v);

  // Scope and escalation: the input is well formed, now is the caller allowed?
  const org = targetOrg(caller, req.orgId);
  if (!orgWide) assertOwnScope(caller, teamId, ownerId);
  assertCovered(caller, permissions);
  return {
    org,
    teamId,
    ownerId,
    role,
    permissions,
    cidrs: cidrs.normalized,
    expireMs,
    maxUses: req.maxUses ?? (typeOk ? defaultMaxUses(typePolicy(rules.policies, req.type)) : null),
    requestId: req.requestId,
  };
}
