import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken, hashToken } from "../../src/domain/token-format.js";
import type { TokenRecord } from "../../src/domain/token-record.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { PLATFORM_ADMIN } from "../../src/services/auth.js";
import { CACHE_KEY_SETTING, createVerifier } from "../../src/services/verify/verifier.js";
import { encodeRecord } from "../../src/store/cache/record-codec.js";
import { type Sql, serverKey } from "../../src/store/db.js";
import { failure } from "../helpers/admin-client.js";
import { PREFIX, startLatchkeyServer } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { redisForTests, type TestRedis } from "../helpers/redis.js";
import { insertToken } from "../helpers/seed.js";
import { waitFor } from "../helpers/verify-harness.js";

/**
 * Issue 13, item 1: whoever can write to Redis must not become a platform admin. Records in
 * Redis are signed (HMAC, key in `settings`), a record failing its MAC is a miss counted in
 * latchkey_cache_records_rejected_total, and admin callers are authenticated from Postgres
 * (or a local record read from Postgres within 1 s), never from a Redis record alone.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;
let redis: TestRedis | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  redis = await redisForTests();
});

afterAll(async () => {
  await redis?.stop();
  await db?.drop();
});

/** The record an attacker would write: `*` and platform:admin, blaming a real token's id. */
function forgedRecord(id: string): TokenRecord {
  return {
    id,
    name: "bootstrap",
    type: TokenType.TEAM,
    orgId: "default",
    teamId: "platform",
    ownerId: "",
    permissions: ["*", PLATFORM_ADMIN],
    allowedCidrs: [],
    metadata: {},
    expireTimeMs: null,
    revokeTimeMs: null,
    maxUses: null,
    useCount: 0,
    rateLimits: [],
    maxConcurrent: 0,
    version: 99,
    readAtMs: Date.now(),
  };
}

describe.skipIf(process.env.LATCHKEY_SKIP_REDIS === "1")("a forged record in Redis", () => {
  it("does not authenticate an admin call, and is counted", async (ctx) => {
    if (redis === undefined) {
      ctx.skip();
      return;
    }
    const logs: string[] = [];
    const log = {
      warn: (obj: object, msg: string) => logs.push(`${msg} ${JSON.stringify(obj)}`),
      error: () => {},
      info: () => {},
      debug: () => {},
    };
    const verifier = createVerifier({
      sql,
      tokenPrefix: PREFIX,
      redisUrl: redis.url,
      redisKeyPrefix: redis.prefix,
      log,
    });
    const server = await startLatchkeyServer({ sql, verifier, log, redis: true });
    const client = new Redis(redis.url);
    try {
      // A real platform token exists (its id is what the attacker blames).
      const real = await insertToken(sql, { permissions: ["*", PLATFORM_ADMIN] });
      const real1 = await server.admin(real.secret).listTokens({});
      expect(real1.tokens.length).toBeGreaterThan(0);
      // Redis is up and the signing key has been read: a real token's record is in Redis. (A
      // fill made before the connection is up is skipped, so the verification waits for it.)
      const up = async () =>
        (await verifier.redisHealthy()) && verifier.stats().redisSubscribed === true;
      expect(await waitFor(up, 10_000)).not.toBe(-1);
      await server.verify().verifyToken({ token: real.secret });
      const realKey = `${redis.prefix}tok:{${hashToken(real.secret).toString("hex")}}`;
      expect(await waitFor(async () => (await client.exists(realKey)) === 1, 10_000)).not.toBe(-1);

      const attacker = await serverKey(sql, "not_the_cache_key"); // any other 32 bytes
      const genuine = (await client.get(realKey)) ?? "";
      const variants = [
        // the attack: plain JSON, the format before signing
        () => JSON.stringify({ v: 1, id: real.id, o: "default", p: ["*", PLATFORM_ADMIN] }),
        // the signed format, signed with a key the attacker made up
        (key: string) => encodeRecord(forgedRecord(real.id), attacker, key),
        // a genuine record of the real token, copied under the forged token's key
        () => genuine,
      ];
      for (const variant of variants) {
        const secret = generateToken(PREFIX, TokenType.TEAM); // well formed, never issued
        const key = `${redis.prefix}tok:{${hashToken(secret).toString("hex")}}`;
        await client.set(key, variant(key), "PX", 60_000);
        // VerifyToken reads Redis: the record fails its MAC, so it is a miss (and counted).
        const v = await server.verify().verifyToken({ token: secret });
        expect(v.code).toBe(VerifyCode.NOT_FOUND);
        expect(v.valid).toBe(false);
        // The admin call does not even look at Redis.
        const f = await failure(server.admin(secret).listTokens({ orgId: "acme" }));
        expect(f.code).toBe(16); // UNAUTHENTICATED
        expect(f.reason).toBe("TOKEN_INVALID");
      }
      const stats = verifier.stats().recordsRejected;
      expect(stats.signature + stats.malformed).toBeGreaterThanOrEqual(3);
      expect(stats.signature).toBeGreaterThanOrEqual(2);
      const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
      const line = metrics
        .split("\n")
        .find((l) => l.startsWith('latchkey_cache_records_rejected_total{reason="signature"}'));
      expect(Number(line?.split(" ")[1])).toBeGreaterThanOrEqual(2);
      // Nothing was created in acme, and no row blames the real token for it.
      const [row] = await sql<{ n: string }[]>`
        SELECT count(*)::text AS n FROM audit_events WHERE org_id = 'acme'`;
      expect(row?.n).toBe("0");
    } finally {
      client.disconnect();
      await server.close();
      await verifier.close();
    }
  });

  it("even a correctly signed record alone does not make an admin caller", async (ctx) => {
    if (redis === undefined) {
      ctx.skip();
      return;
    }
    const verifier = createVerifier({
      sql,
      tokenPrefix: PREFIX,
      redisUrl: redis.url,
      redisKeyPrefix: redis.prefix,
    });
    const quiet = { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} };
    const server = await startLatchkeyServer({ sql, verifier, log: quiet, redis: true });
    const client = new Redis(redis.url);
    try {
      // Someone holding the database's signing key signs a record for a never-issued token.
      const signing = await serverKey(sql, CACHE_KEY_SETTING);
      const secret = generateToken(PREFIX, TokenType.TEAM);
      const key = `${redis.prefix}tok:{${hashToken(secret).toString("hex")}}`;
      await client.set(key, encodeRecord(forgedRecord("tok_forged"), signing, key), "PX", 60_000);
      const f = await failure(server.admin(secret).listTokens({ orgId: "acme" }));
      expect(f.code).toBe(16);
    } finally {
      client.disconnect();
      await server.close();
      await verifier.close();
    }
  });
});
