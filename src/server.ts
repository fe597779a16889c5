import { TokenAdminService } from "./gen/latchkey/v1/token_admin_service_pb.js";
import { createAdminService } from "./services/admin/index.js";
import { createAuthenticator, withAuthentication } from "./services/auth.js";
import type { LatchkeyVerifier } from "./services/verifier.js";
import { createVerifyService } from "./services/verify-service.js";
import { createAuditRepo } from "./store/audit-repo.js";
import { ping, type Sql, serverKey } from "./store/db.js";
import { MIGRATIONS_DIR, pendingMigrations } from "./store/migrate.js";
import { createTokenRepo } from "./store/token-repo.js";
import {
  closeGrpc,
  createGrpcServer,
  createHealthReporter,
  type GrpcHealthReporter,
  listenGrpc,
} from "./transport/grpc-server.js";
import { createHttpServer, type HttpLog, type Readiness } from "./transport/http-server.js";
import { createMetrics, type Metrics } from "./transport/metrics.js";

export interface ListenersOptions {
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
}

/** Both listeners of one latchkey instance, serving the same two service implementations. */
export interface Listeners {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly metrics: Metrics;
  readonly health: GrpcHealthReporter;
  /** Flips health to NOT_SERVING and closes both listeners (the verifier and sql stay open). */
  close(): Promise<void>;
}

/**
 * Builds TokenAdminService and TokenVerifyService once and serves them on the gRPC listener
 * (grpc-js: reflection, health) and the HTTP listener (connect-node: Connect, gRPC-Web, probes,
 * metrics). The composition root and the integration tests both start servers through here,
 * so tests exercise exactly the wiring that production runs.
 */
export async function startListeners(opts: ListenersOptions): Promise<Listeners> {
  const { sql, verifier, log } = opts;
  const pageKey = await serverKey(sql, "page_token_key");
  const admin = withAuthentication(
    TokenAdminService,
    createAdminService({
      tokens: createTokenRepo(sql),
      audit: createAuditRepo(sql),
      changes: verifier,
      prefix: opts.tokenPrefix,
      pageKey,
      log,
    }),
    createAuthenticator(verifier),
  );
  const verify = createVerifyService({ verifier });
  const metrics = createMetrics({
    defaultMetrics: opts.defaultMetrics ?? true,
    verifyStats: () => verifier.stats(),
  });
  const health = createHealthReporter();

  const ready = async (): Promise<Readiness> => {
    const checks: Record<string, string> = {};
    const pgUp = await ping(sql, 1_000);
    checks.postgres = pgUp ? "ok" : "unreachable";
    if (pgUp) {
      const pending = await pendingMigrations(sql, MIGRATIONS_DIR).catch(() => ["?"]);
      checks.migrations = pending.length === 0 ? "ok" : `pending: ${pending.join(", ")}`;
    }
    if (opts.redis) checks.redis = (await verifier.redisHealthy()) ? "ok" : "unreachable";
    return { ok: Object.values(checks).every((c) => c === "ok"), checks };
  };

  const grpcServer = createGrpcServer({ admin, verify, health, log, metrics: metrics.rpc });
  const http = createHttpServer({
    admin,
    verify,
    log,
    ready,
    metrics: metrics.registry,
    rpcMetrics: metrics.rpc,
    ...(opts.tls === undefined ? {} : { tls: opts.tls }),
  });
  let grpcPort: number;
  try {
    grpcPort = await listenGrpc(grpcServer, opts.grpcListen, opts.tls);
  } catch (err) {
    grpcServer.forceShutdown();
    throw err;
  }
  let httpPort: number;
  try {
    httpPort = await http.listen(opts.httpListen);
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
