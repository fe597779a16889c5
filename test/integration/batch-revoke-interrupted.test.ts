import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REVOKE_CHUNK } from "../../src/domain/admin-rules.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { isConnectionError } from "../../src/store/db.js";
import {
  type AdminClient,
  type CallFailure,
  failure,
  type VerifyClient,
} from "../helpers/admin-client.js";
import { type AdminHarness, ORG_A, PREFIX, startAdminHarness } from "../helpers/admin-harness.js";
import { redisForTests, type TestRedis } from "../helpers/redis.js";
import { seedTokens } from "../helpers/seed.js";

// BatchRevokeTokens by filter when storage goes away part-way. A trigger installed in this
// file's database only ends the session (pg_terminate_backend of its own backend) the moment a
// "poison" token gets a revoke_time, so the second chunk's transaction dies mid-statement the
// way it would in a Postgres restart. No timing is involved: the first chunk has committed
// (and the caches were told) before the second one starts.

const MATCHING = REVOKE_CHUNK + 100;
const POISON_AT = REVOKE_CHUNK + 50;

let redis: TestRedis | undefined;
let h: AdminHarness;
let admin: AdminClient;
let verify: VerifyClient;

interface Seeded {
  /** Newest first: the order revokeByFilter walks (ids descending). */
  readonly tokens: { id: string; secret: string }[];
  readonly firstChunk: string[];
  readonly rest: string[];
  readonly poison: string;
}

/** The `i`th token of `team`: active for a day. */
function teamToken(team: string, i: number) {
  return {
    name: `${team} ${i}`,
    type: TokenType.TEAM,
    orgId: ORG_A,
    teamId: team,
    permissions: ["deploy:read"],
    expireTime: new Date(Date.now() + 86_400_000),
  };
}

/** MATCHING team tokens in two multi-row INSERTs; the poison token falls in the second chunk. */
async function seedTeam(team: string): Promise<Seeded> {
  const specs = Array.from({ length: MATCHING }, (_, i) => teamToken(team, i));
  const tokens = (await seedTokens(h.sql, PREFIX, specs)).sort((a, b) =>
    a.id < b.id ? 1 : a.id > b.id ? -1 : 0,
  );
  const ids = tokens.map((t) => t.id);
  return {
    tokens,
    firstChunk: ids.slice(0, REVOKE_CHUNK),
    rest: ids.slice(REVOKE_CHUNK),
    poison: ids[POISON_AT] ?? "",
  };
}

/** The ids of `team` that are revoked, sorted. */
async function revokedIds(team: string): Promise<string[]> {
  const rows = await h.sql<{ id: string }[]>`
    SELECT id FROM tokens WHERE team_id = ${team} AND revoke_time IS NOT NULL ORDER BY id`;
  return rows.map((r) => r.id);
}

/** Per-token batch_revoke audit rows of one batch: their token ids, sorted. */
async function auditedIds(batchId: string): Promise<string[]> {
  const rows = await h.sql<{ token_id: string }[]>`
    SELECT token_id FROM audit_events
    WHERE action = 'token.batch_revoke' AND details->>'batch_id' = ${batchId} AND token_id <> ''
    ORDER BY token_id`;
  return rows.map((r) => r.token_id);
}

async function summaries(team: string) {
  return await h.sql<{ id: string; details: Record<string, unknown> }[]>`
    SELECT id, details FROM audit_events
    WHERE action = 'token.batch_revoke' AND details->>'summary' = 'true'
      AND details->'filter'->>'team_id' = ${team}
    ORDER BY id`;
}

/** From now on, the session that gives `id` a revoke_time ends (this test database only). */
async function poison(id: string): Promise<void> {
  await h.sql`INSERT INTO test_poison (id) VALUES (${id})`;
  await h.sql.unsafe(`
    CREATE TRIGGER test_poison_revoke BEFORE UPDATE OF revoke_time ON tokens
      FOR EACH ROW WHEN (OLD.revoke_time IS NULL AND NEW.revoke_time IS NOT NULL)
      EXECUTE FUNCTION test_end_session_if_poisoned()`);
}

async function cure(): Promise<void> {
  await h.sql.unsafe("DROP TRIGGER test_poison_revoke ON tokens");
}

const sorted = (ids: readonly string[]) => [...ids].sort();

/** What a client must never read in an error message: SQL, driver codes, internals. */
const LEAKS =
  /\b(select|update|insert|delete|where|returning)\b|pg_|terminat|CONNECTION_|postgres|sqlstate|trigger/i;

async function verifyCode(secret: string): Promise<VerifyCode> {
  return (await verify.verifyToken({ token: secret, clientIp: "127.0.0.1" })).code;
}

beforeAll(async () => {
  redis = await redisForTests();
  h = await startAdminHarness(redis === undefined ? {} : { redis });
  const boot = h.client(h.bootstrapSecret);
  const a = await boot.createToken({ name: "org admin", type: TokenType.CICD, permissions: ["*"] });
  admin = h.client(a.secret);
  verify = h.verify();
  await h.sql.unsafe(`
    CREATE TABLE test_poison (id text PRIMARY KEY);
    CREATE FUNCTION test_end_session() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_terminate_backend(pg_backend_pid());
      RETURN NEW;
    END $$;
    CREATE FUNCTION test_end_session_if_poisoned() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM test_poison WHERE id = NEW.id) THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
      END IF;
      RETURN NEW;
    END $$`);
}, 60_000);

afterAll(async () => {
  await h?.close();
  await redis?.stop();
});

describe("the poison token", () => {
  it("really ends the session: a plain UPDATE of it fails as a dropped connection and changes nothing", async () => {
    const [probe] = await seedTokens(h.sql, PREFIX, [teamToken("probe", 0)]);
    await poison(probe?.id ?? "");
    let caught: unknown;
    try {
      await h.sql`UPDATE tokens SET revoke_time = now() WHERE id = ${probe?.id ?? ""}`;
    } catch (err) {
      caught = err;
    }
    await cure();
    expect(caught).toBeDefined();
    expect(isConnectionError(caught)).toBe(true);
    expect(await revokedIds("probe")).toEqual([]);
    // The pool opens a new session for the next query.
    const [one] = await h.sql<{ ok: number }[]>`SELECT 1 AS ok`;
    expect(one?.ok).toBe(1);
  });
});

describe("BatchRevokeTokens by filter when storage fails in the second chunk", () => {
  const TEAM = "interrupted";
  let team: Seeded;
  let first: CallFailure;

  beforeAll(async () => {
    team = await seedTeam(TEAM);
    // Verified once, so that the caches hold them as valid before the revocation.
    for (const t of [team.tokens[0], team.tokens[REVOKE_CHUNK - 1], team.tokens[REVOKE_CHUNK]]) {
      expect(await verifyCode(t?.secret ?? "")).toBe(VerifyCode.VALID);
    }
    await poison(team.poison);
    first = await failure(
      admin.batchRevokeTokens({
        filter: { teamId: TEAM },
        reason: "team dissolved",
        requestId: "interrupted-1",
      }),
    );
  }, 60_000);

  it("fails with UNAVAILABLE saying the revocation is partial, how far it got and what to do", () => {
    expect(first.code).toBe(status.UNAVAILABLE);
    expect(first.domain).toBe("latchkey.dev");
    expect(first.reason).toBe("STORAGE_UNAVAILABLE");
    expect(first.metadata.revoked_count).toBe(String(REVOKE_CHUNK));
    expect(first.metadata.batch_id).toMatch(/^aud_[0-9A-Z]{26}$/);
    expect(first.message).toContain("partial");
    expect(first.message).toContain(`${REVOKE_CHUNK} tokens were revoked`);
    expect(first.message).toContain(first.metadata.batch_id ?? "");
    expect(first.message).toContain("repeating the same request revokes the rest");
    expect(first.message).not.toMatch(LEAKS);
  });

  it("leaves exactly the first chunk revoked, each with its audit row", async () => {
    expect(await revokedIds(TEAM)).toEqual(sorted(team.firstChunk));
    expect(await auditedIds(first.metadata.batch_id ?? "")).toEqual(sorted(team.firstChunk));
  });

  it("changes nothing of the chunk that failed: no revocation, no audit row", async () => {
    const [row] = await h.sql<{ revoked: string; audited: string }[]>`
      SELECT
        (SELECT count(*) FROM tokens WHERE id IN ${h.sql(team.rest)} AND revoke_time IS NOT NULL)::text AS revoked,
        (SELECT count(*) FROM audit_events WHERE token_id IN ${h.sql(team.rest)}
           AND action = 'token.batch_revoke')::text AS audited`;
    expect(row).toEqual({ revoked: "0", audited: "0" });
  });

  it("writes the summary row as incomplete, with the count so far", async () => {
    const rows = await summaries(TEAM);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.id).toBe(first.metadata.batch_id);
    expect(rows[0]?.details).toMatchObject({
      batch_id: first.metadata.batch_id,
      summary: true,
      complete: false,
      count: REVOKE_CHUNK,
      filter: { team_id: TEAM },
      reason: "team dissolved",
    });
  });

  it("the first chunk's tokens are refused by VerifyToken at once (the caches were told)", async () => {
    expect(await verifyCode(team.tokens[0]?.secret ?? "")).toBe(VerifyCode.REVOKED);
    expect(await verifyCode(team.tokens[REVOKE_CHUNK - 1]?.secret ?? "")).toBe(VerifyCode.REVOKED);
    expect(await verifyCode(team.tokens[REVOKE_CHUNK]?.secret ?? "")).toBe(VerifyCode.VALID);
  });

  it("once storage is back, the same request revokes exactly the rest and counts only them", async () => {
    await cure();
    const again = await admin.batchRevokeTokens({
      filter: { teamId: TEAM },
      reason: "team dissolved",
      requestId: "interrupted-1",
    });
    expect(again.count).toBe(MATCHING - REVOKE_CHUNK);
    expect(sorted(again.tokens.map((t) => t.id))).toEqual(sorted(team.rest));
    expect(await revokedIds(TEAM)).toEqual(sorted(team.tokens.map((t) => t.id)));
    const rows = await summaries(TEAM);
    expect(rows).toHaveLength(2);
    const done = rows.find((r) => r.id !== first.metadata.batch_id);
    expect(done?.details).toMatchObject({ count: MATCHING - REVOKE_CHUNK, summary: true });
    expect(done?.details).not.toHaveProperty("complete");
    expect(await auditedIds(done?.id ?? "")).toEqual(sorted(team.rest));
    expect(await verifyCode(team.tokens[REVOKE_CHUNK]?.secret ?? "")).toBe(VerifyCode.REVOKED);
  });
});

describe("BatchRevokeTokens by filter when the summary row cannot be written either", () => {
  const TEAM = "interrupted-twice";
  let team: Seeded;
  let f: CallFailure;

  beforeAll(async () => {
    team = await seedTeam(TEAM);
    await poison(team.poison);
    // The incomplete summary row ends its session too: storage is still down for it.
    await h.sql.unsafe(`
      CREATE TRIGGER test_poison_summary BEFORE INSERT ON audit_events
        FOR EACH ROW WHEN (NEW.details->>'complete' = 'false')
        EXECUTE FUNCTION test_end_session()`);
    f = await failure(admin.batchRevokeTokens({ filter: { teamId: TEAM }, reason: "twice" }));
    await h.sql.unsafe("DROP TRIGGER test_poison_summary ON audit_events");
    await cure();
  }, 60_000);

  it("still answers with the original UNAVAILABLE and its count", async () => {
    expect(f.code).toBe(status.UNAVAILABLE);
    expect(f.reason).toBe("STORAGE_UNAVAILABLE");
    expect(f.metadata.revoked_count).toBe(String(REVOKE_CHUNK));
    expect(f.message).toContain("partial");
    expect(f.message).not.toMatch(LEAKS);
    expect(await revokedIds(TEAM)).toEqual(sorted(team.firstChunk));
    expect(await auditedIds(f.metadata.batch_id ?? "")).toEqual(sorted(team.firstChunk));
    expect(await summaries(TEAM)).toEqual([]);
  });
});
