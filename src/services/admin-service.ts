import { create, type JsonObject } from "@bufbuild/protobuf";
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import postgres from "postgres";
import {
  capMessage,
  checkRateLimits,
  isKnownDecision,
  isKnownState,
  isKnownType,
  MAX_BATCH_IDS,
  MAX_CONCURRENT,
  MAX_FILTER_REVOKE,
  MAX_GRACE_MS,
  MAX_METADATA_KEYS,
  MAX_REASON,
  MAX_REQUEST_ID,
  type UpdatePath,
  updatePath,
} from "../domain/admin-rules.js";
import { isTokenId, newAuditId, newTokenId } from "../domain/ids.js";
import { decodePageToken, encodePageToken, filterBinding } from "../domain/page-token.js";
import { DEFAULT_ROLES, expandRole, holds, uncovered } from "../domain/permissions.js";
import { displayHint, generateToken, hashToken } from "../domain/token-format.js";
import { DEFAULT_TYPE_POLICIES, typePolicy } from "../domain/token-types.js";
import {
  checkCidrs,
  checkFreeText,
  checkIdentifier,
  checkIds,
  checkMetadata,
  checkName,
  checkPageSize,
  checkPermissions,
} from "../domain/validation.js";
import { type FieldViolation, invalidArgument, LatchkeyError, notFound } from "../errors.js";
import type {
  BatchRevokeTokensRequest,
  CreateTokenRequest,
  ListTokensRequest,
  TokenAdminService,
  TokenFilter,
} from "../gen/latchkey/v1/token_admin_service_pb.js";
import { AuditDecision, TokenSchema, TokenState, TokenType } from "../gen/latchkey/v1/token_pb.js";
import type { Sql } from "../store/db.js";
import {
  type AuditCursor,
  findByRequestId,
  getToken,
  getTokens,
  insertAuditEvents,
  insertTokens,
  listAuditEvents,
  listTokens,
  markRotated,
  type NewAuditEvent,
  type NewToken,
  patchMetadata,
  type Queryable,
  revokeTokens,
  rowToAuditEvent,
  rowToToken,
  type Scope,
  selectForBatchRevoke,
  type TokenChanges,
  type TokenQueryFilter,
  type TokenRow,
  updateToken,
} from "../store/token-store.js";
import { METHOD_PERMISSIONS, PLATFORM_ADMIN, permissionDenied } from "./auth.js";
import { type CallContext, type Caller, callerOf, type ServiceHandlers } from "./context.js";
import type { TokenChange, Verifier } from "./verify/types.js";

/** The part of a logger the admin service uses (pino's Logger fits). */
export interface AdminLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface AdminServiceDeps {
  readonly sql: Sql;
  readonly verifier: Verifier;
  /** Prefix of issued tokens (`LATCHKEY_TOKEN_PREFIX`). */
  readonly prefix: string;
  /** Key that signs page tokens; shared by every instance (see serverKey). */
  readonly pageKey: Uint8Array;
  /** Per-type lifetime caps and defaults; DEFAULT_TYPE_POLICIES when unset. */
  readonly policies?: typeof DEFAULT_TYPE_POLICIES;
  /** Role table that CreateToken expands; DEFAULT_ROLES when unset. */
  readonly roles?: typeof DEFAULT_ROLES;
  /** Clock (epoch ms); tests move it. */
  readonly now?: () => number;
  readonly log: AdminLog;
}

function failedPrecondition(
  reason: string,
  message: string,
  metadata: Record<string, string> = {},
): LatchkeyError {
  return new LatchkeyError(Code.FailedPrecondition, reason, message, { metadata });
}

function denied(reason: string, message: string, metadata: Record<string, string> = {}) {
  return new LatchkeyError(Code.PermissionDenied, reason, message, { metadata });
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

/** What a caller reaches by id: a platform caller any org, others their org (and scope). */
function reachById(caller: Caller): Scope {
  if (caller.isPlatform) return { orgId: undefined, teamId: "", ownerId: "" };
  if (isOrgWide(caller)) return { orgId: caller.orgId, teamId: "", ownerId: "" };
  return { orgId: caller.orgId, teamId: caller.teamId, ownerId: caller.ownerId };
}

/**
 * The org a List / filter / Create acts in: the request's `org_id` (platform callers only)
 * or the caller's own. Naming another org without platform rights is PERMISSION_DENIED.
 */
function targetOrg(caller: Caller, requested: string): string {
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

function orgScope(caller: Caller, org: string): Scope & { orgId: string } {
  if (isOrgWide(caller)) return { orgId: org, teamId: "", ownerId: "" };
  return { orgId: org, teamId: caller.teamId, ownerId: caller.ownerId };
}

/**
 * No escalation: everything granted must be covered by the caller's own permissions, and
 * `platform:admin` only by a platform caller (`*` does not imply it).
 */
function assertCovered(caller: Caller, requested: readonly string[]): void {
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

function isUniqueViolation(err: unknown): boolean {
  return err instanceof postgres.PostgresError && err.code === "23505";
}

function dedupe(list: readonly string[]): string[] {
  return [...new Set(list)];
}

function isoOrNull(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}

/** The identifying, non-secret summary of a token for audit details. */
function tokenSummary(row: TokenRow): JsonObject {
  return {
    name: row.name,
    type: TokenType[row.type] ?? String(row.type),
    team_id: row.team_id,
    owner_id: row.owner_id,
  };
}

/**
 * The nine TokenAdminService methods, written against the authenticated {@link Caller} that
 * the adapter puts in the call context: the one implementation both listeners serve.
 *
 * Scope: every query names the org (a platform caller's by-id lookups are the one exception,
 * as the contract allows); another org's token, and a token outside a restricted caller's
 * team/owner, is NOT_FOUND. Grants: no created or updated token may hold a permission the
 * caller does not ({@link assertCovered}). Writes: each change and its audit row commit in one
 * transaction, and caches are told (verifier.tokensChanged) after the commit. Input: every bad
 * field is collected and reported in one INVALID_ARGUMENT before anything is read or written.
 *
 * RotateToken gives the new token the old one's grants and metadata, and an expiry of now plus
 * the old token's original lifetime (expire − create), capped by the type's maximum; a token
 * that never expired gets a non-expiring successor only where the type allows it.
 */
export function createAdminService(
  deps: AdminServiceDeps,
): ServiceHandlers<typeof TokenAdminService> {
  const { sql, verifier, prefix, pageKey } = deps;
  const policies = deps.policies ?? DEFAULT_TYPE_POLICIES;
  const roles = deps.roles ?? DEFAULT_ROLES;
  const now = deps.now ?? Date.now;

  function requestIdOf(fromRequest: string, ctx: CallContext): string {
    return fromRequest !== "" ? fromRequest : (ctx.header("x-request-id") ?? "").slice(0, 128);
  }

  function auditRow(
    caller: Caller,
    ctx: CallContext,
    at: Date,
    action: string,
    target: { readonly orgId: string; readonly tokenId: string },
    requestId: string,
    details: JsonObject,
  ): NewAuditEvent {
    return {
      id: newAuditId(),
      time: at,
      orgId: target.orgId,
      actorId: caller.tokenId,
      action,
      tokenId: target.tokenId,
      decision: AuditDecision.ALLOW,
      code: "OK",
      clientIp: caller.clientIp,
      method: ctx.method,
      path: "",
      requestId,
      details,
    };
  }

  /** Tells the caches after a commit; a failure here is logged, the change stands. */
  async function announce(changes: TokenChange[]): Promise<void> {
    if (changes.length === 0) return;
    try {
      await verifier.tokensChanged(changes);
    } catch (err) {
      deps.log.warn({ err, count: changes.length }, "tokensChanged failed after commit");
    }
  }

  function change(row: TokenRow, kind: TokenChange["kind"], reason: string): TokenChange {
    return { id: row.id, secretHash: row.secret_hash, kind, orgId: row.org_id, reason };
  }

  function checkIdField(id: string, field: string): FieldViolation[] {
    if (id === "") return [{ field, description: "required" }];
    if (!isTokenId(id)) return [{ field, description: "must be a token id (tok_…)" }];
    return [];
  }

  function throwIf(violations: readonly FieldViolation[]): void {
    if (violations.length > 0) throw invalidArgument(violations);
  }

  /** Validates a token filter (List or batch revoke); returns it in store form. */
  function readFilter(
    f: Pick<TokenFilter, "type" | "teamId" | "ownerId" | "state" | "unusedSince" | "neverUsed">,
    field: string,
    v: FieldViolation[],
  ): TokenQueryFilter {
    const at = (name: string) => (field === "" ? name : `${field}.${name}`);
    if (f.type !== TokenType.UNSPECIFIED && !isKnownType(f.type)) {
      v.push({ field: at("type"), description: "unknown token type" });
    }
    if (!isKnownState(f.state)) v.push({ field: at("state"), description: "unknown token state" });
    v.push(...checkIdentifier(f.teamId, at("team_id"), { required: false, max: 128 }));
    v.push(...checkIdentifier(f.ownerId, at("owner_id"), { required: false, max: 128 }));
    return {
      type: f.type === TokenType.UNSPECIFIED ? undefined : f.type,
      teamId: f.teamId,
      ownerId: f.ownerId,
      state: f.state,
      unusedSince: f.unusedSince === undefined ? undefined : new Date(timestampMs(f.unusedSince)),
      neverUsed: f.neverUsed,
    };
  }

  // -------------------------------------------------------------------------------------------
  // CreateToken

  interface CreatePlan {
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

  function planCreate(req: CreateTokenRequest, caller: Caller, nowMs: number): CreatePlan {
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

    let role = "";
    let permissions: string[] = [];
    if (req.role !== "" && req.permissions.length > 0) {
      v.push({ field: "role", description: "give a role or permissions, not both" });
    } else if (req.role !== "") {
      const expanded = expandRole(roles, req.role);
      if (expanded === undefined) {
        v.push({
          field: "role",
          description: `unknown role; one of ${Object.keys(roles).join(", ")}`,
        });
      } else {
        role = req.role;
        permissions = dedupe(expanded);
      }
    } else if (req.permissions.length === 0) {
      v.push({ field: "permissions", description: "give a role or at least one permission" });
    } else {
      v.push(...checkPermissions(req.permissions, "permissions"));
      permissions = dedupe(req.permissions);
    }

    const cidrs = checkCidrs(req.allowedCidrs, "allowed_cidrs");
    v.push(...cidrs.violations);
    v.push(...checkMetadata(req.metadata, "metadata", { allowEmptyValues: false }));

    if (req.maxUses !== undefined && (req.maxUses < 1n || req.maxUses > 1_000_000_000_000n)) {
      v.push({ field: "max_uses", description: "must be from 1 to 1000000000000" });
    }
    v.push(
      ...checkRateLimits(
        req.rateLimits.map((r) => ({
          name: r.name,
          limit: r.limit,
          windowMs: r.window === undefined ? undefined : durationMs(r.window),
        })),
        "rate_limits",
      ),
    );
    if (req.maxConcurrent < 0 || req.maxConcurrent > MAX_CONCURRENT) {
      v.push({ field: "max_concurrent", description: `must be from 0 to ${MAX_CONCURRENT}` });
    }
    v.push(...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID));

    let expireMs: number | null = null;
    if (typeOk) {
      const policy = typePolicy(policies, req.type);
      const cap = policy.maxLifetimeMs;
      if (req.expireTime !== undefined && req.ttl !== undefined) {
        v.push({ field: "ttl", description: "give expire_time or ttl, not both" });
      } else if (req.ttl !== undefined) {
        const ms = durationMs(req.ttl);
        if (!(ms > 0)) v.push({ field: "ttl", description: "must be positive" });
        else if (cap !== null && ms > cap) {
          v.push({ field: "ttl", description: capMessage("ttl", cap, req.type) });
        }
        expireMs = nowMs + ms;
      } else if (req.expireTime !== undefined) {
        const at = timestampMs(req.expireTime);
        if (!(at > nowMs)) v.push({ field: "expire_time", description: "must lie in the future" });
        else if (cap !== null && at - nowMs > cap) {
          v.push({ field: "expire_time", description: capMessage("expire_time", cap, req.type) });
        }
        expireMs = at;
      } else {
        const lifetime = policy.defaultLifetimeMs ?? cap;
        expireMs = lifetime === null ? null : nowMs + lifetime;
      }
    }
    throwIf(v);

    // Scope and escalation: the input is well formed, now is the caller allowed?
    const org = targetOrg(caller, req.orgId);
    if (!orgWide) {
      // "Creating for another owner or team needs org-wide rights": a restricted caller's
      // tokens carry exactly its own team and owner (the defaults above), nothing else.
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
    assertCovered(caller, permissions);

    const maxUses =
      req.maxUses ??
      (typeOk && typePolicy(policies, req.type).defaultMaxUses !== null
        ? BigInt(typePolicy(policies, req.type).defaultMaxUses ?? 1)
        : null);
    return {
      org,
      teamId,
      ownerId,
      role,
      permissions,
      cidrs: cidrs.normalized,
      expireMs,
      maxUses,
      requestId: req.requestId,
    };
  }

  /** The earlier answer to a repeated request_id, or ALREADY_EXISTS if it was for another token. */
  function idempotentAnswer(row: TokenRow, req: CreateTokenRequest, nowMs: number) {
    if (row.name !== req.name || row.type !== req.type) {
      throw new LatchkeyError(
        Code.AlreadyExists,
        "REQUEST_ID_REUSED",
        "this request_id was already used by the caller for a different token",
        { metadata: { token_id: row.id } },
      );
    }
    return { token: rowToToken(row, nowMs), secret: "" };
  }

  // -------------------------------------------------------------------------------------------

  function pageBinding(parts: readonly (string | number | boolean)[]): string {
    return filterBinding(parts.map((p) => String(p)));
  }

  return {
    async createToken(req, ctx) {
      const caller = callerOf(ctx);
      const nowMs = now();
      const plan = planCreate(req, caller, nowMs);
      const type = req.type;
      if (plan.requestId !== "") {
        const earlier = await findByRequestId(sql, caller.tokenId, plan.requestId);
        if (earlier !== undefined) return idempotentAnswer(earlier, req, nowMs);
      }
      const secret = generateToken(prefix, type);
      const at = new Date(nowMs);
      const record: NewToken = {
        id: newTokenId(),
        secretHash: hashToken(secret),
        displayHint: displayHint(secret),
        name: req.name,
        type,
        orgId: plan.org,
        teamId: plan.teamId,
        ownerId: plan.ownerId,
        createdBy: caller.tokenId,
        role: plan.role,
        permissions: plan.permissions,
        allowedCidrs: plan.cidrs,
        metadata: req.metadata,
        maxUses: plan.maxUses,
        rateLimits: req.rateLimits.map((r) => ({
          name: r.name,
          limit: Number(r.limit),
          window_ms: r.window === undefined ? 0 : durationMs(r.window),
        })),
        maxConcurrent: req.maxConcurrent,
        createTime: at,
        expireTime: plan.expireMs === null ? null : new Date(plan.expireMs),
        requestId: plan.requestId === "" ? null : plan.requestId,
        rotatedFrom: null,
      };
      try {
        const row = await sql.begin(async (tx) => {
          const [inserted] = await insertTokens(tx, [record]);
          if (inserted === undefined) throw new Error("insert returned no row");
          await insertAuditEvents(tx, [
            auditRow(
              caller,
              ctx,
              at,
              "token.create",
              { orgId: inserted.org_id, tokenId: inserted.id },
              requestIdOf(plan.requestId, ctx),
              {
                ...tokenSummary(inserted),
                role: inserted.role,
                permissions: inserted.permissions,
                allowed_cidrs: inserted.allowed_cidrs,
                metadata: { ...inserted.metadata },
                expire_time: isoOrNull(inserted.expire_time),
                max_uses: inserted.max_uses,
              },
            ),
          ]);
          return inserted;
        });
        return { token: rowToToken(row, nowMs), secret };
      } catch (err) {
        if (plan.requestId !== "" && isUniqueViolation(err)) {
          // A concurrent retry with the same request_id won the race: answer with its token.
          const earlier = await findByRequestId(sql, caller.tokenId, plan.requestId);
          if (earlier !== undefined) return idempotentAnswer(earlier, req, nowMs);
        }
        throw err;
      }
    },

    async getToken(req, ctx) {
      const caller = callerOf(ctx);
      throwIf(checkIdField(req.id, "id"));
      const row = await getToken(sql, reachById(caller), req.id);
      if (row === undefined) throw notFound(`token ${req.id}`);
      return { token: rowToToken(row, now()) };
    },

    async listTokens(req: ListTokensRequest, ctx) {
      const caller = callerOf(ctx);
      const nowMs = now();
      const v: FieldViolation[] = [];
      const size = checkPageSize(req.pageSize, "page_size");
      v.push(...size.violations);
      v.push(...checkIdentifier(req.orgId, "org_id", { required: false, max: 128 }));
      const filter = readFilter(req, "", v);
      throwIf(v);
      const org = targetOrg(caller, req.orgId);
      const binding = pageBinding([
        "tokens",
        caller.tokenId,
        org,
        req.type,
        req.teamId,
        req.ownerId,
        req.state,
        filter.unusedSince?.getTime() ?? "",
        req.neverUsed,
      ]);
      let after: string | undefined;
      if (req.pageToken !== "") {
        after = decodePageToken(pageKey, binding, req.pageToken);
        if (after === undefined || !isTokenId(after)) {
          throw invalidArgument([
            {
              field: "page_token",
              description: "not a page token of this listing (caller and filter must not change)",
            },
          ]);
        }
      }
      const rows = await listTokens(
        sql,
        orgScope(caller, org),
        filter,
        new Date(nowMs),
        size.size + 1,
        after,
      );
      const page = rows.slice(0, size.size);
      const last = page[page.length - 1];
      return {
        tokens: page.map((r) => rowToToken(r, nowMs)),
        nextPageToken:
          rows.length > size.size && last !== undefined
            ? encodePageToken(pageKey, binding, last.id)
            : "",
      };
    },

    async updateToken(req, ctx) {
      const caller = callerOf(ctx);
      const nowMs = now();
      const v: FieldViolation[] = [];
      const token = req.token ?? create(TokenSchema);
      if (req.token === undefined) v.push({ field: "token", description: "required" });
      else v.push(...checkIdField(token.id, "token.id"));
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
      v.push(...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID));
      const changes: {
        name?: string;
        metadata?: Record<string, string>;
        allowedCidrs?: string[];
        expireTime?: Date;
        permissions?: string[];
        role?: string;
      } = {};
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
              const at = timestampMs(token.expireTime);
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
      throwIf(v);
      if (changes.permissions !== undefined) assertCovered(caller, changes.permissions);

      const at = new Date(nowMs);
      const row = await sql.begin(async (tx) => {
        const before = await getToken(tx, reachById(caller), token.id, true);
        if (before === undefined) throw notFound(`token ${token.id}`);
        if (before.revoke_time !== null) {
          throw failedPrecondition("TOKEN_REVOKED", "a revoked token cannot be changed", {
            token_id: before.id,
          });
        }
        const late: FieldViolation[] = [];
        if (
          changes.expireTime !== undefined &&
          before.expire_time !== null &&
          changes.expireTime.getTime() > before.expire_time.getTime()
        ) {
          late.push({
            field: "token.expire_time",
            description: `can only be shortened (now ${before.expire_time.toISOString()})`,
          });
        }
        if (changes.expireTime !== undefined && before.expire_time === null) {
          const cap = typePolicy(policies, before.type as TokenType).maxLifetimeMs;
          if (cap !== null && changes.expireTime.getTime() - nowMs > cap) {
            late.push({
              field: "token.expire_time",
              description: capMessage("expire_time", cap, before.type as TokenType),
            });
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
        throwIf(late);
        const fields: TokenChanges = changes;
        const after = await updateToken(tx, before.id, fields, at);
        const diff: JsonObject = {};
        for (const p of paths) {
          switch (p) {
            case "name":
              diff.name = { from: before.name, to: after.name };
              break;
            case "metadata":
              diff.metadata = { from: { ...before.metadata }, to: { ...after.metadata } };
              break;
            case "allowed_cidrs":
              diff.allowed_cidrs = { from: before.allowed_cidrs, to: after.allowed_cidrs };
              break;
            case "expire_time":
              diff.expire_time = {
                from: isoOrNull(before.expire_time),
                to: isoOrNull(after.expire_time),
              };
              break;
            case "permissions":
              diff.permissions = { from: before.permissions, to: after.permissions };
              break;
          }
        }
        await insertAuditEvents(tx, [
          auditRow(
            caller,
            ctx,
            at,
            "token.update",
            { orgId: after.org_id, tokenId: after.id },
            requestIdOf(req.requestId, ctx),
            { fields: [...paths], changes: diff },
          ),
        ]);
        return after;
      });
      await announce([change(row, "updated", "updated")]);
      return { token: rowToToken(row, nowMs) };
    },

    async revokeToken(req, ctx) {
      const caller = callerOf(ctx);
      const nowMs = now();
      throwIf([
        ...checkIdField(req.id, "id"),
        ...checkFreeText(req.reason, "reason", MAX_REASON),
        ...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID),
      ]);
      const at = new Date(nowMs);
      const row = await sql.begin(async (tx) => {
        const before = await getToken(tx, reachById(caller), req.id, true);
        if (before === undefined) throw notFound(`token ${req.id}`);
        if (before.revoke_time !== null) {
          throw failedPrecondition("ALREADY_REVOKED", `token ${req.id} is already revoked`, {
            token_id: req.id,
          });
        }
        const [after] = await revokeTokens(tx, [before.id], caller.tokenId, req.reason, at);
        if (after === undefined) throw new Error("revoke updated no row");
        await insertAuditEvents(tx, [
          auditRow(
            caller,
            ctx,
            at,
            "token.revoke",
            { orgId: after.org_id, tokenId: after.id },
            requestIdOf(req.requestId, ctx),
            { ...tokenSummary(after), reason: req.reason },
          ),
        ]);
        return after;
      });
      await announce([change(row, "revoked", req.reason)]);
      return { token: rowToToken(row, nowMs) };
    },

    async batchRevokeTokens(req: BatchRevokeTokensRequest, ctx) {
      const caller = callerOf(ctx);
      const nowMs = now();
      const v: FieldViolation[] = [];
      const byIds = req.ids.length > 0;
      let filter: TokenQueryFilter | undefined;
      if (byIds && req.filter !== undefined) {
        v.push({ field: "filter", description: "give ids or filter, not both" });
      } else if (byIds) {
        v.push(...checkIds(req.ids, "ids", { max: MAX_BATCH_IDS }));
      } else if (req.filter === undefined) {
        v.push({ field: "ids", description: "give ids (1-1000) or a filter" });
      } else {
        const f = req.filter;
        filter = readFilter(f, "filter", v);
        const empty =
          f.type === TokenType.UNSPECIFIED &&
          f.teamId === "" &&
          f.ownerId === "" &&
          f.state === TokenState.UNSPECIFIED &&
          f.unusedSince === undefined &&
          !f.neverUsed;
        if (empty) v.push({ field: "filter", description: "set at least one filter field" });
        if (f.state === TokenState.REVOKED) {
          v.push({ field: "filter.state", description: "revoked tokens cannot be revoked again" });
        }
      }
      v.push(...checkIdentifier(req.orgId, "org_id", { required: false, max: 128 }));
      v.push(...checkFreeText(req.reason, "reason", MAX_REASON));
      v.push(...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID));
      throwIf(v);
      const at = new Date(nowMs);
      const requestId = requestIdOf(req.requestId, ctx);

      const select = async (tx: Queryable, lock: boolean): Promise<TokenRow[]> => {
        if (filter === undefined) {
          const rows = await getTokens(tx, reachById(caller), req.ids, lock);
          const found = new Map(rows.map((r) => [r.id, r]));
          const missing = req.ids.find((id) => !found.has(id));
          if (missing !== undefined) {
            throw new LatchkeyError(
              Code.NotFound,
              "TOKEN_NOT_FOUND",
              `token ${missing} not found`,
              {
                metadata: { token_id: missing },
              },
            );
          }
          const revoked = rows.find((r) => r.revoke_time !== null);
          if (revoked !== undefined) {
            throw failedPrecondition(
              "ALREADY_REVOKED",
              `token ${revoked.id} is already revoked; nothing was revoked`,
              { token_id: revoked.id },
            );
          }
          return req.ids.flatMap((id) => {
            const r = found.get(id);
            return r === undefined ? [] : [r];
          });
        }
        const org = targetOrg(caller, req.orgId);
        const rows = await selectForBatchRevoke(
          tx,
          orgScope(caller, org),
          filter,
          at,
          MAX_FILTER_REVOKE + 1,
          lock,
        );
        if (rows.length > MAX_FILTER_REVOKE) {
          throw invalidArgument([
            {
              field: "filter",
              description: `matches more than ${MAX_FILTER_REVOKE} tokens; narrow it`,
            },
          ]);
        }
        return rows;
      };

      if (req.dryRun) {
        const rows = await select(sql, false);
        return { tokens: rows.map((r) => rowToToken(r, nowMs)), count: rows.length };
      }
      const revoked = await sql.begin(async (tx) => {
        const rows = await select(tx, true);
        const after = await revokeTokens(
          tx,
          rows.map((r) => r.id),
          caller.tokenId,
          req.reason,
          at,
        );
        await insertAuditEvents(
          tx,
          after.map((r) =>
            auditRow(
              caller,
              ctx,
              at,
              "token.batch_revoke",
              { orgId: r.org_id, tokenId: r.id },
              requestId,
              { ...tokenSummary(r), reason: req.reason, batch_size: after.length },
            ),
          ),
        );
        const byId = new Map(after.map((r) => [r.id, r]));
        return rows.flatMap((r) => {
          const a = byId.get(r.id);
          return a === undefined ? [] : [a];
        });
      });
      await announce(revoked.map((r) => change(r, "revoked", req.reason)));
      return { tokens: revoked.map((r) => rowToToken(r, nowMs)), count: revoked.length };
    },

    async batchUpdateTokens(req, ctx) {
      const caller = callerOf(ctx);
      const nowMs = now();
      const v: FieldViolation[] = [];
      if (req.ids.length === 0) v.push({ field: "ids", description: "give 1-1000 token ids" });
      else v.push(...checkIds(req.ids, "ids", { max: MAX_BATCH_IDS }));
      const entries = Object.entries(req.metadata);
      if (entries.length === 0) {
        v.push({ field: "metadata", description: "give at least one key to set or remove" });
      } else {
        v.push(...checkMetadata(req.metadata, "metadata", { allowEmptyValues: true }));
      }
      v.push(...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID));
      throwIf(v);
      const set: Record<string, string> = {};
      const remove: string[] = [];
      for (const [k, value] of entries) {
        if (value === "") remove.push(k);
        else set[k] = value;
      }
      const at = new Date(nowMs);
      const requestId = requestIdOf(req.requestId, ctx);
      const updated = await sql.begin(async (tx) => {
        const rows = await getTokens(tx, reachById(caller), req.ids, true);
        const found = new Map(rows.map((r) => [r.id, r]));
        const missing = req.ids.find((id) => !found.has(id));
        if (missing !== undefined) {
          throw new LatchkeyError(Code.NotFound, "TOKEN_NOT_FOUND", `token ${missing} not found`, {
            metadata: { token_id: missing },
          });
        }
        const revoked = rows.find((r) => r.revoke_time !== null);
        if (revoked !== undefined) {
          throw failedPrecondition(
            "TOKEN_REVOKED",
            `token ${revoked.id} is revoked and cannot be changed; nothing was changed`,
            { token_id: revoked.id },
          );
        }
        const tooMany = rows.find((r) => {
          const keys = new Set(Object.keys(r.metadata));
          for (const k of Object.keys(set)) keys.add(k);
          for (const k of remove) keys.delete(k);
          return keys.size > MAX_METADATA_KEYS;
        });
        if (tooMany !== undefined) {
          throw invalidArgument([
            {
              field: "metadata",
              description: `token ${tooMany.id} would hold more than ${MAX_METADATA_KEYS} keys`,
            },
          ]);
        }
        const after = await patchMetadata(tx, req.ids, set, remove, at);
        await insertAuditEvents(
          tx,
          after.map((r) =>
            auditRow(
              caller,
              ctx,
              at,
              "token.batch_update",
              { orgId: r.org_id, tokenId: r.id },
              requestId,
              {
                set: { ...set },
                removed: remove,
                metadata_before: { ...(found.get(r.id)?.metadata ?? {}) },
                batch_size: after.length,
              },
            ),
          ),
        );
        const byId = new Map(after.map((r) => [r.id, r]));
        return req.ids.flatMap((id) => {
          const r = byId.get(id);
          return r === undefined ? [] : [r];
        });
      });
      await announce(updated.map((r) => change(r, "updated", "metadata updated")));
      return { tokens: updated.map((r) => rowToToken(r, nowMs)) };
    },

    async rotateToken(req, ctx) {
      const caller = callerOf(ctx);
      // A token may rotate itself; rotating another needs the method's permission, checked
      // before anything is looked up (the authenticator waived it for this method).
      const permission = METHOD_PERMISSIONS.rotateToken;
      if (req.id !== caller.tokenId && !holds(caller.permissions, permission)) {
        await insertAuditEvents(sql, [
          {
            ...auditRow(caller, ctx, new Date(now()), "auth.denied", caller, "", { permission }),
            decision: AuditDecision.DENY,
            code: "INSUFFICIENT_PERMISSIONS",
            requestId: ctx.header("x-request-id") ?? "",
          },
        ]);
        throw permissionDenied(permission);
      }
      const nowMs = now();
      const v: FieldViolation[] = [...checkIdField(req.id, "id")];
      const graceMs = req.gracePeriod === undefined ? 0 : durationMs(req.gracePeriod);
      if (!(graceMs >= 0)) v.push({ field: "grace_period", description: "must not be negative" });
      else if (graceMs > MAX_GRACE_MS) {
        v.push({ field: "grace_period", description: "must be at most 7 days" });
      }
      v.push(...checkFreeText(req.requestId, "request_id", MAX_REQUEST_ID));
      throwIf(v);
      const at = new Date(nowMs);
      const requestId = requestIdOf(req.requestId, ctx);
      const self = req.id === caller.tokenId;
      const secret = { value: "" };
      const result = await sql.begin(async (tx) => {
        const old = await getToken(tx, reachById(caller), req.id, true);
        if (old === undefined) throw notFound(`token ${req.id}`);
        const state = rowToToken(old, nowMs).state;
        if (old.replaced_by !== null) {
          throw failedPrecondition(
            "ALREADY_ROTATED",
            `token ${old.id} was already rotated (replaced by ${old.replaced_by})`,
            { token_id: old.id, replaced_by: old.replaced_by },
          );
        }
        switch (state) {
          case TokenState.REVOKED:
            throw failedPrecondition("TOKEN_REVOKED", "a revoked token cannot be rotated", {
              token_id: old.id,
            });
          case TokenState.EXPIRED:
            throw failedPrecondition("TOKEN_EXPIRED", "an expired token cannot be rotated", {
              token_id: old.id,
            });
          case TokenState.EXHAUSTED:
            throw failedPrecondition(
              "TOKEN_EXHAUSTED",
              "a token whose use limit is spent cannot be rotated",
              { token_id: old.id },
            );
          case TokenState.ACTIVE:
          case TokenState.UNSPECIFIED:
            break;
        }
        // Rotating another token hands its grants to the caller (it receives the new secret).
        if (!self) assertCovered(caller, old.permissions);
        const type = old.type as TokenType;
        const cap = typePolicy(policies, type).maxLifetimeMs;
        let expireMs: number | null;
        if (old.expire_time === null) {
          const fallback = typePolicy(policies, type).defaultLifetimeMs ?? cap;
          expireMs = fallback === null ? null : nowMs + fallback;
        } else {
          const lifetime = old.expire_time.getTime() - old.create_time.getTime();
          expireMs = nowMs + (cap === null ? lifetime : Math.min(lifetime, cap));
        }
        secret.value = generateToken(prefix, type);
        const [fresh] = await insertTokens(tx, [
          {
            id: newTokenId(),
            secretHash: hashToken(secret.value),
            displayHint: displayHint(secret.value),
            name: old.name,
            type,
            orgId: old.org_id,
            teamId: old.team_id,
            ownerId: old.owner_id,
            createdBy: caller.tokenId,
            role: old.role,
            permissions: old.permissions,
            allowedCidrs: old.allowed_cidrs,
            metadata: old.metadata,
            // The new token carries only the uses left: rotating must never refill a use limit.
            maxUses:
              old.max_uses === null
                ? null
                : maxBig(1n, BigInt(old.max_uses) - BigInt(old.use_count)),
            rateLimits: old.rate_limits,
            maxConcurrent: old.max_concurrent,
            createTime: at,
            expireTime: expireMs === null ? null : new Date(expireMs),
            requestId: null,
            rotatedFrom: old.id,
          },
        ]);
        if (fresh === undefined) throw new Error("insert returned no row");
        const previous = await markRotated(tx, old.id, fresh.id, {
          revokedBy: caller.tokenId,
          now: at,
          graceEnd: graceMs === 0 ? null : new Date(nowMs + graceMs),
        });
        const details = {
          grace_period_ms: graceMs,
          previous_id: previous.id,
          replacement_id: fresh.id,
          previous_expire_time: isoOrNull(previous.expire_time),
          previous_revoked: previous.revoke_time !== null,
          replacement_expire_time: isoOrNull(fresh.expire_time),
        };
        await insertAuditEvents(tx, [
          auditRow(
            caller,
            ctx,
            at,
            "token.rotate",
            { orgId: previous.org_id, tokenId: previous.id },
            requestId,
            { ...details, role: "previous" },
          ),
          auditRow(
            caller,
            ctx,
            at,
            "token.rotate",
            { orgId: fresh.org_id, tokenId: fresh.id },
            requestId,
            { ...details, role: "replacement" },
          ),
        ]);
        return { fresh, previous };
      });
      await announce([change(result.previous, "rotated", "rotated")]);
      return {
        token: rowToToken(result.fresh, nowMs),
        secret: secret.value,
        previous: rowToToken(result.previous, nowMs),
      };
    },

    async listAuditEvents(req, ctx) {
      const caller = callerOf(ctx);
      const v: FieldViolation[] = [];
      const size = checkPageSize(req.pageSize, "page_size");
      v.push(...size.violations);
      v.push(...checkIdentifier(req.orgId, "org_id", { required: false, max: 128 }));
      v.push(...checkFreeText(req.tokenId, "token_id", 128));
      v.push(...checkFreeText(req.actorId, "actor_id", 128));
      v.push(...checkFreeText(req.action, "action", 64));
      if (!isKnownDecision(req.decision)) {
        v.push({ field: "decision", description: "unknown decision" });
      }
      const start = req.startTime === undefined ? undefined : timestampMs(req.startTime);
      const end = req.endTime === undefined ? undefined : timestampMs(req.endTime);
      if (start !== undefined && end !== undefined && !(start < end)) {
        v.push({ field: "end_time", description: "must be after start_time" });
      }
      throwIf(v);
      const org = targetOrg(caller, req.orgId);
      const binding = pageBinding([
        "audit",
        caller.tokenId,
        org,
        req.tokenId,
        req.actorId,
        req.action,
        req.decision,
        start ?? "",
        end ?? "",
      ]);
      let after: AuditCursor | undefined;
      if (req.pageToken !== "") {
        const cursor = decodePageToken(pageKey, binding, req.pageToken);
        const m = cursor === undefined ? null : /^(\d{1,20})\.(\S{1,64})$/.exec(cursor);
        if (m === null || m[1] === undefined || m[2] === undefined) {
          throw invalidArgument([
            {
              field: "page_token",
              description: "not a page token of this listing (caller and filter must not change)",
            },
          ]);
        }
        after = { timeUs: BigInt(m[1]), id: m[2] };
      }
      const rows = await listAuditEvents(
        sql,
        orgScope(caller, org),
        {
          tokenId: req.tokenId,
          actorId: req.actorId,
          action: req.action,
          decision: req.decision,
          startTime: start === undefined ? undefined : new Date(start),
          endTime: end === undefined ? undefined : new Date(end),
        },
        size.size + 1,
        after,
      );
      const page = rows.slice(0, size.size);
      const last = page[page.length - 1];
      return {
        events: page.map(rowToAuditEvent),
        nextPageToken:
          rows.length > size.size && last !== undefined
            ? encodePageToken(pageKey, binding, `${last.time_us}.${last.id}`)
            : "",
      };
    },
  };
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
