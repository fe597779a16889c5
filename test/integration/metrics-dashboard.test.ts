import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Instance, startInstance } from "../../src/app.js";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { PREFIX } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { redisForTests, type TestRedis } from "../helpers/redis.js";

const DASHBOARD = resolve(import.meta.dirname, "../../docs/grafana-dashboard.json");

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let redis: TestRedis | undefined;
let verifier: LatchkeyVerifier;
let instance: Instance;
let body = "";

interface Dashboard {
  panels: { id: number; title: string; targets: { refId: string; expr: string }[] }[];
}

beforeAll(async () => {
  db = await createTestDatabase();
  redis = await redisForTests();
  verifier = createVerifier({
    sql: db.sql,
    tokenPrefix: PREFIX,
    auditMode: "all",
    ...(redis === undefined ? {} : { redisUrl: redis.url, redisKeyPrefix: redis.prefix }),
  });
  const secret = await bootstrapIfEmpty(db.sql, { orgId: "org-a", prefix: PREFIX });
  const quiet = () => {};
  // As main.ts starts it: process metrics on, storage and Redis series wired.
  instance = await startInstance({
    sql: db.sql,
    verifier,
    tokenPrefix: PREFIX,
    log: { error: quiet, warn: quiet, info: quiet, debug: quiet },
    redis: redis !== undefined,
    grpcListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
  });
  // Some traffic, so that every histogram and summary has samples.
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${instance.grpcPort}` });
  const auth = { headers: { authorization: `Bearer ${secret ?? ""}` } };
  const admin = createClient(TokenAdminService, transport);
  const verify = createClient(TokenVerifyService, transport);
  await admin.listTokens({}, auth);
  await verify.verifyToken({ token: secret ?? "" });
  await verify.verifyToken({ token: "not-a-token" });
  await verifier.flush();
  // The readiness gauges are set by the first readiness check, which runs beside the first calls;
  // the Redis connection comes up in the background too (the calls above do not wait for it).
  const settled = (text: string): boolean =>
    /^latchkey_postgres_up 1$/m.test(text) &&
    (redis === undefined ||
      /^latchkey_redis_connection_up\{connection="commands"\} 1$/m.test(text));
  const deadline = Date.now() + 20_000;
  do {
    const res = await fetch(`http://127.0.0.1:${instance.httpPort}/metrics`);
    body = await res.text();
    if (settled(body)) break;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < deadline);
});

afterAll(async () => {
  await instance?.close();
  await verifier?.close();
  await redis?.stop();
  await db?.drop();
});

/** Every sample name served (`latchkey_rpc_duration_seconds_bucket`, …). */
function sampleNames(text: string): Set<string> {
  return new Set(
    text
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"))
      .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0] ?? l),
  );
}

/** Every metric family served, from its `# TYPE` line. */
function families(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1] ?? ""));
}

describe("/metrics names", () => {
  it("serves only latchkey_ series besides the process and nodejs defaults", () => {
    const names = [...sampleNames(body)];
    expect(names.some((n) => n.startsWith("process_"))).toBe(true);
    expect(names.filter((n) => !/^(latchkey|process|nodejs)_/.test(n))).toEqual([]);
    for (const f of [
      "latchkey_rpc_requests_total",
      "latchkey_rpc_duration_seconds",
      "latchkey_verify_decisions_total",
      "latchkey_cache_hits_total",
      "latchkey_audit_buffer_rows",
      "latchkey_audit_flush_duration_seconds",
      "latchkey_audit_dropped_total",
      "latchkey_usage_buffer_tokens",
      "latchkey_postgres_up",
    ]) {
      expect(families(body), f).toContain(f);
    }
    expect(body).toMatch(/^latchkey_postgres_up 1$/m);
    expect(body).toMatch(/^latchkey_verify_decisions_total\{code="MALFORMED"\} 1$/m);
    expect(body).toMatch(/^latchkey_audit_flush_duration_seconds_count [1-9]/m);
    if (redis !== undefined) {
      expect(body).toMatch(/^latchkey_redis_connection_up\{connection="commands"\} 1$/m);
    }
  });
});

describe("docs/grafana-dashboard.json", () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
  const referenced = new Set(
    exprs.flatMap((e) => e.match(/\b(?:latchkey|process|nodejs)_[a-z0-9_]+/g) ?? []),
  );

  it("is a dashboard whose panels have unique ids and a query each", () => {
    expect(dashboard.panels.length).toBeGreaterThan(5);
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) {
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      expect(new Set(p.targets.map((t) => t.refId)).size, p.title).toBe(p.targets.length);
    }
  });

  it("queries only names that /metrics serves", () => {
    const served = sampleNames(body);
    const redisNames = [...referenced].filter((n) => n.startsWith("latchkey_redis_"));
    const missing = [...referenced].filter(
      (n) => !served.has(n) && !(redis === undefined && redisNames.includes(n)),
    );
    expect(missing).toEqual([]);
  });

  it("shows every latchkey_ family that /metrics serves", () => {
    const shown = (family: string) =>
      [...referenced].some((n) => n === family || n.startsWith(`${family}_`));
    const unshown = [...families(body)].filter((f) => f.startsWith("latchkey_") && !shown(f));
    expect(unshown).toEqual([]);
  });
});
