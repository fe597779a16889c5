import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { PLATFORM_ADMIN } from "../../src/services/auth.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { type LatchkeyServer, PREFIX, startLatchkeyServer } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { insertToken, seedToken } from "../helpers/seed.js";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let verifier: LatchkeyVerifier;
let server: LatchkeyServer;
let introspector: string;

const quiet = { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} };

beforeAll(async () => {
  db = await createTestDatabase();
  verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, auditMode: "none" });
  server = await startLatchkeyServer({ sql: db.sql, verifier, log: quiet });
  introspector = (await insertToken(db.sql, { permissions: ["tokens:introspect"] })).secret;
});

afterAll(async () => {
  await server?.close();
  await verifier?.close();
  await db?.drop();
});

async function introspect(
  caller: string | undefined,
  form: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${server.httpUrl}/oauth2/introspect`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(caller === undefined ? {} : { authorization: `Bearer ${caller}` }),
    },
    body: new URLSearchParams(form).toString(),
  });
  return {
    status: res.status,
    body: (await res.json()) as Record<string, unknown>,
    headers: res.headers,
  };
}

describe("introspection: active token", () => {
  it("answers the RFC 7662 claims", async () => {
    const expire = new Date(Date.now() + 3_600_000);
    const t = await seedToken(db.sql, PREFIX, {
      name: "deploy bot",
      type: TokenType.CICD,
      orgId: "org-a",
      teamId: "team-9",
      ownerId: "svc-deploy",
      permissions: ["deploy:write", "artifacts:read"],
      metadata: { region: "eu-west" },
      expireTime: expire,
    });
    const r = await introspect(introspector, { token: t.secret });
    expect(r.status).toBe(200);
    expect(r.headers.get("cache-control")).toBe("no-store");
    expect(r.body).toMatchObject({
      active: true,
      scope: "deploy:write artifacts:read",
      client_id: t.id,
      sub: "svc-deploy",
      exp: Math.floor(expire.getTime() / 1000),
      token_type: "Bearer",
      org_id: "org-a",
      team_id: "team-9",
      latchkey_token_type: "cicd",
      metadata: { region: "eu-west" },
    });
    const iat = r.body.iat as number;
    expect(Math.abs(iat - Date.now() / 1000)).toBeLessThan(600);
  });
});

describe("introspection: inactive tokens are exactly {active:false}", () => {
  it("unknown, malformed, revoked and another org's token", async () => {
    const gone = await insertToken(db.sql);
    await db.sql`DELETE FROM tokens WHERE id = ${gone.id}`;
    const revoked = await insertToken(db.sql, { revokeTime: new Date() });
    const foreign = await insertToken(db.sql, { orgId: "org-b" });
    for (const token of [gone.secret, "lk_p_garbage", revoked.secret, foreign.secret]) {
      const r = await introspect(introspector, { token });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ active: false });
    }
  });

  it("a platform caller introspects another org's token", async () => {
    const platform = (
      await insertToken(db.sql, {
        orgId: "org-p",
        permissions: ["tokens:introspect", PLATFORM_ADMIN],
      })
    ).secret;
    const foreign = await insertToken(db.sql, { orgId: "org-b" });
    const r = await introspect(platform, { token: foreign.secret });
    expect(r.body).toMatchObject({ active: true, org_id: "org-b" });
  });
});

describe("introspection: the caller", () => {
  it("without a bearer token is 401", async () => {
    const t = await insertToken(db.sql);
    const r = await introspect(undefined, { token: t.secret });
    expect(r.status).toBe(401);
    expect(r.body).toEqual({ error: "invalid_token" });
    expect(r.headers.get("www-authenticate")).toContain("Bearer");
  });

  it("may authenticate with client credentials (Basic, the token as the password)", async () => {
    const t = await insertToken(db.sql);
    const res = await fetch(`${server.httpUrl}/oauth2/introspect`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`apisix:${introspector}`).toString("base64")}`,
      },
      body: new URLSearchParams({ token: t.secret }).toString(),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ active: true, client_id: t.id });
  });

  it("without tokens:introspect is 403", async () => {
    const reader = (await insertToken(db.sql, { permissions: ["tokens:read"] })).secret;
    const t = await insertToken(db.sql);
    const r = await introspect(reader, { token: t.secret });
    expect(r.status).toBe(403);
    expect(r.body).toEqual({ error: "insufficient_scope" });
  });

  it("a request without token is 400 invalid_request; GET is 405", async () => {
    const r = await introspect(introspector, {});
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_request");
    const get = await fetch(`${server.httpUrl}/oauth2/introspect`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
  });
});
