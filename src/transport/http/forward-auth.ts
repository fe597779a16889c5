import { checkPermissions } from "../../domain/validation.js";
import { type FieldViolation, LatchkeyError } from "../../errors.js";
import type { GatewayCheck } from "../../services/gateway/check.js";
import type { ErrorLog } from "../error-mapper.js";
import { socketIp } from "../peer.js";
import {
  failureStatus,
  type HttpRoute,
  type NodeRequest,
  requestHeader,
  sendJson,
} from "./gateway-http.js";

/** The path nginx `auth_request` and Traefik `forwardAuth` call. */
export const FORWARD_AUTH_PATH = "/v1/check";

/** The original request's method and URI, from a trusted proxy's headers only. */
function original(req: NodeRequest, trusted: boolean): { method: string; path: string } {
  if (!trusted) return { method: req.method ?? "", path: "" };
  return {
    method:
      requestHeader(req, "x-original-method") ??
      requestHeader(req, "x-forwarded-method") ??
      req.method ??
      "",
    path: requestHeader(req, "x-original-uri") ?? requestHeader(req, "x-forwarded-uri") ?? "",
  };
}

/**
 * `/v1/check` (any method) on the HTTP listener, for nginx `auth_request` and Traefik
 * `forwardAuth`: the token from the configured header, the original method and URI from
 * X-Original-* (nginx) or X-Forwarded-* (Traefik), the client from X-Forwarded-For — all
 * believed only from LATCHKEY_TRUSTED_PROXIES — and the required permissions from
 * `?permission=` (repeatable), the org from `?org=`. 200 with the identity headers, or the
 * shared denial (401/403/429 + JSON); 400 for a bad query, 503 when latchkey cannot decide.
 */
export function forwardAuthRoute(gateway: GatewayCheck, log: ErrorLog): HttpRoute {
  return {
    path: FORWARD_AUTH_PATH,
    handle(req, res) {
      const query = new URL(req.url ?? "/", "http://latchkey").searchParams;
      const permissions = query.getAll("permission");
      const violations: FieldViolation[] = checkPermissions(permissions, "permission");
      if (violations.length > 0) {
        sendJson(res, 400, { code: "INVALID_ARGUMENT", field: violations[0]?.field ?? "" });
        return;
      }
      const peer = socketIp(req.socket.remoteAddress ?? "");
      const { method, path } = original(req, gateway.proxies.trusts(peer));
      gateway
        .check({
          credential: requestHeader(req, gateway.tokenHeader),
          peer,
          forwardedFor: requestHeader(req, "x-forwarded-for"),
          method,
          path,
          permissions,
          orgId: query.get("org") ?? "",
          requestId: requestHeader(req, "x-request-id") ?? "",
        })
        .then(
          (answer) => {
            if (answer.allowed) sendJson(res, 200, undefined, answer.headers);
            else sendJson(res, answer.status, answer.body, answer.headers);
          },
          (err: unknown) => {
            const failed = failureStatus(err);
            const cause = err instanceof LatchkeyError ? err.cause : err;
            log.error({ err: cause, path: FORWARD_AUTH_PATH }, "forward-auth check failed");
            sendJson(res, failed.status, { code: failed.code });
          },
        );
    },
  };
}
