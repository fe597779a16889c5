import { durationFromMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditDecision, TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import { type AdminClient, failure } from "../helpers/admin-client.js";
import { type AdminHarness, ORG_A, PREFIX, startAdminHarness } from "../helpers/admin-harness.js";
import { createTestDatabase } from "../helpers/postgres.js";

const DAY = 24 * 3600 * 1000;
const TOKEN_RE = /^lk_[ptce]_[0-9A-Za-z]{49}$/;

let h: AdminHarness;
let boot: AdminClient;
/** Org-wide admin of org A (a CI/CD token holding `*`, no team, no owner). */
let admin: AdminClient;
let adminId: string;

async function mint(
  client: AdminClient,
  init: Parameters<AdminClient["createToken"]>[0],
): Promise<{ id: string; secret: string; client: AdminClient }> {
  const res = await client.createToken({ name: "t", type: TokenType.CICD, ...init });
  const id = res.token?.id ?? "";
  return { id, secret: res.secret, client: h.client(res.secret) };
}

beforeAll(async () => {
  h = await startAdminHarness();
  boot = h.client(h.bootstrapSecret);
  const a = await mint(boot, { name: "org A admin", permissions: ["*"] });
  admin = a.client;
  adminId = a.id;
});

afterAll(async () => {
  await h?.close();
});

describe("CreateToken succeeds", () => {
  it("returns the token and its secret once, with derived fields", async () => {
    const res = await admin.createToken({
      name: "MacBook Pro - Development",
      type: TokenType.PERSONAL,
      ownerId: "user-1",
      permissions: ["deploy:read"],
      allowedCidrs: ["10.1.2.3", "10.0.0.0/8", "2001:db8::1/64"],
      metadata: { redaction_tier: "strict", region: "eu-west" },
      ttl: durationFromMs(30 * DAY),
    });
    expect(res.secret).toMatch(TOKEN_RE);
    expect(res.secret.startsWith("lk_p_")).toBe(true);
    const t = res.token;
    expect(t?.id).toMatch(/^tok_[0-9A-Z]{26}$/);
    expect(t?.orgId).toBe(ORG_A);
    expect(t?.ownerId).toBe("user-1");
    expect(t?.createdBy).toBe(adminId);
    expect(t?.state).toBe(TokenState.ACTIVE);
    expect(t?.permissions).toEqual(["deploy:read"]);
    expect(t?.allowedCidrs).toHaveLength(3);
    expect(t?.allowedCidrs).toContain("10.0.0.0/8");
    expect(t?.metadata).toEqual({ redaction_tier: "strict", region: "eu-west" });
    expect(t?.displayHint.endsWith(res.secret.slice(-4))).toBe(true);
    const exp = t?.expireTime === undefined ? 0 : timestampMs(t.expireTime);
    expect(Math.abs(exp - (Date.now() + 30 * DAY))).toBeLessThan(60_000);
    // The secret is not stored anywhere in plain text.
    const leaks = await h.sql`
      SELECT 1 FROM tokens WHERE display_hint = ${res.secret} OR name = ${res.secret}
      UNION ALL SELECT 1 FROM audit_events WHERE details::text LIKE ${`%${res.secret}%`}`;
    expect(leaks).toHaveLength(0);
  });

  it("expands a role and defaults an ephemeral token to one use", async () => {
    const res = await admin.createToken({
      name: "once",
      type: TokenType.EPHEMERAL,
      role: "viewer",
    });
    expect(res.token?.role).toBe("viewer");
    expect(res.token?.permissions.length).toBeGreaterThan(0);
    expect(res.token?.maxUses).toBe(1n);
    expect(res.token?.remainingUses).toBe(1n);
    const exp = res.token?.expireTime === undefined ? Infinity : timestampMs(res.token.expireTime);
    expect(exp - Date.now()).toBeLessThanOrEqual(DAY);
  });

  it("lets a new token act with exactly its grants", async () => {
    const viewer = await mint(admin, { permissions: ["tokens:read"] });
    const got = await viewer.client.getToken({ id: viewer.id });
    expect(got.token?.id).toBe(viewer.id);
    const f = await failure(
      viewer.client.createToken({ name: "x", type: TokenType.CICD, permissions: ["tokens:read"] }),
    );
    expect(f.code).toBe(status.PERMISSION_DENIED);
    expect(f.reason).toBe("PERMISSION_DENIED");
    expect(f.metadata.permission).toBe("tokens:create");
  });
});

describe("request_id retries create nothing new", () => {
  it("answers a repeated request_id with the first token and no secret", async () => {
    const before = await h.counts();
    const first = await admin.createToken({
      name: "retry",
      type: TokenType.CICD,
      permissions: ["a:b"],
      requestId: "req-1",
    });
    const again = await admin.createToken({
      name: "retry",
      type: TokenType.CICD,
      permissions: ["a:b"],
      requestId: "req-1",
    });
    expect(first.secret).toMatch(TOKEN_RE);
    expect(again.secret).toBe("");
    expect(again.token?.id).toBe(first.token?.id);
    const after = await h.counts();
    expect(after.tokens - before.tokens).toBe(1);
    expect(after.audit - before.audit).toBe(1);
  });

  it("creates one token when retries race", async () => {
    const before = await h.counts();
    const results = await Promise.all(
      Array.from({ length: 6 }, () =>
        admin.createToken({
          name: "race",
          type: TokenType.CICD,
          permissions: ["a:b"],
          requestId: "req-race",
        }),
      ),
    );
    expect(new Set(results.map((r) => r.token?.id)).size).toBe(1);
    expect(results.filter((r) => r.secret !== "")).toHaveLength(1);
    expect((await h.counts()).tokens - before.tokens).toBe(1);
  });

  it("refuses a request_id reused for a different token (ALREADY_EXISTS)", async () => {
    await admin.createToken({
      name: "one",
      type: TokenType.CICD,
      permissions: ["a:b"],
      requestId: "req-2",
    });
    const f = await failure(
      admin.createToken({
        name: "two",
        type: TokenType.CICD,
        permissions: ["a:b"],
        requestId: "req-2",
      }),
    );
    expect(f.code).toBe(status.ALREADY_EXISTS);
    expect(f.reason).toBe("REQUEST_ID_REUSED");
  });

  it("scopes request_id to its caller", async () => {
    const other = await mint(admin, { permissions: ["tokens:create", "a:b"] });
    const mine = await admin.createToken({
      name: "scoped",
      type: TokenType.CICD,
      permissions: ["a:b"],
      requestId: "req-3",
    });
    const theirs = await other.client.createToken({
      name: "scoped",
      type: TokenType.CICD,
      permissions: ["a:b"],
      requestId: "req-3",
    });
    expect(theirs.token?.id).not.toBe(mine.token?.id);
    expect(theirs.secret).not.toBe("");
  });
});

describe("GetToken and ListTokens succeed", () => {
  it("gets a token by id", async () => {
    const t = await mint(admin, { name: "get me", permissions: ["x:y"] });
    const res = await admin.getToken({ id: t.id });
    expect(res.token?.name).toBe("get me");
    expect(res.token?.state).toBe(TokenState.ACTIVE);
  });

  it("lists newest first with filters", async () => {
    const team = `team-${Date.now()}`;
    const a = await mint(admin, { type: TokenType.TEAM, teamId: team, permissions: ["x:y"] });
    const b = await mint(admin, { type: TokenType.TEAM, teamId: team, permissions: ["x:y"] });
    const c = await mint(admin, { type: TokenType.TEAM, teamId: team, permissions: ["x:y"] });
    await admin.revokeToken({ id: b.id, reason: "test" });
    const all = await admin.listTokens({ teamId: team });
    expect(all.tokens.map((t) => t.id)).toEqual([c.id, b.id, a.id]);
    const revoked = await admin.listTokens({ teamId: team, state: TokenState.REVOKED });
    expect(revoked.tokens.map((t) => t.id)).toEqual([b.id]);
    const active = await admin.listTokens({ teamId: team, state: TokenState.ACTIVE });
    expect(active.tokens.map((t) => t.id)).toEqual([c.id, a.id]);
    const typed = await admin.listTokens({ teamId: team, type: TokenType.PERSONAL });
    expect(typed.tokens).toHaveLength(0);
    // c acts once: it is no longer "never used".
    await c.client.getToken({ id: c.id }).catch(() => undefined);
    await h.counts(); // flushes usage
    await h.sql`UPDATE tokens SET last_used_time = now() WHERE id = ${c.id} AND last_used_time IS NULL`;
    const never = await admin.listTokens({ teamId: team, neverUsed: true });
    expect(never.tokens.map((t) => t.id)).toEqual([b.id, a.id]);
    const unused = await admin.listTokens({
      teamId: team,
      unusedSince: timestampFromMs(Date.now() - 3600_000),
    });
    expect(unused.tokens.map((t) => t.id)).toEqual([b.id, a.id]);
  });

  it("derives EXPIRED and EXHAUSTED at read time", async () => {
    const e = await mint(admin, { permissions: ["x:y"] });
    const x = await mint(admin, { permissions: ["x:y"], maxUses: 2n });
    await h.sql`UPDATE tokens SET expire_time = now() - interval '1 second' WHERE id = ${e.id}`;
    await h.sql`UPDATE tokens SET use_count = 2 WHERE id = ${x.id}`;
    expect((await admin.getToken({ id: e.id })).token?.state).toBe(TokenState.EXPIRED);
    const ex = (await admin.getToken({ id: x.id })).token;
    expect(ex?.state).toBe(TokenState.EXHAUSTED);
    expect(ex?.remainingUses).toBe(0n);
    const listed = await admin.listTokens({ state: TokenState.EXPIRED });
    expect(listed.tokens.map((t) => t.id)).toContain(e.id);
  });
});

describe("GetToken fails", () => {
  it("NOT_FOUND for an unknown id", async () => {
    const f = await failure(admin.getToken({ id: "tok_01J00000000000000000000000" }));
    expect(f.code).toBe(status.NOT_FOUND);
    expect(f.domain).toBe("latchkey.dev");
  });
});

describe("UpdateToken succeeds", () => {
  it("changes name, metadata, cidrs, shortens expiry and narrows permissions", async () => {
    const t = await mint(admin, {
      permissions: ["deploy:read", "deploy:write"],
      ttl: durationFromMs(10 * DAY),
    });
    const shorter = timestampFromMs(Date.now() + 2 * DAY);
    const res = await admin.updateToken({
      token: {
        id: t.id,
        name: "renamed",
        metadata: { tier: "gold" },
        allowedCidrs: ["192.168.1.0/24"],
        expireTime: shorter,
        permissions: ["deploy:read"],
      },
      updateMask: { paths: ["name", "metadata", "allowed_cidrs", "expire_time", "permissions"] },
      requestId: "upd-1",
    });
    expect(res.token?.name).toBe("renamed");
    expect(res.token?.metadata).toEqual({ tier: "gold" });
    expect(res.token?.allowedCidrs).toEqual(["192.168.1.0/24"]);
    expect(res.token?.permissions).toEqual(["deploy:read"]);
    expect(res.token?.expireTime === undefined ? 0 : timestampMs(res.token.expireTime)).toBe(
      timestampMs(shorter),
    );
    const audit = await admin.listAuditEvents({ tokenId: t.id, action: "token.update" });
    expect(audit.events).toHaveLength(1);
    expect(audit.events[0]?.requestId).toBe("upd-1");
    expect(audit.events[0]?.details?.fields).toEqual(
      expect.arrayContaining(["name", "metadata", "allowed_cidrs", "expire_time", "permissions"]),
    );
  });

  it("takes effect for verification at once (cidrs narrowed)", async () => {
    const t = await mint(admin, { permissions: ["tokens:read"] });
    await t.client.getToken({ id: t.id });
    await admin.updateToken({
      token: { id: t.id, allowedCidrs: ["10.9.9.9"] },
      updateMask: { paths: ["allowed_cidrs"] },
    });
    const f = await failure(t.client.getToken({ id: t.id }));
    expect(f.code).toBe(status.UNAUTHENTICATED);
    expect(f.reason).toBe("IP_NOT_ALLOWED");
  });
});

describe("UpdateToken fails", () => {
  it("INVALID_ARGUMENT when the expiry would grow", async () => {
    const t = await mint(admin, { permissions: ["x:y"], ttl: durationFromMs(DAY) });
    const f = await failure(
      admin.updateToken({
        token: { id: t.id, expireTime: timestampFromMs(Date.now() + 5 * DAY) },
        updateMask: { paths: ["expire_time"] },
      }),
    );
    expect(f.code).toBe(status.INVALID_ARGUMENT);
    expect(f.fields).toEqual(["token.expire_time"]);
  });

  it("INVALID_ARGUMENT when permissions would widen", async () => {
    const t = await mint(admin, { permissions: ["x:y"] });
    const f = await failure(
      admin.updateToken({
        token: { id: t.id, permissions: ["x:*"] },
        updateMask: { paths: ["permissions"] },
      }),
    );
    expect(f.code).toBe(status.INVALID_ARGUMENT);
    expect(f.fields).toEqual(["token.permissions"]);
  });

  it("FAILED_PRECONDITION on a revoked token", async () => {
    const t = await mint(admin, { permissions: ["x:y"] });
    await admin.revokeToken({ id: t.id });
    const f = await failure(
      admin.updateToken({ token: { id: t.id, name: "n" }, updateMask: { paths: ["name"] } }),
    );
    expect(f.code).toBe(status.FAILED_PRECONDITION);
    expect(f.reason).toBe("TOKEN_REVOKED");
  });

  it("NOT_FOUND for an unknown id", async () => {
    const f = await failure(
      admin.updateToken({
        token: { id: "tok_01J00000000000000000000000", name: "n" },
        updateMask: { paths: ["name"] },
      }),
    );
    expect(f.code).toBe(status.NOT_FOUND);
  });
});

describe("RevokeToken", () => {
  it("revokes at once: the token stops authenticating", async () => {
    const t = await mint(admin, { permissions: ["tokens:read"] });
    await t.client.getToken({ id: t.id });
    const res = await admin.revokeToken({ id: t.id, reason: "leaked", requestId: "rv-1" });
    expect(res.token?.state).toBe(TokenState.REVOKED);
    expect(res.token?.revokedBy).toBe(adminId);
    expect(res.token?.revokeReason).toBe("leaked");
    const f = await failure(t.client.getToken({ id: t.id }));
    expect(f.code).toBe(status.UNAUTHENTICATED);
    expect(f.reason).toBe("TOKEN_REVOKED");
  });

  it("FAILED_PRECONDITION when revoked twice", async () => {
    const t = await mint(admin, { permissions: ["x:y"] });
    await admin.revokeToken({ id: t.id });
    const before = await h.counts();
    const f = await failure(admin.revokeToken({ id: t.id }));
    expect(f.code).toBe(status.FAILED_PRECONDITION);
    expect(f.reason).toBe("ALREADY_REVOKED");
    expect(await h.counts()).toEqual(before);
  });

  it("NOT_FOUND for an unknown id", async () => {
    const f = await failure(admin.revokeToken({ id: "tok_01J00000000000000000000000" }));
    expect(f.code).toBe(status.NOT_FOUND);
  });
});

describe("BatchRevokeTokens", () => {
  it("revokes many ids in one go, in request order", async () => {
    const ts = await Promise.all([1, 2, 3].map(() => mint(admin, { permissions: ["x:y"] })));
    const ids = ts.map((t) => t.id);
    const res = await admin.batchRevokeTokens({ ids, reason: "cleanup" });
    expect(res.count).toBe(3);
    expect(res.tokens.map((t) => t.id)).toEqual(ids);
    expect(res.tokens.every((t) => t.state === TokenState.REVOKED)).toBe(true);
    const audit = await admin.listAuditEvents({ action: "token.batch_revoke" });
    expect(audit.events.filter((e) => ids.includes(e.tokenId))).toHaveLength(3);
  });

  it("NOT_FOUND and nothing revoked when one id is unknown", async () => {
    const t = await mint(admin, { permissions: ["x:y"] });
    const before = await h.counts();
    const f = await failure(
      admin.batchRevokeTokens({ ids: [t.id, "tok_01J00000000000000000000000"] }),
    );
    expect(f.code).toBe(status.NOT_FOUND);
    expect((await admin.getToken({ id: t.id })).token?.state).toBe(TokenState.ACTIVE);
    expect(await h.counts()).toEqual(before);
  });

  it("FAILED_PRECONDITION and nothing revoked when one is already revoked", async () => {
    const a = await mint(admin, { permissions: ["x:y"] });
    const b = await mint(admin, { permissions: ["x:y"] });
    await admin.revokeToken({ id: b.id });
    const f = await failure(admin.batchRevokeTokens({ ids: [a.id, b.id] }));
    expect(f.code).toBe(status.FAILED_PRECONDITION);
    expect(f.reason).toBe("ALREADY_REVOKED");
    expect((await admin.getToken({ id: a.id })).token?.state).toBe(TokenState.ACTIVE);
  });

  it("by filter: a dry run counts and changes nothing, then revokes", async () => {
    const team = `batch-${Date.now()}`;
    await Promise.all(
      [1, 2, 3, 4].map(() =>
        mint(admin, { type: TokenType.TEAM, teamId: team, permissions: ["x:y"] }),
      ),
    );
    const before = await h.counts();
    const dry = await admin.batchRevokeTokens({ filter: { teamId: team }, dryRun: true });
    expect(dry.count).toBe(4);
    expect(dry.tokens.every((t) => t.state === TokenState.ACTIVE)).toBe(true);
    expect(await h.counts()).toEqual(before);
    const real = await admin.batchRevokeTokens({ filter: { teamId: team }, reason: "team gone" });
    expect(real.count).toBe(4);
    const left = await admin.listTokens({ teamId: team, state: TokenState.ACTIVE });
    expect(left.tokens).toHaveLength(0);
  });
});

describe("BatchUpdateTokens", () => {
  it("sets and removes metadata keys on every id", async () => {
    const a = await mint(admin, { permissions: ["x:y"], metadata: { keep: "1", drop: "x" } });
    const b = await mint(admin, { permissions: ["x:y"] });
    const res = await admin.batchUpdateTokens({
      ids: [b.id, a.id],
      metadata: { redaction_tier: "strict", drop: "" },
    });
    expect(res.tokens.map((t) => t.id)).toEqual([b.id, a.id]);
    expect(res.tokens[1]?.metadata).toEqual({ keep: "1", redaction_tier: "strict" });
    expect(res.tokens[0]?.metadata).toEqual({ redaction_tier: "strict" });
  });

  it("NOT_FOUND and nothing changed when one id is unknown", async () => {
    const a = await mint(admin, { permissions: ["x:y"] });
    const f = await failure(
      admin.batchUpdateTokens({
        ids: [a.id, "tok_01J00000000000000000000000"],
        metadata: { k: "v" },
      }),
    );
    expect(f.code).toBe(status.NOT_FOUND);
    expect((await admin.getToken({ id: a.id })).token?.metadata).toEqual({});
  });

  it("FAILED_PRECONDITION when one token is revoked", async () => {
    const a = await mint(admin, { permissions: ["x:y"] });
    await admin.revokeToken({ id: a.id });
    const f = await failure(admin.batchUpdateTokens({ ids: [a.id], metadata: { k: "v" } }));
    expect(f.code).toBe(status.FAILED_PRECONDITION);
  });
});

describe("RotateToken", () => {
  it("issues a new secret with the same grants; the old one works during the grace period", async () => {
    const old = await mint(admin, {
      permissions: ["tokens:read"],
      metadata: { region: "eu" },
      ttl: durationFromMs(30 * DAY),
    });
    const res = await admin.rotateToken({ id: old.id, gracePeriod: durationFromMs(3600_000) });
    expect(res.secret).toMatch(TOKEN_RE);
    expect(res.token?.rotatedFrom).toBe(old.id);
    expect(res.previous?.replacedBy).toBe(res.token?.id);
    expect(res.token?.permissions).toEqual(["tokens:read"]);
    expect(res.token?.metadata).toEqual({ region: "eu" });
    const prevExp =
      res.previous?.expireTime === undefined ? 0 : timestampMs(res.previous.expireTime);
    expect(Math.abs(prevExp - (Date.now() + 3600_000))).toBeLessThan(60_000);
    const newExp = res.token?.expireTime === undefined ? 0 : timestampMs(res.token.expireTime);
    expect(Math.abs(newExp - (Date.now() + 30 * DAY))).toBeLessThan(60_000);
    await h.client(res.secret).getToken({ id: old.id });
    await old.client.getToken({ id: old.id });
  });

  it("grace 0 revokes the old token now", async () => {
    const old = await mint(admin, { permissions: ["tokens:read"] });
    const res = await admin.rotateToken({ id: old.id });
    expect(res.previous?.state).toBe(TokenState.REVOKED);
    const f = await failure(old.client.getToken({ id: old.id }));
    expect(f.reason).toBe("TOKEN_REVOKED");
  });

  it("a token may rotate itself without tokens:create", async () => {
    const self = await mint(admin, { permissions: ["tokens:read"] });
    const res = await self.client.rotateToken({ id: self.id, gracePeriod: durationFromMs(60_000) });
    expect(res.token?.rotatedFrom).toBe(self.id);
  });

  it("PERMISSION_DENIED rotating another token without tokens:create", async () => {
    const self = await mint(admin, { permissions: ["tokens:read"] });
    const other = await mint(admin, { permissions: ["x:y"] });
    const f = await failure(self.client.rotateToken({ id: other.id }));
    expect(f.code).toBe(status.PERMISSION_DENIED);
    expect(f.metadata.permission).toBe("tokens:create");
  });

  it("FAILED_PRECONDITION rotating an already rotated token", async () => {
    const old = await mint(admin, { permissions: ["x:y"] });
    await admin.rotateToken({ id: old.id, gracePeriod: durationFromMs(60_000) });
    const f = await failure(admin.rotateToken({ id: old.id }));
    expect(f.code).toBe(status.FAILED_PRECONDITION);
    expect(f.reason).toBe("ALREADY_ROTATED");
  });

  it("caps the new token's life at the type maximum", async () => {
    const old = await mint(admin, {
      type: TokenType.EPHEMERAL,
      permissions: ["x:y"],
      ttl: durationFromMs(DAY),
    });
    await h.sql`UPDATE tokens SET create_time = create_time - interval '10 days' WHERE id = ${old.id}`;
    // An ephemeral token has a use limit, so it rotates without a grace period.
    const res = await admin.rotateToken({ id: old.id });
    const exp = res.token?.expireTime === undefined ? Infinity : timestampMs(res.token.expireTime);
    expect(exp - Date.now()).toBeLessThanOrEqual(DAY);
  });

  it("NOT_FOUND for an unknown id", async () => {
    const f = await failure(admin.rotateToken({ id: "tok_01J00000000000000000000000" }));
    expect(f.code).toBe(status.NOT_FOUND);
  });
});

describe("ListAuditEvents", () => {
  it("records every change with actor, target, request id and client address", async () => {
    const t = await mint(admin, { permissions: ["x:y"], requestId: "audit-1" });
    await admin.revokeToken({ id: t.id, reason: "done", requestId: "audit-2" });
    const res = await admin.listAuditEvents({ tokenId: t.id });
    expect(res.events.map((e) => e.action)).toEqual(["token.revoke", "token.create"]);
    for (const e of res.events) {
      expect(e.actorId).toBe(adminId);
      expect(e.orgId).toBe(ORG_A);
      expect(e.decision).toBe(AuditDecision.ALLOW);
      expect(e.clientIp).toBe("127.0.0.1");
    }
    expect(res.events.map((e) => e.requestId)).toEqual(["audit-2", "audit-1"]);
    expect(res.events[0]?.details?.reason).toBe("done");
  });

  it("filters by actor, action and time", async () => {
    const t = await mint(admin, { permissions: ["x:y"] });
    const res = await admin.listAuditEvents({
      actorId: adminId,
      action: "token.create",
      startTime: timestampFromMs(Date.now() - 60_000),
      decision: AuditDecision.ALLOW,
    });
    expect(res.events.map((e) => e.tokenId)).toContain(t.id);
    expect(res.events.every((e) => e.action === "token.create")).toBe(true);
    const none = await admin.listAuditEvents({ endTime: timestampFromMs(Date.now() - 3600_000) });
    expect(none.events).toHaveLength(0);
  });
});

describe("authentication failures are UNAUTHENTICATED", () => {
  it("TOKEN_MISSING without a header", async () => {
    const f = await failure(h.client(undefined).listTokens({}));
    expect(f.code).toBe(status.UNAUTHENTICATED);
    expect(f.reason).toBe("TOKEN_MISSING");
  });

  it("TOKEN_MALFORMED for a non-token", async () => {
    const f = await failure(h.client("not-a-token").listTokens({}));
    expect(f.code).toBe(status.UNAUTHENTICATED);
    expect(f.reason).toBe("TOKEN_MALFORMED");
  });

  it("TOKEN_INVALID for a well-formed unknown token", async () => {
    const t = await mint(admin, { permissions: ["tokens:read"] });
    await h.sql`UPDATE tokens SET secret_hash = sha256('other'::bytea) WHERE id = ${t.id}`;
    const f = await failure(t.client.listTokens({}));
    expect(f.code).toBe(status.UNAUTHENTICATED);
    expect(f.reason).toBe("TOKEN_INVALID");
  });

  it("TOKEN_EXPIRED, TOKEN_EXHAUSTED and IP_NOT_ALLOWED", async () => {
    const e = await mint(admin, { permissions: ["tokens:read"] });
    await h.sql`UPDATE tokens SET expire_time = now() - interval '1 minute' WHERE id = ${e.id}`;
    expect((await failure(e.client.listTokens({}))).reason).toBe("TOKEN_EXPIRED");
    const x = await mint(admin, { permissions: ["tokens:read"], maxUses: 1n });
    await h.sql`UPDATE tokens SET use_count = 1 WHERE id = ${x.id}`;
    expect((await failure(x.client.listTokens({}))).reason).toBe("TOKEN_EXHAUSTED");
    const ip = await mint(admin, { permissions: ["tokens:read"], allowedCidrs: ["10.0.0.0/8"] });
    const f = await failure(ip.client.listTokens({}));
    expect(f.code).toBe(status.UNAUTHENTICATED);
    expect(f.reason).toBe("IP_NOT_ALLOWED");
  });

  it("audits failed authentications", async () => {
    await h.counts();
    const rows = await h.sql`SELECT 1 FROM audit_events WHERE action = 'auth.denied'`;
    expect(rows.length).toBeGreaterThan(0);
  });
});

describe("authorization: PERMISSION_DENIED before NOT_FOUND", () => {
  it("names the missing permission of every method", async () => {
    const none = await mint(admin, { permissions: ["other:thing"] });
    const unknown = "tok_01J00000000000000000000000";
    const cases: [() => Promise<unknown>, string][] = [
      [
        () =>
          none.client.createToken({
            name: "x",
            type: TokenType.CICD,
            permissions: ["other:thing"],
          }),
        "tokens:create",
      ],
      [() => none.client.getToken({ id: unknown }), "tokens:read"],
      [() => none.client.listTokens({}), "tokens:read"],
      [
        () =>
          none.client.updateToken({
            token: { id: unknown, name: "x" },
            updateMask: { paths: ["name"] },
          }),
        "tokens:update",
      ],
      [() => none.client.revokeToken({ id: unknown }), "tokens:revoke"],
      [() => none.client.batchRevokeTokens({ ids: [unknown] }), "tokens:revoke"],
      [
        () => none.client.batchUpdateTokens({ ids: [unknown], metadata: { a: "b" } }),
        "tokens:update",
      ],
      [() => none.client.rotateToken({ id: unknown }), "tokens:create"],
      [() => none.client.listAuditEvents({}), "audit:read"],
    ];
    for (const [call, permission] of cases) {
      const f = await failure(call());
      expect(f.code).toBe(status.PERMISSION_DENIED);
      expect(f.reason).toBe("PERMISSION_DENIED");
      expect(f.metadata.permission).toBe(permission);
    }
  });

  it("accepts resource:* wildcards", async () => {
    const t = await mint(admin, { permissions: ["tokens:*"] });
    await t.client.listTokens({});
  });
});

describe("no escalation", () => {
  it("a deploy:* caller may grant deploy:read but never * or billing:read", async () => {
    const d = await mint(admin, { permissions: ["deploy:*", "tokens:create", "tokens:update"] });
    const ok = await d.client.createToken({
      name: "ok",
      type: TokenType.CICD,
      permissions: ["deploy:read"],
    });
    expect(ok.token?.permissions).toEqual(["deploy:read"]);
    for (const permissions of [["*"], ["billing:read"], ["deploy:read", "tokens:revoke"]]) {
      const before = await h.counts();
      const f = await failure(
        d.client.createToken({ name: "no", type: TokenType.CICD, permissions }),
      );
      expect(f.code).toBe(status.PERMISSION_DENIED);
      expect(f.reason).toBe("PERMISSION_ESCALATION");
      expect(await h.counts()).toEqual(before);
    }
    const role = await failure(
      d.client.createToken({ name: "no", type: TokenType.CICD, role: "admin" }),
    );
    expect(role.code).toBe(status.PERMISSION_DENIED);
  });

  it("`*` does not grant platform:admin", async () => {
    const f = await failure(
      admin.createToken({ name: "no", type: TokenType.CICD, permissions: ["platform:admin"] }),
    );
    expect(f.code).toBe(status.PERMISSION_DENIED);
    expect(f.metadata.permission).toBe("platform:admin");
  });

  it("an update cannot grant what the caller lacks, nor can a rotation hand it over", async () => {
    const d = await mint(admin, { permissions: ["deploy:*", "tokens:update", "tokens:create"] });
    const wide = await mint(admin, { permissions: ["billing:read", "billing:write"] });
    const f = await failure(
      d.client.updateToken({
        token: { id: wide.id, permissions: ["billing:read"] },
        updateMask: { paths: ["permissions"] },
      }),
    );
    expect(f.code).toBe(status.PERMISSION_DENIED);
    const r = await failure(d.client.rotateToken({ id: wide.id }));
    expect(r.code).toBe(status.PERMISSION_DENIED);
    expect((await admin.getToken({ id: wide.id })).token?.state).toBe(TokenState.ACTIVE);
  });

  it("the lifetime caps hold for the platform caller too", async () => {
    const f = await failure(
      boot.createToken({
        name: "long",
        type: TokenType.CICD,
        permissions: ["x:y"],
        ttl: durationFromMs(91 * DAY),
      }),
    );
    expect(f.code).toBe(status.INVALID_ARGUMENT);
    expect(f.fields).toEqual(["ttl"]);
    expect(f.descriptions[0]).toContain("90-day maximum for CI/CD tokens");
  });
});

describe("bootstrapIfEmpty", () => {
  it("creates nothing once a token exists", async () => {
    expect(await bootstrapIfEmpty(h.sql, { orgId: ORG_A, prefix: PREFIX })).toBeUndefined();
  });

  it("creates exactly one platform token when instances race on an empty database", async () => {
    const db = await createTestDatabase();
    try {
      const secrets = await Promise.all(
        [1, 2, 3, 4].map(() => bootstrapIfEmpty(db.sql, { orgId: "fresh", prefix: PREFIX })),
      );
      expect(secrets.filter((s) => s !== undefined)).toHaveLength(1);
      const rows = await db.sql<{ permissions: string[] }[]>`SELECT permissions FROM tokens`;
      expect(rows).toHaveLength(1);
      expect(rows[0]?.permissions).toEqual(["*", "platform:admin"]);
    } finally {
      await db.drop();
    }
  });
});

describe("team and personal scopes", () => {
  it("a team-scoped caller manages only its team's tokens", async () => {
    const lead = await mint(admin, {
      type: TokenType.TEAM,
      teamId: "red",
      permissions: ["tokens:read", "tokens:create", "tokens:revoke", "x:y"],
    });
    const blue = await mint(admin, { type: TokenType.TEAM, teamId: "blue", permissions: ["x:y"] });
    const mine = await lead.client.createToken({
      name: "red ci",
      type: TokenType.CICD,
      permissions: ["x:y"],
    });
    expect(mine.token?.teamId).toBe("red");
    expect((await failure(lead.client.getToken({ id: blue.id }))).code).toBe(status.NOT_FOUND);
    expect((await failure(lead.client.revokeToken({ id: blue.id }))).code).toBe(status.NOT_FOUND);
    const listed = await lead.client.listTokens({ pageSize: 1000 });
    expect(listed.tokens.every((t) => t.teamId === "red")).toBe(true);
    const f = await failure(
      lead.client.createToken({
        name: "x",
        type: TokenType.TEAM,
        teamId: "blue",
        permissions: ["x:y"],
      }),
    );
    expect(f.code).toBe(status.PERMISSION_DENIED);
  });

  it("a personal caller manages only tokens it owns", async () => {
    const me = await mint(admin, {
      type: TokenType.PERSONAL,
      ownerId: "alice",
      permissions: ["tokens:read", "tokens:create", "x:y"],
    });
    const bob = await mint(admin, {
      type: TokenType.PERSONAL,
      ownerId: "bob",
      permissions: ["x:y"],
    });
    const mine = await me.client.createToken({
      name: "alice 2",
      type: TokenType.PERSONAL,
      permissions: ["x:y"],
    });
    expect(mine.token?.ownerId).toBe("alice");
    expect((await failure(me.client.getToken({ id: bob.id }))).code).toBe(status.NOT_FOUND);
    const f = await failure(
      me.client.createToken({
        name: "x",
        type: TokenType.PERSONAL,
        ownerId: "bob",
        permissions: ["x:y"],
      }),
    );
    expect(f.code).toBe(status.PERMISSION_DENIED);
  });
});
