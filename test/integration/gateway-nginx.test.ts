import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { type AddressInfo, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { freePort } from "../../src/store/embedded.js";
import { type LatchkeyServer, PREFIX, startLatchkeyServer } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { awayFromWindowEnd } from "../helpers/rate-window.js";
import { insertToken } from "../helpers/seed.js";

/**
 * A real nginx running the `auth_request` config of the README's "Gateways" section, in front
 * of a tiny upstream that echoes the headers it received. Outside CI, a machine without nginx
 * skips this file loudly; in CI (.ci/run installs nginx-light) a missing nginx fails it.
 */
const nginxFound = spawnSync("nginx", ["-v"], { stdio: "ignore" }).status === 0;
if (!nginxFound) {
  const line = "nginx is not installed: the forward-auth test with a real nginx is SKIPPED";
  if (process.env.CI !== undefined && process.env.CI !== "") throw new Error(`${line} (CI is set)`);
  console.warn(`\n!!! ${line} (apt-get install nginx-light) !!!\n`);
}

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let verifier: LatchkeyVerifier;
let latchkey: LatchkeyServer;
let upstream: Server;
let nginx: ChildProcess | undefined;
let dir: string;
let base: string;
/** What the upstream last received. */
let seen: IncomingHttpHeaders | undefined;

const quiet = { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} };

/** The first ```nginx block of the README, pointed at this test's ports. */
function readmeConfig(latchkeyPort: number, upstreamPort: number, nginxPort: number): string {
  const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
  const block = /```nginx\n([\s\S]*?)```/.exec(readme)?.[1];
  if (block === undefined) throw new Error("README has no ```nginx block");
  return block
    .replace("127.0.0.1:8080", `127.0.0.1:${latchkeyPort}`)
    .replace("127.0.0.1:3000", `127.0.0.1:${upstreamPort}`)
    .replace("listen 127.0.0.1:8000", `listen 127.0.0.1:${nginxPort}`);
}

/** Resolves once `port` accepts connections (true), or once `exited()` says nginx died (false). */
async function waitForPort(port: number, exited: () => boolean): Promise<boolean> {
  for (let i = 0; i < 800; i++) {
    if (exited()) return false;
    const open = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (open) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listens on ${port}`);
}

beforeAll(async () => {
  if (!nginxFound) return;
  db = await createTestDatabase();
  verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, auditMode: "none" });
  latchkey = await startLatchkeyServer({ sql: db.sql, verifier, log: quiet });
  upstream = createServer((req, res) => {
    seen = req.headers;
    res.setHeader("content-type", "text/plain");
    res.end("upstream ok\n");
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  const upstreamPort = (upstream.address() as AddressInfo).port;
  dir = mkdtempSync(join(tmpdir(), "latchkey-nginx-"));
  // nginx listens on a port found free; should another process take it before nginx binds it,
  // nginx exits, and it is started again on a fresh port.
  for (let attempt = 1; ; attempt++) {
    const nginxPort = await freePort();
    if (await startNginx(upstreamPort, nginxPort)) {
      base = `http://127.0.0.1:${nginxPort}`;
      break;
    }
    const log = readFileSync(join(dir, "error.log"), "utf8");
    if (attempt >= 3 || !log.includes("Address already in use")) {
      throw new Error(`nginx did not start:\n${log}`);
    }
  }
});

/** Starts nginx with the README's config on `nginxPort`; false when it exited instead. */
async function startNginx(upstreamPort: number, nginxPort: number): Promise<boolean> {
  const conf = `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${readmeConfig(Number(new URL(latchkey.httpUrl).port), upstreamPort, nginxPort)}
}
`;
  writeFileSync(join(dir, "nginx.conf"), conf);
  const child = spawn(
    "nginx",
    ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")],
    { stdio: "ignore" },
  );
  nginx = child;
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  return waitForPort(nginxPort, () => exited);
}

afterAll(async () => {
  if (nginx !== undefined && nginx.exitCode === null) {
    const exited = new Promise((r) => nginx?.once("exit", r));
    nginx.kill("SIGTERM");
    await exited;
  }
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  await new Promise((r) => (upstream === undefined ? r(undefined) : upstream.close(r)));
  await latchkey?.close();
  await verifier?.close();
  await db?.drop();
});

async function get(token: string | undefined, headers: Record<string, string> = {}) {
  seen = undefined;
  const res = await fetch(`${base}/deploy/run?x=1`, {
    headers: { ...headers, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
  });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

describe.skipIf(!nginxFound)("nginx auth_request in front of an upstream", () => {
  it("a valid token reaches the upstream with the identity headers, without authorization", async () => {
    const t = await insertToken(db.sql, {
      permissions: ["deploy:write"],
      metadata: { region: "eu-west" },
    });
    const r = await get(t.secret, { "X-Latchkey-Org-Id": "forged" });
    expect(r.status).toBe(200);
    expect(r.body).toBe("upstream ok\n");
    expect(seen).toMatchObject({
      "x-latchkey-token-id": t.id,
      "x-latchkey-org-id": "org-a",
      "x-latchkey-owner-id": "user-1",
      "x-latchkey-team-id": "team-1",
      "x-latchkey-meta-region": "eu-west",
    });
    expect(seen?.authorization).toBeUndefined();
  });

  it("a missing token gets 401 and never reaches the upstream", async () => {
    const r = await get(undefined);
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toContain("Bearer");
    expect(seen).toBeUndefined();
  });

  it("a revoked token gets 401", async () => {
    const t = await insertToken(db.sql, { permissions: ["deploy:write"], revokeTime: new Date() });
    expect((await get(t.secret)).status).toBe(401);
    expect(seen).toBeUndefined();
  });

  it("a token without the location's permission gets 403", async () => {
    const t = await insertToken(db.sql, { permissions: ["deploy:read"] });
    expect((await get(t.secret)).status).toBe(403);
  });

  it("a client outside the token's allowed IPs gets 403 (nginx's X-Forwarded-For is trusted)", async () => {
    const t = await insertToken(db.sql, { permissions: ["*"], allowedCidrs: ["10.0.0.0/8"] });
    expect((await get(t.secret)).status).toBe(403);
    expect(seen).toBeUndefined();
    const local = await insertToken(db.sql, { permissions: ["*"], allowedCidrs: ["127.0.0.1"] });
    expect((await get(local.secret)).status).toBe(200);
  });

  it("a rate-limited token gets 429 with Retry-After through nginx", async () => {
    const t = await insertToken(db.sql, {
      permissions: ["*"],
      rateLimits: [{ name: "burst", limit: 1, window_ms: 60_000 }],
    });
    await awayFromWindowEnd(60_000); // both calls in one minute window
    expect((await get(t.secret)).status).toBe(200);
    const r = await get(t.secret);
    expect(r.status).toBe(429);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(r.body)).toEqual({ code: "RATE_LIMITED" });
    expect(seen).toBeUndefined();
  });
});
