import { execFile } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { freePort } from "../../src/store/embedded.js";
import { adminClient, verifyClient } from "../helpers/admin-client.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { redisForTests } from "../helpers/redis.js";
import {
  bootstrapTokenOf,
  channelTo,
  childEnv,
  type Exit,
  getJson,
  killServers,
  type ServerProcess,
  spawnServer,
  startServer,
  TOKEN,
  tokensIn,
  waitForStatus,
} from "../helpers/server-process.js";

// The real server as `npm start` runs it (test/helpers/server-process.ts), one child process per
// describe, against its own cloned database. What the operator sees (exit codes, start-up
// output, signals, probes, buf curl) is what these tests check.

const ROOT = process.cwd();
const BUF = join(ROOT, "node_modules/.bin/buf");
const README = join(ROOT, "README.md");

/** The README's lifecycle walk-through: the part between its lifecycle markers. */
function lifecycleSection(): string {
  const text = readFileSync(README, "utf8");
  const start = text.indexOf("<!-- lifecycle:start -->");
  const end = text.indexOf("<!-- lifecycle:end -->");
  expect(start).toBeGreaterThan(-1);
  expect(end).toBeGreaterThan(start);
  return text.slice(start, end);
}
const STOP_LIMIT_MS = 10_000;

afterAll(killServers);

/** Runs a process to its exit (or fails the test after `ms`), with everything it printed. */
async function exitOf(proc: { exited: Promise<Exit>; output(): string }, ms = 20_000) {
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`still running:\n${proc.output()}`)), ms).unref(),
  );
  return Promise.race([proc.exited, timeout]);
}

interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to its end and reports its exit code instead of throwing on failure. */
function runCommand(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: ROOT, env: opts.env ?? process.env, timeout: opts.timeout ?? 20_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `buf curl` over plain gRPC with reflection, as the README and the bootstrap hint show it. */
function bufCurl(args: readonly string[]): Promise<CommandResult> {
  return runCommand(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args]);
}

function onPath(binary: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    if (dir === "") return false;
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** One test database and one server on it, for a describe block. */
function serverPerDescribe(env: Record<string, string> = {}) {
  const ctx = {} as {
    db: Awaited<ReturnType<typeof createTestDatabase>>;
    server: ServerProcess;
  };
  beforeAll(async () => {
    ctx.db = await createTestDatabase();
    ctx.server = await startServer({
      DATABASE_URL: ctx.db.url,
      LATCHKEY_BOOTSTRAP_ORG: "acme",
      ...env,
    });
  });
  afterAll(async () => {
    if (ctx.server !== undefined) {
      ctx.server.child.kill("SIGKILL");
      await ctx.server.exited;
    }
    await ctx.db?.drop();
  });
  return ctx;
}

describe("first start on an empty database", () => {
  const ctx = serverPerDescribe();

  it("prints exactly one bootstrap token and both listen addresses", () => {
    const out = ctx.server.output();
    const token = bootstrapTokenOf(ctx.server);
    expect(token).toMatch(/^lk_t_/);
    expect(out.match(/bootstrap token for org "acme"/g)).toHaveLength(1);
    expect(out).toContain(`gRPC listening on ${ctx.server.grpcAddr}`);
    expect(out).toContain(`on ${ctx.server.httpAddr}`);
  });

  it("the bootstrap token lists its org's tokens through buf curl", async () => {
    const token = bootstrapTokenOf(ctx.server);
    const res = await bufCurl([
      "--reflect",
      "-H",
      `authorization: Bearer ${token}`,
      "-d",
      "{}",
      `http://${ctx.server.grpcAddr}/latchkey.v1.TokenAdminService/ListTokens`,
    ]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const body = JSON.parse(res.stdout) as { tokens: { orgId: string; type: string }[] };
    expect(body.tokens).toHaveLength(1);
    expect(body.tokens[0]).toMatchObject({ orgId: "acme", type: "TOKEN_TYPE_TEAM" });
  });
});

describe("reflection, health and slot input errors over buf curl", () => {
  const ctx = serverPerDescribe();
  const url = (path: string) => `http://${ctx.server.grpcAddr}${path}`;

  it("lists both latchkey services and health", async () => {
    const res = await bufCurl(["--reflect", "--list-services", url("")]);
    expect(res.code).toBe(0);
    const services = res.stdout.split("\n").map((l) => l.trim());
    expect(services).toEqual(
      expect.arrayContaining([
        "latchkey.v1.TokenAdminService",
        "latchkey.v1.TokenVerifyService",
        "grpc.health.v1.Health",
      ]),
    );
  });

  it("Health/Check answers SERVING", async () => {
    const res = await bufCurl(["--reflect", "-d", "{}", url("/grpc.health.v1.Health/Check")]);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({ status: "SERVING" });
  });

  // Until #9 this asserted UNIMPLEMENTED for AcquireSlot; every contract method is served now.
  it("AcquireSlot with an empty request answers invalid_argument naming token", async () => {
    const res = await bufCurl([
      "--reflect",
      "-d",
      "{}",
      url("/latchkey.v1.TokenVerifyService/AcquireSlot"),
    ]);
    expect(res.code).not.toBe(0);
    expect(`${res.stdout}${res.stderr}`).toMatch(/"code":\s*"invalid_argument"/);
    expect(`${res.stdout}${res.stderr}`).toContain("token");
  });

  it("reflection lists Envoy's ext_authz service", async () => {
    const res = await bufCurl(["--reflect", "--list-services", url("")]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain("envoy.service.auth.v3.Authorization");
  });
});

describe("readiness follows Postgres", () => {
  const ctx = serverPerDescribe();

  it("/readyz is 503 while the database refuses connections and 200 again after; /healthz stays 200", async () => {
    const readyz = `http://${ctx.server.httpAddr}/readyz`;
    const healthz = `http://${ctx.server.httpAddr}/healthz`;
    expect(await waitForStatus(readyz, 200)).toMatchObject({
      ok: true,
      checks: { postgres: "ok", migrations: "ok" },
    });

    const name = decodeURIComponent(new URL(ctx.db.url).pathname.slice(1));
    const admin = postgres(inject("latchkeyPostgres").adminUrl, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`alter database "${name}" allow_connections false`);
      await admin`
        select pg_terminate_backend(pid) from pg_stat_activity
        where datname = ${name} and pid <> pg_backend_pid()`;
      expect(await waitForStatus(readyz, 503)).toMatchObject({
        ok: false,
        checks: { postgres: "unreachable" },
      });
      expect((await getJson(healthz)).status).toBe(200);
    } finally {
      await admin.unsafe(`alter database "${name}" allow_connections true`);
      await admin.end({ timeout: 5 });
    }
    expect(await waitForStatus(readyz, 200)).toMatchObject({ checks: { postgres: "ok" } });
    expect((await getJson(healthz)).status).toBe(200);
  });
});
describe("SIGTERM", () => {
  const ctx = serverPerDescribe();

  it("exits 0 within 10 s and flushes the usage of a token verified just before", async () => {
    const token = bootstrapTokenOf(ctx.server);
    const channel = channelTo(ctx.server);
    let tokenId: string;
    try {
      const res = await verifyClient(channel).verifyToken({ token, clientIp: "203.0.113.7" });
      expect(res.code).toBe(VerifyCode.VALID);
      tokenId = res.tokenId;
      // Well inside the usage batcher's 1 s interval: only the shutdown flush can write it.
      const exit = await ctx.server.stop();
      expect(exit, ctx.server.output()).toMatchObject({ code: 0, signal: null });
      expect(exit.ms).toBeLessThan(STOP_LIMIT_MS);
    } finally {
      channel.close();
    }
    const rows = await ctx.db.sql<{ use_count: string; last_used_time: Date | null }[]>`
      select use_count::text, last_used_time from tokens where id = ${tokenId}`;
    expect(rows).toHaveLength(1);
    expect(rows[0]?.use_count).toBe("1");
    expect(rows[0]?.last_used_time).toBeInstanceOf(Date);
  });
});

describe("restart on the same database", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let first: ServerProcess;
  let second: ServerProcess;
  let token: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    const env = { DATABASE_URL: db.url, LATCHKEY_BOOTSTRAP_ORG: "acme" };
    first = await startServer(env);
    token = bootstrapTokenOf(first);
    expect(await first.stop()).toMatchObject({ code: 0 });
    second = await startServer(env);
  });
  afterAll(async () => {
    for (const s of [first, second]) s?.child.kill("SIGKILL");
    await db?.drop();
  });

  it("prints no bootstrap token", () => {
    expect(tokensIn(second.output())).toEqual([]);
    expect(second.output()).not.toContain("bootstrap token");
    expect(second.output()).toContain(`gRPC listening on ${second.grpcAddr}`);
  });

  it("the token printed by the first start still works", async () => {
    const channel = channelTo(second);
    try {
      const listed = await adminClient(channel, token).listTokens({});
      expect(listed.tokens.map((t) => t.orgId)).toEqual(["acme"]);
    } finally {
      channel.close();
    }
  });
});

describe("a bad environment", () => {
  it("exits with code 2 and names every bad variable, without a stack trace", async () => {
    const proc = spawnServer({
      DATABASE_URL: "postgres://postgres@127.0.0.1:1/unused",
      LATCHKEY_GRPC_LISTEN: "abc",
      LATCHKEY_WORKERS: "0",
    });
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`still running:\n${proc.output()}`)), 10_000).unref(),
    );
    const exit = await Promise.race([proc.exited, timeout]);
    expect(exit, proc.output()).toMatchObject({ code: 2 });
    expect(proc.stderr()).toContain("LATCHKEY_GRPC_LISTEN=abc");
    expect(proc.stderr()).toContain("LATCHKEY_WORKERS=0");
    expect(proc.output()).not.toMatch(/^\s+at /m);
    expect(proc.output()).not.toContain("ConfigError");
  });
});

describe("secrets in the output", () => {
  // trace: the most the logger will ever say.
  const ctx = serverPerDescribe({ LATCHKEY_LOG_LEVEL: "trace" });

  it("never contain an issued secret, only the one bootstrap token in its banner", async () => {
    const bootstrap = bootstrapTokenOf(ctx.server);
    const channel = channelTo(ctx.server);
    const issued: string[] = [];
    try {
      const created = await adminClient(channel, bootstrap).createToken({
        name: "ci reader",
        type: TokenType.CICD,
        permissions: ["tokens:read"],
      });
      issued.push(created.secret);
      const verify = verifyClient(channel);
      expect((await verify.verifyToken({ token: created.secret, clientIp: "::1" })).code).toBe(
        VerifyCode.VALID,
      );
      const asReader = adminClient(channel, created.secret);
      // Itself only: the bootstrap (platform) token is out of a tenant caller's reach.
      expect((await asReader.listTokens({})).tokens.length).toBe(1);
      // The same caller over the HTTP listener (Connect JSON), which logs its own request line.
      const res = await fetch(
        `http://${ctx.server.httpAddr}/latchkey.v1.TokenAdminService/ListTokens`,
        {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${created.secret}`,
          },
          body: "{}",
        },
      );
      expect(res.status).toBe(200);
      const rotated = await asReader.rotateToken({ id: created.token?.id ?? "" });
      issued.push(rotated.secret);
      const asRotated = adminClient(channel, rotated.secret);
      // Failures log more than successes: a denied admin call and a denied verification.
      await expect(
        asRotated.createToken({ name: "x", type: TokenType.CICD, permissions: ["tokens:read"] }),
      ).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
      const denied = await verify.verifyToken({
        token: rotated.secret,
        requiredPermissions: ["deploy:write"],
      });
      expect(denied.code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    } finally {
      channel.close();
    }
    expect(await ctx.server.stop()).toMatchObject({ code: 0 });

    const out = ctx.server.output();
    for (const secret of issued) {
      expect(secret).toMatch(TOKEN);
      expect(out).not.toContain(secret);
    }
    expect(tokensIn(out)).toEqual([bootstrap]);
    // The bootstrap secret itself only in the banner: its own line and the `try:` hint.
    const lines = out.split("\n").filter((l) => l.includes(bootstrap));
    expect(lines).toHaveLength(2);
    expect(lines[0]?.trim()).toBe(bootstrap);
    expect(lines[1]?.trim()).toMatch(/^try: npx buf curl /);
  });
});

const redis = await redisForTests();
afterAll(async () => {
  await redis?.stop();
});

describe.skipIf(redis === undefined)("with REDIS_URL", () => {
  const ctx = serverPerDescribe({ REDIS_URL: redis?.url ?? "" });

  it("is ready with Redis, verifies through the shared cache and stops cleanly", async () => {
    expect(await waitForStatus(`http://${ctx.server.httpAddr}/readyz`, 200)).toMatchObject({
      ok: true,
      checks: { postgres: "ok", redis: "ok" },
    });
    const token = bootstrapTokenOf(ctx.server);
    const channel = channelTo(ctx.server);
    try {
      const verify = verifyClient(channel);
      for (let i = 0; i < 2; i++) {
        expect((await verify.verifyToken({ token })).code).toBe(VerifyCode.VALID);
      }
    } finally {
      channel.close();
    }
    const exit = await ctx.server.stop();
    expect(exit, ctx.server.output()).toMatchObject({ code: 0 });
    expect(exit.ms).toBeLessThan(STOP_LIMIT_MS);
  });
});

/**
 * the README's lifecycle section as one bash script: its ```sh blocks in order, the server address and
 * the printed bootstrap secret filled in. A line ending in `# fails: CODE` must fail with that
 * gRPC status; every other command must succeed (errexit + pipefail).
 */
function docScript(doc: string, grpcAddr: string, bootstrap: string) {
  expect(doc).toContain("127.0.0.1:50051");
  expect(doc).toContain("export BOOTSTRAP=lk_t_…");
  const filled = doc
    .replaceAll("127.0.0.1:50051", grpcAddr)
    .replace("export BOOTSTRAP=lk_t_…", `export BOOTSTRAP=${bootstrap}`);
  const blocks = [...filled.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? "");
  const lines = [
    "set -eEo pipefail",
    `trap 'echo "doc command failed (exit $?) at script line $LINENO: $BASH_COMMAND" >&2' ERR`,
    // `npx buf` as the doc says it, minus npm's start-up cost on every call.
    'npx() { if [ "$1" = buf ]; then shift; "$LK_TEST_BUF" "$@"; else command npx "$@"; fi; }',
  ];
  let expectedFailures = 0;
  for (const [i, block] of blocks.entries()) {
    lines.push(`# --- block ${i + 1}`);
    for (const line of block.split("\n")) {
      const m = /^(.*?)\s+# fails: ([A-Z_]+)\s*$/.exec(line);
      const command = m?.[1];
      const code = m?.[2];
      if (command === undefined || code === undefined) {
        lines.push(line);
        continue;
      }
      expectedFailures++;
      const where = `block ${i + 1}: ${command.replaceAll("'", "")}`.replaceAll('"', "");
      lines.push(
        `if __out=$(${command} 2>&1); then echo "expected ${code}, got success, ${where}" >&2; exit 97; fi`,
        `printf '%s\\n' "$__out"`,
        `grep -Eq '"code": *"${code.toLowerCase()}"' <<<"$__out" || { echo "expected ${code}, ${where}" >&2; exit 98; }`,
        "echo __expected_failure_ok__",
      );
    }
  }
  lines.push("echo __doc_done__");
  return { script: lines.join("\n"), blocks: blocks.length, expectedFailures };
}

const hasJq = onPath("jq");
if (!hasJq) console.log("jq not found: skipping the the README's lifecycle section walk-through");

describe.skipIf(!hasJq)("the README's lifecycle section pasted in order", () => {
  const ctx = serverPerDescribe({ LATCHKEY_BOOTSTRAP_ORG: "default" });

  it("runs every command; each succeeds except those the doc says fail", async () => {
    const bootstrap = bootstrapTokenOf(ctx.server);
    const doc = docScript(lifecycleSection(), ctx.server.grpcAddr, bootstrap);
    expect(doc.blocks).toBeGreaterThan(8);
    const res = await runCommand("bash", ["-c", doc.script], {
      env: { ...childEnv({}), LK_TEST_BUF: BUF },
      timeout: 50_000,
    });
    const tail = `${res.stderr.slice(-3_000)}\n--- stdout:\n${res.stdout.slice(-2_000)}`;
    expect(res.code, tail).toBe(0);
    expect(res.stdout, tail).toContain("__doc_done__");
    expect(res.stdout.match(/__expected_failure_ok__/g)?.length).toBe(doc.expectedFailures);
    expect(doc.expectedFailures).toBeGreaterThan(0);
    // The last step: the platform caller created acme's first admin token and lists it.
    expect(res.stdout).toContain('"name": "acme admin"');
    expect(tokensIn(ctx.server.output())).toEqual([bootstrap]);
  }, 60_000);
});

/** A fresh LATCHKEY_DATA_DIR for the embedded Postgres (removed after the file). */
async function freshDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "latchkey-ops-"));
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

describe("two starts on one data directory (embedded Postgres)", () => {
  let dataDir: string;
  let first: ServerProcess;

  beforeAll(async () => {
    dataDir = await freshDataDir();
    // detached: its own process group, like a terminal's foreground job.
    first = await startServer({ LATCHKEY_DATA_DIR: dataDir }, true);
  }, 60_000);
  afterAll(async () => {
    first?.child.kill("SIGKILL");
    await first?.exited;
  });

  it("the second exits non-zero naming the first's pid; the first keeps serving", async () => {
    const second = spawnServer({
      LATCHKEY_DATA_DIR: dataDir,
      LATCHKEY_GRPC_LISTEN: `127.0.0.1:${await freePort()}`,
      LATCHKEY_HTTP_LISTEN: `127.0.0.1:${await freePort()}`,
    });
    const exit = await exitOf(second);
    expect(exit.code, second.output()).toBe(1);
    const lines = second.stderr().trim().split("\n");
    expect(lines.at(-1)).toBe(
      `latchkey: cannot start: ${dataDir} is in use by latchkey pid ${first.child.pid}; stop that one first, or set LATCHKEY_DATA_DIR to another directory`,
    );
    expect(second.output()).not.toContain("embedded postgres");

    expect(await waitForStatus(`http://${first.httpAddr}/readyz`, 200)).toMatchObject({
      ok: true,
    });
    const channel = channelTo(first);
    try {
      const listed = await adminClient(channel, bootstrapTokenOf(first)).listTokens({});
      expect(listed.tokens).toHaveLength(1);
    } finally {
      channel.close();
    }
  });

  it("SIGINT to the process group right after verifications loses no usage count or audit row", async () => {
    const bootstrap = bootstrapTokenOf(first);
    let channel = channelTo(first);
    let id: string;
    try {
      const created = await adminClient(channel, bootstrap).createToken({
        name: "ctrl-c",
        type: TokenType.CICD,
        permissions: ["deploy:read"],
      });
      id = created.token?.id ?? "";
      const verify = verifyClient(channel);
      for (let i = 0; i < 5; i++) {
        expect((await verify.verifyToken({ token: created.secret })).code).toBe(VerifyCode.VALID);
      }
    } finally {
      channel.close();
    }
    // What a terminal's Ctrl-C does: SIGINT to every process of the foreground group.
    const pid = first.child.pid ?? 0;
    process.kill(-pid, "SIGINT");
    expect(await exitOf(first), first.output()).toMatchObject({ code: 0, signal: null });
    expect(first.output()).not.toMatch(/write failed|flush failed|shutting down/);

    const again = await startServer({ LATCHKEY_DATA_DIR: dataDir });
    channel = channelTo(again);
    try {
      const admin = adminClient(channel, bootstrap);
      expect((await admin.getToken({ id })).token?.useCount).toBe(5n);
      const audit = await admin.listAuditEvents({ tokenId: id, action: "token.verify" });
      expect(audit.events).toHaveLength(5);
    } finally {
      channel.close();
      again.child.kill("SIGKILL");
      await again.exited;
    }
  }, 60_000);
});

describe("a taken gRPC port on a fresh data directory", () => {
  it("fails with one clean line and creates no token", async () => {
    const dataDir = await freshDataDir();
    const holder = createNetServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const address = holder.address();
    const taken = `127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
    try {
      const proc = spawnServer({
        LATCHKEY_DATA_DIR: dataDir,
        LATCHKEY_GRPC_LISTEN: taken,
        LATCHKEY_HTTP_LISTEN: `127.0.0.1:${await freePort()}`,
      });
      const exit = await exitOf(proc, 40_000);
      expect(exit.code, proc.output()).toBe(1);
      expect(tokensIn(proc.output())).toEqual([]);
      expect(proc.output()).not.toContain("bootstrap token");
      expect(proc.stderr().trim().split("\n").at(-1)).toBe(
        `latchkey: cannot start: gRPC listen address ${taken} is already in use by another process; set LATCHKEY_GRPC_LISTEN / LATCHKEY_HTTP_LISTEN to free ports`,
      );
      expect(proc.output()).not.toContain("No address added");
    } finally {
      holder.close();
    }
    // The database stayed empty: the next start (port free) is the one that bootstraps.
    const next = await startServer({ LATCHKEY_DATA_DIR: dataDir });
    try {
      expect(tokensIn(next.output())).toHaveLength(1);
    } finally {
      next.child.kill("SIGKILL");
      await next.exited;
    }
  }, 60_000);
});
