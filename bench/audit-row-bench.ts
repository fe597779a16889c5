/**
 * `node dist/bench/audit-row-bench.js`: latchkey-side CPU per audited verification for three
 * designs, in process, no Postgres (the COPY stream is a sink): (a) the current AuditWriter (a
 * row object per call, COPY text built per batch), (b) the row pre-encoded as COPY text at push
 * time from a per-(token, code) prefix cached with the token, (c) an aggregated verification
 * log (one counter per token, code and second). Prints ns per row, median of 7 runs.
 */
import { Writable } from "node:stream";
import { newAuditId } from "../src/domain/ids.js";
import { AuditWriter } from "../src/store/audit-writer.js";
import type { Sql } from "../src/store/db.js";
import { SAMPLE_ROW } from "./lib/audit-sample.js";
import { spread } from "./lib/stats.js";

const N = 200_000;
const sink = (): Writable =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });
/** Just enough of postgres.js for AuditWriter.copy: reserve() → tagged template → writable(). */
const fakeSql = {
  reserve: async () => Object.assign(() => ({ writable: async () => sink() }), { release() {} }),
} as unknown as Sql;

const base = SAMPLE_ROW;

async function current(): Promise<number> {
  const w = new AuditWriter({
    sql: fakeSql,
    batchSize: 5_000,
    maxBuffered: N * 2,
    flushIntervalMs: 1e9,
  });
  const t0 = process.cpuUsage();
  const now = Date.now();
  for (let i = 0; i < N; i++) {
    w.push({ ...base, timeMs: now + (i >> 4), clientIp: base.clientIp, requestId: base.requestId });
    if (i % 5_000 === 4_999) await w.flush();
  }
  await w.close();
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / N;
}

const NEEDS = /[\\\t\n\r\0]/;
const esc = (s: string) => (NEEDS.test(s) ? s.replace(/[\\\t\n\r\0]/g, "") : s);

/** (b): the constant columns of a (token, code) are one cached string; a row is one concat. */
async function preEncoded(): Promise<number> {
  const prefix = `${base.orgId}\t${base.actorId}\t${base.action}\t${base.tokenId}\t${base.decision}\t${base.code}\t`;
  let rows: string[] = [];
  let lastSecond = -1;
  let iso = "";
  const t0 = process.cpuUsage();
  const now = Date.now();
  for (let i = 0; i < N; i++) {
    const ms = now + (i >> 4);
    if (ms !== lastSecond) {
      lastSecond = ms;
      iso = new Date(ms).toISOString();
    }
    rows.push(
      `${newAuditId()}\t${iso}\t${prefix}${esc(base.clientIp)}\t${esc(base.method)}\t${esc(base.path)}\t${esc(base.requestId)}\n`,
    );
    if (rows.length === 5_000) {
      const s = sink();
      s.end(rows.join(""));
      rows = [];
    }
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / N;
}

/** (c): one counter per (token, code, second); a flush writes one row per counter. */
async function aggregated(): Promise<number> {
  const counts = new Map<string, number>();
  const t0 = process.cpuUsage();
  const now = Date.now();
  let key = "";
  let keyFor = -1;
  for (let i = 0; i < N; i++) {
    const second = Math.floor((now + (i >> 4)) / 1000);
    if (second !== keyFor) {
      keyFor = second;
      key = `${base.tokenId}|${base.code}|${second}`;
    }
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / N;
}

for (const [name, f] of [
  ["(a) current AuditWriter (object per row, COPY text per batch)", current],
  ["(b) pre-encoded COPY text at push", preEncoded],
  ["(c) aggregated counter per token/code/second", aggregated],
] as const) {
  const runs: number[] = [];
  for (let r = 0; r < 7; r++) runs.push(await f());
  const s = spread(runs);
  console.log(
    `${name}: ${s?.median.toFixed(0)} ns/row (${s?.min.toFixed(0)}–${s?.max.toFixed(0)})`,
  );
}
