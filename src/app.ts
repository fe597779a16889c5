import { Authorization } from "./gen/envoy/service/auth/v3/external_auth_pb.js";
import { createAdminService } from "./services/admin/index.js";
import { createAuthenticator } from "./services/auth.js";
import { createGatewayCheck, type GatewayOptions } from "./services/gateway/check.js";
import { createVerifyService, type VerifyCallerAuth } from "./services/verify/service.js";
import type { LatchkeyVerifier } from "./services/verify/types.js";
import { createAuditRepo } from "./store/audit-repo.js";
import { type Sql, serverKey } from "./store/db.js";
import { createTokenRepo } from "./store/token-repo.js";
import type { TlsOptions } from "./transport/client-cert.js";
import { extAuthzService } from "./transport/grpc/ext-authz.js";
import { createHealthReporter, type GrpcHealthReporter } from "./transport/grpc/health.js";
import { closeGrpc, createGrpcServer, listenGrpc } from "./transport/grpc/server.js";
import { forwardAuthRoute } from "./transport/http/forward-auth.js";
import { introspectRoute } from "./transport/http/introspect.js";
import { createHttpServer, type HttpLog } from "./transport/http/server.js";
import type { ConnectionLimits } from "./transport/limits.js";
import { createMetrics, type Metrics } from "./transport/metrics.js";
import { createReadinessMonitor } from "./transport/readiness.js";
import { adaptLatchkey, type LatchkeyHandlers } from "./transport/rpc-adapter.js";

/** What one latchkey instance is started from: storage and the verifier, owned by the caller. */
export interface InstanceDeps {
  readonly sql: Sql;
  readonly verifier: LatchkeyVerifier;
  readonly tokenPrefix: string;
  readonly log: HttpLog;
  /** Report Redis in /readyz (REDIS_URL is set). */
  readonly redis: boolean;
  /** `host:port` (port 0: a free one). */
  readonly grpcListen: string;
  readonly httpListen: string;
  /** TLS on both listeners; with `clientCa`, mTLS (LATCHKEY_TLS_CLIENT_CA / _CLIENT_AUTH). */
  readonly tls?: TlsOptions | undefined;
  /** First-byte, header and idle timeouts and the stream cap of both listeners. */
  readonly limits?: ConnectionLimits | undefined;
  /** How often readiness (health, /readyz, gauges) is re-checked in the background (ms). */
  readonly readinessIntervalMs?: number | undefined;
  /** Process metrics (CPU, memory, event loop) in /metrics; off in tests. */
  readonly defaultMetrics?: boolean;
  /** Origins allowed to call the API from a browser (LATCHKEY_CORS_ORIGINS); empty: CORS off. */
  readonly corsOrigins?: readonly string[];
  /** Trusted proxies and token header of the gateway endpoints (default loopback, authorization). */
  readonly gateway?: GatewayOptions | undefined;
  /** LATCHKEY_VERIFY_AUTH: `token` requires a `tokens:verify` bearer on TokenVerifyService. */
  readonly verifyAuth?: VerifyCallerAuth | undefined;
  /** false: the gRPC listener serves unary methods through grpc-js too (A/B, comparison tests). */
  readonly grpcFastUnary?: boolean | undefined;
}

/** One running instance: both listeners serving the same two service implementations. */
export interface Instance {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly metrics: Metrics;
  readonly health: GrpcHealthReporter;
  /** Flips health to NOT_SERVING and closes both listeners (the verifier and sql stay open). */
  close(): Promise<void>;
}

/**
 * The two service implementations over the instance's dependencies. The one place services are
 * constructed (and re-pointed when their dependencies change).
 */
async function createServices(deps: InstanceDeps): Promise<LatchkeyHandlers> {
  const { sql, verifier, log } = deps;
  const pageKey = await serverKey(sql, "page_token_key");
  return {
    admin: createAdminService({
      tokens: createTokenRepo(sql),
      audit: createAuditRepo(sql),
      changes: verifier,
      prefix: deps.tokenPrefix,
      pageKey,
      log,
    }),
    verify: createVerifyService({ verifier, sql, callerAuth: deps.verifyAuth }),
  };
}

/**
 * Starts one instance from its dependencies: services, metrics and health, adapted once by the
 * RPC adapter and served on the gRPC listener (grpc-js: reflection, health) and the HTTP
 * listener (connect-node: Connect, gRPC-Web, probes, metrics). main.ts and the integration
 * tests both start instances through here, so tests exercise exactly the wiring production runs.
 */
export async function startInstance(deps: InstanceDeps): Promise<Instance> {
  const { verifier, log } = deps;
  const metrics = createMetrics({
    defaultMetrics: deps.defaultMetrics ?? true,
    verifyStats: () => verifier.stats(),
    postgres: { poolSize: deps.sql.options.max },
  });
  const services = adaptLatchkey(await createServices(deps), {
    log,
    metrics: metrics.rpc,
    authenticate: createAuthenticator(verifier),
    requireClientCertificate: deps.tls?.clientCa !== undefined,
  });
  const health = createHealthReporter({ extraServiceNames: [Authorization.typeName] });
  const readiness = createReadinessMonitor({
    sql: deps.sql,
    redisHealthy: () => verifier.redisHealthy(),
    redis: deps.redis,
    health,
    registry: metrics.registry,
    intervalMs: deps.readinessIntervalMs,
  });
  const gateway = createGatewayCheck(verifier, deps.gateway);
  const grpcServer = createGrpcServer({
    services,
    health,
    log,
    limits: deps.limits,
    extraServices: [extAuthzService(gateway, log, metrics.rpc)],
    fastUnary: deps.grpcFastUnary,
  });
  const http = createHttpServer({
    services,
    log,
    routes: [forwardAuthRoute(gateway, log), introspectRoute(verifier, log)],
    ready: readiness.check,
    metrics: metrics.registry,
    limits: deps.limits,
    ...(deps.tls === undefined ? {} : { tls: deps.tls }),
    corsOrigins: deps.corsOrigins,
  });
  let grpcPort: number;
  try {
    grpcPort = await listenGrpc(grpcServer, deps.grpcListen, deps.tls);
  } catch (err) {
    readiness.stop();
    grpcServer.forceShutdown();
    throw err;
  }
  let httpPort: number;
  try {
    httpPort = await http.listen(deps.httpListen);
  } catch (err) {
    readiness.stop();
    await closeGrpc(grpcServer, 0);
    throw err;
  }
  return {
    grpcPort,
    httpPort,
    metrics,
    health,
    close: async () => {
      readiness.stop();
      health.setServing(false);
      await Promise.all([closeGrpc(grpcServer, 2_000), http.close()]);
    },
  };
}
