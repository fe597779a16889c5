import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import {
  TokenVerifyService,
  VerifyCode,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { failure } from "../helpers/admin-client.js";
import { type LatchkeyServer, PREFIX, startLatchkeyServer } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";

const ADMIN = TokenAdminService.typeName;
const VERIFY = TokenVerifyService.typeName;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let verifier: LatchkeyVerifier;
let server: LatchkeyServer;
let bootstrap: string;

beforeAll(async () => {
  db = await createTestDatabase();
  verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, auditMode: "denials" });
  const secret = await bootstrapIfEmpty(db.sql, { orgId: "org-a", prefix: PREFIX });
  if (secret === undefined) throw new Error("bootstrap did not run on a fresh database");
  bootstrap = secret;
  const quiet = () => {};
  server = await startLatchkeyServer({
    sql: db.sql,
    verifier,
    log: { error: quiet, warn: quiet, info: quiet, debug: quiet },
  });
});

afterAll(async () => {
  await server?.close();
  await verifier?.close();
  await db?.drop();
});

/** Every sample of GET /metrics, keyed `name{label="value",…}` with labels sorted by name. */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${server.httpUrl}/metrics`);
  expect(res.status).toBe(200);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels = [...(m[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)]
      .map(([, k, v]) => `${k}="${v}"`)
      .sort();
    samples.set(`${m[1]}{${labels.join(",")}}`, Number(m[3]));
  }
  return samples;
}

/** The key {@link scrape} uses for one series. */
function key(name: string, labels: Record<string, string>): string {
  const parts = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return `${name}{${parts.join(",")}}`;
}

/** The calls both listeners get, as [service, method, code] of the series they must move. */
const CALLS: readonly [string, string, string][] = [
  [VERIFY, "VerifyToken", "OK"],
  [ADMIN, "ListTokens", "OK"],
  [ADMIN, "GetToken", "UNAUTHENTICATED"],
];

/** How far each series of {@link CALLS} moved between two scrapes. */
function deltas(before: Map<string, number>, after: Map<string, number>) {
  const moved = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  return CALLS.map(([service, method, code]) => {
    const sm = { service, method };
    return {
      call: `${method} ${code}`,
      requests: moved(key("latchkey_rpc_requests_total", { ...sm, code })),
      durations: moved(key("latchkey_rpc_duration_seconds_count", sm)),
      infBucket: moved(key("latchkey_rpc_duration_seconds_bucket", { ...sm, le: "+Inf" })),
      summed: moved(key("latchkey_rpc_duration_seconds_sum", sm)) > 0,
    };
  });
}

const ONE_EACH = CALLS.map(([, method, code]) => ({
  call: `${method} ${code}`,
  requests: 1,
  durations: 1,
  infBucket: 1,
  summed: true,
}));

describe("RPC metrics", () => {
  it("the gRPC listener counts and times each call", async () => {
    const before = await scrape();
    const verified = await server.verify().verifyToken({ token: "nope" });
    expect(verified.code).toBe(VerifyCode.MALFORMED);
    await server.admin(bootstrap).listTokens({});
    const denied = await failure(server.admin(undefined).getToken({ id: "tok_x" }));
    expect(denied.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(deltas(before, await scrape())).toEqual(ONE_EACH);
  });

  it("the HTTP listener records the same series for the same calls", async () => {
    const transport = createConnectTransport({ baseUrl: server.httpUrl, httpVersion: "1.1" });
    const before = await scrape();
    const verified = await createClient(TokenVerifyService, transport).verifyToken({
      token: "nope",
    });
    expect(verified.code).toBe(VerifyCode.MALFORMED);
    const admin = createClient(TokenAdminService, transport);
    await admin.listTokens({}, { headers: { authorization: `Bearer ${bootstrap}` } });
    const denied = await admin.getToken({ id: "tok_x" }).catch((e: unknown) => e);
    expect(ConnectError.from(denied).code).toBe(Code.Unauthenticated);
    expect(deltas(before, await scrape())).toEqual(ONE_EACH);
  });
});
