import { randomBytes } from "node:crypto";
import { Registry } from "prom-client";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  RETENTION_LOCK_KEY,
  type RetentionLog,
  runAuditRetention,
  scheduleAuditRetention,
} from "../../src/store/audit-retention.js";
import { connect, ensureAuditPartitions, type Sql } from "../../src/store/db.js";
import { createTestDatabase } from "../helpers/postgres.js";

const DAY = 86_400_000;
const RETENTION = 400 * DAY;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;
const now = new Date();

/** `audit_events_YYYYMM` of the UTC month holding `at`, as latchkey_ensure_audit_partition names it. */
function partitionName(at: Date): string {
  return `audit_events_${at.toISOString().slice(0, 7).replace("-", "")}`;
}

/** A date in the middle (the 15th) of the UTC month `monthsAgo` months before now. */
function midMonth(monthsAgo: number): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - monthsAgo, 15));
}

async function exists(name: string): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`SELECT to_regclass(${name}) IS NOT NULL AS ok`;
  return row?.ok === true;
}

async function insertAudit(at: Date, n: number): Promise<void> {
  await sql`
    INSERT INTO audit_events (id, time, org_id, action, decision)
    SELECT 'aud_' || md5(random()::text), ${at}::timestamptz + g * interval '1 second', 'org-r',
           'token.verify', 1
    FROM generate_series(1, ${n}) g`;
}

async function count(table: string): Promise<number> {
  const [row] = await sql<{ n: string }[]>`SELECT count(*)::text AS n FROM ${sql(table)}`;
  return Number(row?.n ?? "0");
}

/** A partition back-dated far past the retention, made with the schema's own function. */
async function oldPartition(monthsAgo: number, rows: number): Promise<string> {
  const at = midMonth(monthsAgo);
  await sql`SELECT latchkey_ensure_audit_partition(${at})`;
  await insertAudit(at, rows);
  return partitionName(at);
}

function capture(): { log: RetentionLog; lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    log: { info: (_obj, msg) => lines.push(msg), warn: (_obj, msg) => lines.push(`WARN ${msg}`) },
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  await ensureAuditPartitions(sql, now);
});

afterAll(async () => {
  await db.drop();
});

beforeEach(async () => {
  await sql`DELETE FROM audit_events`;
  await sql`DELETE FROM token_events`;
});

describe("audit retention: partitions", () => {
  it("drops a partition whose whole month is past the retention and keeps the rest", async () => {
    const old = await oldPartition(16, 50); // ~480 days ago: past 400d
    const recent = await oldPartition(3, 20); // ~90 days ago: inside the retention
    await insertAudit(now, 10); // the current month's partition
    const { log, lines } = capture();

    const result = await runAuditRetention(sql, { retentionMs: RETENTION, now, log });

    expect(result.ran).toBe(true);
    expect(result.droppedPartitions).toEqual([old]);
    expect(await exists(old)).toBe(false);
    expect(await exists(recent)).toBe(true);
    expect(await exists(partitionName(now))).toBe(true);
    expect(await exists("audit_events_default")).toBe(true);
    expect(await count("audit_events")).toBe(30);
    expect(lines.filter((l) => l.includes("dropped"))).toEqual([
      `audit partition ${old} dropped: every row is older than the retention`,
    ]);

    // Nothing left to do: a second run drops nothing.
    const again = await runAuditRetention(sql, { retentionMs: RETENTION, now });
    expect(again.droppedPartitions).toEqual([]);
  });

  it("never drops the current or next month, even with a one-day retention", async () => {
    const last = await oldPartition(1, 5);
    await insertAudit(now, 5);
    const result = await runAuditRetention(sql, { retentionMs: DAY, now });
    expect(result.droppedPartitions).not.toContain(partitionName(now));
    expect(await exists(partitionName(now))).toBe(true);
    const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 15));
    expect(await exists(partitionName(next))).toBe(true);
    // Last month goes only once its end is a day behind us.
    const lastMonthOver = now.getTime() - DAY >= Date.UTC(now.getUTCFullYear(), now.getUTCMonth());
    expect(await exists(last)).toBe(!lastMonthOver);
  });

  it("keeps every partition when the retention is unset", async () => {
    const old = await oldPartition(30, 5);
    const result = await runAuditRetention(sql, { retentionMs: undefined, now });
    expect(result.droppedPartitions).toEqual([]);
    expect(await exists(old)).toBe(true);
    await sql`DROP TABLE ${sql(old)}`;
  });

  it("deletes DEFAULT-partition rows older than the retention in batches, and keeps newer ones", async () => {
    // No partition exists for these months, so the rows land in DEFAULT.
    await insertAudit(midMonth(20), 7);
    await insertAudit(midMonth(5), 3);
    expect(await count("audit_events_default")).toBe(10);

    const result = await runAuditRetention(sql, { retentionMs: RETENTION, now, batchSize: 2 });

    expect(result.defaultRowsDeleted).toBe(7);
    expect(await count("audit_events_default")).toBe(3);
    expect(await exists("audit_events_default")).toBe(true);
  });
});

describe("audit retention: one instance at a time (advisory lock)", () => {
  it("does nothing while another session holds the lock", async () => {
    const old = await oldPartition(18, 5);
    const holder = await sql.reserve();
    try {
      await holder`SELECT pg_advisory_lock(${RETENTION_LOCK_KEY}::bigint)`;
      const blocked = await runAuditRetention(sql, { retentionMs: RETENTION, now });
      expect(blocked).toEqual({
        ran: false,
        droppedPartitions: [],
        defaultRowsDeleted: 0,
        tokenEventsDeleted: 0,
      });
      expect(await exists(old)).toBe(true);
    } finally {
      await holder`SELECT pg_advisory_unlock(${RETENTION_LOCK_KEY}::bigint)`;
      holder.release();
    }
    const free = await runAuditRetention(sql, { retentionMs: RETENTION, now });
    expect(free.droppedPartitions).toEqual([old]);
  });

  it("two instances racing drop the partition exactly once", async () => {
    const old = await oldPartition(24, 20);
    const instances = Array.from({ length: 4 }, () => connect(db.url, { max: 2 }));
    try {
      const results = await Promise.all(
        instances.map((s) => runAuditRetention(s, { retentionMs: RETENTION, now })),
      );
      const dropped = results.flatMap((r) => r.droppedPartitions);
      expect(dropped).toEqual([old]);
      expect(results.some((r) => r.ran)).toBe(true);
      expect(await exists(old)).toBe(false);
    } finally {
      await Promise.all(instances.map((s) => s.end({ timeout: 5 })));
    }
  });

  it("the daily schedule runs at once and counts latchkey_audit_partitions_dropped_total", async () => {
    const old = await oldPartition(19, 5);
    const registry = new Registry();
    const { log } = capture();
    const schedule = scheduleAuditRetention({ sql, retentionMs: RETENTION, log, registry });
    await schedule.settled();
    await schedule.stop();
    expect(await exists(old)).toBe(false);
    const metric = await registry.getSingleMetric("latchkey_audit_partitions_dropped_total")?.get();
    expect(metric?.values[0]?.value).toBe(1);
  });
});

describe("token_events pruning", () => {
  async function tokenEvent(ageDays: number): Promise<void> {
    await sql`
      INSERT INTO token_events (time, token_id, org_id, kind, reason, version, secret_hash)
      VALUES (now() - ${ageDays} * interval '1 day', ${`tok_${randomBytes(4).toString("hex")}`},
              'org-r', 'revoked', 'test', 2, ${randomBytes(32)})`;
  }
  const kept = async (): Promise<number[]> =>
    (
      await sql<{ age: number }[]>`
        SELECT round(extract(epoch FROM now() - time) / 86400)::int AS age
        FROM token_events ORDER BY seq`
    ).map((r) => r.age);

  it("deletes entries older than 30 days when the retention is unset, in batches", async () => {
    for (const age of [60, 45, 40, 31, 10, 0]) await tokenEvent(age);
    const result = await runAuditRetention(sql, { retentionMs: undefined, batchSize: 2 });
    expect(result.tokenEventsDeleted).toBe(4);
    expect(await kept()).toEqual([10, 0]);
  });

  it("follows the audit retention when it is set", async () => {
    for (const age of [500, 300, 5]) await tokenEvent(age);
    const result = await runAuditRetention(sql, { retentionMs: RETENTION });
    expect(result.tokenEventsDeleted).toBe(1);
    expect(await kept()).toEqual([300, 5]);
  });

  it("always keeps the newest entry, so the log's head never moves back", async () => {
    for (const age of [90, 80, 70]) await tokenEvent(age);
    const result = await runAuditRetention(sql, { retentionMs: undefined });
    expect(result.tokenEventsDeleted).toBe(2);
    expect(await kept()).toEqual([70]);
  });
});
