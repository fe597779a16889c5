/**
 * `npm run bench`: what a VerifyToken costs the server next to an empty gRPC call, measured
 * server-bound in one run. A program, not a test: it prints one table and exits 0 whatever the
 * numbers. Settings: BENCH_SECONDS (per phase, default 5), BENCH_ROUNDS (default 3).
 *
 * Layout: lib/ measures (servers, h2load, /proc CPU, the table), phases.ts says which RPCs are
 * loaded (one function each; the Envoy Check hook is there), scenarios/ puts phases together.
 */
import postgres from "postgres";
import {
  CONNECTIONS,
  CORES,
  CPU_MODEL,
  HAVE_H2LOAD,
  LOAD_CPU,
  PINNED,
  ROUNDS,
  SECONDS,
  SERVER_BOUND_BUSY,
  SERVER_CPU,
  STREAMS,
  say,
} from "./lib/env.js";
import { startInfra } from "./lib/infra.js";
import type { PhaseResult } from "./lib/phase.js";
import { Report } from "./lib/report.js";
import { benchSeeder } from "./lib/seed.js";
import { spread } from "./lib/stats.js";
import {
  type BenchTokens,
  extraPhases,
  getTokenPhase,
  healthPhase,
  verifyPhase,
} from "./phases.js";
import { latencyRows } from "./scenarios/latency.js";
import { propagationRows } from "./scenarios/propagation.js";
import { serverScenario } from "./scenarios/server-rounds.js";
import { workerRows } from "./scenarios/workers.js";

async function main(): Promise<void> {
  say(`latchkey verify bench — ${new Date().toISOString()}`);
  say(`machine: ${CORES} cores (${CPU_MODEL}), node ${process.version}`);
  say(
    `command: npm run bench (BENCH_SECONDS=${SECONDS} BENCH_ROUNDS=${ROUNDS}; h2load -t1 -c${CONNECTIONS} -m${STREAMS})`,
  );
  if (!HAVE_H2LOAD)
    say(
      "h2load not found (apt-get install nghttp2-client): grpc-js worker threads drive the load; they cost as much CPU as the server",
    );
  say(
    PINNED
      ? `pinning: server alone on cpu ${SERVER_CPU}, load generator on cpu ${LOAD_CPU}; a phase counts as server-bound when the server used ≥ ${SERVER_BOUND_BUSY * 100}% of its core`
      : "taskset unavailable or one core: nothing pinned, no phase counts as server-bound",
  );
  const report = new Report();
  const infra = await startInfra();
  const sql = postgres(infra.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    const redis: Record<string, string> =
      infra.redisUrl === undefined ? {} : { REDIS_URL: infra.redisUrl };
    const env = { DATABASE_URL: infra.databaseUrl, ...redis };
    const seed = await benchSeeder(sql);
    const tokens: BenchTokens = {
      verify: await seed(["deploy:*"]),
      admin: await seed(["tokens:read"]),
    };
    const health = healthPhase();

    // 1. Audit all: Health, Verify, GetToken (and any extra phase) alternately; then latency
    // at half of the Verify peak, on the same server.
    const all = verifyPhase("VerifyToken, audit all", tokens);
    const extra = extraPhases.map((f) => f(tokens));
    await serverScenario(
      report,
      { ...env, LATCHKEY_AUDIT_MODE: "all" },
      "audit-all",
      [health, all, getTokenPhase(tokens), ...extra],
      ROUNDS,
      { [all.name]: 0.8 },
      async (server, runs) => {
        const rate = Math.max(100, peakOf(runs.get(all.name) ?? []) / 2);
        await latencyRows(report, server, all, health, rate, ROUNDS);
      },
    );

    // 2. Audit none: the verification path alone.
    const none = verifyPhase("VerifyToken, audit none", tokens);
    await serverScenario(
      report,
      { ...env, LATCHKEY_AUDIT_MODE: "none" },
      "audit-none",
      [health, none],
      ROUNDS,
      { [none.name]: 0.9 },
    );

    // 3. Cold paths: no local tier, so every call reads Redis, or Postgres.
    const coldEnv = { LATCHKEY_CACHE_SIZE: "0", LATCHKEY_AUDIT_MODE: "all" };
    if (infra.redisUrl !== undefined) {
      const cold = verifyPhase("VerifyToken, cold (Redis hit)", tokens);
      await serverScenario(report, { ...env, ...coldEnv }, "cold-redis", [health, cold], ROUNDS);
    }
    const coldPg = verifyPhase("VerifyToken, cold (Postgres)", tokens);
    const pgEnv = { DATABASE_URL: infra.databaseUrl, ...coldEnv };
    await serverScenario(report, pgEnv, "cold-pg", [health, coldPg], ROUNDS);

    // 4. Workers, per server-CPU-second.
    await workerRows(report, { ...env, LATCHKEY_AUDIT_MODE: "all" }, all, ROUNDS);

    // 5. Revocation propagation between two instances sharing Redis.
    if (infra.redisUrl !== undefined) await propagationRows(report, env, seed);
  } catch (err) {
    report.note(`bench stopped early: ${String(err).split("\n")[0]}`);
  } finally {
    await sql.end({ timeout: 2 }).catch(() => {});
    await infra.close();
  }
  report.note(
    "µs per call = server CPU (utime+stime of its process tree, /proc) ÷ calls in the same window; req/s and req/s ratios use server-bound phases only",
  );
  say("");
  say(report.render());
  process.exit(0);
}

/** The Verify peak for the latency rate: median of server-bound phases, else of all. */
function peakOf(runs: readonly PhaseResult[]): number {
  const bound = runs.filter((r) => r.serverBound);
  return spread((bound.length > 0 ? bound : runs).map((r) => r.rps))?.median ?? 0;
}

await main();
