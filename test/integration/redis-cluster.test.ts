import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, type RedisTarget } from "../../src/config.js";
import { hashToken } from "../../src/domain/token-format.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import type { Sql } from "../../src/store/db.js";
import { loadTokenByHash } from "../../src/store/verify-repo.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { awayFromWindowEnd } from "../helpers/rate-window.js";
import {
  startRedisCluster,
  startRedisPair,
  type TestRedisSet,
  testRedisTier,
} from "../helpers/redis.js";
import {
  insertToken,
  startVerifyInstance,
  type VerifyInstance,
  waitFor,
} from "../helpers/verify-harness.js";

/**
 * Issue #11 item 6: latchkey on a real 3-master Redis Cluster (redis-server processes started
 * here, joined by `redis-cli --cluster create`). Every Lua script must keep its keys in one
 * slot, or the cluster refuses it (CROSSSLOT) and the instance silently falls back to Postgres
 * and local limits; so besides the outcomes, each test checks that no Redis command failed.
 * The change log is polled only once a minute here: a revocation that reaches B within the
 * test came through the cluster's pub/sub.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;
let cluster: TestRedisSet | undefined;
let probe: Cluster | undefined;
const open: VerifyInstance[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  cluster = await startRedisCluster(3);
  if (cluster !== undefined) {
    probe = new Cluster(cluster.ports.map((port) => ({ host: "127.0.0.1", port })));
  }
});

afterAll(async () => {
  for (const i of open) await i.close();
  probe?.disconnect();
  await cluster?.stop();
  await db?.drop();
});

let prefixes = 0;

/** Two instances on the cluster, with a key prefix of their own. */
async function twoInstances(
  target: RedisTarget,
): Promise<{ a: VerifyInstance; b: VerifyInstance; prefix: string }> {
  const prefix = `lkc${prefixes++}:`;
  return { ...(await startRedisPair(sql, target, prefix, open)), prefix };
}

const code = async (on: VerifyInstance, token: string): Promise<VerifyCode> =>
  (await on.verify({ token })).code;

function noRedisErrors(...on: VerifyInstance[]): void {
  for (const i of on) expect(i.verifier.stats().redisErrors).toBe(0);
}

/** The cluster node (port) serving a key's slot. */
async function nodeOf(key: string): Promise<number> {
  if (probe === undefined) throw new Error("no cluster");
  const slot = await probe.cluster("KEYSLOT", key);
  const slots = await probe.cluster("SLOTS");
  const range = slots.find(([from, to]) => slot >= from && slot <= to);
  const port = range?.[2]?.[1];
  if (port === undefined) throw new Error(`slot ${slot} not served`);
  return port;
}

describe("latchkey on a 3-master Redis Cluster", () => {
  it("a token cached by A is served from the cluster to B; records spread over the masters", async (ctx) => {
    if (cluster === undefined || probe === undefined) return ctx.skip();
    // As main.ts gets it: LATCHKEY_REDIS_CLUSTER_NODES read by the configuration.
    const seeds = cluster.ports.map((p) => `127.0.0.1:${p}`).join(",");
    const target = loadConfig({ LATCHKEY_REDIS_CLUSTER_NODES: seeds }).redis;
    if (target?.kind !== "cluster") throw new Error("not read as a cluster");
    const { a, b, prefix } = await twoInstances(target);
    const tokens = await Promise.all(Array.from({ length: 12 }, () => insertToken(sql)));
    for (const t of tokens) expect(await code(a, t.secret)).toBe(VerifyCode.VALID);
    const keys = tokens.map((t) => `${prefix}tok:{${hashToken(t.secret).toString("hex")}}`);
    // A's fills are not awaited: wait until the cluster holds every record.
    const filled = await waitFor(
      async () => (await Promise.all(keys.map((k) => probe?.exists(k)))).every((n) => n === 1),
      10_000,
    );
    expect(filled).toBeGreaterThanOrEqual(0);
    const nodes = new Set(await Promise.all(keys.map(nodeOf)));
    expect(nodes.size).toBeGreaterThan(1); // 12 tokens on one master: ~1 in 20 000

    const before = b.verifier.stats();
    for (const t of tokens) expect(await code(b, t.secret)).toBe(VerifyCode.VALID);
    const after = b.verifier.stats();
    expect(after.redisHits - before.redisHits).toBe(tokens.length);
    expect(after.postgresLoads - before.postgresLoads).toBe(0);
    expect(await a.verifier.redisHealthy()).toBe(true); // what /readyz asks: cluster_state:ok
    noRedisErrors(a, b);
  });

  it("a revocation on A reaches B through the cluster's pub/sub, one token or a batch", async (ctx) => {
    if (cluster === undefined || probe === undefined) return ctx.skip();
    const { a, b, prefix } = await twoInstances(cluster.target);
    const tokens = await Promise.all(Array.from({ length: 6 }, () => insertToken(sql)));
    for (const t of tokens) {
      expect(await code(a, t.secret)).toBe(VerifyCode.VALID);
      expect(await code(b, t.secret)).toBe(VerifyCode.VALID);
    }
    const [one, ...rest] = tokens;
    if (one === undefined) throw new Error("unreachable");
    await a.revoke(one.id);
    expect(await code(a, one.secret)).toBe(VerifyCode.REVOKED);
    const took = await waitFor(
      async () => (await code(b, one.secret)) === VerifyCode.REVOKED,
      2_000,
    );
    expect(took).toBeGreaterThanOrEqual(0);

    // Many tokens in one change: their keys live in different slots, one message tells B.
    const admin = await a.admin();
    await admin.batchRevokeTokens({ ids: rest.map((t) => t.id), reason: "cluster batch" });
    const tookBatch = await waitFor(async () => {
      const codes = await Promise.all(rest.map((t) => code(b, t.secret)));
      return codes.every((c) => c === VerifyCode.REVOKED);
    }, 2_000);
    expect(tookBatch).toBeGreaterThanOrEqual(0);
    console.log(
      `cluster: revocation A→B after ${took} ms; batch of ${rest.length} after ${tookBatch} ms`,
    );
    expect(b.verifier.stats().changesApplied).toBe(0); // the change log was not what told B

    // No record older than the revocation is left in the cluster: a new instance refuses too.
    const c = await startVerifyInstance({
      sql,
      redisUrl: cluster.target,
      redisKeyPrefix: prefix,
      auditMode: "none",
    });
    open.push(c);
    for (const t of tokens) expect(await code(c, t.secret)).toBe(VerifyCode.REVOKED);
    expect(a.verifier.stats().redisUndelivered).toBe(0);
    noRedisErrors(a, b, c);
  });

  it("rate limits with several rules are shared through the cluster", async (ctx) => {
    if (cluster === undefined) return ctx.skip();
    const { a, b } = await twoInstances(cluster.target);
    const { secret } = await insertToken(sql, {
      rateLimits: [
        { name: "minute", limit: 4, window_ms: 60_000 },
        { name: "hour", limit: 100, window_ms: 3_600_000 },
      ],
    });
    await awayFromWindowEnd(60_000); // all six calls in one minute window
    const codes: VerifyCode[] = [];
    for (let i = 0; i < 3; i++) codes.push(await code(a, secret), await code(b, secret));
    expect(codes.slice(0, 4).every((c) => c === VerifyCode.VALID)).toBe(true);
    // The fifth and sixth call are refused.
    expect(codes.slice(4)).toEqual([VerifyCode.RATE_LIMITED, VerifyCode.RATE_LIMITED]);
    noRedisErrors(a, b);
  });

  it("signed records: a forged or moved record is refused, the compare-and-set holds", async (ctx) => {
    if (cluster === undefined || probe === undefined) return ctx.skip();
    const { a, b, prefix } = await twoInstances(cluster.target);
    const x = await insertToken(sql);
    const y = await insertToken(sql);
    const hex = (s: string): string => hashToken(s).toString("hex");
    const keyX = `${prefix}tok:{${hex(x.secret)}}`;
    const keyY = `${prefix}tok:{${hex(y.secret)}}`;
    expect(await code(a, x.secret)).toBe(VerifyCode.VALID);
    expect(await waitFor(async () => (await probe?.exists(keyX)) === 1, 10_000)).not.toBe(-1);
    // X's signed record copied under Y's key (another slot): the MAC binds it to its key.
    const raw = await probe.get(keyX);
    if (raw === null) throw new Error("record vanished");
    await probe.set(keyY, raw, "PX", 60_000);
    const rejected = b.verifier.stats().recordsRejected.signature;
    const answer = await b.verify({ token: y.secret });
    expect(answer.code).toBe(VerifyCode.VALID);
    expect(answer.tokenId).toBe(y.id); // from Postgres, not X's record
    expect(b.verifier.stats().recordsRejected.signature).toBe(rejected + 1);

    // The compare-and-set script on the cluster (record, tombstone and floor keys in one slot):
    // an older version never replaces a newer one.
    const z = await insertToken(sql);
    const hz = hex(z.secret);
    const v1 = await loadTokenByHash(sql, hashToken(z.secret));
    if (v1 === undefined) throw new Error("token not found");
    const v2 = { ...v1, version: v1.version + 1 };
    const tier = testRedisTier(sql, cluster.target, prefix);
    try {
      expect(await waitFor(async () => (await tier.getRecord(hz)) !== undefined, 10_000)).not.toBe(
        -1,
      );
      tier.fillRecord(hz, v2);
      expect((await tier.getRecord(hz))?.version).toBe(v2.version); // same connection: in order
      tier.fillRecord(hz, v1);
      expect((await tier.getRecord(hz))?.version).toBe(v2.version);
      // B, reading the cluster, is served the newer copy.
      expect(await code(b, z.secret)).toBe(VerifyCode.VALID);
      expect(tier.errors).toBe(0);
    } finally {
      await tier.close();
    }
    noRedisErrors(a, b);
  });
});
