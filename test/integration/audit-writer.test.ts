import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditWriter, type VerifyAuditRow } from "../../src/store/audit-writer.js";
import { connect, ensureAuditPartitions, type Sql } from "../../src/store/db.js";
import {
  type CuttingProxy,
  startCuttingProxy,
  targetOf,
  throughProxy,
} from "../helpers/cutting-proxy.js";
import { createTestDatabase } from "../helpers/postgres.js";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  await ensureAuditPartitions(sql, new Date());
});

afterAll(async () => {
  await db.drop();
});

/** A row whose request id says which batch and position it is, with a path of `pathLength`. */
function row(org: string, batch: number, i: number, pathLength: number): VerifyAuditRow {
  return {
    timeMs: Date.now(),
    orgId: org,
    actorId: "tok_writer",
    action: "token.verify",
    tokenId: "tok_writer",
    decision: 1,
    code: "VALID",
    clientIp: "10.0.0.1",
    method: "GET",
    path: `/${"p".repeat(pathLength)}`,
    requestId: `b${batch}-r${i}`,
  };
}

async function rowsOf(org: string): Promise<{ request_id: string; path: string }[]> {
  return sql<{ request_id: string; path: string }[]>`
    SELECT request_id, path FROM audit_events WHERE org_id = ${org} ORDER BY id`;
}

describe("AuditWriter", () => {
  it("writes every row intact across flushes that reuse the written buffer", async () => {
    // Batches alternate long and short rows: a reused buffer that kept bytes of an earlier,
    // longer batch past the new batch's end would show up as extra or garbled rows.
    const org = "org-writer-reuse";
    const writer = new AuditWriter({ sql, flushIntervalMs: 60_000 });
    const expected: { request_id: string; path: string }[] = [];
    try {
      const shapes = [
        { n: 3_000, path: 200 },
        { n: 10, path: 1 },
        { n: 2_000, path: 50 },
        { n: 1, path: 0 },
        { n: 4_000, path: 120 },
      ];
      for (const [batch, shape] of shapes.entries()) {
        for (let i = 0; i < shape.n; i++) {
          const r = row(org, batch, i, shape.path);
          writer.push(r);
          expected.push({ request_id: r.requestId, path: r.path });
        }
        await writer.flush();
        expect(writer.pending).toBe(0);
      }
      expect(writer.written).toBe(expected.length);
      expect(writer.dropped).toBe(0);
      expect(await rowsOf(org)).toEqual(expected);
    } finally {
      await writer.close();
    }
  });

  it("writes by INSERT from the same buffers when asked to", async () => {
    const org = "org-writer-insert";
    const writer = new AuditWriter({ sql, flushIntervalMs: 60_000, method: "insert" });
    const expected: string[] = [];
    try {
      for (let batch = 0; batch < 3; batch++) {
        for (let i = 0; i < 500 - batch * 200; i++) {
          const r = row(org, batch, i, 80 - batch * 40);
          writer.push(r);
          expected.push(r.requestId);
        }
        await writer.flush();
      }
      expect((await rowsOf(org)).map((r) => r.request_id)).toEqual(expected);
    } finally {
      await writer.close();
    }
  });
});

// A connection that dies in the middle of a COPY, at a chosen protocol message (a proxy cuts
// it; no timing involved): the rows reach Postgres exactly once, whichever side of the commit
// the connection died on.
describe("AuditWriter when the connection dies during a COPY", () => {
  /** CopyDone: the client has sent the whole batch and waits for the server's answer. */
  const COPY_DONE = Buffer.from([0x63, 0, 0, 0, 4]);
  let proxy: CuttingProxy;
  let cut: Sql;

  beforeAll(async () => {
    proxy = await startCuttingProxy(targetOf(db.url));
    cut = connect(throughProxy(db.url, proxy), { max: 1 });
    await cut`select 1`;
  });

  afterAll(async () => {
    await cut.end({ timeout: 1 });
    await proxy.close();
  });

  /** Pushes `n` rows of batch `batch` and returns their request ids. */
  function pushRows(writer: AuditWriter, org: string, batch: number, n: number): string[] {
    return Array.from({ length: n }, (_, i) => {
      const r = row(org, batch, i, 10);
      writer.push(r);
      return r.requestId;
    });
  }

  /** A writer on the proxied pool whose COPY timeout never fires within a test. */
  function cutWriter(): AuditWriter {
    return new AuditWriter({ sql: cut, flushIntervalMs: 60_000, copyTimeoutMs: 10_000 });
  }

  it("retries a batch the server never committed, even when the connection reopens at once", async () => {
    // The COPY waits for its completion when the connection dies; the pool reopens that
    // connection for the next statement. postgres.js 3.4.9 kept the COPY's completion callback
    // on the connection and called it on the reopened connection's first answer, so the
    // writer counted a rolled-back batch as written (scripts/patch-postgres.mjs, guard 3).
    const org = "org-writer-cut-before-commit";
    const writer = cutWriter();
    try {
      const expected = pushRows(writer, org, 0, 20);
      proxy.arm((chunk) => chunk.includes(COPY_DONE));
      const cuts = proxy.cuts;
      const flushing = writer.flush();
      await cut`select 1`; // queued behind the COPY's connection; runs once it reopens
      await flushing;
      expect(proxy.cuts).toBe(cuts + 1);
      await writer.flush();
      expect(writer.pending).toBe(0);
      expect(writer.dropped).toBe(0);
      expect((await rowsOf(org)).map((r) => r.request_id)).toEqual(expected);
    } finally {
      await writer.close();
    }
  });

  it("skips a batch the server committed but never confirmed, and writes the batches behind it", async () => {
    // The server commits and its answer is lost with the connection: the retry of those rows
    // (same ids) violates the primary key. Before, that dropped the batch together with every
    // newer batch taken for the same write, rows that were never written.
    const org = "org-writer-cut-after-commit";
    const writer = cutWriter();
    try {
      const expected = pushRows(writer, org, 0, 20);
      // CommandComplete of the COPY: tag "COPY 20".
      proxy.armResponse((chunk) => chunk.includes("COPY 20"));
      const cuts = proxy.cuts;
      await writer.flush();
      expect(proxy.cuts).toBe(cuts + 1);
      expect(writer.pending).toBe(20);
      expected.push(...pushRows(writer, org, 1, 30));
      await writer.flush();
      expect(writer.pending).toBe(0);
      expect(writer.dropped).toBe(0);
      expect((await rowsOf(org)).map((r) => r.request_id).sort()).toEqual(expected.sort());
    } finally {
      await writer.close();
    }
  });
});
