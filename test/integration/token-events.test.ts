import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { headCursor, LOG_START, readEvents } from "../../src/store/token-events.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { insertToken } from "../helpers/seed.js";

let db: Awaited<ReturnType<typeof createTestDatabase>>;

/**
 * Reads after `after` until `n` entries are final. Transaction ids are server-wide, so a write
 * transaction still open in ANY database of the server (other test files run in parallel)
 * holds entries back for a moment: that is the log's ordering guarantee, not a failure.
 */
async function eventsAfter(after: string, n: number, orgId?: string) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const events = await readEvents(db.sql, after, { orgId, limit: 100 });
    if (events.length >= n || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

describe("token_events", () => {
  it("logs a revocation, a shortened expiry and a rotation in order, and no usage flush", async () => {
    const start = await headCursor(db.sql);
    const a = await insertToken(db.sql, {
      orgId: "org-e",
      expireTime: new Date(Date.now() + 3_600_000),
    });
    const b = await insertToken(db.sql, { orgId: "org-f" });
    await db.sql`UPDATE tokens SET use_count = use_count + 1, last_used_time = now() WHERE id = ${a.id}`;
    await db.sql`UPDATE tokens SET revoke_time = now(), revoke_reason = 'leaked' WHERE id = ${b.id}`;
    await db.sql`UPDATE tokens SET expire_time = now() + interval '1 minute' WHERE id = ${a.id}`;
    await db.sql`UPDATE tokens SET replaced_by = 'tok_x' WHERE id = ${a.id}`;
    const events = await eventsAfter(start, 3);
    expect(events.map((e) => [e.tokenId, e.kind, e.reason])).toEqual([
      [b.id, "revoked", "leaked"],
      [a.id, "expiry_shortened", "expiry shortened"],
      [a.id, "rotated", "rotated"],
    ]);
    expect(events.map((e) => e.version)).toEqual([2n, 2n, 3n]);
    const [row] = await db.sql<
      { version: string }[]
    >`SELECT version::text FROM tokens WHERE id = ${a.id}`;
    expect(row?.version).toBe("3");
    expect(await headCursor(db.sql)).toBe(events[2]?.cursor);
  });

  it("filters by org and resumes after a cursor without repeating an entry", async () => {
    const all = await eventsAfter(LOG_START, 3);
    const f = await eventsAfter(LOG_START, 1, "org-f");
    expect(f.map((e) => e.orgId)).toEqual(["org-f"]);
    const first = all[0];
    if (first === undefined) throw new Error("no events");
    const rest = await eventsAfter(first.cursor, all.length - 1);
    expect(rest.map((e) => e.cursor)).toEqual(all.slice(1).map((e) => e.cursor));
  });

  it("does not hand out an entry while an older transaction is still open", async () => {
    const before = await headCursor(db.sql);
    const t = await insertToken(db.sql, { orgId: "org-g" });
    const u = await insertToken(db.sql, { orgId: "org-g" });
    // The first revocation takes its txid first but commits last.
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    let updated: () => void = () => {};
    const inside = new Promise<void>((r) => {
      updated = r;
    });
    const slow = db.sql.begin(async (tx) => {
      await tx`SELECT pg_current_xact_id()`;
      await tx`UPDATE tokens SET revoke_time = now() WHERE id = ${t.id}`;
      updated();
      await held;
    });
    // The second revocation only once the first holds its txid and its row (not after a fixed
    // sleep, which a loaded machine can outrun: the order under test would then be reversed).
    await Promise.race([inside, slow]);
    await db.sql`UPDATE tokens SET revoke_time = now() WHERE id = ${u.id}`;
    expect(await readEvents(db.sql, before, { limit: 10 })).toEqual([]);
    release();
    await slow;
    const events = await eventsAfter(before, 2);
    expect(events.map((e) => e.tokenId)).toEqual([t.id, u.id]);
  });
});
