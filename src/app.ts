import { createAdminService } from "./services/admin/index.js";
import { createAuthenticator } from "./services/auth.js";
import { createVerifyService, type VerifyCallerAuth } from "./services/verify/service.js";
import type { LatchkeyVerifier } from "./services/verify/types.js";
import { createAuditRepo } from "./store/audit-repo.js";
import { ping, type Sql, serverKey } from "./store/db.js";
import { MIGRATIONS_DIR, pendingMigrations } from "./store/migrate.js";
import { createTokenRepo } from "./store/token-repo.js";
import { createHealthReporter, type GrpcHealthReporter } from "./transport/grpc/health.js";
import { closeGrpc, createGrpcServer, listenGrpc } from "./transport/grpc/server.js";
import type { Readiness } from "./transport/http/probes.js";
import { createHttpServer, type HttpLog } from "./transport/http/server.js";
import { createMetrics, type Metrics } from "./transport/metrics.js";
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
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** Process metrics (CPU, memory, event loop) in /metrics; off in tests. */
  readonly defaultMetrics?: boolean;
  /** LATCHKEY_VERIFY_AUTH: `token` requires a `tokens:verify` bearer on TokenVerifyService. */
  readonly verifyAuth?: VerifyCallerAuth | undefined;
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
    verify: createVerifyService({ verifier, callerAuth: deps.verifyAuth }),
  };
}

/** /readyz: Postgres reachable, migrations applied, Redis reachable where configured. */
function readiness(deps: InstanceDeps): () => Promise<Readiness> {
  const { sql, verifier } = deps;
  return async () => {
    const checks: Record<string, string> = {};
    const pgUp = await ping(sql, 1_000);
    checks.postgres = pgUp ? "ok" : "unreachable";
    if (pgUp) {
      const pending = await pendingMigrations(sql, MIGRATIONS_DIR).catch(() => ["?"]);
      checks.migrations = pending.length === 0 ? "ok" : `pending: ${pending.join(", ")}`;
    }
    if (deps.redis) checks.redis = (await verifier.redisHealthy()) ? "ok" : "unreachable";
    return { ok: Object.values(checks).every((c) => c === "ok"), checks };
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
  });
  const services = adaptLatchkey(await createServices(deps), {
    log,
    metrics: metrics.rpc,
    authenticate: createAuthenticator(verifier),
  });
  const health = createHealthReporter();
  const grpcServer = createGrpcServer({ services, health, log });
  const http = createHttpServer({
    services,
    log,
    ready: readiness(deps),
    metrics: metrics.registry,
    ...(deps.tls === undefined ? {} : { tls: deps.tls }),
  });
  let grpcPort: number;
  try {
    grpcPort = await listenGrpc(grpcServer, deps.grpcListen, deps.tls);
  } catch (err) {
    grpcServer.forceShutdown();
    throw err;
  }
  let httpPort: number;
  try {
    httpPort = await http.listen(deps.httpListen);
  } catch (err) {
    await closeGrpc(grpcServer, 0);
    throw err;
  }
  return {
    grpcPort,
    httpPort,
    metrics,
    health,
    close: async () => {
      health.setServing(false);
      await Promise.all([closeGrpc(grpcServer, 2_000), http.close()]);
    },
  };
}
