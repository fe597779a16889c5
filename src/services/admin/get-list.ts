import { isTokenId } from "../../domain/ids.js";
import { type FieldViolation, notFound, throwIfInvalid } from "../../errors.js";
import { callerOf } from "../context.js";
import type { AdminDeps, Handlers } from "./deps.js";
import { readFilter } from "./filter.js";
import { checkIdField } from "./ids.js";
import { tokenMessage } from "./mappers.js";
import { listingOf, pageOf, readListing, readPageToken } from "./paging.js";
import { orgScope, reachById } from "./scope.js";

/** GetToken: one token in the caller's reach; anything else is NOT_FOUND. */
export function getToken(deps: AdminDeps): Handlers["getToken"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    throwIfInvalid(checkIdField(req.id, "id"));
    const row = await deps.tokens.get(reachById(caller), req.id);
    if (row === undefined) throw notFound(`token ${req.id}`);
    return { token: tokenMessage(row, deps.now()) };
  };
}

/** ListTokens: a filtered page of the caller's reach, newest first, with a bound page token. */
export function listTokens(deps: AdminDeps): Handlers["listTokens"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    const nowMs = deps.now();
    const v: FieldViolation[] = [];
    const size = readListing(req, v);
    const filter = readFilter(req, "", v);
    throwIfInvalid(v);
    const { org, binding } = listingOf(caller, req.orgId, "tokens", [
      req.type,
      req.teamId,
      req.ownerId,
      req.state,
      filter.unusedSince?.getTime() ?? "",
      req.neverUsed,
    ]);
    const after = readPageToken(deps.pageKey, binding, req.pageToken, (cursor) =>
      isTokenId(cursor) ? cursor : undefined,
    );
    const rows = await deps.tokens.list(
      orgScope(caller, org),
      filter,
      new Date(nowMs),
      size + 1,
      after,
    );
    const { page, nextPageToken } = pageOf(deps.pageKey, binding, rows, size, (r) => r.id);
    return { tokens: page.map((r) => tokenMessage(r, nowMs)), nextPageToken };
  };
}
