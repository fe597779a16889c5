import cluster from "node:cluster";
import { type Instance, startInstance } from "./app.js";
import { superviseWorkers } from "./cluster.js";
import { type Config, ConfigError, formatHostPort, loadConfig } from "./config.js";
import { bootstrapIfEmpty } from "./services/bootstrap.js";
import { createVerifier } from "./services/verify/verifier.js";
import { connect, ensureAuditPartitions } from "./store/db.js";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./store/embedded.js";
import { MIGRATIONS_DIR, migrate } from "./store/migrate.js";
import { createLogger, type Logger } from "./transport/logger.js";

/** How long a graceful stop may take before the process exits anyway. */
const STOP_DEADLINE_MS = 8_000;
const PARTITION_CHECK_MS = 6 * 3_600_000;

/**
 * The process composition root: config → database (embedded or not; migrations, bootstrap) →
 * storage, caches and the verifier → one instance (services and both listeners, see app.ts)
 * → shutdown. The primary process owns the database lifecycle; `serve` runs an instance
 * in-process, or in each worker when LATCHKEY_WORKERS > 1 (the primary then only supervises).
 */
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

  if (cluster.isWorker) {
    // The primary prepared the database and passed its URL in DATABASE_URL.
    const url = config.databaseUrl;
    if (url === undefined) throw new Error("worker started without DATABASE_URL");
    await serve(config, url, log, undefined);
    return;
  }

  let embedded: EmbeddedPostgres | undefined;
  let url = config.databaseUrl;
  if (url === undefined) {
    log.info({ dataDir: config.dataDir }, "starting embedded Postgres");
    embedded = await startEmbeddedPostgres(config.dataDir, (msg) => log.debug(msg));
    url = embedded.url;
  }
  try {
    await prepareDatabase(config, url, log);
  } catch (err) {
    await embedded?.stop();
    throw err;
  }

  if (config.workers > 1) {
    const primaryEmbedded = embedded;
    superviseWorkers(config.workers, {
      env: { DATABASE_URL: url },
      onStopped: async () => {
        await primaryEmbedded?.stop();
      },
    });
    process.stderr.write(
      `latchkey: ${config.workers} worker processes; gRPC on ${formatHostPort(config.grpcListen)}, HTTP on ${formatHostPort(config.httpListen)}\n`,
    );
    return;
  }
  await serve(config, url, log, embedded);
}

/** Migrations, audit partitions and the one-time bootstrap token: once per deployment start. */
async function prepareDatabase(config: Config, url: string, log: Logger): Promise<void> {
  const sql = connect(url, { max: 2 });
  try {
    const { applied } = await migrate(sql, MIGRATIONS_DIR, (msg) => log.info(msg));
    if (applied.length > 0) log.info({ applied }, "migrations applied");
    await ensureAuditPartitions(sql, new Date(), (msg) => log.warn(msg));
    if (config.bootstrapOrg !== undefined) {
      const bootstrapToken = await bootstrapIfEmpty(sql, {
        orgId: config.bootstrapOrg,
        prefix: config.tokenPrefix,
      });
      if (bootstrapToken !== undefined) printBootstrap(config, bootstrapToken);
    }
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** The one place a secret is printed: the bootstrap token, once, on an empty database. */
function printBootstrap(config: Config, bootstrapToken: string): void {
  const grpc = formatHostPort(config.grpcListen);
  process.stderr.write(
    `latchkey: bootstrap token for org "${config.bootstrapOrg ?? ""}" (platform admin; shown once, store it now):\n` +
      `  ${bootstrapToken}\n` +
      `  try: npx buf curl --protocol grpc --http2-prior-knowledge --reflect -H "authorization: Bearer ${bootstrapToken}" http://${grpc}/latchkey.v1.TokenAdminService/ListTokens\n`,
  );
}

async function serve(
  config: Config,
  url: string,
  log: Logger,
  embedded: EmbeddedPostgres | undefined,
): Promise<void> {
  // Storage and caches: the pool, and the verifier with its cache tiers, audit and usage sinks.
  const sql = connect(url, { max: config.databasePoolSize });
  const verifier = createVerifier({
    sql,
    tokenPrefix: config.tokenPrefix,
    auditMode: config.auditMode,
    cacheSize: config.cacheSize,
    cacheMaxStalenessMs: config.cacheMaxStalenessMs,
    redisUrl: config.redisUrl,
    unknownLookups: {
      perSecond: config.verifyUnknownPerPeer,
      burst: 2 * config.verifyUnknownPerPeer,
    },
    log,
  });
  let instance: Instance;
  try {
    instance = await startInstance({
      sql,
      verifier,
      tokenPrefix: config.tokenPrefix,
      log,
      redis: config.redisUrl !== undefined,
      grpcListen: formatHostPort(config.grpcListen),
      httpListen: formatHostPort(config.httpListen),
      tls: config.tls,
      verifyAuth: config.verifyAuth,
    });
  } catch (err) {
    await verifier.close();
    await sql.end({ timeout: 2 });
    await embedded?.stop();
    throw err;
  }
  const { grpcPort, httpPort } = instance;

  const partitions = setInterval(() => {
    ensureAuditPartitions(sql, new Date(), (msg) => log.warn(msg)).catch((err: unknown) =>
      log.warn({ err }, "could not ensure audit partitions"),
    );
  }, PARTITION_CHECK_MS);
  partitions.unref();

  const scheme = config.tls === undefined ? "" : " (TLS)";
  const grpcAt = formatHostPort({ host: config.grpcListen.host, port: grpcPort });
  const httpAt = formatHostPort({ host: config.httpListen.host, port: httpPort });
  if (cluster.isWorker) {
    log.info({ grpc: grpcAt, http: httpAt }, "worker listening");
  } else {
    process.stderr.write(
      `latchkey: gRPC listening on ${grpcAt}${scheme}; HTTP (Connect, gRPC-Web, /healthz, /readyz, /metrics) on ${httpAt}${scheme}\n`,
    );
  }

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const deadline = setTimeout(() => {
      log.error("graceful stop took too long; exiting");
      process.exit(1);
    }, STOP_DEADLINE_MS);
    deadline.unref();
    clearInterval(partitions);
    try {
      await instance.close();
      await verifier.close(); // flushes usage counters and audit rows
      await sql.end({ timeout: 2 });
      await embedded?.stop();
    } catch (err) {
      log.error({ err }, "error while stopping");
      process.exit(1);
    }
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

/** A start-up failure as one line an operator can act on (no stack; details at debug level). */
function startupMessage(err: unknown): string {
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  const message = err instanceof Error ? err.message : String(err);
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "CONNECT_TIMEOUT") {
    return `cannot reach Postgres (${message}); check DATABASE_URL and that the server is running`;
  }
  if (message.includes("EADDRINUSE")) {
    return `a listen address is already in use (${message.replace(/^.*EADDRINUSE:?\s*/s, "")}); set LATCHKEY_GRPC_LISTEN / LATCHKEY_HTTP_LISTEN to free ports`;
  }
  return message;
}

try {
  await main();
} catch (err) {
  process.stderr.write(`latchkey: cannot start: ${startupMessage(err)}\n`);
  process.exit(1);
}
