import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/domain/token-format.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { adminClient, verifyClient } from "../helpers/admin-client.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { startTlsRedis, type TlsRedis } from "../helpers/redis.js";
import {
  bootstrapTokenOf,
  channelTo,
  getJson,
  killServers,
  type ServerProcess,
  startServer,
  waitForStatus,
} from "../helpers/server-process.js";
import { waitFor } from "../helpers/verify-harness.js";

// REDIS_URL=rediss:// against a TLS-only redis-server (`--port 0 --tls-port`, a password) whose
// certificate is signed by a private CA. latchkey runs as a process (helpers/server-process.ts)
// because the operator's way to trust that CA is Node's own NODE_EXTRA_CA_CERTS, which Node reads
// once at start-up. Nothing in the latchkey process turns certificate checks off: a server that
// the CA did not sign, or whose certificate does not name the host, is refused.

const DEADLINE_MS = 20_000;

const tlsRedis = await startTlsRedis();
afterAll(async () => {
  killServers();
  await tlsRedis?.stop();
});

/** A test-side client of `r`, trusting its CA explicitly (this process has no NODE_EXTRA_CA_CERTS). */
function testClient(r: TlsRedis): Redis {
  const client = new Redis(r.url, { tls: { ca: readFileSync(r.caFile) }, maxRetriesPerRequest: 1 });
  client.on("error", () => {});
  return client;
}

async function metric(server: ServerProcess, name: string): Promise<string | undefined> {
  const { body } = await getJson(`http://${server.httpAddr}/metrics`);
  return String(body)
    .split("\n")
    .find((l) => l.startsWith(`${name} `));
}

/** Polls `check` until it holds; fails naming `what` (and the server output) after the deadline. */
async function until(what: string, server: ServerProcess, check: () => Promise<boolean>) {
  const took = await waitFor(() => check().catch(() => false), DEADLINE_MS);
  expect(took, `${what}; output:\n${server.output()}`).toBeGreaterThanOrEqual(0);
}

describe.skipIf(tlsRedis === undefined)(
  "rediss:// with the private CA in NODE_EXTRA_CA_CERTS",
  () => {
    let db: Awaited<ReturnType<typeof createTestDatabase>>;
    let a: ServerProcess;
    let b: ServerProcess;
    let redis: TlsRedis;

    beforeAll(async () => {
      if (tlsRedis === undefined) return;
      redis = tlsRedis;
      db = await createTestDatabase();
      const env = { DATABASE_URL: db.url, NODE_EXTRA_CA_CERTS: redis.caFile };
      a = await startServer({ ...env, REDIS_URL: redis.url, LATCHKEY_BOOTSTRAP_ORG: "acme" });
      // The same server by IP and another scheme spelling: TLS still, the IP checked against the
      // certificate's IP:127.0.0.1 (before this test, VALKEYS:// went to a socket path).
      const byIp = `VALKEYS://:${redis.password}@127.0.0.1:${redis.port}`;
      b = await startServer({ ...env, REDIS_URL: byIp });
    });
    afterAll(async () => {
      for (const s of [a, b]) s?.child.kill("SIGKILL");
      await db?.drop();
    });

    it("both instances report Redis ok in /readyz and latchkey_redis_up 1", async () => {
      for (const server of [a, b]) {
        expect(await waitForStatus(`http://${server.httpAddr}/readyz`, 200)).toBeDefined();
        await until("readyz says redis ok", server, async () => {
          const { body } = await getJson(`http://${server.httpAddr}/readyz`);
          return (body as { checks?: { redis?: string } }).checks?.redis === "ok";
        });
        await until(
          "latchkey_redis_up 1",
          server,
          async () => (await metric(server, "latchkey_redis_up")) === "latchkey_redis_up 1",
        );
      }
    });

    it("records go through the TLS Redis, and a revocation on A is published there and refused on B", async () => {
      const channelA = channelTo(a);
      const channelB = channelTo(b);
      const client = testClient(redis);
      const listener = testClient(redis);
      try {
        const created = await adminClient(channelA, bootstrapTokenOf(a)).createToken({
          name: "tls-shared",
          type: TokenType.CICD,
          permissions: ["deploy:read"],
        });
        const id = created.token?.id ?? "";
        const onB = verifyClient(channelB);
        expect((await onB.verifyToken({ token: created.secret })).code).toBe(VerifyCode.VALID);
        // B cached the record in Redis: the only way in is TLS (the server has no plaintext port).
        const key = `latchkey:tok:{${hashToken(created.secret).toString("hex")}}`;
        await until("B's record in Redis", b, async () => (await client.exists(key)) === 1);

        const published: string[] = [];
        listener.on("message", (_channel: string, message: string) => published.push(message));
        await listener.subscribe("latchkey:changes");
        await adminClient(channelA, bootstrapTokenOf(a)).revokeToken({ id, reason: "tls test" });
        await until("A's invalidation on latchkey:changes", a, async () =>
          published.some((m) => m.includes(id)),
        );
        await until(
          "B refuses the revoked token",
          b,
          async () =>
            (await onB.verifyToken({ token: created.secret })).code === VerifyCode.REVOKED,
        );
      } finally {
        channelA.close();
        channelB.close();
        client.disconnect();
        listener.disconnect();
      }
    });
  },
);

describe.skipIf(tlsRedis === undefined)("rediss:// without the CA", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let server: ServerProcess;
  // Its own Redis, so the only clients it can have are this test's and this server's.
  let redis: TlsRedis | undefined;

  beforeAll(async () => {
    redis = await startTlsRedis();
    db = await createTestDatabase();
    server = await startServer({
      DATABASE_URL: db.url,
      REDIS_URL: redis?.url ?? "",
      LATCHKEY_BOOTSTRAP_ORG: "acme",
    });
  });
  afterAll(async () => {
    server?.child.kill("SIGKILL");
    await redis?.stop();
    await db?.drop();
  });

  it("is degraded, names the certificate problem without secrets, keeps verifying, never connects", async () => {
    if (redis === undefined) throw new Error("redis-server vanished");
    const readyz = `http://${server.httpAddr}/readyz`;
    await until("readyz says redis unreachable", server, async () => {
      const { status, body } = await getJson(readyz);
      const b = body as { status?: string; checks?: { redis?: string } };
      return status === 200 && b.status === "degraded" && b.checks?.redis === "unreachable";
    });
    expect(await metric(server, "latchkey_redis_up")).toBe("latchkey_redis_up 0");
    await until("a log line naming the certificate", server, async () =>
      server
        .output()
        .includes(
          "redis TLS: the server's certificate is not trusted (SELF_SIGNED_CERT_IN_CHAIN); for a private CA set NODE_EXTRA_CA_CERTS",
        ),
    );
    expect(server.output()).not.toContain(redis.password);

    const channel = channelTo(server);
    try {
      const verify = verifyClient(channel);
      const token = bootstrapTokenOf(server);
      expect((await verify.verifyToken({ token })).code).toBe(VerifyCode.VALID);
    } finally {
      channel.close();
    }
    // No session of latchkey's got through: apart from the test's own connection, Redis has
    // only connections that never sent a command (a TLS handshake in progress shows as cmd=NULL).
    const client = testClient(redis);
    try {
      const clients = String(await client.call("CLIENT", "LIST"))
        .trim()
        .split("\n");
      expect(clients.filter((l) => !l.includes(" cmd=NULL "))).toEqual([
        expect.stringContaining(" cmd=client|list "),
      ]);
    } finally {
      client.disconnect();
    }
    expect(server.child.exitCode).toBeNull();
    expect((await getJson(`http://${server.httpAddr}/healthz`)).status).toBe(200);
  });
});
