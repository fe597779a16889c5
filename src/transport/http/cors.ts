import type * as http from "node:http";
import type * as http2 from "node:http2";
import { cors } from "@connectrpc/connect";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

const ALLOW_METHODS = cors.allowedMethods.join(", ");
const ALLOW_HEADERS = [...cors.allowedHeaders, "Authorization", "X-Request-Id"].join(", ");
const EXPOSE_HEADERS = cors.exposedHeaders.join(", ");

/**
 * Answers CORS for the API when LATCHKEY_CORS_ORIGINS names origins: a browser app served
 * elsewhere (a product's own dashboard) may then call TokenAdminService with a bearer token.
 * Returns true when it answered the request itself (a preflight). Only listed origins get
 * `access-control-allow-origin`; others get nothing and the browser blocks them. No
 * credentials mode: callers authenticate with the Authorization header, never cookies.
 */
export function applyCors(
  origins: readonly string[],
  req: NodeRequest,
  res: NodeResponse,
): boolean {
  if (origins.length === 0) return false;
  const origin = req.headers.origin;
  res.setHeader("vary", "Origin");
  if (typeof origin !== "string" || !origins.includes(origin)) return false;
  res.setHeader("access-control-allow-origin", origin);
  if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
    res.writeHead(204, {
      "access-control-allow-methods": ALLOW_METHODS,
      "access-control-allow-headers": ALLOW_HEADERS,
      "access-control-max-age": "7200",
      "content-length": 0,
    });
    res.end();
    return true;
  }
  res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
  return false;
}
