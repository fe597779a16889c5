import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import {
  TokenVerifyService,
  VerifyCode,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { type AdminHarness, ORG_A, startAdminHarness } from "../helpers/admin-harness.js";
import { redisForTests, type TestRedis } from "../helpers/redis.js";

const ORG_B = "org-b";

let h: AdminHarness;
let redis: TestRedis | undefined;
let h2c: Http2SessionManager;

beforeAll(async () => {
  redis = await redisForTests();
  h = await startAdminHarness(redis === undefined ? {} : { redis });
  h2c = new Http2SessionManager(h.httpUrl);
});

afterAll(async () => {
  h2c?.abort();
  await h?.close();
  await redis?.stop();
});

/** Call options carrying `authorization: Bearer <secret>`. */
const bearer = (secret: string) => ({ headers: { authorization: `Bearer ${secret}` } });

/** Runs a call that must fail and returns its ConnectError. */
async function connectFailure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, it succeeded");
}

/** The three protocols connect-node serves, each over the HTTP version clients use it with. */
const transports: [string, () => Transport][] = [
  [
    "Connect JSON over HTTP/1.1",
    () => createConnectTransport({ baseUrl: h.httpUrl, httpVersion: "1.1" }),
  ],
  [
    "gRPC-Web over HTTP/1.1",
    () => createGrpcWebTransport({ baseUrl: h.httpUrl, httpVersion: "1.1" }),
  ],
  [
    "Connect binary over h2c",
    () =>
      createConnectTransport({
        baseUrl: h.httpUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        sessionManager: h2c,
      }),
  ],
];

describe.each(transports)("%s", (_label, makeTransport) => {
  let admin: ReturnType<typeof createClient<typeof TokenAdminService>>;
  let verify: ReturnType<typeof createClient<typeof TokenVerifyService>>;
  /** An org-wide admin of org A, created by the bootstrap (platform) token. */
  let adminSecret: string;

  beforeAll(async () => {
    const transport = makeTransport();
    admin = createClient(TokenAdminService, transport);
    verify = createClient(TokenVerifyService, transport);
    const res = await admin.createToken(
      { name: "http admin A", type: TokenType.CICD, permissions: ["*"] },
      bearer(h.bootstrapSecret),
    );
    adminSecret = res.secret;
  });

  it("creates, reads, verifies, revokes and then refuses a token", async () => {
    const created = await admin.createToken(
      {
        name: "over http",
        type: TokenType.CICD,
        permissions: ["deploy:run"],
        metadata: { via: "http" },
      },
      bearer(adminSecret),
    );
    const id = created.token?.id ?? "";
    expect(id).toMatch(/^tok_/);
    expect(created.secret).toMatch(/^lk_/);
    expect(created.token?.orgId).toBe(ORG_A);

    const got = await admin.getToken({ id }, bearer(adminSecret));
    expect(got.token?.name).toBe("over http");
    expect(got.token?.state).toBe(TokenState.ACTIVE);
    expect(got.token?.metadata).toEqual({ via: "http" });

    const valid = await verify.verifyToken({
      token: created.secret,
      requiredPermissions: ["deploy:run"],
    });
    expect(valid.code).toBe(VerifyCode.VALID);
    expect(valid.valid).toBe(true);
    expect(valid.tokenId).toBe(id);
    expect(valid.orgId).toBe(ORG_A);
    expect(valid.metadata).toEqual({ via: "http" });

    const revoked = await admin.revokeToken({ id, reason: "http test" }, bearer(adminSecret));
    expect(revoked.token?.state).toBe(TokenState.REVOKED);

    const after = await verify.verifyToken({ token: created.secret });
    expect(after.code).toBe(VerifyCode.REVOKED);
    expect(after.valid).toBe(false);
    expect(after.tokenId).toBe(id);
  });

  it("answers UNAUTHENTICATED with ErrorInfo TOKEN_MISSING without a bearer", async () => {
    const err = await connectFailure(admin.listTokens({}));
    expect(err.code).toBe(Code.Unauthenticated);
    const infos = err.findDetails(ErrorInfoSchema);
    expect(infos).toHaveLength(1);
    expect(infos[0]?.reason).toBe("TOKEN_MISSING");
    expect(infos[0]?.domain).toBe("latchkey.dev");
  });

  it("answers INVALID_ARGUMENT with a BadRequest naming `name` for an empty name", async () => {
    const before = await h.counts();
    const err = await connectFailure(
      admin.createToken(
        { name: "", type: TokenType.CICD, permissions: ["x:y"] },
        bearer(adminSecret),
      ),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.findDetails(ErrorInfoSchema)[0]?.domain).toBe("latchkey.dev");
    const fields = err.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
    expect(fields.map((f) => f.field)).toContain("name");
    expect((await h.counts()).tokens).toBe(before.tokens);
  });

  it("gives org B's admin NOT_FOUND for org A's token", async () => {
    const victim = await admin.createToken(
      { name: "org A only", type: TokenType.CICD, permissions: ["x:y"] },
      bearer(adminSecret),
    );
    const adminB = await admin.createToken(
      { name: "http admin B", type: TokenType.CICD, permissions: ["*"], orgId: ORG_B },
      bearer(h.bootstrapSecret),
    );
    expect(adminB.token?.orgId).toBe(ORG_B);
    const id = victim.token?.id ?? "";
    const get = await connectFailure(admin.getToken({ id }, bearer(adminB.secret)));
    expect(get.code).toBe(Code.NotFound);
    const revoke = await connectFailure(admin.revokeToken({ id }, bearer(adminB.secret)));
    expect(revoke.code).toBe(Code.NotFound);
    // Org A still sees it, untouched.
    const still = await admin.getToken({ id }, bearer(adminSecret));
    expect(still.token?.state).toBe(TokenState.ACTIVE);
  });
});

describe("plain fetch of Connect JSON (what the README shows)", () => {
  it("calls GetToken and VerifyToken with curl-like headers", async () => {
    const post = (path: string, body: unknown, secret?: string) =>
      fetch(`${h.httpUrl}/${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(secret === undefined ? {} : { authorization: `Bearer ${secret}` }),
        },
        body: JSON.stringify(body),
      });
    const created = await post(
      "latchkey.v1.TokenAdminService/CreateToken",
      { name: "via fetch", type: "TOKEN_TYPE_CICD", permissions: ["x:y"] },
      h.bootstrapSecret,
    );
    expect(created.status).toBe(200);
    const c = (await created.json()) as { token: { id: string }; secret: string };
    expect(c.secret).toMatch(/^lk_/);

    const got = await post("latchkey.v1.TokenAdminService/GetToken", { id: c.token.id }, c.secret);
    // The new token holds only x:y, not tokens:read: permission before existence.
    expect(got.status).toBe(403);
    const boot = await post(
      "latchkey.v1.TokenAdminService/GetToken",
      { id: c.token.id },
      h.bootstrapSecret,
    );
    expect(boot.status).toBe(200);
    expect(boot.headers.get("content-type")).toContain("application/json");
    expect(((await boot.json()) as { token: { name: string } }).token.name).toBe("via fetch");

    const v = await post("latchkey.v1.TokenVerifyService/VerifyToken", { token: c.secret });
    expect(v.status).toBe(200);
    expect(await v.json()).toMatchObject({
      valid: true,
      code: "VERIFY_CODE_VALID",
      tokenId: c.token.id,
    });

    const anon = await post("latchkey.v1.TokenAdminService/GetToken", { id: c.token.id });
    expect(anon.status).toBe(401);
    expect(await anon.json()).toMatchObject({ code: "unauthenticated" });
  });
});

describe("GET /readyz", () => {
  it("answers 200 with postgres ok", async () => {
    const res = await fetch(`${h.httpUrl}/readyz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; checks: Record<string, string> };
    expect(body.ok).toBe(true);
    expect(body.checks.postgres).toBe("ok");
    expect(body.checks.migrations).toBe("ok");
    if (redis !== undefined) expect(body.checks.redis).toBe("ok");
  });
});

describe("GET /metrics", () => {
  /** latchkey_verify_decisions_total by code label, as scraped. */
  async function decisions(): Promise<Record<string, number>> {
    const res = await fetch(`${h.httpUrl}/metrics`);
    expect(res.status).toBe(200);
    const out: Record<string, number> = {};
    for (const m of (await res.text()).matchAll(
      /^latchkey_verify_decisions_total\{code="(\w+)"\} (\d+)$/gm,
    )) {
      out[m[1] ?? ""] = Number(m[2]);
    }
    return out;
  }

  it("counts the verify decisions made through the listener", async () => {
    const transport = createConnectTransport({ baseUrl: h.httpUrl, httpVersion: "1.1" });
    const verify = createClient(TokenVerifyService, transport);
    const admin = createClient(TokenAdminService, transport);
    const t = await admin.createToken(
      { name: "metrics", type: TokenType.CICD, permissions: ["x:y"] },
      bearer(h.bootstrapSecret),
    );
    const r = await admin.createToken(
      { name: "metrics revoked", type: TokenType.CICD, permissions: ["x:y"] },
      bearer(h.bootstrapSecret),
    );
    await admin.revokeToken({ id: r.token?.id ?? "" }, bearer(h.bootstrapSecret));
    const before = await decisions();
    expect((await verify.verifyToken({ token: t.secret })).code).toBe(VerifyCode.VALID);
    expect((await verify.verifyToken({ token: t.secret })).code).toBe(VerifyCode.VALID);
    expect((await verify.verifyToken({ token: "not-a-token" })).code).toBe(VerifyCode.MALFORMED);
    expect((await verify.verifyToken({ token: r.secret })).code).toBe(VerifyCode.REVOKED);
    const after = await decisions();
    const delta = (code: string): number => (after[code] ?? 0) - (before[code] ?? 0);
    expect(delta("VALID")).toBe(2);
    expect(delta("MALFORMED")).toBe(1);
    expect(delta("REVOKED")).toBe(1);
  });
});
