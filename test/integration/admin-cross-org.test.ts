import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { type AdminClient, failure } from "../helpers/admin-client.js";
import { type AdminHarness, ORG_A, startAdminHarness } from "../helpers/admin-harness.js";

const ORG_B = "org-b";

let h: AdminHarness;
let boot: AdminClient;
let adminA: AdminClient;
let adminB: AdminClient;
let adminBId: string;
/** A token of org A that org B keeps probing. */
let victim: string;

beforeAll(async () => {
  h = await startAdminHarness();
  boot = h.client(h.bootstrapSecret);
  const a = await boot.createToken({ name: "admin A", type: TokenType.CICD, permissions: ["*"] });
  const b = await boot.createToken({
    name: "admin B",
    type: TokenType.CICD,
    permissions: ["*"],
    orgId: ORG_B,
  });
  expect(b.token?.orgId).toBe(ORG_B);
  adminA = h.client(a.secret);
  adminB = h.client(b.secret);
  adminBId = b.token?.id ?? "";
  const v = await adminA.createToken({
    name: "org A secret sauce",
    type: TokenType.TEAM,
    teamId: "shared-team-name",
    permissions: ["x:y"],
    metadata: { owner: "a" },
  });
  victim = v.token?.id ?? "";
  await adminB.createToken({
    name: "org B token",
    type: TokenType.TEAM,
    teamId: "shared-team-name",
    permissions: ["x:y"],
  });
});

afterAll(async () => {
  await h?.close();
});

async function victimUnchanged(): Promise<void> {
  const t = (await adminA.getToken({ id: victim })).token;
  expect(t?.state).toBe(TokenState.ACTIVE);
  expect(t?.name).toBe("org A secret sauce");
  expect(t?.metadata).toEqual({ owner: "a" });
  expect(t?.replacedBy).toBe("");
}

describe("org B's admin gets NOT_FOUND for org A's token in every by-id method", () => {
  it("GetToken", async () => {
    expect((await failure(adminB.getToken({ id: victim }))).code).toBe(status.NOT_FOUND);
  });
  it("UpdateToken", async () => {
    const f = await failure(
      adminB.updateToken({ token: { id: victim, name: "pwned" }, updateMask: { paths: ["name"] } }),
    );
    expect(f.code).toBe(status.NOT_FOUND);
    await victimUnchanged();
  });
  it("RevokeToken", async () => {
    expect((await failure(adminB.revokeToken({ id: victim }))).code).toBe(status.NOT_FOUND);
    await victimUnchanged();
  });
  it("BatchRevokeTokens by ids", async () => {
    const f = await failure(adminB.batchRevokeTokens({ ids: [victim] }));
    expect(f.code).toBe(status.NOT_FOUND);
    const dry = await failure(adminB.batchRevokeTokens({ ids: [victim], dryRun: true }));
    expect(dry.code).toBe(status.NOT_FOUND);
    await victimUnchanged();
  });
  it("BatchUpdateTokens", async () => {
    const f = await failure(adminB.batchUpdateTokens({ ids: [victim], metadata: { owner: "b" } }));
    expect(f.code).toBe(status.NOT_FOUND);
    await victimUnchanged();
  });
  it("RotateToken", async () => {
    const f = await failure(adminB.rotateToken({ id: victim, gracePeriod: durationFromMs(1000) }));
    expect(f.code).toBe(status.NOT_FOUND);
    await victimUnchanged();
  });
});

describe("org B never sees org A in lists, filters or audit", () => {
  it("ListTokens shows only org B's tokens, even filtered by a shared team name", async () => {
    const all = await adminB.listTokens({ pageSize: 1000 });
    expect(all.tokens.length).toBeGreaterThan(0);
    expect(all.tokens.every((t) => t.orgId === ORG_B)).toBe(true);
    const team = await adminB.listTokens({ teamId: "shared-team-name" });
    expect(team.tokens.map((t) => t.orgId)).toEqual([ORG_B]);
  });

  it("BatchRevokeTokens by filter touches only org B (dry run)", async () => {
    const dry = await adminB.batchRevokeTokens({
      filter: { teamId: "shared-team-name" },
      dryRun: true,
    });
    expect(dry.count).toBe(1);
    expect(dry.tokens.every((t) => t.orgId === ORG_B)).toBe(true);
  });

  it("ListAuditEvents shows only org B's rows, even filtered by org A's token id", async () => {
    const all = await adminB.listAuditEvents({ pageSize: 1000 });
    expect(all.events.length).toBeGreaterThan(0);
    expect(all.events.every((e) => e.orgId === ORG_B)).toBe(true);
    const probe = await adminB.listAuditEvents({ tokenId: victim });
    expect(probe.events).toHaveLength(0);
  });
});

describe("naming another org without platform rights is PERMISSION_DENIED", () => {
  it("CreateToken, ListTokens, BatchRevokeTokens and ListAuditEvents with org_id", async () => {
    const before = await h.counts();
    const calls = [
      () =>
        adminB.createToken({ name: "x", type: TokenType.CICD, permissions: ["x:y"], orgId: ORG_A }),
      () => adminB.listTokens({ orgId: ORG_A }),
      () =>
        adminB.batchRevokeTokens({ orgId: ORG_A, filter: { type: TokenType.TEAM }, dryRun: true }),
      () => adminB.batchRevokeTokens({ orgId: ORG_A, filter: { type: TokenType.TEAM } }),
      () => adminB.listAuditEvents({ orgId: ORG_A }),
    ];
    for (const call of calls) {
      const f = await failure(call());
      expect(f.code).toBe(status.PERMISSION_DENIED);
      expect(f.reason).toBe("ORG_NOT_ALLOWED");
    }
    expect(await h.counts()).toEqual(before);
    await victimUnchanged();
  });
});

describe("a platform caller acts in any org", () => {
  it("lists, reads and audits org B by org_id and reaches its tokens by id", async () => {
    const list = await boot.listTokens({ orgId: ORG_B });
    expect(list.tokens.length).toBeGreaterThan(0);
    expect(list.tokens.every((t) => t.orgId === ORG_B)).toBe(true);
    const got = await boot.getToken({ id: adminBId });
    expect(got.token?.orgId).toBe(ORG_B);
    const audit = await boot.listAuditEvents({ orgId: ORG_B });
    expect(audit.events.every((e) => e.orgId === ORG_B)).toBe(true);
  });

  it("but org A's own admin (holding *) cannot grant platform:admin", async () => {
    const f = await failure(
      adminA.createToken({ name: "p", type: TokenType.CICD, permissions: ["platform:admin"] }),
    );
    expect(f.code).toBe(status.PERMISSION_DENIED);
  });
});
