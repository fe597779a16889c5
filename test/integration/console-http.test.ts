import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInstance } from "../../src/app.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { type AdminHarness, PREFIX, startAdminHarness } from "../helpers/admin-harness.js";

// The console's HTTP surface without a browser: security headers, static serving, and CORS
// for the API (off by default, exact origins when LATCHKEY_CORS_ORIGINS is set).

const ALLOWED = "https://admin.example.com";
const API = "/latchkey.v1.TokenAdminService/GetCaller";

let h: AdminHarness;
let withCors: { url: string; close: () => Promise<void> };

const silent = { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} };

beforeAll(async () => {
  h = await startAdminHarness();
  const verifier = createVerifier({ sql: h.sql, tokenPrefix: PREFIX, auditMode: "none" });
  const instance = await startInstance({
    sql: h.sql,
    verifier,
    tokenPrefix: PREFIX,
    log: silent,
    redis: false,
    grpcListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    defaultMetrics: false,
    corsOrigins: [ALLOWED],
  });
  withCors = {
    url: `http://127.0.0.1:${instance.httpPort}`,
    close: async () => {
      await instance.close();
      await verifier.close();
    },
  };
});

afterAll(async () => {
  await withCors?.close();
  await h?.close();
});

function preflight(base: string, origin: string): Promise<Response> {
  return fetch(`${base}${API}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,connect-protocol-version",
    },
  });
}

/** A cross-origin GetCaller (Connect JSON) as a browser on ALLOWED would send it. */
function getCallerFrom(base: string): Promise<Response> {
  return fetch(`${base}${API}`, {
    method: "POST",
    headers: {
      origin: ALLOWED,
      "content-type": "application/json",
      authorization: `Bearer ${h.bootstrapSecret}`,
    },
    body: "{}",
  });
}

describe("GET /console/", () => {
  it("serves the app with a strict CSP and the other security headers", async () => {
    const res = await fetch(`${h.httpUrl}/console/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    const html = await res.text();
    expect(html).toContain('<script type="module" src="app.js"></script>');
    expect(html).not.toMatch(/<script>|<script type="module">|https?:\/\//);
  });

  it("serves the bundle with the same headers, answers 304 to its etag, 404 and 405", async () => {
    const js = await fetch(`${h.httpUrl}/console/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("x-content-type-options")).toBe("nosniff");
    const body = await js.text();
    expect(body).not.toMatch(/\beval\(|new Function\(/);
    const etag = js.headers.get("etag") ?? "";
    const again = await fetch(`${h.httpUrl}/console/app.js`, {
      headers: { "if-none-match": etag },
    });
    expect(again.status).toBe(304);
    const missing = await fetch(`${h.httpUrl}/console/nope.js`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    const post = await fetch(`${h.httpUrl}/console/`, { method: "POST", body: "x" });
    expect(post.status).toBe(405);
  });

  it("redirects /console to /console/", async () => {
    const res = await fetch(`${h.httpUrl}/console`, { redirect: "manual" });
    expect(res.status).toBe(308);
    expect(res.headers.get("location")).toBe("/console/");
  });
});

describe("CORS for the API", () => {
  it("is off by default: a preflight gets no access-control-allow-origin", async () => {
    const res = await preflight(h.httpUrl, ALLOWED);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const call = await getCallerFrom(h.httpUrl);
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("when configured, allows exactly the listed origins", async () => {
    const ok = await preflight(withCors.url, ALLOWED);
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(ok.headers.get("access-control-allow-headers")?.toLowerCase()).toContain(
      "authorization",
    );
    expect(ok.headers.get("access-control-allow-credentials")).toBeNull();

    const other = await preflight(withCors.url, "https://evil.example.com");
    expect(other.headers.get("access-control-allow-origin")).toBeNull();

    const call = await getCallerFrom(withCors.url);
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(((await call.json()) as { platform?: boolean }).platform).toBe(true);
  });
});
