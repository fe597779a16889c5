import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  capMessage,
  cidrsNarrowed,
  MAX_REQUEST_ID,
  type UpdatePath,
  updatePath,
} from "../../domain/admin-rules.js";
import { uncovered } from "../../domain/permissions.js";
import { checkRequestId } from "../../domain/request-id.js";
import { checkTimestamp } from "../../domain/time-fields.js";
import { typePolicy } from "../../domain/token-types.js";
import { checkCidrs, checkMetadata, checkName, checkPermissions } from "../../domain/validation.js";
import { type FieldViolation, notFound, refused, throwIfInvalid } from "../../errors.js";
import type { UpdateTokenRequest } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import { type Token, TokenSchema, type TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { TokenChanges, TokenRow } from "../../store/token-repo.js";
import { type Caller, callerOf } from "../context.js";
import { auditFor, isoOrNull, requestIdOf } from "./audit-rows.js";
import { type AdminDeps, announce, type Handlers } from "./deps.js";
import { dedupe } from "./filter.js";
import { checkIdField } from "./ids.js";
import { tokenMessage } from "./mappers.js";
import { assertCovered, assertCoversToken, denied, isOrgWide, reachById } from "./scope.js";

/** The mask's paths, each known (an unknown path is a violation). */
function readMask(req: UpdateTokenRequest, v: FieldViolation[]): Set<UpdatePath> {
  const paths = new Set<UpdatePath>();
  const maskPaths = req.updateMask?.paths ?? [];
  if (maskPaths.length === 0) {
    v.push({ field: "update_mask", description: "name at least one field to change" });
  }
  for (const p of maskPaths) {
    const known = updatePath(p);
    if (known === undefined) {
      v.push({
        field: "update_mask",
        description: `unknown path "${p.slice(0, 64)}"; allowed: name, metadata, allowed_cidrs, expire_time, permissions`,
      });
    } else paths.add(known);
  }
  return paths;
}

/** The new values of the masked fields, each checked on its own. */
function readChanges(
  token: Token,
  paths: ReadonlySet<UpdatePath>,
  nowMs: number,
  v: FieldViolation[],
): { -readonly [K in keyof TokenChanges]: TokenChanges[K] } {
  const changes: { -readonly [K in keyof TokenChanges]: TokenChanges[K] } = {};
  for (const p of paths) {
    switch (p) {
      case "name":
        v.push(...checkName(token.name, "token.name"));
        changes.name = token.name;
        break;
      case "metadata":
        v.push(...checkMetadata(token.metadata, "token.metadata", { allowEmptyValues: false }));
        changes.metadata = { ...token.metadata };
        break;
      case "allowed_cidrs": {
        const c = checkCidrs(token.allowedCidrs, "token.allowed_cidrs");
        v.push(...c.violations);
        changes.allowedCidrs = c.normalized;
        break;
      }
      case "expire_time":
        if (token.expireTime === undefined) {
          v.push({
            field: "token.expire_time",
            description: "required: an expiry can be shortened, never removed",
          });
        } else {
          const { violations, ms: at } = checkTimestamp(token.expireTime, "token.expire_time");
          v.push(...violations);
          if (violations.length > 0) break;
          if (!(at > nowMs)) {
            v.push({
              field: "token.expire_time",
              description: "must lie in the future (revoke the token to end it now)",
            });
          }
          changes.expireTime = new Date(at);
        }
        break;
      case "permissions":
        if (token.permissions.length === 0) {
          v.push({ field: "token.permissions", description: "at least one permission" });
        } else v.push(...checkPermissions(token.permissions, "token.permissions"));
        changes.permissions = dedupe(token.permissions);
        changes.role = "";
        break;
    }
  }
  return changes;
}

/**
 * Who may change this token: only a caller covering its permissions (PERMISSION_DENIED), and
 * allowed IPs are widened or cleared only by an org-wide caller; anyone who may update may
 * narrow them.
 */
function checkCaller(caller: Caller, before: TokenRow, changes: TokenChanges): void {
  assertCoversToken(caller, before);
  const cidrs = changes.allowedCidrs;
  if (cidrs !== undefined && !isOrgWide(caller) && !cidrsNarrowed(before.allowed_cidrs, cidrs)) {
    throw denied(
      "CIDR_WIDENING_DENIED",
      "only an org-wide caller may widen or clear allowed_cidrs (narrowing is allowed); nothing was changed",
      { token_id: before.id, field: "token.allowed_cidrs" },
    );
  }
}

/** The rules that need the stored token: not revoked, expiry only shortened, grants narrowed. */
function checkAgainst(before: TokenRow, changes: TokenChanges, deps: AdminDeps, nowMs: number) {
  if (before.revoke_time !== null) {
    throw refused(Code.FailedPrecondition, "TOKEN_REVOKED", "a revoked token cannot be changed", {
      token_id: before.id,
    });
  }
  const late: FieldViolation[] = [];
  const expire = changes.expireTime;
  if (expire !== undefined && before.expire_time !== null) {
    if (expire.getTime() > before.expire_time.getTime()) {
      late.push({
        field: "token.expire_time",
        description: `can only be shortened (now ${before.expire_time.toISOString()})`,
      });
    }
  } else if (expire !== undefined) {
    const type = before.type as TokenType;
    const cap = typePolicy(deps.policies, type).maxLifetimeMs;
    if (cap !== null && expire.getTime() - nowMs > cap) {
      late.push({ field: "token.expire_time", description: capMessage("expire_time", cap, type) });
    }
  }
  if (changes.permissions !== undefined) {
    const wider = uncovered(before.permissions, changes.permissions);
    if (wider.length > 0) {
      late.push({
        field: "token.permissions",
        description: `can only be narrowed; not held now: ${wider.join(", ")}`,
      });
    }
  }
  throwIfInvalid(late);
}

/** Each changed field's value before and after, for the audit row. */
function diff(paths: ReadonlySet<UpdatePath>, before: TokenRow, after: TokenRow): JsonObject {
  const out: JsonObject = {};
  for (const p of paths) {
    switch (p) {
      case "name":
        out.name = { from: before.name, to: after.name };
        break;
      case "metadata":
        out.metadata = { from: { ...before.metadata }, to: { ...after.metadata } };
        break;
      case "allowed_cidrs":
        out.allowed_cidrs = { from: before.allowed_cidrs, to: after.allowed_cidrs };
        break;
      case "expire_time":
        out.expire_time = { from: isoOrNull(before.expire_time), to: isoOrNull(after.expire_time) };
        break;
      case "permissions":
        out.permissions = { from: before.permissions, to: after.permissions };
        break;
    }
  }
  return out;
}

/**
 * UpdateToken: the masked fields (name, metadata, allowed_cidrs, expire_time shortened,
 * permissions narrowed) of one token in reach that the caller covers, with a from/to audit
 * row, in one transaction.
 */
export function updateToken(deps: AdminDeps): Handlers["updateToken"] {
  return async (req, ctx) => {
    const caller = callerOf(ctx);
    const nowMs = deps.now();
    const v: FieldViolation[] = [];
    const token = req.token ?? create(TokenSchema);
    if (req.token === undefined) v.push({ field: "token", description: "required" });
    else v.push(...checkIdField(token.id, "token.id"));
    const paths = readMask(req, v);
    v.push(...checkRequestId(req.requestId, "request_id", MAX_REQUEST_ID));
    const changes = readChanges(token, paths, nowMs, v);
    throwIfInvalid(v);
    if (changes.permissions !== undefined) assertCovered(caller, changes.permissions);

    const at = new Date(nowMs);
    const frame = { caller, ctx, at, requestId: requestIdOf(req.requestId, ctx) };
    const row = await deps.tokens.update(reachById(caller), token.id, {
      at,
      decide(before) {
        checkCaller(caller, before, changes);
        checkAgainst(before, changes, deps, nowMs);
        return changes;
      },
      audit: (before, after) => [
        auditFor(frame, "token.update", after, {
          fields: [...paths],
          changes: diff(paths, before, after),
        }),
      ],
    });
    if (row === undefined) throw notFound(`token ${token.id}`);
    await announce(deps, [row], "updated", "updated");
    return { token: tokenMessage(row, nowMs) };
  };
}
