import { Gauge, type Registry } from "prom-client";
import { ping, type Sql } from "../store/db.js";
import { MIGRATIONS_DIR, pendingMigrations } from "../store/migrate.js";
import type { HealthReporter } from "./grpc/health.js";
import type { Readiness } from "./http/probes.js";

export interface ReadinessDeps {
  readonly sql: Sql;
  /** Asked only when `redis` is true. */
  readonly redisHealthy: () => Promise<boolean>;
  readonly redis: boolean;
  /** Flipped SERVING / NOT_SERVING with readiness (gRPC Health/Check and Watch). */
  readonly health: HealthReporter;
  /** Where the `latchkey_postgres_up`, `latchkey_redis_up` and `latchkey_ready` gauges go. */
  readonly registry: Registry;
  /** How often readiness is re-checked in the background (ms). Default 1000. */
  readonly intervalMs?: number | undefined;
  /** How long a Postgres ping may take before Postgres counts as unreachable (ms). Default 1000. */
  readonly pingTimeoutMs?: number | undefined;
}

/** The one readiness model behind /readyz and gRPC health. */
export interface ReadinessMonitor {
  /** Checks now (concurrent callers share one check) and updates health and the gauges. */
  check(): Promise<Readiness>;
  /** Stops the background checks; health is no longer touched afterwards. */
  stop(): void;
}

/**
 * One answer to "should this instance receive traffic?", for orchestrators (/readyz) and gRPC
 * load balancers (Health/Check, Watch) alike. Not ready only when latchkey cannot decide a
 * verification for an uncached token: Postgres unreachable (or its schema behind this build).
 * Redis down is a supported degraded mode — verifications go to Postgres — so it is reported
 * (`status: "degraded"`, `checks.redis`, `latchkey_redis_up 0`) but the instance stays ready;
 * otherwise an orchestrator would pull every instance during a Redis outage. Checked every
 * second in the background, so health flips within about a second of Postgres going or coming
 * back even when nobody polls /readyz.
 */
export function createReadinessMonitor(deps: ReadinessDeps): ReadinessMonitor {
  const pingTimeoutMs = deps.pingTimeoutMs ?? 1_000;
  const gauge = (name: string, help: string) =>
    new Gauge({ name, help, registers: [deps.registry] });
  const postgresUp = gauge("latchkey_postgres_up", "1 when Postgres answered the last check.");
  const redisUp = deps.redis
    ? gauge("latchkey_redis_up", "1 when Redis answered the last check (0: degraded mode).")
    : undefined;
  const readyGauge = gauge("latchkey_ready", "1 when the instance is ready (see /readyz).");
  let migrationsOk = false;
  let serving: boolean | undefined;
  let stopped = false;
  let inflight: Promise<Readiness> | undefined;

  const run = async (): Promise<Readiness> => {
    const checks: Record<string, string> = {};
    const pgUp = await ping(deps.sql, pingTimeoutMs);
    checks.postgres = pgUp ? "ok" : "unreachable";
    if (pgUp && !migrationsOk) {
      const pending = await pendingMigrations(deps.sql, MIGRATIONS_DIR).catch(() => ["?"]);
      migrationsOk = pending.length === 0;
      if (!migrationsOk) checks.migrations = `pending: ${pending.join(", ")}`;
    }
    if (pgUp && migrationsOk) checks.migrations = "ok";
    let redisOk = true;
    if (deps.redis) {
      redisOk = await deps.redisHealthy().catch(() => false);
      checks.redis = redisOk ? "ok" : "unreachable";
    }
    const ok = pgUp && migrationsOk;
    postgresUp.set(pgUp ? 1 : 0);
    redisUp?.set(redisOk ? 1 : 0);
    readyGauge.set(ok ? 1 : 0);
    if (!stopped && ok !== serving) {
      serving = ok;
      deps.health.setServing(ok);
    }
    const status = !ok ? "not_ready" : redisOk ? "ready" : "degraded";
    return { ok, status, checks };
  };

  const check = (): Promise<Readiness> => {
    inflight ??= run().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };

  const timer = setInterval(() => {
    void check().catch(() => {});
  }, deps.intervalMs ?? 1_000);
  timer.unref();
  return {
    check,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
