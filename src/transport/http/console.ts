import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { dirname, extname, join, parse } from "node:path";
import { fileURLToPath } from "node:url";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Where the console is served; `/console` redirects here. */
export const CONSOLE_PREFIX = "/console/";

/**
 * The console's Content-Security-Policy: its own script and stylesheet only (no inline code, no
 * eval), no frames, no forms posting elsewhere, and fetches to this origin alone — so the page
 * can reach nothing but latchkey's own API, even if a bug let markup in.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

/** The built console (`npm run build` writes dist/console), read once into memory. */
export type ConsoleAssets = ReadonlyMap<string, Asset>;

/** Walks up from this module to the first `dist/console` (works from src/ and dist/src/). */
function findConsoleDir(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  const { root } = parse(dir);
  for (;;) {
    const candidate = join(dir, "dist", "console");
    if (existsSync(join(candidate, "index.html"))) return candidate;
    if (dir === root) return undefined;
    dir = dirname(dir);
  }
}

/**
 * Loads the built console's files (a few hundred kB) once, keyed by their path under
 * /console/, so serving them never touches the disk. Empty when the console was not built.
 */
export function loadConsoleAssets(dir: string | undefined = findConsoleDir()): ConsoleAssets {
  const assets = new Map<string, Asset>();
  if (dir === undefined) return assets;
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    const contentType = CONTENT_TYPES[extname(name)];
    if (contentType === undefined || !statSync(file).isFile()) continue;
    const body = readFileSync(file);
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    assets.set(name === "index.html" ? "" : name, { body, contentType, etag });
  }
  return assets;
}

/** Whether a request path belongs to the console (and not to the API or the probes). */
export function isConsolePath(path: string): boolean {
  return path === "/console" || path.startsWith(CONSOLE_PREFIX);
}

function sendText(
  res: NodeResponse,
  status: number,
  text: string,
  extra: Readonly<Record<string, string>> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...extra,
  });
  res.end(text);
}

/**
 * Answers a /console request from memory with the security headers on every response (errors
 * included). The page is static: it holds no data and no token; everything it shows comes from
 * TokenAdminService calls made by the browser with the signed-in token, under the same
 * authorization as any other client.
 */
export function serveConsole(
  path: string,
  req: NodeRequest,
  res: NodeResponse,
  assets: ConsoleAssets,
): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    sendText(res, 405, "method not allowed\n", { allow: "GET, HEAD" });
    return;
  }
  if (path === "/console") {
    sendText(res, 308, "moved to /console/\n", { location: CONSOLE_PREFIX });
    return;
  }
  if (assets.size === 0) {
    sendText(res, 503, "the web console is not built: run `npm run build`\n");
    return;
  }
  const asset = assets.get(path.slice(CONSOLE_PREFIX.length));
  if (asset === undefined) {
    sendText(res, 404, "not found\n");
    return;
  }
  const headers = {
    ...SECURITY_HEADERS,
    "content-type": asset.contentType,
    "cache-control": "no-cache",
    etag: asset.etag,
  };
  if (req.headers["if-none-match"] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, "content-length": asset.body.length });
  if (req.method === "HEAD") res.end();
  else res.end(asset.body);
}
