import { fromBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Instance } from "../../src/app.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { connect, type Sql } from "../../src/store/db.js";
import { freePort } from "../../src/store/embedded.js";
import { adminClient, failure } from "../helpers/admin-client.js";
import { QUIET_LOG, startTestInstance } from "../helpers/instance.js";
import { PREFIX } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

// Postgres (behind a proxy the test takes down, which is what a stopped server looks like to
// latchkey: connections reset, then refused) and Redis going away, seen through the real
// listeners: admin calls answer UNAVAILABLE / STORAGE_UNAVAILABLE (never INTERNAL), gRPC health
// and /readyz agree, and Redis down is degraded but ready.

async function healthStatus(address: string): Promise<string> {
  const Ctor = grpc.makeGenericClientConstructor(healthServiceDefinition, "Health");
  const client = new Ctor(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<string>((resolve, reject) => {
      const check = (client as unknown as Record<string, grpc.requestCallback<unknown>>).Check;
      if (check === undefined) throw new Error("no Check");
      (check as unknown as (...a: unknown[]) => void).call(
        client,
        { service: "" },
        (err: grpc.ServiceError | null, res: { status: string } | undefined) =>
          err === null ? resolve(res?.status ?? "") : reject(err),
      );
    });
  } finally {
    client.close();
  }
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function readyz(
  httpPort: number,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("Postgres unreachable", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TcpProxy;
  let sql: Sql;
  let verifier: LatchkeyVerifier;
  let instance: Instance;
  let bootstrap: string;
  let channel: grpc.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    bootstrap = (await bootstrapIfEmpty(db.sql, { orgId: "acme", prefix: PREFIX })) ?? "";
    const target = new URL(db.url);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const proxied = new URL(db.url);
    proxied.hostname = "127.0.0.1";
    proxied.port = String(proxy.port);
    sql = connect(proxied.toString(), { max: 4, connectTimeoutSeconds: 2 });
    verifier = createVerifier({ sql, tokenPrefix: PREFIX, auditMode: "denials" });
    instance = await startTestInstance(sql, verifier, { readinessIntervalMs: 100 });
    channel = new grpc.Client(`127.0.0.1:${instance.grpcPort}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    channel?.close();
    await proxy?.up().catch(() => {});
    await instance?.close();
    await verifier?.close();
    await sql?.end({ timeout: 2 });
    await proxy?.close();
    await db?.drop();
  });

  it("admin calls answer UNAVAILABLE on both listeners, health and /readyz say not serving, and all recovers", async () => {
    const grpcAt = `127.0.0.1:${instance.grpcPort}`;
    const admin = adminClient(channel, bootstrap);
    expect((await admin.listTokens({})).tokens).toHaveLength(1);
    await until("SERVING", async () => (await healthStatus(grpcAt)) === "SERVING");

    await proxy.down();
    await until("NOT_SERVING", async () => (await healthStatus(grpcAt)) === "NOT_SERVING");
    const notReady = await readyz(instance.httpPort);
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatchObject({
      ok: false,
      status: "not_ready",
      checks: { postgres: "unreachable" },
    });

    const viaGrpc = await failure(admin.listTokens({}));
    expect(viaGrpc.code).toBe(grpc.status.UNAVAILABLE);
    expect(viaGrpc.reason).toBe("STORAGE_UNAVAILABLE");

    const res = await fetch(
      `http://127.0.0.1:${instance.httpPort}/latchkey.v1.TokenAdminService/ListTokens`,
      {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${bootstrap}` },
        body: "{}",
      },
    );
    expect(res.status).toBe(503);
    const body = (await res.json()) as {
      code: string;
      message: string;
      details: { type: string; value: string }[];
    };
    expect(body.code).toBe("unavailable");
    // Which lookup meets the outage first depends on timing: the caller's authentication (its
    // local record is trusted for 1 s only, so a slow machine reloads it: "token storage") or
    // the call itself ("storage"). Both are the same UNAVAILABLE / STORAGE_UNAVAILABLE.
    expect(body.message).toMatch(/^(token )?storage is unavailable$/);
    const info = body.details.find((d) => d.type === "google.rpc.ErrorInfo");
    expect(info && fromBinary(ErrorInfoSchema, base64Decode(info.value)).reason).toBe(
      "STORAGE_UNAVAILABLE",
    );

    await proxy.up();
    await until("SERVING again", async () => (await healthStatus(grpcAt)) === "SERVING");
    expect((await readyz(instance.httpPort)).status).toBe(200);
    expect((await admin.listTokens({})).tokens).toHaveLength(1);
  }, 60_000);
});

describe("Redis unreachable", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let verifier: LatchkeyVerifier;
  let instance: Instance;

  beforeAll(async () => {
    db = await createTestDatabase();
    // Nothing listens there: Redis is configured and down.
    const redisUrl = `redis://127.0.0.1:${await freePort()}`;
    verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, redisUrl, log: QUIET_LOG });
    instance = await startTestInstance(db.sql, verifier, { redis: true, readinessIntervalMs: 100 });
  });

  afterAll(async () => {
    await instance?.close();
    await verifier?.close();
    await db?.drop();
  });

  it("is degraded but ready: /readyz 200, health SERVING, latchkey_redis_up 0", async () => {
    const ready = await readyz(instance.httpPort);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      ok: true,
      status: "degraded",
      checks: { postgres: "ok", redis: "unreachable" },
    });
    expect(await healthStatus(`127.0.0.1:${instance.grpcPort}`)).toBe("SERVING");
    const metrics = await (await fetch(`http://127.0.0.1:${instance.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^latchkey_redis_up 0$/m);
    expect(metrics).toMatch(/^latchkey_ready 1$/m);
  });
});
