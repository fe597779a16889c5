import { Counter, collectDefaultMetrics, Registry } from "prom-client";
import { VerifyCode } from "../gen/latchkey/v1/token_verify_service_pb.js";
import {
  type PostgresStatsSource,
  registerScraped,
  registerStatMetrics,
  type StatSample,
  type StorageStatsSource,
} from "./metrics-stats.js";

/** Short VerifyCode names (`VALID`, `MALFORMED`, …) used as the `code` label. */
const VERIFY_CODE_LABELS: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, value] of Object.entries(VerifyCode)) {
    if (typeof value === "number") names[value] = name.replace(/^VERIFY_CODE_/, "");
  }
  return names;
})();

/** gRPC status code names (`OK`, `NOT_FOUND`, …) used as the `code` label of RPC metrics. */
export const GRPC_CODE_NAMES: readonly string[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/**
 * Counters a verifier keeps itself and that are copied into the registry on each scrape (the
 * cache, audit, usage and Redis ones are optional, so a test may give only decisions).
 */
export interface VerifyStatsSource extends StorageStatsSource {
  /** Verifications by VerifyCode number. */
  readonly byCode: readonly number[];
  /** Audit rows dropped because the writer's buffer was full. */
  readonly auditDropped: number;
  /** The hardening counters (see {@link registerHardeningMetrics}); absent ones read as 0. */
  readonly unknownLimited?: number;
  readonly auditSampled?: number;
  readonly sharedRefused?: number;
  readonly recordsRejected?: { readonly signature: number; readonly malformed: number };
  readonly changesApplied?: number;
  readonly changePollFailures?: number;
  readonly usageDropped?: number;
}

/** Counts and times the calls of one method; bound once per method, so a call bumps numbers only. */
export interface MethodRecorder {
  /**
   * One finished call that ended with gRPC `code`. `seconds` is its duration; streams pass
   * none (a stream's lifetime is not a latency) and are only counted.
   */
  record(code: number, seconds?: number): void;
}

/** The RPC instruments the adapter binds per method, the same ones for both listeners. */
export interface RpcMetrics {
  /** The recorder of `method` (`pkg.Service/Method`); the same one each time it is asked. */
  method(method: string): MethodRecorder;
}

/** The registry served on /metrics and the instruments the listeners and services use. */
export interface Metrics {
  readonly registry: Registry;
  /** `latchkey_rpc_requests_total{service,method,code}`; filled from {@link rpc} at scrape time. */
  readonly rpcRequests: Counter<"service" | "method" | "code">;
  /** `latchkey_verify_decisions_total{code}` (VerifyCode without its prefix). */
  readonly verifyDecisions: Counter<"code">;
  /** `latchkey_audit_dropped_total`. */
  readonly auditDropped: Counter;
  /** What the adapter records each RPC into: latchkey_rpc_requests_total and _duration_seconds. */
  readonly rpc: RpcMetrics;
}

export interface MetricsOptions {
  /** Node process metrics (event loop lag, heap, GC); on by default. */
  readonly defaultMetrics?: boolean;
  /**
   * When given, latchkey_verify_decisions_total, the audit, cache, usage and Redis series are
   * read from the verifier's own counters at scrape time, so VerifyToken pays nothing for them.
   */
  readonly verifyStats?: () => VerifyStatsSource;
  /** When given, the pool size (latchkey_postgres_up comes from the readiness monitor). */
  readonly postgres?: PostgresStatsSource;
}

/** Upper bounds (seconds) of latchkey_rpc_duration_seconds. */
const DURATION_BOUNDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/** One method's numbers: calls by code, and its duration histogram (non-cumulative buckets). */
class MethodSeries implements MethodRecorder {
  readonly byCode: number[] = [];
  /** Observations per bound of DURATION_BOUNDS; above the last bound only `count` grows. */
  readonly buckets: number[] = DURATION_BOUNDS.map(() => 0);
  sum = 0;
  count = 0;

  constructor(
    readonly service: string,
    readonly method: string,
  ) {}

  record(code: number, seconds?: number): void {
    this.byCode[code] = (this.byCode[code] ?? 0) + 1;
    if (seconds === undefined) return;
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < DURATION_BOUNDS.length; i++) {
      if (seconds <= (DURATION_BOUNDS[i] ?? 0)) {
        this.buckets[i] = (this.buckets[i] ?? 0) + 1;
        return;
      }
    }
  }
}

/**
 * `latchkey_rpc_duration_seconds{service,method}` read from {@link MethodSeries} at scrape
 * time. prom-client's Histogram hashes the label set on every observe, even on a bound child
 * (about 0.4 µs, as much as the rest of a cached VerifyToken's bookkeeping), so the numbers are
 * kept here and only formatted when /metrics is read.
 */
function durationSamples(series: ReadonlyMap<string, MethodSeries>): StatSample[] {
  const values: StatSample[] = [];
  for (const s of series.values()) {
    if (s.count === 0) continue;
    const labels = { service: s.service, method: s.method };
    let acc = 0;
    DURATION_BOUNDS.forEach((le, i) => {
      acc += s.buckets[i] ?? 0;
      values.push({ labels: { ...labels, le }, value: acc, suffix: "_bucket" });
    });
    values.push(
      { labels: { ...labels, le: "+Inf" }, value: s.count, suffix: "_bucket" },
      { labels, value: s.sum, suffix: "_sum" },
      { labels, value: s.count, suffix: "_count" },
    );
  }
  return values;
}

/**
 * Creates a fresh registry (never the prom-client global one, so tests and several servers
 * in one process do not collide) with the RPC and verification instruments.
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const verifyStats = options.verifyStats;

  // The hot path bumps plain numbers (prom-client hashes the label set on every inc, even on a
  // bound child: about 1 µs a call); they are copied into the counter when /metrics is read.
  const series = new Map<string, MethodSeries>();
  const rpcRequests = new Counter({
    name: "latchkey_rpc_requests_total",
    help: "RPCs handled, by service, method and gRPC status code.",
    labelNames: ["service", "method", "code"] as const,
    registers: [registry],
    collect(this: Counter<"service" | "method" | "code">): void {
      this.reset();
      for (const c of series.values()) {
        for (let code = 0; code < c.byCode.length; code++) {
          const n = c.byCode[code] ?? 0;
          if (n > 0) {
            this.inc(
              { service: c.service, method: c.method, code: GRPC_CODE_NAMES[code] ?? String(code) },
              n,
            );
          }
        }
      }
    },
  });
  registerScraped(
    registry,
    "latchkey_rpc_duration_seconds",
    "histogram",
    "Time spent handling an RPC, from decoded request to response handed to the transport.",
    () => durationSamples(series),
  );
  const verifyDecisions = new Counter({
    name: "latchkey_verify_decisions_total",
    help: "Token verifications by decision code.",
    labelNames: ["code"] as const,
    registers: [registry],
    ...(verifyStats === undefined
      ? {}
      : {
          collect(this: Counter<"code">): void {
            const byCode = verifyStats().byCode;
            this.reset();
            for (let i = 0; i < byCode.length; i++) {
              const n = byCode[i] ?? 0;
              if (n > 0) this.inc({ code: VERIFY_CODE_LABELS[i] ?? String(i) }, n);
            }
          },
        }),
  });
  const auditDropped = new Counter({
    name: "latchkey_audit_dropped_total",
    help: "Audit rows dropped because the audit writer could not keep up or storage was down.",
    registers: [registry],
    ...(verifyStats === undefined
      ? {}
      : {
          collect(this: Counter): void {
            this.reset();
            const n = verifyStats().auditDropped;
            if (n > 0) this.inc(n);
          },
        }),
  });

  if (verifyStats !== undefined) registerStatMetrics(registry, verifyStats, options.postgres);
  if (verifyStats !== undefined) registerHardeningMetrics(registry, verifyStats);

  const rpc: RpcMetrics = {
    method(fullMethod) {
      let s = series.get(fullMethod);
      if (s === undefined) {
        const slash = fullMethod.lastIndexOf("/");
        s = new MethodSeries(fullMethod.slice(0, slash), fullMethod.slice(slash + 1));
        series.set(fullMethod, s);
      }
      return s;
    },
  };

  return { registry, rpcRequests, verifyDecisions, auditDropped, rpc };
}

// --- verification hardening (issues 8, 13): counters read from the verifier at scrape time ---

/** Adds the `latchkey_` series of the verification hardening, read from `stats` on scrape. */
function registerHardeningMetrics(registry: Registry, stats: () => VerifyStatsSource): void {
  const counter = (name: string, help: string, read: (s: VerifyStatsSource) => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect(this: Counter): void {
        this.reset();
        const n = read(stats());
        if (n > 0) this.inc(n);
      },
    });
  };
  counter(
    "latchkey_verify_unknown_limited_total",
    "Verifications of unknown tokens answered RATE_LIMITED by the per-peer limit, no lookup made.",
    (s) => s.unknownLimited ?? 0,
  );
  counter(
    "latchkey_audit_sampled_total",
    "MALFORMED / NOT_FOUND denials folded into a per-peer summary audit row.",
    (s) => s.auditSampled ?? 0,
  );
  counter(
    "latchkey_cache_shared_refused_total",
    "Redis copies not used: older than a known change, or read from Postgres too long ago.",
    (s) => s.sharedRefused ?? 0,
  );
  counter(
    "latchkey_token_changes_applied_total",
    "Token change log entries applied to the caches.",
    (s) => s.changesApplied ?? 0,
  );
  counter(
    "latchkey_token_change_poll_failures_total",
    "Polls of the token change log that failed.",
    (s) => s.changePollFailures ?? 0,
  );
  new Counter({
    name: "latchkey_cache_records_rejected_total",
    help: "Redis records refused on read: `signature` (MAC failed: forged, edited, moved), `malformed`.",
    labelNames: ["reason"] as const,
    registers: [registry],
    collect(this: Counter<"reason">): void {
      this.reset();
      const r = stats().recordsRejected;
      if (r === undefined) return;
      // Both series always present (0 included), so alerts and dashboards see them from the start.
      this.inc({ reason: "signature" }, r.signature);
      this.inc({ reason: "malformed" }, r.malformed);
    },
  });
}
