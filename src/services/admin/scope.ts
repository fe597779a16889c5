import { Code } from "@connectrpc/connect";
import { uncovered } from "../../domain/permissions.js";
import { refused } from "../../errors.js";
import type { OrgScope, Scope, TokenRow } from "../../store/token-repo.js";
import { PLATFORM_ADMIN } from "../auth.js";
import type { Caller } from "../context.js";

/** PERMISSION_DENIED with its own reason (scope and escalation refusals). */
export function denied(reason: string, message: string, metadata: Record<string, string> = {}) {
  return refused(Code.PermissionDenied, reason, message, metadata);
}

/**
 * Org-wide callers manage every token of their org and may create tokens for any team or
 * owner in it. A caller is org-wide when its token has neither a team nor an owner (an org
 * admin token), or when it is a platform caller. Holding `*` does not widen a team- or
 * owner-scoped token's reach: its scope still binds it.
 * Every other caller is restricted: a team-scoped one (team_id set) to its team's tokens, a
 * personal one (owner_id set) to the tokens it owns, and both when both are set; the tokens a
 * restricted caller creates carry exactly its own team and owner.
 */
export function isOrgWide(caller: Caller): boolean {
  return caller.isPlatform || (caller.teamId === "" && caller.ownerId === "");
}

/**
 * What a caller reaches by id: a platform caller any org (platform tokens included), others
 * their org (and scope) without its platform tokens, which are NOT_FOUND to them.
 */
export function reachById(caller: Caller): Scope {
  if (caller.isPlatform) return { orgId: undefined, teamId: "", ownerId: "", platform: true };
  if (isOrgWide(caller)) return { orgId: caller.orgId, teamId: "", ownerId: "", platform: false };
  return { orgId: caller.orgId, teamId: caller.teamId, ownerId: caller.ownerId, platform: false };
}

/**
 * The org a List / filter / Create acts in: the request's `org_id` (platform callers only)
 * or the caller's own. Naming another org without platform rights is PERMISSION_DENIED.
 */
export function targetOrg(caller: Caller, requested: string): string {
  if (requested === "" || requested === caller.orgId) return caller.orgId;
  if (!caller.isPlatform) {
    throw denied(
      "ORG_NOT_ALLOWED",
      "only a platform caller (platform:admin) may act in another org",
      { org_id: requested },
    );
  }
  return requested;
}

/**
 * What a caller reaches inside `org`: all of it when org-wide, else its team and/or owner;
 * platform tokens only for a platform caller.
 */
export function orgScope(caller: Caller, org: string): OrgScope {
  const platform = caller.isPlatform;
  if (isOrgWide(caller)) return { orgId: org, teamId: "", ownerId: "", platform };
  return { orgId: org, teamId: caller.teamId, ownerId: caller.ownerId, platform };
}

/**
 * No escalation: everything granted must be covered by the caller's own permissions, and
 * `platform:admin` only by a platform caller (`*` does not imply it).
 */
export function assertCovered(caller: Caller, requested: readonly string[]): void {
  if (requested.includes(PLATFORM_ADMIN) && !caller.isPlatform) {
    throw denied("PERMISSION_ESCALATION", `only a platform caller may grant ${PLATFORM_ADMIN}`, {
      permission: PLATFORM_ADMIN,
    });
  }
  const missing = uncovered(caller.permissions, requested).filter((p) => p !== PLATFORM_ADMIN);
  const first = missing[0];
  if (first !== undefined) {
    throw denied(
      "PERMISSION_ESCALATION",
      `cannot grant ${missing.join(", ")}: not covered by the caller's own permissions`,
      { permission: first },
    );
  }
}

/** Whether the caller holds everything `held` grants (`platform:admin` only by name). */
export function covers(caller: Caller, held: readonly string[]): boolean {
  return uncovered(caller.permissions, held).length === 0;
}

/**
 * Changing a token needs a caller that covers it: otherwise a caller holding only
 * `tokens:update` could weaken a stronger token (clear its allowed IPs, rewrite the metadata
 * its verifiers act on). PERMISSION_DENIED naming the first permission the caller lacks.
 */
export function assertCoversToken(caller: Caller, target: TokenRow): void {
  const missing = uncovered(caller.permissions, target.permissions);
  const first = missing[0];
  if (first !== undefined) {
    throw denied(
      "TOKEN_NOT_COVERED",
      `token ${target.id} holds ${missing.join(", ")}, which the caller does not; only a caller covering a token's permissions may change it; nothing was changed`,
      { token_id: target.id, permission: first },
    );
  }
}
