import { holds } from "../../src/domain/permissions.js";
import type { GetCallerResponse } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import type { Token } from "../../src/gen/latchkey/v1/token_pb.js";

/** The signed-in caller, from GetCaller: who it is and what it may do. */
export interface Caller {
  readonly token: Token;
  readonly platform: boolean;
  readonly orgWide: boolean;
  /** Whether the caller holds a permission (same rule as the server: `*`, `res:*`). */
  can(permission: string): boolean;
}

/**
 * Wraps GetCaller's answer. The console only hides controls the caller cannot use; the server
 * still decides every call (a forced call is refused there, not here).
 */
export function callerOf(res: GetCallerResponse): Caller {
  const token = res.token;
  if (token === undefined) throw new Error("GetCaller returned no token");
  return {
    token,
    platform: res.platform,
    orgWide: res.orgWide,
    can: (p) => holds(token.permissions, p),
  };
}

/** "team payments", "owner alice", "org-wide": the caller's reach in one phrase. */
export function scopeLabel(c: Caller): string {
  if (c.orgWide) return c.platform ? "platform (all orgs)" : "org-wide";
  const parts: string[] = [];
  if (c.token.teamId !== "") parts.push(`team ${c.token.teamId}`);
  if (c.token.ownerId !== "") parts.push(`owner ${c.token.ownerId}`);
  return parts.join(", ");
}
