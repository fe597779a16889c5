import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newTokenId } from "../../src/domain/ids.js";
import {
  BatchRevokeTokensRequestSchema,
  CreateTokenRequestSchema,
  GetTokenRequestSchema,
  RevokeTokenRequestSchema,
  RotateTokenRequestSchema,
} from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { AuditDecision, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { createAdminService } from "../../src/services/admin/index.js";
import { PLATFORM_ADMIN } from "../../src/services/auth.js";
import type { CallContext, Caller } from "../../src/services/context.js";
import type { TokenChange } from "../../src/services/verify/types.js";
import { createAuditRepo } from "../../src/store/audit-repo.js";
import type { Sql } from "../../src/store/db.js";
import { createTokenRepo } from "../../src/store/token-repo.js";
import { PREFIX } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";

// The service tier: TokenAdminService handlers called directly (no listener, no client) over a
// real Postgres database, with the caller put in a hand-built call context as the adapter does.

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;
const told: TokenChange[] = [];
let admin: ReturnType<typeof createAdminService>;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  admin = createAdminService({
    tokens: createTokenRepo(sql),
    audit: createAuditRepo(sql),
    changes: {
      async tokensChanged(changes) {
        told.push(...changes);
      },
    },
    prefix: PREFIX,
    pageKey: new Uint8Array(32).fill(7),
    log: { warn: () => {} },
  });
});

afterAll(async () => {
  await db?.drop();
});

function callerIn(orgId: string, over: Partial<Caller> = {}): Caller {
  return {
    tokenId: newTokenId(),
    orgId,
    teamId: "",
    ownerId: "",
    type: TokenType.CICD,
    permissions: ["*"],
    isPlatform: false,
    clientIp: "10.0.0.9",
    ...over,
  };
}

function ctx(caller: Caller, method: string, headers: Record<string, string> = {}): CallContext {
  return {
    header: (name) => headers[name],
    peerAddress: caller.clientIp,
    signal: new AbortController().signal,
    method: `latchkey.v1.TokenAdminService/${method}`,
    caller,
  };
}

async function createIn(caller: Caller, name = "svc") {
  const res = await admin.createToken(
    create(CreateTokenRequestSchema, { name, type: TokenType.CICD, permissions: ["deploy:run"] }),
    ctx(caller, "CreateToken"),
  );
  const id = res.token?.id;
  if (id === undefined) throw new Error("no token in the answer");
  return { id, secret: res.secret ?? "" };
}

describe("CreateToken", () => {
  it("writes the token and one audit row in the same transaction", async () => {
    const caller = callerIn("org-s");
    const { id, secret } = await createIn(caller);
    expect(secret.startsWith(`${PREFIX}_c_`)).toBe(true);
    const [token] = await sql<{ xmin: string; created_by: string }[]>`
      SELECT xmin::text AS xmin, created_by FROM tokens WHERE id = ${id}`;
    const audit = await sql<{ xmin: string; action: string; actor_id: string }[]>`
      SELECT xmin::text AS xmin, action, actor_id FROM audit_events WHERE token_id = ${id}`;
    expect(token?.created_by).toBe(caller.tokenId);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: "token.create", actor_id: caller.tokenId });
    // One transaction id wrote both rows: they commit together or not at all.
    expect(audit[0]?.xmin).toBe(token?.xmin);
  });

  it("answers a concurrent repeat of a request_id with the first token, once", async () => {
    const caller = callerIn("org-s");
    const request = create(CreateTokenRequestSchema, {
      name: "idem",
      type: TokenType.CICD,
      permissions: ["deploy:run"],
      requestId: "req-race-1",
    });
    const answers = await Promise.all(
      [1, 2, 3, 4].map(() => admin.createToken(request, ctx(caller, "CreateToken"))),
    );
    const ids = new Set(answers.map((a) => a.token?.id));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => (a.secret ?? "") !== "")).toHaveLength(1);
    const [count] = await sql<{ n: string }[]>`
      SELECT count(*)::text AS n FROM tokens
      WHERE created_by = ${caller.tokenId} AND request_id = 'req-race-1'`;
    expect(count?.n).toBe("1");
  });
});

describe("another org's token", () => {
  it("is NOT_FOUND for GetToken, RevokeToken and RotateToken, and is left alone", async () => {
    const owner = callerIn("org-s");
    const { id } = await createIn(owner, "theirs");
    const stranger = callerIn("org-other");
    const notFound = { code: Code.NotFound, reason: "TOKEN_NOT_FOUND" };
    await expect(
      admin.getToken(create(GetTokenRequestSchema, { id }), ctx(stranger, "GetToken")),
    ).rejects.toMatchObject(notFound);
    await expect(
      admin.revokeToken(
        create(RevokeTokenRequestSchema, { id, reason: "x" }),
        ctx(stranger, "RevokeToken"),
      ),
    ).rejects.toMatchObject(notFound);
    await expect(
      admin.rotateToken(create(RotateTokenRequestSchema, { id }), ctx(stranger, "RotateToken")),
    ).rejects.toMatchObject(notFound);
    const [row] = await sql<{ revoke_time: Date | null; replaced_by: string | null }[]>`
      SELECT revoke_time, replaced_by FROM tokens WHERE id = ${id}`;
    expect(row).toEqual({ revoke_time: null, replaced_by: null });
  });

  it("is reached by a platform caller", async () => {
    const { id } = await createIn(callerIn("org-s"), "reachable");
    const platform = callerIn("org-p", { permissions: ["*", PLATFORM_ADMIN], isPlatform: true });
    const res = await admin.getToken(
      create(GetTokenRequestSchema, { id }),
      ctx(platform, "GetToken"),
    );
    expect(res.token?.orgId).toBe("org-s");
  });
});

describe("changes", () => {
  it("tells the caches about a revocation after it committed", async () => {
    const caller = callerIn("org-s");
    const { id } = await createIn(caller, "to revoke");
    told.length = 0;
    await admin.revokeToken(
      create(RevokeTokenRequestSchema, { id, reason: "done" }),
      ctx(caller, "RevokeToken"),
    );
    expect(told).toEqual([expect.objectContaining({ id, kind: "revoked", reason: "done" })]);
  });

  it("revokes nothing when one id of a batch is out of reach", async () => {
    const caller = callerIn("org-s");
    const mine = await createIn(caller, "batch mine");
    const theirs = await createIn(callerIn("org-other"), "batch theirs");
    await expect(
      admin.batchRevokeTokens(
        create(BatchRevokeTokensRequestSchema, { ids: [mine.id, theirs.id], reason: "x" }),
        ctx(caller, "BatchRevokeTokens"),
      ),
    ).rejects.toMatchObject({ code: Code.NotFound, metadata: { token_id: theirs.id } });
    const rows = await sql<{ id: string }[]>`
      SELECT id FROM tokens WHERE id IN (${mine.id}, ${theirs.id}) AND revoke_time IS NOT NULL`;
    expect(rows).toHaveLength(0);
  });
});

describe("RotateToken without tokens:create", () => {
  it("may rotate itself, but another token is refused and audited as auth.denied", async () => {
    const owner = callerIn("org-s");
    const target = await createIn(owner, "target");
    const weak = callerIn("org-s", { permissions: ["tokens:read"] });
    await expect(
      admin.rotateToken(
        create(RotateTokenRequestSchema, { id: target.id }),
        ctx(weak, "RotateToken", { "x-request-id": "rq-9" }),
      ),
    ).rejects.toMatchObject({ code: Code.PermissionDenied, reason: "PERMISSION_DENIED" });
    const rows = await sql<{ decision: number; code: string; request_id: string }[]>`
      SELECT decision, code, request_id FROM audit_events
      WHERE actor_id = ${weak.tokenId} AND action = 'auth.denied'`;
    expect(rows).toEqual([
      { decision: AuditDecision.DENY, code: "INSUFFICIENT_PERMISSIONS", request_id: "rq-9" },
    ]);
  });
});

describe("out-of-range times where a deployment lifts the lifetime caps", () => {
  const uncapped = { maxLifetimeMs: null, defaultLifetimeMs: 86_400_000, defaultMaxUses: null };
  const service = () =>
    createAdminService({
      tokens: createTokenRepo(sql),
      audit: createAuditRepo(sql),
      changes: { tokensChanged: async () => {} },
      prefix: PREFIX,
      pageKey: new Uint8Array(32).fill(7),
      policies: {
        [TokenType.PERSONAL]: uncapped,
        [TokenType.TEAM]: uncapped,
        [TokenType.CICD]: uncapped,
        [TokenType.EPHEMERAL]: uncapped,
      },
      log: { warn: () => {} },
    });

  it.each([
    [
      "expire_time in the year 200000",
      { expireTime: { seconds: 6_249_000_000_000n, nanos: 0 } },
      "expire_time",
    ],
    [
      "ttl of 9,000 years (past the year 9999)",
      { ttl: { seconds: 284_000_000_000n, nanos: 0 } },
      "ttl",
    ],
    ["ttl beyond Duration's range", { ttl: { seconds: 10n ** 15n, nanos: 0 } }, "ttl"],
  ])("%s is INVALID_ARGUMENT naming the field, nothing written", async (_label, time, field) => {
    const caller = callerIn("org-uncapped");
    await expect(
      service().createToken(
        create(CreateTokenRequestSchema, {
          name: "far",
          type: TokenType.CICD,
          permissions: ["deploy:run"],
          ...time,
        }),
        ctx(caller, "CreateToken"),
      ),
    ).rejects.toMatchObject({ code: Code.InvalidArgument, violations: [{ field }] });
    const rows = await sql`SELECT 1 FROM tokens WHERE org_id = 'org-uncapped'`;
    expect(rows).toHaveLength(0);
  });
});
