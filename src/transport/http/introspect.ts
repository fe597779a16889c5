import { decodeTime } from "ulid";
import { TOKENS_INTROSPECT } from "../../domain/permissions.js";
import type { TokenRecord } from "../../domain/token-record.js";
import { LatchkeyError } from "../../errors.js";
import { TokenType } from "../../gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../gen/latchkey/v1/token_verify_service_pb.js";
import { verifyCaller } from "../../services/auth.js";
import type { CallContext } from "../../services/context.js";
import type { Verifier } from "../../services/verify/types.js";
import type { ErrorLog } from "../error-mapper.js";
import { socketIp } from "../peer.js";
import {
  failureStatus,
  type HttpRoute,
  type NodeRequest,
  type NodeResponse,
  requestHeader,
  sendJson,
} from "./gateway-http.js";

/** RFC 7662 token introspection endpoint. */
export const INTROSPECT_PATH = "/oauth2/introspect";

/** Far above any form holding one token; a bigger body is refused unread. */
const MAX_BODY = 16 * 1024;

const INACTIVE = '{"active":false}';

/**
 * The caller's credential as `Bearer <token>`. RFC 7662 clients often authenticate with client
 * credentials (`Basic base64(id:secret)`): the secret is then the latchkey token.
 */
function callerAuthorization(req: NodeRequest): string | undefined {
  const header = requestHeader(req, "authorization");
  const basic = header === undefined ? undefined : /^\s*basic\s+(\S+)\s*$/i.exec(header)?.[1];
  if (basic === undefined) return header;
  const decoded = Buffer.from(basic, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? "" : `Bearer ${decoded.slice(colon + 1)}`;
}

/** The call context verifyCaller reads, from a plain HTTP request. */
function httpContext(req: NodeRequest): CallContext {
  const controller = new AbortController();
  const authorization = callerAuthorization(req);
  return {
    header: (name) => (name === "authorization" ? authorization : requestHeader(req, name)),
    peerAddress: socketIp(req.socket.remoteAddress ?? ""),
    signal: controller.signal,
    method: `POST ${INTROSPECT_PATH}`,
    caller: undefined,
  };
}

function readForm(req: NodeRequest): Promise<URLSearchParams | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        resolve(undefined);
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
    req.on("error", reject);
  });
}

/** The RFC 7662 answer for an active token: registered claims, then latchkey's own. */
function activeAnswer(record: TokenRecord, remainingUses: number | undefined): object {
  const id = record.id;
  return {
    active: true,
    scope: record.permissions.join(" "),
    client_id: id,
    sub: record.ownerId !== "" ? record.ownerId : id,
    ...(record.expireTimeMs === null ? {} : { exp: Math.floor(record.expireTimeMs / 1000) }),
    // Token ids are `tok_` + a ULID, whose first 48 bits are the creation time.
    iat: Math.floor(decodeTime(id.slice(4)) / 1000),
    token_type: "Bearer",
    org_id: record.orgId,
    team_id: record.teamId,
    latchkey_token_type: (TokenType[record.type] ?? "UNSPECIFIED").toLowerCase(),
    metadata: record.metadata,
    ...(remainingUses === undefined ? {} : { remaining_uses: remainingUses }),
  };
}

function refusal(res: NodeResponse, err: unknown, log: ErrorLog): void {
  const { status, code } = failureStatus(err);
  if (status >= 500) {
    log.error({ err: err instanceof LatchkeyError ? err.cause : err }, "introspection failed");
  }
  // RFC 6750 error names for the caller's own bearer token.
  const error =
    status === 401 ? "invalid_token" : status === 403 ? "insufficient_scope" : code.toLowerCase();
  const headers: [string, string][] =
    status === 401 || status === 403
      ? [["www-authenticate", `Bearer realm="latchkey", error="${error}"`]]
      : [];
  sendJson(res, status, { error }, headers);
}

/**
 * POST /oauth2/introspect (RFC 7662) for gateways with an introspection plugin (Kong, APISIX,
 * KrakenD…). The caller's bearer token needs `tokens:introspect`; a platform caller may
 * introspect any org's tokens, others only their own org's (another org's token is simply
 * inactive). The form's `token` is verified by the same core as VerifyToken (checks, audit
 * row, use accounting), with the optional `client_ip` as the client address. An inactive token
 * is exactly `{"active":false}`: the reason is never told.
 */
export function introspectRoute(verifier: Pick<Verifier, "verify">, log: ErrorLog): HttpRoute {
  const handle = async (req: NodeRequest, res: NodeResponse): Promise<void> => {
    if (req.method !== "POST") {
      sendJson(res, 405, { error: "invalid_request" }, [["allow", "POST"]]);
      return;
    }
    const context = httpContext(req);
    const caller = await verifyCaller(verifier, context, TOKENS_INTROSPECT);
    const type = (requestHeader(req, "content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/x-www-form-urlencoded") {
      sendJson(res, 400, {
        error: "invalid_request",
        error_description: "send an application/x-www-form-urlencoded body",
      });
      return;
    }
    const form = await readForm(req);
    const token = form?.get("token") ?? "";
    if (form === undefined || token === "") {
      sendJson(res, 400, { error: "invalid_request", error_description: "token is required" });
      return;
    }
    const outcome = await verifier.verify({
      purpose: "verify",
      token,
      requiredPermissions: [],
      clientIp: form.get("client_ip") ?? "",
      orgId: caller.isPlatform ? "" : caller.orgId,
      method: "POST",
      path: INTROSPECT_PATH,
      requestId: requestHeader(req, "x-request-id") ?? "",
    });
    if (outcome.code !== VerifyCode.VALID || outcome.record === undefined) {
      sendJson(res, 200, INACTIVE);
      return;
    }
    sendJson(res, 200, activeAnswer(outcome.record, outcome.remainingUses));
  };
  return {
    path: INTROSPECT_PATH,
    handle(req, res) {
      handle(req, res).catch((err: unknown) => refusal(res, err, log));
    },
  };
}
