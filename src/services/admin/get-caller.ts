import { notFound } from "../../errors.js";
import { callerOf } from "../context.js";
import type { AdminDeps, Handlers } from "./deps.js";
import { tokenMessage } from "./mappers.js";
import { isOrgWide } from "./scope.js";

/**
 * GetCaller ("who am I"): the caller's own token and reach, so a console can show who is signed
 * in and offer only what the caller may do, and a CLI can check a saved token. Needs no
 * permission: a valid token may always read itself.
 */
export function getCaller(deps: AdminDeps): Handlers["getCaller"] {
  return async (_req, ctx) => {
    const caller = callerOf(ctx);
    const row = await deps.tokens.get(
      { orgId: caller.orgId, teamId: "", ownerId: "", platform: true },
      caller.tokenId,
    );
    if (row === undefined) throw notFound(`token ${caller.tokenId}`);
    return {
      token: tokenMessage(row, deps.now()),
      platform: caller.isPlatform,
      orgWide: isOrgWide(caller),
    };
  };
}
