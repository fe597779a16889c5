import { Code } from "@connectrpc/connect";
import { MAX_REQUEST_ID } from "../domain/admin-rules.js";
import { PLATFORM_ADMIN } from "../domain/permissions.js";
import { scrubRequestId } from "../domain/request-id.js";
import type { TokenRecord } from "../domain/token-record.js";
import { LatchkeyError } from "../errors.js";
import type { TokenAdminService } from "../gen/latchkey/v1/token_admin_service_pb.js";
import { VerifyCode } from "../gen/latchkey/v1/token_verify_service_pb.js";
import type { CallContext, Caller } from "./context.js";
import type { Verifier } from "./verify/types.js";

export { PLATFORM_ADMIN };

type MethodName = keyof (typeof TokenAdminService)["method"];

/**
 * The permission each TokenAdminService method needs ("" for none: GetCaller only reads the
 * caller itself). RotateToken's is waived when a token
 * rotates itself (so a CI job can renew its own secret): the authenticator then asks for no
 * permission and the rotate handler checks it once it knows the target.
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
  getCaller: "",
};

/** Methods whose permission the handler checks itself (see {@link METHOD_PERMISSIONS}). */
const CHECKED_BY_HANDLER: ReadonlySet<string> = new Set<MethodName>(["rotateToken"]);

function unauthenticated(reason: string, message: string): LatchkeyError {
  return new LatchkeyError(Code.Unauthenticated, reason, message);
}

/** PERMISSION_DENIED naming the permission the caller lacks. */
export function permissionDenied(permission: string): LatchkeyError {
  return new LatchkeyError(
    Code.PermissionDenied,
    "PERMISSION_DENIED",
    `the caller token lacks the permission ${permission}`,
    { metadata: { permission } },
  );
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
 * act at all, PERMISSION_DENIED for one that lacks the method's permission. Also the answer
 * of the other calls that present a token (AcquireSlot, WatchRevocations, introspection).
 */
export function denial(
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

/** Authenticates one call of a method: resolves with its caller or throws the admin error. */
export type Authenticator = (method: string, context: CallContext) => Promise<Caller>;

/** What a TokenVerifyService caller must hold when LATCHKEY_VERIFY_AUTH=token. */
export const VERIFY_CALLER_PERMISSION = "tokens:verify";

/**
 * The one authentication and authorization gate of TokenAdminService, called once per call by
 * the adapter on both listeners. It verifies the bearer token with the same core as
 * VerifyToken (so revoked, expired, exhausted or IP-restricted admin tokens are refused alike,
 * and denials are audited by the verifier as `auth.denied`) and checks the method's permission
 * before the handler can look anything up (permission before existence).
 */
export function createAuthenticator(verifier: Pick<Verifier, "verify">): Authenticator {
  return async (method, context) => {
    const permission = (METHOD_PERMISSIONS as Record<string, string | undefined>)[method];
    if (permission === undefined) throw new Error(`no permission is defined for ${method}`);
    const required = CHECKED_BY_HANDLER.has(method) || permission === "" ? "" : permission;
    return verifyCaller(verifier, context, required);
  };
}

/**
 * Authenticates the bearer token of any call that needs one permission (`""`: none): the
 * admin methods through {@link createAuthenticator}, and the verify-side and gateway calls
 * that are not adapted with an authenticator (WatchRevocations: `tokens:watch`, OAuth
 * introspection: `tokens:introspect`). Throws the admin error of {@link denial}.
 */
export async function verifyCaller(
  verifier: Pick<Verifier, "verify">,
  context: CallContext,
  permission: string,
): Promise<Caller> {
  const record = await verifyPresented(
    verifier,
    context,
    bearerToken(context),
    permission,
    "admin",
  );
  return callerFrom(record, context);
}

/** The caller a verified bearer token makes of a call. */
export function callerFrom(record: TokenRecord, context: CallContext): Caller {
  return {
    tokenId: record.id,
    orgId: record.orgId,
    teamId: record.teamId,
    ownerId: record.ownerId,
    type: record.type,
    permissions: record.permissions,
    isPlatform: record.permissions.includes(PLATFORM_ADMIN),
    clientIp: context.peerAddress,
  };
}

/**
 * Verifies a token presented to a call (the caller's bearer token, or the token field of
 * AcquireSlot) from the call's peer address, requiring `permission` (`""`: none), and returns
 * its record; a denial is thrown as the admin error of {@link denial}.
 */
export async function verifyPresented(
  verifier: Pick<Verifier, "verify">,
  context: CallContext,
  token: string,
  permission: string,
  purpose: "admin" | "verify",
): Promise<TokenRecord> {
  const outcome = await verifier.verify({
    purpose,
    token,
    requiredPermissions: permission === "" ? [] : [permission],
    clientIp: context.peerAddress,
    peer: context.peerAddress,
    orgId: "",
    method: context.method,
    path: "",
    requestId: scrubRequestId(context.header("x-request-id"), MAX_REQUEST_ID),
  });
  const record = outcome.record;
  if (outcome.code !== VerifyCode.VALID || record === undefined) {
    throw denial(outcome.code, permission, outcome.retryAfterMs);
  }
  return record;
}
