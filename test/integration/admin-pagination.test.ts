import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mint } from "../../src/domain/mint.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { createTokenRepo, type NewToken } from "../../src/store/token-repo.js";
import type { AdminClient } from "../helpers/admin-client.js";
import { type AdminHarness, ORG_A, PREFIX, startAdminHarness } from "../helpers/admin-harness.js";

const SEEDED = 2500;

let h: AdminHarness;
let admin: AdminClient;
const seeded: string[] = [];

function seedToken(i: number): NewToken {
  const { secret: _secret, ...minted } = mint(PREFIX, TokenType.TEAM);
  return {
    ...minted,
    name: `seed ${i}`,
    type: TokenType.TEAM,
    orgId: ORG_A,
    teamId: "paged",
    ownerId: "",
    createdBy: "",
    role: "",
    permissions: ["x:y"],
    allowedCidrs: [],
    metadata: {},
    maxUses: null,
    rateLimits: [],
    maxConcurrent: 0,
    createTime: new Date(),
    expireTime: new Date(Date.now() + 86_400_000),
    requestId: null,
    rotatedFrom: null,
  };
}

beforeAll(async () => {
  h = await startAdminHarness();
  const boot = h.client(h.bootstrapSecret);
  const a = await boot.createToken({ name: "admin", type: TokenType.CICD, permissions: ["*"] });
  admin = h.client(a.secret);
  // 2,500 rows in five multi-row INSERTs.
  for (let batch = 0; batch < SEEDED / 500; batch++) {
    const rows = Array.from({ length: 500 }, (_, i) => seedToken(batch * 500 + i));
    const inserted = await createTokenRepo(h.sql).insert(rows);
    seeded.push(...inserted.map((r) => r.id));
  }
}, 120_000);

afterAll(async () => {
  await h?.close();
});

describe("ListTokens pages over 2,500 tokens with no duplicate and no gap", () => {
  it("while other tokens are being created", async () => {
    let creating = true;
    const created: string[] = [];
    const writer = (async () => {
      while (creating) {
        const res = await admin.createToken({
          name: "concurrent",
          type: TokenType.TEAM,
          teamId: "paged",
          permissions: ["x:y"],
        });
        created.push(res.token?.id ?? "");
      }
    })();
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    try {
      do {
        const res = await admin.listTokens({ teamId: "paged", pageSize: 97, pageToken });
        seen.push(...res.tokens.map((t) => t.id));
        pageToken = res.nextPageToken;
        pages++;
      } while (pageToken !== "");
    } finally {
      creating = false;
      await writer;
    }
    expect(created.length).toBeGreaterThan(0);
    expect(new Set(seen).size).toBe(seen.length);
    const seenSet = new Set(seen);
    expect(seeded.filter((id) => !seenSet.has(id))).toEqual([]);
    // Newest first: strictly descending ids.
    for (let i = 1; i < seen.length; i++) expect((seen[i - 1] ?? "") > (seen[i] ?? "")).toBe(true);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(SEEDED / 97));
    // Everything listed is either seeded or created during the run.
    const known = new Set([...seeded, ...created]);
    expect(seen.every((id) => known.has(id))).toBe(true);
  }, 120_000);

  it("defaults to 50 per page and accepts the maximum of 1000", async () => {
    const first = await admin.listTokens({ teamId: "paged" });
    expect(first.tokens).toHaveLength(50);
    expect(first.nextPageToken).not.toBe("");
    const big = await admin.listTokens({ teamId: "paged", pageSize: 1000 });
    expect(big.tokens).toHaveLength(1000);
  });

  it("refuses a page token from another caller", async () => {
    const first = await admin.listTokens({ teamId: "paged", pageSize: 10 });
    const boot = h.client(h.bootstrapSecret);
    await expect(
      boot.listTokens({ teamId: "paged", pageSize: 10, pageToken: first.nextPageToken }),
    ).rejects.toMatchObject({ code: 3 });
  });
});

describe("ListAuditEvents pages newest first with no duplicate and no gap", () => {
  it("walks every token.create row", async () => {
    const seen: string[] = [];
    let pageToken = "";
    do {
      const res = await admin.listAuditEvents({ action: "token.create", pageSize: 7, pageToken });
      seen.push(...res.events.map((e) => e.id));
      pageToken = res.nextPageToken;
    } while (pageToken !== "");
    const [row] = await h.sql<{ n: string }[]>`
      SELECT count(*)::text AS n FROM audit_events WHERE org_id = ${ORG_A} AND action = 'token.create'
        -- rows about platform tokens are out of a tenant caller's reach
        AND token_id NOT IN (SELECT id FROM tokens WHERE 'platform:admin' = ANY(permissions))`;
    expect(seen.length).toBe(Number(row?.n));
    expect(new Set(seen).size).toBe(seen.length);
  });
});
