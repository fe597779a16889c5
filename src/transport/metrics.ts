import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import { VerifyCode } from "../gen/latchkey/v1/token_verify_service_pb.js";

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

/** Counters a verifier keeps itself and that are copied into the registry on each scrape. */
export interface VerifyStatsSource {
  /** Verifications by VerifyCode number. */
  readonly byCode: readonly number[];
  /** Audit rows dropped because the writer's buffer was full. */
  readonly auditDropped: number;
}

/** Records one finished RPC; the hot path only bumps numbers, prom-client sees them on scrape. */
export interface RpcRecorder {
  /**
   * Counts one call of `method` (`pkg.Service/Method`) that ended with gRPC `code`, and
   * observes its duration when `seconds` is given (callers skip timing where it costs).
   */
  record(method: string, code: number, seconds?: number): void;
}

/** The registry served on /metrics and the instruments the listeners and services use. */
export interface Metrics {
  readonly registry: Registry;
  /** `rpc_requests_total{service,method,code}`; filled from {@link rpc} at scrape time. */
  readonly rpcRequests: Counter<"service" | "method" | "code">;
  /** `rpc_duration_seconds{service,method}`. */
  readonly rpcDuration: Histogram<"service" | "method">;
  /** `verify_decisions_total{code}` (VerifyCode without its prefix). */
  readonly verifyDecisions: Counter<"code">;
  /** `audit_dropped_total`. */
  readonly auditDropped: Counter;
  /** What the listeners call per RPC (cheap); feeds rpcRequests and rpcDuration. */
  readonly rpc: RpcRecorder;
}

export interface MetricsOptions {
  /** Node process metrics (event loop lag, heap, GC); on by default. */
  readonly defaultMetrics?: boolean;
  /**
   * When given, verify_decisions_total and audit_dropped_total are read from the verifier's
   * own counters at scrape time, so VerifyToken pays nothing for them per request.
   */
  readonly verifyStats?: () => VerifyStatsSource;
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
  type MethodCounts = { service: string; method: string; byCode: number[] };
  const counts = new Map<string, MethodCounts>();
  const rpcRequests = new Counter({
    name: "rpc_requests_total",
    help: "RPCs handled, by service, method and gRPC status code.",
    labelNames: ["service", "method", "code"] as const,
    registers: [registry],
    collect(this: Counter<"service" | "method" | "code">): void {
      this.reset();
      for (const c of counts.values()) {
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
  const rpcDuration = new Histogram({
    name: "rpc_duration_seconds",
    help: "Time spent handling an RPC, from decoded request to response handed to the transport.",
    labelNames: ["service", "method"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const verifyDecisions = new Counter({
    name: "verify_decisions_total",
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
    name: "audit_dropped_total",
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

  const durations = new Map<string, Histogram.Internal<"service" | "method">>();
  const rpc: RpcRecorder = {
    record(fullMethod, code, seconds) {
      let c = counts.get(fullMethod);
      if (c === undefined) {
        const slash = fullMethod.lastIndexOf("/");
        c = {
          service: fullMethod.slice(0, slash),
          method: fullMethod.slice(slash + 1),
          byCode: [],
        };
        counts.set(fullMethod, c);
      }
      c.byCode[code] = (c.byCode[code] ?? 0) + 1;
      if (seconds !== undefined) {
        let h = durations.get(fullMethod);
        if (h === undefined) {
          h = rpcDuration.labels({ service: c.service, method: c.method });
          durations.set(fullMethod, h);
        }
        h.observe(seconds);
      }
    },
  };

  return { registry, rpcRequests, rpcDuration, verifyDecisions, auditDropped, rpc };
}
