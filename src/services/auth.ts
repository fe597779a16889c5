import type { DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { newAuditId } from "../domain/ids.js";
import { holds, PLATFORM_ADMIN } from "../domain/permissions.js";
import { LatchkeyError } from "../errors.js";
import type { TokenAdminService } from "../gen/latchkey/v1/token_admin_service_pb.js";
import { AuditDecision, type TokenType } from "../gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../gen/latchkey/v1/token_verify_service_pb.js";
import type { Sql } from "../store/db.js";
import { insertAuditEvents } from "../store/token-store.js";
import type { CallContext, ServiceHandlers } from "./context.js";
import type { Verifier } from "./verifier-types.js";

export { PLATFORM_ADMIN };

/**
 * The authenticated caller of a TokenAdminService method, built from its verified token. Every
 * admin handler decides scope (org, team, owner) and escalation from this and nothing else.
 */
export interface Caller {
  readonly tokenId: string;
  readonly orgId: string;
  readonly teamId: string;
  readonly ownerId: string;
  readonly type: TokenType;
  readonly permissions: readonly string[];
  /** Holds `platform:admin` by name (`*` does not imply it): may act in any org. */
  readonly isPlatform: boolean;
  /** The peer address the listener saw ("" when unknown); recorded in audit rows. */
  readonly clientIp: string;
}

type Methods = (typeof TokenAdminService)["method"];
type MethodName = keyof Methods;

/** An admin handler that also receives the authenticated caller. */
type CallerHandler<M> =
  M extends DescMethodUnary<infer I, infer O>
    ? (
        request: MessageShape<I>,
        context: CallContext,
        caller: Caller,
      ) => Promise<MessageInitShape<O>>
    : never;

/** TokenAdminService handlers written against an already authenticated {@link Caller}. */
export type AdminHandlersWithCaller = { [K in MethodName]: CallerHandler<Methods[K]> };

/**
 * The permission each method needs. RotateToken's is waived when a token rotates itself (see
 * {@link withAdminAuth}).
 */
export const METHOD_PERMISSIONS: { readonly [K in MethodName]: string } = {
  createToken: "tokens:create",
  rotateToken: "tokens:create",
  getToken: "tokens:read",
  listTokens: "tokens:read",
  updateToken: "tokens:update",
  batchUpdateTokens: "tokens:update",
  revokeToken: "tokens:revoke",
  batchRevokeTokens: "tokens:revoke",
  listAuditEvents: "audit:read",
};

export interface AdminAuthDeps {
  readonly verifier: Verifier;
  /** For the audit row of a denied self-rotation check (the verifier audits the rest). */
  readonly sql: Sql;
  readonly now?: () => number;
}

function unauthenticated(reason: string, message: string): LatchkeyError {
  return new LatchkeyError(Code.Unauthenticated, reason, message);
}

/** The bearer token of the call; throws TOKEN_MISSING / TOKEN_MALFORMED. */
export function bearerToken(context: CallContext): string {
  const header = context.header("authorization");
  if (header === undefined || header.trim() === "") {
    throw unauthenticated(
      "TOKEN_MISSING",
      "missing authorization header: send `authorization: Bearer <token>`",
    );
  }
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  const token = match?.[1];
  if (token === undefined) {
    throw unauthenticated("TOKEN_MALFORMED", "authorization header must be `Bearer <token>`");
  }
  return token;
}

/**
 * Turns a denied verification into the admin error: UNAUTHENTICATED for a token that cannot
 * act at all, PERMISSION_DENIED for one that lacks the method's permission.
 */
function denial(
  code: VerifyCode,
  permission: string,
  retryAfterMs: number | undefined,
): LatchkeyError {
  switch (code) {
    case VerifyCode.MALFORMED:
      return unauthenticated(
        "TOKEN_MALFORMED",
        "the caller token is not a well-formed latchkey token",
      );
    case VerifyCode.NOT_FOUND:
    case VerifyCode.WRONG_ORG:
      return unauthenticated("TOKEN_INVALID", "the caller token is not valid");
    case VerifyCode.REVOKED:
      return unauthenticated("TOKEN_REVOKED", "the caller token has been revoked");
    case VerifyCode.EXPIRED:
      return unauthenticated("TOKEN_EXPIRED", "the caller token has expired");
    case VerifyCode.USAGE_EXCEEDED:
      return unauthenticated("TOKEN_EXHAUSTED", "the caller token's use limit is spent");
    case VerifyCode.IP_NOT_ALLOWED:
      return unauthenticated(
        "IP_NOT_ALLOWED",
        "the caller token may not be used from this address",
      );
    case VerifyCode.INSUFFICIENT_PERMISSIONS:
      return permissionDenied(permission);
    case VerifyCode.RATE_LIMITED:
      return new LatchkeyError(
        Code.ResourceExhausted,
        "RATE_LIMITED",
        "the caller token's rate limit is reached",
        { metadata: { retry_after_ms: String(retryAfterMs ?? 0) } },
      );
    case VerifyCode.VALID:
    case VerifyCode.UNSPECIFIED:
      return unauthenticated("TOKEN_INVALID", "the caller token is not valid");
  }
}

function permissionDenied(permission: string): LatchkeyError {
  return new LatchkeyError(
    Code.PermissionDenied,
    "PERMISSION_DENIED",
    `the caller token lacks the permission ${permission}`,
    { metadata: { permission } },
  );
}

/**
 * The one authentication and authorization gate of TokenAdminService, shared by both listeners.
 * It verifies the bearer token with the same core as VerifyToken (so revoked, expired,
 * exhausted or IP-restricted admin tokens are refused alike, and denials are audited by the
 * verifier as `auth.denied`), checks the method's permission before the handler can look
 * anything up (permission before existence), and hands the handler a {@link Caller}.
 *
 * RotateToken is the one exception to a fixed permission: a token may rotate itself without
 * `tokens:create` (so a CI job can renew its own secret). For that method the token is verified
 * with no required permission and the check is made here, once the caller's id is known.
 */
export function withAdminAuth(
  handlers: AdminHandlersWithCaller,
  deps: AdminAuthDeps,
): ServiceHandlers<typeof TokenAdminService> {
  const now = deps.now ?? Date.now;

  async function authenticate(
    method: MethodName,
    context: CallContext,
    selfTarget: string | undefined,
  ): Promise<Caller> {
    const token = bearerToken(context);
    const permission = METHOD_PERMISSIONS[method];
    const checkHere = selfTarget !== undefined;
    const outcome = await deps.verifier.verify({
      purpose: "admin",
      token,
      requiredPermissions: checkHere ? [] : [permission],
      clientIp: context.peerAddress,
      orgId: "",
      method: context.method,
      path: "",
      requestId: context.header("x-request-id") ?? "",
    });
    const record = outcome.record;
    if (outcome.code !== VerifyCode.VALID || record === undefined) {
      throw denial(outcome.code, permission, outcome.retryAfterMs);
    }
    const caller: Caller = {
      tokenId: record.id,
      orgId: record.orgId,
      teamId: record.teamId,
      ownerId: record.ownerId,
      type: record.type,
      permissions: record.permissions,
      isPlatform: record.permissions.includes(PLATFORM_ADMIN),
      clientIp: context.peerAddress,
    };
    if (checkHere && selfTarget !== caller.tokenId && !holds(caller.permissions, permission)) {
      await insertAuditEvents(deps.sql, [
        {
          id: newAuditId(),
          time: new Date(now()),
          orgId: caller.orgId,
          actorId: caller.tokenId,
          action: "auth.denied",
          tokenId: caller.tokenId,
          decision: AuditDecision.DENY,
          code: "INSUFFICIENT_PERMISSIONS",
          clientIp: caller.clientIp,
          method: context.method,
          path: "",
          requestId: context.header("x-request-id") ?? "",
          details: { permission },
        },
      ]);
      throw permissionDenied(permission);
    }
    return caller;
  }

  return {
    createToken: async (req, ctx) =>
      handlers.createToken(req, ctx, await authenticate("createToken", ctx, undefined)),
    getToken: async (req, ctx) =>
      handlers.getToken(req, ctx, await authenticate("getToken", ctx, undefined)),
    listTokens: async (req, ctx) =>
      handlers.listTokens(req, ctx, await authenticate("listTokens", ctx, undefined)),
    updateToken: async (req, ctx) =>
      handlers.updateToken(req, ctx, await authenticate("updateToken", ctx, undefined)),
    revokeToken: async (req, ctx) =>
      handlers.revokeToken(req, ctx, await authenticate("revokeToken", ctx, undefined)),
    batchRevokeTokens: async (req, ctx) =>
      handlers.batchRevokeTokens(req, ctx, await authenticate("batchRevokeTokens", ctx, undefined)),
    batchUpdateTokens: async (req, ctx) =>
      handlers.batchUpdateTokens(req, ctx, await authenticate("batchUpdateTokens", ctx, undefined)),
    rotateToken: async (req, ctx) =>
      handlers.rotateToken(req, ctx, await authenticate("rotateToken", ctx, req.id)),
    listAuditEvents: async (req, ctx) =>
      handlers.listAuditEvents(req, ctx, await authenticate("listAuditEvents", ctx, undefined)),
  };
}
