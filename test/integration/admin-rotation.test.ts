import { durationFromMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import {
  type AdminClient,
  failure,
  type VerifyClient,
  verifyClient,
} from "../helpers/admin-client.js";
import { type AdminHarness, startAdminHarness } from "../helpers/admin-harness.js";

// Rotation can neither multiply a use budget nor extend a token's life, is idempotent on
// request_id, and a whole lineage can be revoked from any of its ids (issues #8.5, #13.3-4).

const HOUR = 3600_000;
const DAY = 24 * HOUR;

let h: AdminHarness;
/** Org-wide admin holding `*` (and so tokens:create). */
let admin: AdminClient;
let channel: grpc.Client;
let verify: VerifyClient;

async function mint(init: Parameters<AdminClient["createToken"]>[0]) {
  const res = await admin.createToken(init);
  return { id: res.token?.id ?? "", secret: res.secret, client: h.client(res.secret) };
}

async function codeOf(secret: string): Promise<VerifyCode> {
  return (await verify.verifyToken({ token: secret, requiredPermissions: ["deploy:read"] })).code;
}

beforeAll(async () => {
  h = await startAdminHarness();
  const boot = h.client(h.bootstrapSecret);
  const a = await boot.createToken({ name: "org admin", type: TokenType.CICD, permissions: ["*"] });
  admin = h.client(a.secret);
  channel = new grpc.Client(h.address, grpc.credentials.createInsecure());
  verify = verifyClient(channel);
});

afterAll(async () => {
  channel?.close();
  await h?.close();
});

describe("rotation never multiplies max_uses", () => {
  it("refuses a grace period for a use-limited token, naming grace_period, and changes nothing", async () => {
    const t = await mint({
      name: "three uses",
      type: TokenType.CICD,
      permissions: ["deploy:read"],
      maxUses: 3n,
    });
    const before = await h.counts();
    const f = await failure(admin.rotateToken({ id: t.id, gracePeriod: durationFromMs(HOUR) }));
    expect(f.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(f.fields).toEqual(["grace_period"]);
    expect(f.message).toContain("max_uses");
    expect(await h.counts()).toEqual(before);
    expect((await admin.getToken({ id: t.id })).token?.replacedBy).toBe("");
  });

  it("a max_uses 5 token rotating itself again and again gets at most 5 VALID uses in total", async () => {
    const first = await mint({
      name: "self rotating",
      type: TokenType.CICD,
      permissions: ["deploy:read"],
      maxUses: 5n,
    });
    const secrets = [first.secret];
    let current = first;
    let valid = 0;
    let rotations = 0;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2; i++) if ((await codeOf(current.secret)) === VerifyCode.VALID) valid++;
      try {
        // The rotation's own authentication spends one use of the old token.
        const next = await current.client.rotateToken({ id: current.id });
        rotations++;
        current = { id: next.token?.id ?? "", secret: next.secret, client: h.client(next.secret) };
        secrets.push(next.secret);
      } catch {
        // exhausted: the token can no longer authenticate its own rotation
      }
    }
    for (const s of secrets) if ((await codeOf(s)) === VerifyCode.VALID) valid++;
    expect(rotations).toBeGreaterThan(0);
    expect(valid + rotations).toBeLessThanOrEqual(5);
    const [spent] = await h.sql<{ n: string }[]>`
      SELECT sum(use_count)::text AS n FROM tokens WHERE lineage_id = ${first.id}`;
    expect(Number(spent?.n)).toBe(valid + rotations);
    expect(Number(spent?.n)).toBeLessThanOrEqual(5);
  });
});

describe("rotation never extends a token's life without tokens:create", () => {
  it("a self-rotating token whose expiry was cut keeps the cut expiry", async () => {
    const t = await mint({
      name: "ci job",
      type: TokenType.CICD,
      permissions: ["deploy:read"],
      ttl: durationFromMs(90 * DAY),
    });
    await h.sql`UPDATE tokens SET create_time = now() - interval '85 days' WHERE id = ${t.id}`;
    const cut = Date.now() + HOUR;
    await admin.updateToken({
      token: { id: t.id, expireTime: timestampFromMs(cut) },
      updateMask: { paths: ["expire_time"] },
    });
    const res = await t.client.rotateToken({ id: t.id });
    const newExpiry =
      res.token?.expireTime === undefined ? Infinity : timestampMs(res.token.expireTime);
    expect(newExpiry).toBeLessThanOrEqual(cut);
    // And the successor cannot stretch it either.
    const again = await h.client(res.secret).rotateToken({ id: res.token?.id ?? "" });
    const after =
      again.token?.expireTime === undefined ? Infinity : timestampMs(again.token.expireTime);
    expect(after).toBeLessThanOrEqual(cut);
  });

  it("a caller holding tokens:create and covering the token may renew the full lifetime", async () => {
    const t = await mint({
      name: "renewable",
      type: TokenType.CICD,
      permissions: ["deploy:read"],
      ttl: durationFromMs(90 * DAY),
    });
    await h.sql`UPDATE tokens SET create_time = now() - interval '85 days' WHERE id = ${t.id}`;
    const res = await admin.rotateToken({ id: t.id });
    const exp = res.token?.expireTime === undefined ? 0 : timestampMs(res.token.expireTime);
    expect(Math.abs(exp - (Date.now() + 90 * DAY))).toBeLessThan(HOUR);
  });
});

describe("RotateToken is idempotent on request_id", () => {
  it("a retry returns the first rotation without its secret and rotates nothing", async () => {
    const t = await mint({ name: "rotate me", type: TokenType.CICD, permissions: ["deploy:read"] });
    const first = await admin.rotateToken({
      id: t.id,
      gracePeriod: durationFromMs(HOUR),
      requestId: "rot-1",
    });
    expect(first.secret).not.toBe("");
    const before = await h.counts();
    const retry = await admin.rotateToken({
      id: t.id,
      gracePeriod: durationFromMs(HOUR),
      requestId: "rot-1",
    });
    expect(retry.secret).toBe("");
    expect(retry.token?.id).toBe(first.token?.id);
    expect(retry.previous?.id).toBe(t.id);
    expect(retry.previous?.replacedBy).toBe(first.token?.id);
    expect(await h.counts()).toEqual(before);
    expect(await codeOf(first.secret)).toBe(VerifyCode.VALID);
  });

  it("concurrent retries rotate once and all answer with the same token", async () => {
    const t = await mint({ name: "racy", type: TokenType.CICD, permissions: ["deploy:read"] });
    const answers = await Promise.all(
      [1, 2, 3].map(() => admin.rotateToken({ id: t.id, requestId: "rot-race" })),
    );
    expect(new Set(answers.map((a) => a.token?.id)).size).toBe(1);
    expect(answers.filter((a) => a.secret !== "")).toHaveLength(1);
    const [n] = await h.sql<{ n: string }[]>`
      SELECT count(*)::text AS n FROM tokens WHERE rotated_from = ${t.id}`;
    expect(n?.n).toBe("1");
  });

  it("ALREADY_EXISTS when the request_id was used for another token", async () => {
    const a = await mint({ name: "a", type: TokenType.CICD, permissions: ["deploy:read"] });
    const b = await mint({ name: "b", type: TokenType.CICD, permissions: ["deploy:read"] });
    await admin.rotateToken({ id: a.id, requestId: "rot-2" });
    const f = await failure(admin.rotateToken({ id: b.id, requestId: "rot-2" }));
    expect(f.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(f.reason).toBe("REQUEST_ID_REUSED");
    expect((await admin.getToken({ id: b.id })).token?.replacedBy).toBe("");
    // Nor does CreateToken answer with the rotation's successor.
    const c = await failure(
      admin.createToken({
        name: "a",
        type: TokenType.CICD,
        permissions: ["deploy:read"],
        requestId: "rot-2",
      }),
    );
    expect(c.reason).toBe("REQUEST_ID_REUSED");
  });
});

describe("RevokeToken with revoke_lineage", () => {
  it("revoking the leaked id ends the thief's fresh rotation too", async () => {
    const leaked = await mint({
      name: "leaked",
      type: TokenType.CICD,
      permissions: ["deploy:read"],
    });
    // The thief rotates with grace 0: the leaked id is revoked, a fresh id is born.
    const stolen = await leaked.client.rotateToken({ id: leaked.id });
    expect(stolen.token?.lineageId).toBe(leaked.id);
    expect(await codeOf(stolen.secret)).toBe(VerifyCode.VALID);
    const plain = await failure(admin.revokeToken({ id: leaked.id }));
    expect(plain.reason).toBe("ALREADY_REVOKED");

    const res = await admin.revokeToken({ id: leaked.id, revokeLineage: true, reason: "leak" });
    expect(res.token?.id).toBe(leaked.id);
    expect(res.lineageRevoked.map((t) => t.id)).toEqual([stolen.token?.id]);
    expect(await codeOf(stolen.secret)).toBe(VerifyCode.REVOKED);
  });

  it("revokes every still-valid token of a three-token lineage in one call, one audit row each", async () => {
    const a = await mint({ name: "gen a", type: TokenType.CICD, permissions: ["deploy:read"] });
    const b = await admin.rotateToken({ id: a.id, gracePeriod: durationFromMs(HOUR) });
    const c = await admin.rotateToken({ id: b.token?.id ?? "", gracePeriod: durationFromMs(HOUR) });
    expect(c.token?.lineageId).toBe(a.id);
    for (const s of [a.secret, b.secret, c.secret]) expect(await codeOf(s)).toBe(VerifyCode.VALID);

    const res = await admin.revokeToken({ id: c.token?.id ?? "", revokeLineage: true });
    expect(res.lineageRevoked.map((t) => t.id)).toEqual([a.id, b.token?.id, c.token?.id]);
    expect(res.lineageRevoked.every((t) => t.state === TokenState.REVOKED)).toBe(true);
    for (const s of [a.secret, b.secret, c.secret])
      expect(await codeOf(s)).toBe(VerifyCode.REVOKED);
    const rows = await h.sql<{ token_id: string }[]>`
      SELECT token_id FROM audit_events
      WHERE action = 'token.revoke' AND details->>'lineage_id' = ${a.id}`;
    expect(rows.map((r) => r.token_id).sort()).toEqual(
      [a.id, b.token?.id ?? "", c.token?.id ?? ""].sort(),
    );
    const again = await failure(admin.revokeToken({ id: a.id, revokeLineage: true }));
    expect(again.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it("NOT_FOUND for a token of another org", async () => {
    const boot = h.client(h.bootstrapSecret);
    const other = await boot.createToken({
      name: "org b admin",
      type: TokenType.CICD,
      permissions: ["*"],
      orgId: "org-b",
    });
    const f = await failure(
      h.client(other.secret).revokeToken({
        id: (await mint({ name: "x", type: TokenType.CICD, permissions: ["deploy:read"] })).id,
        revokeLineage: true,
      }),
    );
    expect(f.code).toBe(grpc.status.NOT_FOUND);
  });
});
