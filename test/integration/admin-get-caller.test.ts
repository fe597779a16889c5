import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { type AdminClient, failure } from "../helpers/admin-client.js";
import { type AdminHarness, ORG_A, startAdminHarness } from "../helpers/admin-harness.js";

let h: AdminHarness;
let boot: AdminClient;

beforeAll(async () => {
  h = await startAdminHarness();
  boot = h.client(h.bootstrapSecret);
});
afterAll(async () => {
  await h?.close();
});

describe("GetCaller", () => {
  it("describes the bootstrap token as a platform, org-wide caller", async () => {
    const me = await boot.getCaller({});
    expect(me.platform).toBe(true);
    expect(me.orgWide).toBe(true);
    expect(me.token?.orgId).toBe(ORG_A);
    expect(me.token?.permissions).toContain("platform:admin");
  });

  it("needs no permission and shows a team-scoped caller's scope", async () => {
    const created = await boot.createToken({
      name: "team reader",
      type: TokenType.TEAM,
      teamId: "blue",
      permissions: ["deploy:read"],
    });
    const me = await h.client(created.secret).getCaller({});
    expect(me.platform).toBe(false);
    expect(me.orgWide).toBe(false);
    expect(me.token?.id).toBe(created.token?.id);
    expect(me.token?.teamId).toBe("blue");
    expect(me.token?.permissions).toEqual(["deploy:read"]);
  });

  it("refuses a revoked caller token as UNAUTHENTICATED", async () => {
    const created = await boot.createToken({
      name: "soon revoked",
      type: TokenType.CICD,
      permissions: ["tokens:read"],
    });
    await boot.revokeToken({ id: created.token?.id ?? "", reason: "test" });
    const f = await failure(h.client(created.secret).getCaller({}));
    expect(f.code).toBe(status.UNAUTHENTICATED);
    expect(f.reason).toBe("TOKEN_REVOKED");
  });
});
