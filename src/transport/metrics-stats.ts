import type { Histogram, Registry } from "prom-client";

/** One sample of a scrape-time metric; `suffix` makes `_sum`, `_count`, `_bucket` lines. */
export interface StatSample {
  readonly labels?: Readonly<Record<string, string | number>>;
  readonly value: number;
  readonly suffix?: "_sum" | "_count" | "_bucket";
}

/**
 * Registers a metric whose samples are read when /metrics is scraped, from numbers the hot path
 * bumps itself (prom-client's own instruments hash label sets on every update, about 1 µs a
 * call). prom-client only calls get() and reset() on a registered metric.
 */
export function registerScraped(
  registry: Registry,
  name: string,
  type: "counter" | "gauge" | "summary" | "histogram",
  help: string,
  read: () => readonly StatSample[] | Promise<readonly StatSample[]>,
): void {
  const metric = {
    name,
    help,
    type,
    aggregator: "sum",
    reset(): void {},
    async get() {
      const values = (await read()).map((s) => ({
        labels: { ...s.labels },
        value: s.value,
        metricName: s.suffix === undefined ? name : `${name}${s.suffix}`,
      }));
      return { name, help, type, aggregator: "sum", values };
    },
  };
  registry.registerMetric(metric as unknown as Histogram);
}

/** The verifier's and storage's own counters and state, as {@link registerStatMetrics} reads them. */
export interface StorageStatsSource {
  readonly localHits?: number;
  readonly redisHits?: number;
  readonly negativeHits?: number;
  readonly postgresLoads?: number;
  readonly localEntries?: number;
  readonly staleServed?: number;
  readonly unavailable?: number;
  readonly auditWritten?: number;
  readonly auditPending?: number;
  readonly auditFlushes?: number;
  readonly auditFlushSeconds?: number;
  readonly usageDropped?: number;
  readonly usagePending?: number;
  readonly usageFlushes?: number;
  readonly usageFlushSeconds?: number;
  readonly redisErrors?: number;
  readonly redisUndelivered?: number;
  readonly redisReady?: boolean | undefined;
  readonly redisSubscribed?: boolean | undefined;
}

/** Postgres as /metrics reports it: reachable now, and the pool's configured size. */
export interface PostgresStatsSource {
  readonly poolSize: number;
}

function one(value: number | undefined, labels?: Record<string, string>): StatSample[] {
  return value === undefined ? [] : [{ value, ...(labels === undefined ? {} : { labels }) }];
}

function flag(value: boolean | undefined, labels: Record<string, string>): StatSample[] {
  return value === undefined ? [] : [{ value: value ? 1 : 0, labels }];
}

/**
 * The cache, audit, usage, Redis and Postgres series: what an operator looks at when
 * verification slows down or a dependency fails (see docs/grafana-dashboard.json).
 */
export function registerStatMetrics(
  registry: Registry,
  stats: () => StorageStatsSource,
  postgres: PostgresStatsSource | undefined,
): void {
  const reg = (
    name: string,
    type: "counter" | "gauge" | "summary",
    help: string,
    read: (s: StorageStatsSource) => StatSample[],
  ): void => registerScraped(registry, name, type, help, () => read(stats()));

  reg("latchkey_cache_hits_total", "counter", "Token lookups answered by a cache tier.", (s) => [
    ...one(s.localHits, { tier: "local" }),
    ...one(s.redisHits, { tier: "redis" }),
    ...one(s.negativeHits, { tier: "negative" }),
  ]);
  reg(
    "latchkey_postgres_token_loads_total",
    "counter",
    "Token lookups that reached Postgres (cache misses).",
    (s) => one(s.postgresLoads),
  );
  reg("latchkey_cache_entries", "gauge", "Tokens held in the in-process cache tier.", (s) =>
    one(s.localEntries, { tier: "local" }),
  );
  reg(
    "latchkey_verify_stale_served_total",
    "counter",
    "Verifications answered from a local entry while Postgres was unreachable.",
    (s) => one(s.staleServed),
  );
  reg(
    "latchkey_verify_unavailable_total",
    "counter",
    "Verifications that failed with UNAVAILABLE (storage down, nothing cached).",
    (s) => one(s.unavailable),
  );

  reg(
    "latchkey_audit_written_total",
    "counter",
    "Verification audit rows written to Postgres.",
    (s) => one(s.auditWritten),
  );
  reg(
    "latchkey_audit_buffer_rows",
    "gauge",
    "Verification audit rows waiting in memory for the next write.",
    (s) => one(s.auditPending),
  );
  reg(
    "latchkey_audit_flush_duration_seconds",
    "summary",
    "Time taken by audit writes (COPY batches).",
    (s) => flushSamples(s.auditFlushes, s.auditFlushSeconds),
  );
  reg(
    "latchkey_usage_buffer_tokens",
    "gauge",
    "Tokens with usage (last used, use count) waiting for the next write.",
    (s) => one(s.usagePending),
  );
  reg(
    "latchkey_usage_dropped_total",
    "counter",
    "Token uses not recorded because the usage buffer was full.",
    (s) => one(s.usageDropped),
  );
  reg("latchkey_usage_flush_duration_seconds", "summary", "Time taken by usage writes.", (s) =>
    flushSamples(s.usageFlushes, s.usageFlushSeconds),
  );

  reg(
    "latchkey_redis_connection_up",
    "gauge",
    "1 when the Redis connection (commands, or the revocation subscriber) is ready; absent without REDIS_URL.",
    (s) => [
      ...flag(s.redisReady, { connection: "commands" }),
      ...flag(s.redisSubscribed, { connection: "subscriber" }),
    ],
  );
  reg(
    "latchkey_redis_errors_total",
    "counter",
    "Redis commands that failed (the verifier fell back to its local tier and Postgres).",
    (s) => one(s.redisErrors),
  );
  reg(
    "latchkey_revocations_undelivered",
    "gauge",
    "Token changes not yet delivered to Redis (and so to other instances); replayed on reconnect.",
    (s) => one(s.redisUndelivered),
  );

  if (postgres !== undefined) {
    registerScraped(
      registry,
      "latchkey_postgres_pool_max_connections",
      "gauge",
      "Postgres connections this process may open.",
      () => [{ value: postgres.poolSize }],
    );
  }
}

function flushSamples(count: number | undefined, seconds: number | undefined): StatSample[] {
  if (count === undefined || seconds === undefined) return [];
  return [
    { value: seconds, suffix: "_sum" },
    { value: count, suffix: "_count" },
  ];
}
