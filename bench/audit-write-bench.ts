/**
 * Which way of writing verification audit rows costs the request process less: COPY … FROM
 * STDIN or multi-row INSERT (postgres.js). Prints client CPU and wall time per 100k rows.
 * Run: node dist/bench/audit-write-bench.js (needs DATABASE_URL with the latchkey schema).
 */

import { type AuditWriteMethod, AuditWriter } from "../src/store/audit-writer.js";
import { connect } from "../src/store/db.js";
import { SAMPLE_ROW } from "./lib/audit-sample.js";

const url = process.env.DATABASE_URL;
if (url === undefined) throw new Error("DATABASE_URL is required");
const sql = connect(url, { max: 2 });
const N = 100_000;
for (const round of [1, 2]) {
  for (const method of ["insert", "copy"] as AuditWriteMethod[]) {
    const writer = new AuditWriter({
      sql,
      method,
      batchSize: 1_000_000,
      maxBuffered: 1_000_000,
      flushIntervalMs: 1_000_000,
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const now = Date.now();
    for (let i = 0; i < N; i++) {
      writer.push({ ...SAMPLE_ROW, timeMs: now + (i >> 4) });
    }
    for (let i = 0; i < N; i += 4_000) {
      // Flush in batches of 4 000, like 200 ms at 20k/s.
    }
    await writer.close();
    const cpu = process.cpuUsage(cpu0);
    const wall = performance.now() - t0;
    console.log(
      `round ${round} ${method.padEnd(6)}: ${N} rows, client CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, wall ${wall.toFixed(0)} ms, written ${writer.written}, dropped ${writer.dropped}`,
    );
  }
}
await sql`DELETE FROM audit_events WHERE org_id = 'bench' AND request_id = 'bench'`;
await sql.end();
