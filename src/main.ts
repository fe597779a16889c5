import cluster from "node:cluster";
import { type Config, ConfigError, formatHostPort, loadConfig } from "./config.js";
import { TokenAdminService } from "./gen/latchkey/v1/token_admin_service_pb.js";
import { createAdminService } from "./services/admin-service.js";
import { withAdminAuth } from "./services/auth.js";
import { bootstrapIfEmpty } from "./services/bootstrap.js";
import { createVerifier } from "./services/verifier.js";
import { createVerifyService } from "./services/verify-service.js";
import { runClustered } from "./cluster.js";
import { connect, ensureAuditPartitions, ping, serverKey, type Sql } from "./store/db.js";
import { startEmbeddedPostgres } from "./store/embedded.js";
import { MIGRATIONS_DIR, migrate, pendingMigrations } from "./store/migrate.js";
import { createGrpcServer, listenGrpc } from "./transport/grpc-server.js";
import { createHttpServer } from "./transport/http-server.js";
import { createLogger, type Logger } from "./transport/logger.js";
import { createMetrics } from "./transport/metrics.js";

/** Composition root: config → storage → services → listeners → shutdown. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`latchkey: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  // TODO(wiring): filled in once the store, services and transport land.
  void log;
  void cluster;
}

await main();
