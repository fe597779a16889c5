import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
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
