import type { MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AttributeContextSchema } from "../../src/gen/envoy/service/auth/v3/attribute_context_pb.js";
import {
  Authorization,
  type CheckResponse,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { failure, unaryClient } from "../helpers/admin-client.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { awayFromWindowEnd } from "../helpers/rate-window.js";
import {
  insertToken,
  startVerifyInstance,
  type VerifyInstance,
} from "../helpers/verify-harness.js";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let instance: VerifyInstance;
let channel: grpc.Client;
let envoy: ReturnType<typeof unaryClient<typeof Authorization>>;

beforeAll(async () => {
  db = await createTestDatabase();
  instance = await startVerifyInstance({ sql: db.sql, auditMode: "all" });
  channel = new grpc.Client(instance.address, grpc.credentials.createInsecure());
  // A grpc-js client built from the same generated envoy descriptors the server uses.
  envoy = unaryClient(Authorization, channel, undefined);
});

afterAll(async () => {
  channel?.close();
  await instance?.close();
  await db?.drop();
});

type Attributes = MessageInitShape<typeof AttributeContextSchema>;

/** A CheckRequest as Envoy's HTTP ext_authz filter sends it. */
function attributes(opts: {
  token?: string;
  source?: string;
  headers?: Record<string, string>;
  extensions?: Record<string, string>;
}): Attributes {
  return {
    source: {
      address: {
        address: {
          case: "socketAddress",
          value: {
            address: opts.source ?? "203.0.113.9",
            portSpecifier: { case: "portValue", value: 51234 },
          },
        },
      },
    },
    request: {
      http: {
        id: "req-1",
        method: "POST",
        path: "/deploy?x=1",
        host: "api.example.com",
        headers: {
          ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }),
          ...opts.headers,
        },
      },
    },
    contextExtensions: opts.extensions ?? {},
  };
}

const check = (a: Attributes): Promise<CheckResponse> => envoy.check({ attributes: a });

function denied(res: CheckResponse) {
  if (res.httpResponse.case !== "deniedResponse") throw new Error("expected a denied response");
  const d = res.httpResponse.value;
  return {
    rpcCode: res.status?.code,
    status: d.status?.code,
    body: JSON.parse(d.body) as { code: string },
    headers: Object.fromEntries(d.headers.map((h) => [h.header?.key, h.header?.value])),
  };
}

describe("ext_authz Check: allowed", () => {
  it("answers ok_response with identity and metadata headers, removing authorization and spoofed x-latchkey-*", async () => {
    const t = await insertToken(db.sql, {
      permissions: ["deploy:write"],
      metadata: { region: "eu-west", redaction_tier: "strict" },
    });
    const res = await check(
      attributes({
        token: t.secret,
        headers: { "x-latchkey-org-id": "forged", "x-latchkey-meta-admin": "yes" },
        extensions: { "latchkey.permissions": "deploy:write", "latchkey.org": "org-a" },
      }),
    );
    expect(res.status?.code).toBe(0);
    if (res.httpResponse.case !== "okResponse") throw new Error("expected ok_response");
    const ok = res.httpResponse.value;
    const set = Object.fromEntries(ok.headers.map((h) => [h.header?.key, h.header?.value]));
    expect(set).toEqual({
      "x-latchkey-token-id": t.id,
      "x-latchkey-org-id": "org-a",
      "x-latchkey-owner-id": "user-1",
      "x-latchkey-team-id": "team-1",
      "x-latchkey-meta-region": "eu-west",
      "x-latchkey-meta-redaction-tier": "strict",
    });
    expect(ok.headers.every((h) => h.appendAction === 2)).toBe(true); // OVERWRITE_IF_EXISTS_OR_ADD
    expect(ok.headersToRemove.sort()).toEqual(["authorization", "x-latchkey-meta-admin"]);
  });

  it("audits the check like a VerifyToken, with the client address and path", async () => {
    const t = await insertToken(db.sql, { allowedCidrs: ["203.0.113.0/24"] });
    const res = await check(attributes({ token: t.secret, source: "203.0.113.77" }));
    expect(res.status?.code).toBe(0);
    await instance.verifier.flush();
    const rows = await db.sql<
      { code: string; client_ip: string; path: string; request_id: string }[]
    >`
      SELECT code, client_ip, path, request_id FROM audit_events WHERE token_id = ${t.id}`;
    expect(rows).toEqual([
      { code: "VALID", client_ip: "203.0.113.77", path: "/deploy?x=1", request_id: "req-1" },
    ]);
  });
});

describe("ext_authz Check: 401", () => {
  it("missing token", async () => {
    const d = denied(await check(attributes({})));
    expect([d.rpcCode, d.status, d.body.code]).toEqual([16, 401, "MISSING"]);
    expect(d.headers["www-authenticate"]).toContain("Bearer");
    expect(d.headers["content-type"]).toBe("application/json");
  });

  it("malformed, unknown and revoked tokens", async () => {
    const malformed = denied(await check(attributes({ token: "lk_p_nope" })));
    expect([malformed.status, malformed.body.code]).toEqual([401, "MALFORMED"]);
    const t = await insertToken(db.sql);
    await instance.revoke(t.id);
    const revoked = denied(await check(attributes({ token: t.secret })));
    expect([revoked.status, revoked.body.code]).toEqual([401, "REVOKED"]);
    const gone = await insertToken(db.sql);
    await db.sql`DELETE FROM tokens WHERE id = ${gone.id}`;
    const unknown = denied(await check(attributes({ token: gone.secret })));
    expect([unknown.status, unknown.body.code]).toEqual([401, "NOT_FOUND"]);
  });

  it("expired token", async () => {
    const t = await insertToken(db.sql, { expireTime: new Date(Date.now() - 1_000) });
    const d = denied(await check(attributes({ token: t.secret })));
    expect([d.status, d.body.code]).toEqual([401, "EXPIRED"]);
  });
});

describe("ext_authz Check: 403", () => {
  it("client address outside the allowed IPs", async () => {
    const t = await insertToken(db.sql, { allowedCidrs: ["10.0.0.0/8"] });
    const d = denied(await check(attributes({ token: t.secret, source: "203.0.113.9" })));
    expect([d.rpcCode, d.status, d.body.code]).toEqual([7, 403, "IP_NOT_ALLOWED"]);
  });

  it("x-forwarded-for is believed only behind a trusted proxy", async () => {
    const t = await insertToken(db.sql, { allowedCidrs: ["10.0.0.0/8"] });
    const viaProxy = await check(
      attributes({
        token: t.secret,
        source: "127.0.0.1",
        headers: { "x-forwarded-for": "10.1.2.3" },
      }),
    );
    expect(viaProxy.status?.code).toBe(0);
    const spoofed = denied(
      await check(
        attributes({
          token: t.secret,
          source: "203.0.113.9",
          headers: { "x-forwarded-for": "10.1.2.3" },
        }),
      ),
    );
    expect(spoofed.body.code).toBe("IP_NOT_ALLOWED");
  });

  it("wrong org and missing permission", async () => {
    const t = await insertToken(db.sql, { permissions: ["deploy:read"] });
    const org = denied(
      await check(attributes({ token: t.secret, extensions: { "latchkey.org": "org-b" } })),
    );
    expect([org.status, org.body.code]).toEqual([403, "WRONG_ORG"]);
    const perm = denied(
      await check(
        attributes({
          token: t.secret,
          extensions: { "latchkey.permissions": "deploy:read, deploy:write" },
        }),
      ),
    );
    expect([perm.status, perm.body.code]).toEqual([403, "INSUFFICIENT_PERMISSIONS"]);
  });
});

describe("ext_authz Check: 429", () => {
  it("rate limited, with retry-after", async () => {
    const t = await insertToken(db.sql, {
      rateLimits: [{ name: "burst", limit: 1, window_ms: 60_000 }],
    });
    await awayFromWindowEnd(60_000); // both calls in one minute window
    expect((await check(attributes({ token: t.secret }))).status?.code).toBe(0);
    const d = denied(await check(attributes({ token: t.secret })));
    expect([d.rpcCode, d.status, d.body.code]).toEqual([8, 429, "RATE_LIMITED"]);
    expect(Number(d.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  });

  it("uses exhausted", async () => {
    const t = await insertToken(db.sql, { maxUses: 1 });
    expect((await check(attributes({ token: t.secret }))).status?.code).toBe(0);
    const d = denied(await check(attributes({ token: t.secret })));
    expect([d.status, d.body.code]).toEqual([429, "USAGE_EXCEEDED"]);
  });
});

describe("ext_authz Check: cannot decide", () => {
  it("a bad latchkey.permissions extension is a gRPC INVALID_ARGUMENT, never an allow", async () => {
    const t = await insertToken(db.sql);
    const f = await failure(
      check(
        attributes({ token: t.secret, extensions: { "latchkey.permissions": "Not A Permission" } }),
      ),
    );
    expect(f.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(f.fields).toEqual(['attributes.context_extensions["latchkey.permissions"][0]']);
  });
});
