import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_LISTED_REVOKED } from "../../src/domain/admin-rules.js";
import { TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { type AdminClient, failure } from "../helpers/admin-client.js";
import { type AdminHarness, ORG_A, PREFIX, startAdminHarness } from "../helpers/admin-harness.js";
import { seedTokens } from "../helpers/seed.js";

// BatchRevokeTokens by filter over more tokens than one response lists: bounded transactions,
// the count and the first MAX_LISTED_REVOKED tokens in the answer, and an audit trail that
// holds one summary row (count, filter) and one row per token.

const SEEDED = 2_500;
const TEAM = "bulk";

let h: AdminHarness;
let admin: AdminClient;
let adminId: string;
let seeded: string[];

beforeAll(async () => {
  h = await startAdminHarness();
  const boot = h.client(h.bootstrapSecret);
  const a = await boot.createToken({ name: "org admin", type: TokenType.CICD, permissions: ["*"] });
  admin = h.client(a.secret);
  adminId = a.token?.id ?? "";
  const specs = Array.from({ length: SEEDED }, (_, i) => ({
    name: `bulk ${i}`,
    type: TokenType.TEAM,
    orgId: ORG_A,
    teamId: TEAM,
    permissions: ["deploy:read"],
    expireTime: new Date(Date.now() + 86_400_000),
  }));
  seeded = (await seedTokens(h.sql, PREFIX, specs)).map((t) => t.id);
}, 60_000);

afterAll(async () => {
  await h?.close();
});

describe("BatchRevokeTokens by filter over 2,500 tokens", () => {
  it("a dry run counts every match and lists only the first 100", async () => {
    const dry = await admin.batchRevokeTokens({ filter: { teamId: TEAM }, dryRun: true });
    expect(dry.count).toBe(SEEDED);
    expect(dry.tokens).toHaveLength(MAX_LISTED_REVOKED);
    expect(dry.tokens.every((t) => t.state === TokenState.ACTIVE)).toBe(true);
  });

  it("revokes all of them, answers with the count and 100 tokens, audits once per batch and per token", async () => {
    const bystander = await admin.createToken({
      name: "other team",
      type: TokenType.TEAM,
      teamId: "other",
      permissions: ["deploy:read"],
    });
    const res = await admin.batchRevokeTokens({
      filter: { teamId: TEAM },
      reason: "team dissolved",
      requestId: "bulk-1",
    });
    expect(res.count).toBe(SEEDED);
    expect(res.tokens).toHaveLength(MAX_LISTED_REVOKED);
    // Newest first: the last seeded ids come first.
    const newest = [...seeded].sort().reverse().slice(0, MAX_LISTED_REVOKED);
    expect(res.tokens.map((t) => t.id)).toEqual(newest);
    expect(res.tokens.every((t) => t.state === TokenState.REVOKED)).toBe(true);

    const [left] = await h.sql<{ n: string }[]>`
      SELECT count(*)::text AS n FROM tokens WHERE team_id = ${TEAM} AND revoke_time IS NULL`;
    expect(left?.n).toBe("0");
    const other = await admin.getToken({ id: bystander.token?.id ?? "" });
    expect(other.token?.state).toBe(TokenState.ACTIVE);

    const summaries = await h.sql<
      { id: string; token_id: string; details: Record<string, unknown> }[]
    >`
      SELECT id, token_id, details FROM audit_events
      WHERE action = 'token.batch_revoke' AND details->>'summary' = 'true'`;
    expect(summaries).toHaveLength(1);
    const summary = summaries[0];
    expect(summary?.token_id).toBe("");
    expect(summary?.details).toMatchObject({
      count: SEEDED,
      filter: { team_id: TEAM },
      reason: "team dissolved",
      batch_id: summary?.id,
    });
    const [perToken] = await h.sql<{ n: string; actors: string; requests: string }[]>`
      SELECT count(*)::text AS n, string_agg(DISTINCT actor_id, ',') AS actors,
             string_agg(DISTINCT request_id, ',') AS requests
      FROM audit_events
      WHERE action = 'token.batch_revoke' AND details->>'batch_id' = ${summary?.id ?? ""}
        AND token_id <> ''`;
    expect(perToken).toEqual({ n: String(SEEDED), actors: adminId, requests: "bulk-1" });
  });

  it("a repeat finds nothing left and says so with a zero count", async () => {
    const again = await admin.batchRevokeTokens({ filter: { teamId: TEAM } });
    expect(again.count).toBe(0);
    expect(again.tokens).toHaveLength(0);
  });

  it("ids mode keeps its limit of 1,000 ids", async () => {
    const f = await failure(admin.batchRevokeTokens({ ids: seeded.slice(0, 1001) }));
    expect(f.code).toBe(status.INVALID_ARGUMENT);
    expect(f.fields).toContain("ids");
  });
});
