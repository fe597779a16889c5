import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/domain/token-format.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import type { Sql } from "../../src/store/db.js";
import { createTestDatabase } from "../helpers/postgres.js";
import {
  redisPairReady,
  startRedisPair,
  startRedisSentinel,
  type TestRedisSet,
} from "../helpers/redis.js";
import { insertToken, type VerifyInstance, waitFor } from "../helpers/verify-harness.js";

/**
 * Issue #11 item 6: REDIS_URL naming a Sentinel set. A password-protected master and its
 * replica behind one Sentinel (real redis-server processes); latchkey is given only the
 * `redis+sentinel://` URL, finds the master through the Sentinel, and after the master is
 * stopped follows the Sentinel's failover to the promoted replica. The
 * change log is polled once a minute here, so what reaches B in time came through Redis.
 */

const PASSWORD = "s3ntinel-test";
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;
let set: TestRedisSet | undefined;
let url = "";
const open: VerifyInstance[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  set = await startRedisSentinel({ password: PASSWORD, replica: true });
  const sentinel = set?.target.kind === "sentinel" ? set.target.sentinels[0] : undefined;
  if (sentinel !== undefined) {
    url = `redis+sentinel://:${PASSWORD}@${sentinel.host}:${sentinel.port}/mymaster`;
  }
});

afterAll(async () => {
  for (const i of open) await i.close();
  await set?.stop();
  await db?.drop();
});

const code = async (on: VerifyInstance, token: string): Promise<VerifyCode> =>
  (await on.verify({ token })).code;

/** A plain connection to one data node, to look at what latchkey stored there. */
function node(port: number): Redis {
  const r = new Redis(port, "127.0.0.1", { password: PASSWORD, maxRetriesPerRequest: 0 });
  r.on("error", () => {});
  return r;
}

/** Caches tokens on A, checks B gets them from Redis (on `masterPort`), revokes one on A. */
async function sharedCacheAndRevocation(
  a: VerifyInstance,
  b: VerifyInstance,
  masterPort: number,
): Promise<number> {
  const tokens = await Promise.all([insertToken(sql), insertToken(sql), insertToken(sql)]);
  for (const t of tokens) expect(await code(a, t.secret)).toBe(VerifyCode.VALID);
  const master = node(masterPort);
  try {
    const keys = tokens.map((t) => `lks:tok:{${hashToken(t.secret).toString("hex")}}`);
    const filled = await waitFor(
      async () => (await master.exists(...keys)) === keys.length,
      10_000,
    );
    expect(filled).toBeGreaterThanOrEqual(0);
  } finally {
    master.disconnect();
  }
  const before = b.verifier.stats();
  for (const t of tokens) expect(await code(b, t.secret)).toBe(VerifyCode.VALID);
  expect(b.verifier.stats().redisHits - before.redisHits).toBe(tokens.length);
  expect(b.verifier.stats().postgresLoads).toBe(before.postgresLoads);

  const [t] = tokens;
  if (t === undefined) throw new Error("unreachable");
  await a.revoke(t.id);
  expect(await code(a, t.secret)).toBe(VerifyCode.REVOKED);
  const took = await waitFor(async () => (await code(b, t.secret)) === VerifyCode.REVOKED, 2_000);
  expect(took).toBeGreaterThanOrEqual(0);
  expect(b.verifier.stats().changesApplied).toBe(0); // not the change log: Redis pub/sub
  return took;
}

describe("latchkey behind Redis Sentinel", () => {
  it("finds the master through the Sentinel and follows it when the master dies", async (ctx) => {
    if (set === undefined) return ctx.skip();
    const [masterPort, replicaPort] = set.ports;
    const sentinel = set.target.kind === "sentinel" ? set.target.sentinels[0] : undefined;
    if (masterPort === undefined || replicaPort === undefined || sentinel === undefined) {
      throw new Error("unexpected Sentinel set");
    }
    const { a, b } = await startRedisPair(sql, url, "lks:", open);
    const took = await sharedCacheAndRevocation(a, b, masterPort);

    // The master dies. Verification goes on from Postgres; the Sentinel promotes the replica,
    // and the instances, asking the Sentinel again, land on the new master.
    await set.stopNode(masterPort);
    const during = await insertToken(sql);
    expect(await code(b, during.secret)).toBe(VerifyCode.VALID);
    const s = new Redis(sentinel.port, sentinel.host, { maxRetriesPerRequest: 0 });
    let promoted: number;
    try {
      promoted = await waitFor(async () => {
        const addr = await s.call("SENTINEL", "get-master-addr-by-name", "mymaster");
        return Array.isArray(addr) && addr[1] === String(replicaPort);
      }, 20_000);
      expect(promoted).toBeGreaterThanOrEqual(0);
    } finally {
      s.disconnect();
    }
    const back = await waitFor(redisPairReady(a, b), 20_000);
    expect(back).toBeGreaterThanOrEqual(0);
    await sharedCacheAndRevocation(a, b, replicaPort);
    console.log(
      `sentinel: revocation A→B after ${took} ms; replica promoted ${promoted} ms after the master stopped; latchkey on the promoted master ${back} ms after the Sentinel named it`,
    );
    // The waits above allow up to ~65 s in all (failover and reconnection 20 s each) on a
    // loaded machine; the default 30 s test timeout would cut them short.
  }, 90_000);
});
