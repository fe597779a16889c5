import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Code } from "@connectrpc/connect";
import { LatchkeyError } from "../../errors.js";

/** A request or response of either Node HTTP stack (the listener serves h1 and h2). */
export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** A plain HTTP endpoint of the HTTP listener beside the RPCs (exact path, any method). */
export interface HttpRoute {
  readonly path: string;
  handle(req: NodeRequest, res: NodeResponse): void;
}

/** First value of a request header (lower-case name), or undefined. */
export function requestHeader(req: NodeRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Ends a gateway response: `headers` as given, a JSON body when there is one (a string is
 * taken as already encoded), never cached (a decision is about one request; RFC 7662 asks
 * for no-store too).
 */
export function sendJson(
  res: NodeResponse,
  status: number,
  body: unknown,
  headers: readonly (readonly [string, string])[] = [],
): void {
  if (res.headersSent) return;
  res.statusCode = status;
  res.setHeader("cache-control", "no-store");
  for (const [name, value] of headers) res.setHeader(name, value);
  if (body === undefined) {
    res.setHeader("content-length", "0");
    res.end();
    return;
  }
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", String(Buffer.byteLength(text)));
  res.end(text);
}

/** HTTP status of a refusal raised by the services (auth, storage). */
const HTTP_OF_CODE: Partial<Record<Code, number>> = {
  3: 400, // INVALID_ARGUMENT
  5: 404, // NOT_FOUND
  7: 403, // PERMISSION_DENIED
  8: 429, // RESOURCE_EXHAUSTED
  14: 503, // UNAVAILABLE
  16: 401, // UNAUTHENTICATED
};

/**
 * The HTTP answer to a failure of a gateway endpoint: a LatchkeyError keeps its meaning
 * (status above, reason as `code`), anything else is a 500 with nothing of the cause in it;
 * either way the cause goes to `log` only. Never a 2xx, so a gateway never allows on it.
 */
export function failureStatus(err: unknown): { status: number; code: string } {
  if (err instanceof LatchkeyError) {
    return { status: HTTP_OF_CODE[err.code] ?? 500, code: err.reason };
  }
  return { status: 500, code: "INTERNAL" };
}
