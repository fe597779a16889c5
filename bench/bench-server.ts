import cluster from "node:cluster";
import { runClustered } from "../src/cluster.js";
import { formatHostPort, loadConfig } from "../src/config.js";
import { createAdminService } from "../src/services/admin-service.js";
import { createVerifier } from "../src/services/verifier.js";
import { createVerifyService } from "../src/services/verify-service.js";
import { connect, serverKey } from "../src/store/db.js";
import { MIGRATIONS_DIR, migrate } from "../src/store/migrate.js";
import {
  closeGrpc,
  createGrpcServer,
  createHealthReporter,
  listenGrpc,
} from "../src/transport/grpc-server.js";
import { createLogger } from "../src/transport/logger.js";

/**
 * The gRPC listener with the same wiring as src/main.ts (config → Postgres → verifier →
 * services → grpc-js, N workers through runClustered), used by the benchmark when
 * dist/src/main.js cannot serve yet. Needs DATABASE_URL; reads the same LATCHKEY_* variables.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const url = config.databaseUrl;
  if (url === undefined) throw new Error("bench-server needs DATABASE_URL");
  const log = createLogger(config.logLevel);
  if (cluster.isPrimary) {
    const sql = connect(url, { max: 1 });
    await migrate(sql, MIGRATIONS_DIR);
    await sql.end();
  }
  await runClustered(config.workers, async () => {
    const sql = connect(url, { max: config.databasePoolSize });
    const verifier = createVerifier({
      sql,
      tokenPrefix: config.tokenPrefix,
      auditMode: config.auditMode,
      cacheSize: config.cacheSize,
      cacheMaxStalenessMs: config.cacheMaxStalenessMs,
      redisUrl: config.redisUrl,
      log,
    });
    const pageKey = await serverKey(sql, "page_token_key");
    const admin = createAdminService({ sql, verifier, prefix: config.tokenPrefix, pageKey, log });
    const health = createHealthReporter();
    const server = createGrpcServer({
      admin,
      verify: createVerifyService({ verifier }),
      health,
      log,
    });
    await listenGrpc(server, formatHostPort(config.grpcListen));
    const stop = async (): Promise<void> => {
      health.setServing(false);
      await closeGrpc(server, 1_000);
      await verifier.close();
      await sql.end({ timeout: 2 });
      process.exit(0);
    };
    process.once("SIGTERM", () => void stop());
    process.once("SIGINT", () => void stop());
  });
}

await main();
