/**
 * `node dist/bench/ab.js`: server CPU per call of this build against another build of latchkey
 * (AB_BASE=/path/to/other/dist/src/main.js), alternating servers and phases in one run so that
 * machine noise hits both sides alike. For measuring an optimisation before it is merged.
 * AB_AUDIT (all | none, default all), BENCH_SECONDS, BENCH_ROUNDS; needs DATABASE_URL.
 */
import postgres from "postgres";
import { ROUNDS, say } from "./lib/env.js";
import { boundNote, type PhaseResult } from "./lib/phase.js";
import { f1, Report } from "./lib/report.js";
import { benchSeeder } from "./lib/seed.js";
import { startServer } from "./lib/server.js";
import { spread } from "./lib/stats.js";
import { healthPhase, verifyPhase } from "./phases.js";
import { alternate } from "./scenarios/throughput.js";

const url = process.env.DATABASE_URL ?? "";
const base = process.env.AB_BASE ?? "";
if (url === "" || base === "") throw new Error("DATABASE_URL and AB_BASE are required");
const audit = process.env.AB_AUDIT ?? "all";
const sql = postgres(url, { max: 2, onnotice: () => {} });
const seed = await benchSeeder(sql);
const tokens = { verify: await seed(["deploy:*"]), admin: await seed(["tokens:read"]) };
await sql.end({ timeout: 2 });
const redis = process.env.REDIS_URL ?? "";
const env = {
  DATABASE_URL: url,
  LATCHKEY_AUDIT_MODE: audit,
  ...(redis === "" ? {} : { REDIS_URL: redis }),
};
const phases = [healthPhase(), verifyPhase(`VerifyToken, audit ${audit}`, tokens)];
const a = await startServer(env, "A (AB_BASE)", { main: base });
const b = await startServer(env, "B (this build)");
const runs: Record<string, PhaseResult[]> = {};
for (let i = 0; i < ROUNDS; i++) {
  for (const s of [a, b]) {
    for (const [name, r] of await alternate(s, phases, 1)) {
      const k = `${s.label}: ${name}`;
      runs[k] = [...(runs[k] ?? []), ...r];
    }
  }
}
await a.stop();
await b.stop();
const report = new Report();
for (const [k, r] of Object.entries(runs)) {
  report.samples(
    `${k}, server CPU per call, µs`,
    r.map((x) => x.usPerCall),
    f1,
    boundNote(r),
  );
}
const us = (k: string) => spread((runs[k] ?? []).map((x) => x.usPerCall))?.median;
for (const name of phases.map((p) => p.name)) {
  const x = us(`A (AB_BASE): ${name}`);
  const y = us(`B (this build): ${name}`);
  report.value(
    `${name}: B − A, µs per call`,
    f1(x === undefined || y === undefined ? undefined : y - x),
  );
}
say("");
say(report.render());
process.exit(0);
