import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/domain/token-format.js";
import { TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { TokenVerifyService } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { type AdminClient, failure } from "../helpers/admin-client.js";
import { type AdminHarness, startAdminHarness } from "../helpers/admin-harness.js";

// Regression tests for defects a security review found (one describe per defect).

let h: AdminHarness;
let admin: AdminClient;

beforeAll(async () => {
  h = await startAdminHarness();
  const boot = h.client(h.bootstrapSecret);
  const res = await boot.createToken({
    name: "org admin",
    type: TokenType.CICD,
    permissions: ["*"],
  });
  admin = h.client(res.secret);
});

afterAll(async () => {
  await h?.close();
});

describe("a token rotating itself never refills its use limit", () => {
  it("gives the new token only the uses the old one had left", async () => {
    const res = await admin.createToken({
      name: "limited",
      type: TokenType.TEAM,
      teamId: "ops",
      permissions: ["tokens:read"],
      maxUses: 3n,
      ttl: durationFromMs(3_600_000),
    });
    const id = res.token?.id ?? "";
    const self = h.client(res.secret);
    await self.getToken({ id }); // one use
    const rotated = await self.rotateToken({ id, gracePeriod: durationFromMs(0) });
    // The GetToken and the RotateToken's own authentication each used one of the 3 uses.
    expect(rotated.token?.maxUses).toBe(1n);
    expect(rotated.token?.remainingUses).toBe(1n);
  });
});

describe("holding * does not lift a team scope", () => {
  it("a team token with * gets NOT_FOUND for another team's token", async () => {
    const payments = await admin.createToken({
      name: "payments admin",
      type: TokenType.TEAM,
      teamId: "payments",
      permissions: ["*"],
    });
    const infra = await admin.createToken({
      name: "infra deploy",
      type: TokenType.TEAM,
      teamId: "infra",
      permissions: ["deploy:read"],
    });
    const scoped = h.client(payments.secret);
    const got = await failure(scoped.getToken({ id: infra.token?.id ?? "" }));
    expect(got.code).toBe(status.NOT_FOUND);
    const revoke = await failure(scoped.revokeToken({ id: infra.token?.id ?? "" }));
    expect(revoke.code).toBe(status.NOT_FOUND);
    const listed = await scoped.listTokens({});
    expect(listed.tokens.every((t) => t.teamId === "payments")).toBe(true);
  });
});

describe("an unauthenticated verification cannot write into an org's audit trail", () => {
  it("records a malformed token under no org, whatever org_id the request names", async () => {
    const verify = createClient(
      TokenVerifyService,
      createConnectTransport({ baseUrl: h.httpUrl, httpVersion: "1.1" }),
    );
    const res = await verify.verifyToken({
      token: "garbage",
      orgId: "victim-org",
      method: "DELETE",
      path: "/fake/admin/action",
    });
    expect(res.valid).toBe(false);
    await h.counts(); // flushes the audit buffer
    const rows = await h.sql<{ n: string }[]>`
      SELECT count(*)::text AS n FROM audit_events WHERE org_id = 'victim-org'`;
    expect(rows[0]?.n).toBe("0");
    const fake = await h.sql<{ org_id: string }[]>`
      SELECT org_id FROM audit_events WHERE path = '/fake/admin/action'`;
    expect(fake.map((r) => r.org_id)).toEqual([""]);
  });
});

describe("a caller holding only tokens:update cannot weaken a stronger token", () => {
  it("PERMISSION_DENIED for UpdateToken and BatchUpdateTokens on a token it does not cover; nothing changed", async () => {
    const strong = await admin.createToken({
      name: "payments gateway",
      type: TokenType.CICD,
      permissions: ["payments:*"],
      allowedCidrs: ["10.0.0.0/8"],
      metadata: { redaction_tier: "strict" },
    });
    const id = strong.token?.id ?? "";
    const updater = await admin.createToken({
      name: "updater",
      type: TokenType.CICD,
      permissions: ["tokens:update", "tokens:read"],
    });
    const weak = h.client(updater.secret);
    const before = await h.counts();
    const clear = await failure(
      weak.updateToken({
        token: { id, allowedCidrs: [] },
        updateMask: { paths: ["allowed_cidrs"] },
      }),
    );
    expect(clear.code).toBe(status.PERMISSION_DENIED);
    expect(clear.reason).toBe("TOKEN_NOT_COVERED");
    expect(clear.metadata.permission).toBe("payments:*");
    const meta = await failure(
      weak.updateToken({
        token: { id, metadata: { redaction_tier: "none" } },
        updateMask: { paths: ["metadata"] },
      }),
    );
    expect(meta.code).toBe(status.PERMISSION_DENIED);
    const batch = await failure(
      weak.batchUpdateTokens({ ids: [id], metadata: { redaction_tier: "none" } }),
    );
    expect(batch.code).toBe(status.PERMISSION_DENIED);
    expect(batch.metadata.token_id).toBe(id);
    expect(await h.counts()).toEqual(before);
    const now = (await admin.getToken({ id })).token;
    expect(now?.allowedCidrs).toEqual(["10.0.0.0/8"]);
    expect(now?.metadata).toEqual({ redaction_tier: "strict" });
  });

  it("allowed_cidrs: anyone who may update narrows; only an org-wide covering caller widens or clears", async () => {
    const target = await admin.createToken({
      name: "ops deploy",
      type: TokenType.TEAM,
      teamId: "ops",
      permissions: ["deploy:read"],
      allowedCidrs: ["10.0.0.0/8"],
    });
    const id = target.token?.id ?? "";
    const lead = await admin.createToken({
      name: "ops lead",
      type: TokenType.TEAM,
      teamId: "ops",
      permissions: ["tokens:update", "deploy:read"],
    });
    const team = h.client(lead.secret);
    const set = (cidrs: string[], client = team) =>
      client.updateToken({
        token: { id, allowedCidrs: cidrs },
        updateMask: { paths: ["allowed_cidrs"] },
      });
    const narrowed = await set(["10.1.0.0/16", "10.2.3.4"]);
    expect(narrowed.token?.allowedCidrs).toEqual(["10.1.0.0/16", "10.2.3.4/32"]);
    for (const wider of [["10.0.0.0/8"], ["0.0.0.0/0"], ["10.1.0.0/16", "192.168.0.0/16"], []]) {
      const f = await failure(set(wider));
      expect(f.code).toBe(status.PERMISSION_DENIED);
      expect(f.reason).toBe("CIDR_WIDENING_DENIED");
    }
    expect((await admin.getToken({ id })).token?.allowedCidrs).toEqual([
      "10.1.0.0/16",
      "10.2.3.4/32",
    ]);
    const cleared = await set([], admin);
    expect(cleared.token?.allowedCidrs).toEqual([]);
  });
});

describe("platform tokens are out of a tenant's reach", () => {
  it("an org-wide * caller of the bootstrap org can neither see nor change the bootstrap token", async () => {
    const boot = h.client(h.bootstrapSecret);
    const bootId = (await boot.getCaller({})).token?.id ?? "";
    expect(bootId).not.toBe("");
    const before = await h.counts();
    const calls: [string, () => Promise<unknown>][] = [
      ["GetToken", () => admin.getToken({ id: bootId })],
      [
        "UpdateToken",
        () =>
          admin.updateToken({
            token: { id: bootId, name: "mine" },
            updateMask: { paths: ["name"] },
          }),
      ],
      ["RevokeToken", () => admin.revokeToken({ id: bootId })],
      ["RevokeToken lineage", () => admin.revokeToken({ id: bootId, revokeLineage: true })],
      ["RotateToken", () => admin.rotateToken({ id: bootId })],
      ["BatchRevokeTokens", () => admin.batchRevokeTokens({ ids: [bootId] })],
      ["BatchRevokeTokens dry run", () => admin.batchRevokeTokens({ ids: [bootId], dryRun: true })],
      ["BatchUpdateTokens", () => admin.batchUpdateTokens({ ids: [bootId], metadata: { a: "b" } })],
    ];
    for (const [label, call] of calls) {
      const f = await failure(call());
      expect(f.code, label).toBe(status.NOT_FOUND);
    }
    const listed = await admin.listTokens({ pageSize: 1000 });
    expect(listed.tokens.map((t) => t.id)).not.toContain(bootId);
    const filtered = await admin.batchRevokeTokens({
      filter: { teamId: "platform" },
      dryRun: true,
    });
    expect(filtered.count).toBe(0);
    const revokedByFilter = await admin.batchRevokeTokens({ filter: { teamId: "platform" } });
    expect(revokedByFilter.count).toBe(0);
    const audit = await admin.listAuditEvents({ tokenId: bootId });
    expect(audit.events).toHaveLength(0);
    const all = await admin.listAuditEvents({ pageSize: 1000 });
    expect(all.events.some((e) => e.tokenId === bootId)).toBe(false);
    // The filter revocation above wrote its (empty) summary row, and nothing else.
    expect((await h.counts()).tokens).toBe(before.tokens);
    // The platform token itself is untouched and still works.
    const still = await boot.getToken({ id: bootId });
    expect(still.token?.state).toBe(TokenState.ACTIVE);
    expect(still.token?.name).toBe("bootstrap platform admin");
  });
});

describe("a token-shaped x-request-id is scrubbed before it is stored", () => {
  it("stores [redacted] instead of the token, for changes and for refused authentications", async () => {
    const leaked = generateToken("lk", TokenType.PERSONAL);
    const res = await admin.createToken(
      { name: "scrub me", type: TokenType.CICD, permissions: ["deploy:read"] },
      { "x-request-id": `trace-${leaked}` },
    );
    const weak = h.client(res.secret);
    await failure(weak.listTokens({}, { "x-request-id": `again-${leaked}` }));
    await h.counts(); // flushes the verifier's audit buffer
    const rows = await h.sql<{ request_id: string }[]>`
      SELECT request_id FROM audit_events WHERE request_id LIKE 'trace-%' OR request_id LIKE 'again-%'`;
    expect(rows.map((r) => r.request_id).sort()).toEqual(["again-[redacted]", "trace-[redacted]"]);
    const leaks = await h.sql`
      SELECT 1 FROM audit_events WHERE request_id LIKE ${`%${leaked.slice(5)}%`}
      UNION ALL SELECT 1 FROM tokens WHERE request_id LIKE ${`%${leaked.slice(5)}%`}`;
    expect(leaks).toHaveLength(0);
  });
});
