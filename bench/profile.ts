/**
 * `node dist/bench/profile.js`: where a VerifyToken's server CPU goes, next to Health/Check on
 * the same server. Starts latchkey pinned with `--cpu-prof --trace-gc` once per audit mode,
 * loads Health/Check then VerifyToken flat out (h2load pinned to the other core), cuts each
 * phase's measured window out of the profile and prints Markdown for docs/perf.md: µs per call
 * by category (self time), GC share, young-generation bytes allocated per call, the top
 * self-time functions and latchkey's own functions inclusive. Needs DATABASE_URL; REDIS_URL
 * optional. PROFILE_SECONDS sets the phase length (default 8).
 */
import { mkdtempSync, openSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { allocatedBytes, type ProfileSummary, summarise } from "./lib/cpuprofile.js";
import { say } from "./lib/env.js";
import { monotonicUs, type PhaseResult, runPhase } from "./lib/phase.js";
import { f1 } from "./lib/report.js";
import { benchSeeder } from "./lib/seed.js";
import { startServer } from "./lib/server.js";
import { type CheckedPhase, healthPhase, verifyPhase } from "./phases.js";
import { sanity } from "./scenarios/throughput.js";

process.env.BENCH_SECONDS ??= process.env.PROFILE_SECONDS ?? "8";
const url = process.env.DATABASE_URL ?? "";
if (url === "") throw new Error("DATABASE_URL is required");
const sql = postgres(url, { max: 2, onnotice: () => {} });
const seed = await benchSeeder(sql);
const tokens = { verify: await seed(["deploy:*"]), admin: await seed(["tokens:read"]) };
const redis = process.env.REDIS_URL ?? "";
const env = { DATABASE_URL: url, ...(redis === "" ? {} : { REDIS_URL: redis }) };

interface Measured {
  readonly phase: PhaseResult;
  readonly prof: ProfileSummary;
  readonly alloc: { bytes: number; gcs: number };
}

async function profiled(mode: string, phases: readonly CheckedPhase[]): Promise<Measured[]> {
  const dir = mkdtempSync(join(tmpdir(), `latchkey-prof-${mode}-`));
  const gcLog = join(dir, "trace-gc.txt");
  const spawnedUs = monotonicUs();
  const server = await startServer({ ...env, LATCHKEY_AUDIT_MODE: mode }, `prof-${mode}`, {
    nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--trace-gc"],
    stdoutFd: openSync(gcLog, "w"),
  });
  await sanity(server, phases);
  const results: PhaseResult[] = [];
  for (const p of phases) results.push(await runPhase(server, p));
  await server.stop();
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (file === undefined) throw new Error(`no profile written in ${dir}`);
  const trace = readFileSync(gcLog, "utf8");
  return results.map((phase) => ({
    phase,
    prof: summarise(join(dir, file), phase.windowUs[0], phase.windowUs[1]),
    alloc: allocatedBytes(
      trace,
      (phase.windowUs[0] - spawnedUs) / 1000,
      (phase.windowUs[1] - spawnedUs) / 1000,
    ),
  }));
}

function perCall(m: Measured, us: number): number {
  return us / Math.max(1, m.phase.calls);
}

function report(title: string, base: Measured, call: Measured): void {
  say(`\n### ${title}\n`);
  say(`| | ${base.phase.name} | ${call.phase.name} | difference |`);
  say("|---|---:|---:|---:|");
  const row = (label: string, a: number | undefined, b: number | undefined) =>
    say(
      `| ${label} | ${f1(a)} | ${f1(b)} | ${f1(a === undefined || b === undefined ? undefined : b - a)} |`,
    );
  row("req/s", base.phase.rps, call.phase.rps);
  row("server core busy, %", base.phase.serverBusy * 100, call.phase.serverBusy * 100);
  row("server CPU per call (/proc, all threads), µs", base.phase.usPerCall, call.phase.usPerCall);
  row(
    "main-thread samples per call, µs",
    perCall(base, base.prof.busyUs),
    perCall(call, call.prof.busyUs),
  );
  const cats = [...new Set([...base.prof.byCategory.keys(), ...call.prof.byCategory.keys()])];
  cats.sort((x, y) => (call.prof.byCategory.get(y) ?? 0) - (call.prof.byCategory.get(x) ?? 0));
  for (const c of cats) {
    row(
      `  ${c}, µs`,
      perCall(base, base.prof.byCategory.get(c) ?? 0),
      perCall(call, call.prof.byCategory.get(c) ?? 0),
    );
  }
  row(
    "young-generation bytes allocated per call",
    perCall(base, base.alloc.bytes),
    perCall(call, call.alloc.bytes),
  );
  row("GCs in the window", base.alloc.gcs, call.alloc.gcs);
  say(`\nTop self time, ${call.phase.name} (µs per call):\n`);
  const top = [...call.prof.selfByFunction].sort((a, b) => b[1] - a[1]).slice(0, 25);
  for (const [k, v] of top) say(`    ${f1(perCall(call, v)).padStart(6)}  ${k}`);
  say(`\nLargest self-time increases over ${base.phase.name} (µs per call):\n`);
  const diff = [...call.prof.selfByFunction].map(
    ([k, v]) =>
      [k, perCall(call, v) - perCall(base, base.prof.selfByFunction.get(k) ?? 0)] as const,
  );
  diff.sort((a, b) => b[1] - a[1]);
  for (const [k, v] of diff.slice(0, 20)) say(`    ${f1(v).padStart(6)}  ${k}`);
  say(`\nlatchkey functions, inclusive, ${call.phase.name} (µs per call):\n`);
  const inc = [...call.prof.inclusiveLatchkey].sort((a, b) => b[1] - a[1]).slice(0, 20);
  for (const [k, v] of inc) say(`    ${f1(perCall(call, v)).padStart(6)}  ${k}`);
}

const health = healthPhase();
for (const mode of ["all", "none"]) {
  const verify = verifyPhase(`VerifyToken, audit ${mode}`, tokens);
  const [h, v] = await profiled(mode, [health, verify]);
  if (h !== undefined && v !== undefined) report(`audit ${mode}`, h, v);
}
await sql.end({ timeout: 2 });
