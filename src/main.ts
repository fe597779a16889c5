import cluster from "node:cluster";
import { createServer } from "node:net";
import { type Instance, startInstance } from "./app.js";
import { superviseWorkers } from "./cluster.js";
import {
  type Config,
  ConfigError,
  formatHostPort,
  type ListenAddress,
  loadConfig,
} from "./config.js";
import { bootstrapIfEmpty } from "./services/bootstrap.js";
import { trustedProxies } from "./services/gateway/proxies.js";
import { createVerifier } from "./services/verify/verifier.js";
import { scheduleAuditRetention } from "./store/audit-retention.js";
import { type DataDirLock, DataDirLockedError, lockDataDir } from "./store/data-dir-lock.js";
import { connect, ensureAuditPartitions, isConnectionError, waitReachable } from "./store/db.js";
import { unguardedDriverFiles } from "./store/driver-guards.js";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./store/embedded.js";
import { MIGRATIONS_DIR, migrate } from "./store/migrate.js";
import { routeGrpcLogs } from "./transport/grpc/server.js";
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
  const unguarded = unguardedDriverFiles();
  if (unguarded.length > 0) {
    process.stderr.write(
      `latchkey: postgres.js is installed without latchkey's guards (${unguarded.join(", ")}); ` +
        "an install with --ignore-scripts skips them: run `node scripts/patch-postgres.mjs`\n",
    );
    process.exit(1);
  }
  const log = createLogger(config.logLevel);
  routeGrpcLogs(log);

  if (cluster.isWorker) {
    // The primary prepared the database and passed its URL in DATABASE_URL.
    const url = config.databaseUrl;
    if (url === undefined) throw new Error("worker started without DATABASE_URL");
    await serve(config, url, log, async () => {});
    return;
  }

  // Everything the primary must undo on the way out, last acquired first.
  let lock: DataDirLock | undefined;
  let embedded: EmbeddedPostgres | undefined;
  const release = async (): Promise<void> => {
    await embedded?.stop();
    lock?.release();
  };
  let url = config.databaseUrl;
  try {
    if (url === undefined) {
      // Before anything touches the directory: a second instance refuses here.
      lock = await lockDataDir(config.dataDir);
      log.info({ dataDir: config.dataDir }, "starting embedded Postgres");
      embedded = await startEmbeddedPostgres(config.dataDir, (msg) => log.debug(msg));
      url = embedded.url;
    } else {
      const at = describeDatabase(url);
      log.info({ database: at }, `connecting to Postgres at ${at}`);
    }
    await prepareDatabase(config, url, log);
  } catch (err) {
    await release();
    throw err;
  }

  if (config.workers > 1) {
    try {
      // The workers bind; the ports are checked here first, so that a taken port fails the
      // start before a bootstrap token is created and printed.
      await checkPortsFree([config.grpcListen, config.httpListen]);
      await bootstrap(config, url);
    } catch (err) {
      await release();
      throw err;
    }
    superviseWorkers(config.workers, { env: { DATABASE_URL: url }, onStopped: release });
    process.stderr.write(
      `latchkey: ${config.workers} worker processes; gRPC on ${formatHostPort(config.grpcListen)}, HTTP on ${formatHostPort(config.httpListen)}\n`,
    );
    return;
  }
  await serve(config, url, log, release);
}

/** `host:port/database` of a Postgres URL: what the log may say (never the password). */
function describeDatabase(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}

function connectOptions(config: Config): { connectTimeoutSeconds: number } {
  return { connectTimeoutSeconds: Math.ceil(config.databaseConnectTimeoutMs / 1_000) };
}

/** Migrations and audit partitions: once per deployment start, before anything listens. */
async function prepareDatabase(config: Config, url: string, log: Logger): Promise<void> {
  const sql = connect(url, { max: 2, ...connectOptions(config) });
  try {
    await waitReachable(sql, config.databaseConnectTimeoutMs, describeDatabase(url));
    const { applied } = await migrate(sql, MIGRATIONS_DIR, (msg) => log.info(msg));
    if (applied.length > 0) log.info({ applied }, "migrations applied");
    await ensureAuditPartitions(sql, new Date(), (msg) => log.warn(msg));
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/**
 * The one-time bootstrap token, created only once the listeners could be bound (or, with
 * workers, the ports were found free): a start that fails on a taken port creates nothing.
 */
async function bootstrap(config: Config, url: string): Promise<void> {
  if (config.bootstrapOrg === undefined) return;
  const sql = connect(url, { max: 1, ...connectOptions(config) });
  try {
    const bootstrapToken = await bootstrapIfEmpty(sql, {
      orgId: config.bootstrapOrg,
      prefix: config.tokenPrefix,
    });
    if (bootstrapToken !== undefined) printBootstrap(config, bootstrapToken);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Fails like a real bind would when an address is taken (EADDRINUSE), then lets it go. */
async function checkPortsFree(addresses: readonly ListenAddress[]): Promise<void> {
  for (const a of addresses) {
    if (a.port === 0) continue;
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once("error", (err: NodeJS.ErrnoException) =>
        reject(
          Object.assign(
            new Error(`listen address ${formatHostPort(a)} is already in use by another process`),
            {
              code: err.code ?? "EBIND",
            },
          ),
        ),
      );
      probe.listen(a.port, a.host, () => probe.close(() => resolve()));
    });
  }
}

/** The one place a secret is printed: the bootstrap token, once, on an empty database. */
function printBootstrap(config: Config, bootstrapToken: string): void {
  const grpc = formatHostPort(config.grpcListen);
  // With TLS the hint must not send plaintext HTTP/2 to a TLS port (add --cacert for a private CA).
  const scheme = config.tls === undefined ? "http" : "https";
  const transportFlags = config.tls === undefined ? "--http2-prior-knowledge " : "";
  process.stderr.write(
    `latchkey: bootstrap token for org "${config.bootstrapOrg ?? ""}" (platform admin; shown once, store it now):\n` +
      `  ${bootstrapToken}\n` +
      `  try: npx buf curl --protocol grpc ${transportFlags}--reflect -H "authorization: Bearer ${bootstrapToken}" ${scheme}://${grpc}/latchkey.v1.TokenAdminService/ListTokens\n`,
  );
}

/**
 * Runs one instance until SIGTERM/SIGINT: binds both listeners, then (in the primary) creates
 * the bootstrap token, then serves. On a signal: listeners close, usage and audit rows are
 * flushed, the pool ends, and only then `release` stops the embedded Postgres and the data
 * directory lock — the embedded server runs in its own session, so a terminal's Ctrl-C does
 * not stop it under the final flush.
 */
async function serve(
  config: Config,
  url: string,
  log: Logger,
  release: () => Promise<void>,
): Promise<void> {
  // Storage and caches: the pool, and the verifier with its cache tiers, audit and usage sinks.
  const sql = connect(url, { max: config.databasePoolSize, ...connectOptions(config) });
  const verifier = createVerifier({
    sql,
    tokenPrefix: config.tokenPrefix,
    auditMode: config.auditMode,
    cacheSize: config.cacheSize,
    cacheMaxStalenessMs: config.cacheMaxStalenessMs,
    redisUrl: config.redis,
    unknownLookups: {
      perSecond: config.verifyUnknownPerPeer,
      burst: 2 * config.verifyUnknownPerPeer,
    },
    // A trusted gateway's client_ip names whom the per-peer budget counts against.
    trustedPeers: trustedProxies(config.trustedProxies),
    log,
  });
  let started: Instance | undefined;
  try {
    started = await startInstance({
      sql,
      verifier,
      tokenPrefix: config.tokenPrefix,
      log,
      redis: config.redis !== undefined,
      grpcListen: formatHostPort(config.grpcListen),
      httpListen: formatHostPort(config.httpListen),
      tls: config.tls,
      corsOrigins: config.corsOrigins,

      limits: {
        headerTimeoutMs: config.headerTimeoutMs,
        idleTimeoutMs: config.idleTimeoutMs,
        maxConcurrentStreams: config.maxConcurrentStreams,
      },

      gateway: { trustedProxies: config.trustedProxies, tokenHeader: config.gatewayTokenHeader },

      verifyAuth: config.verifyAuth,
      grpcFastUnary: config.grpcFastUnary,
    });
    if (!cluster.isWorker) await bootstrap(config, url);
  } catch (err) {
    await started?.close();
    await verifier.close();
    await sql.end({ timeout: 2 });
    await release();
    throw err;
  }
  const instance = started;
  const { grpcPort, httpPort } = instance;

  const partitions = setInterval(() => {
    ensureAuditPartitions(sql, new Date(), (msg) => log.warn(msg)).catch((err: unknown) =>
      log.warn({ err }, "could not ensure audit partitions"),
    );
  }, PARTITION_CHECK_MS);
  partitions.unref();
  // Once now, then daily; the advisory lock lets one instance of the deployment run it.
  const retention = scheduleAuditRetention({
    sql,
    retentionMs: config.auditRetentionMs,
    log,
    registry: instance.metrics.registry,
  });

  let stopping = false;
  const exit = (code: number): void => {
    // The last lines reach stderr before the process goes.
    log.flush(() => process.exit(code));
  };
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const deadline = setTimeout(() => {
      log.error("graceful stop took too long; exiting");
      exit(1);
    }, STOP_DEADLINE_MS);
    deadline.unref();
    clearInterval(partitions);
    try {
      await retention.stop();
      await instance.close();
      await verifier.close(); // flushes usage counters and audit rows
      await sql.end({ timeout: 2 });
      await release(); // the embedded Postgres last, after the final flush
    } catch (err) {
      log.error({ err }, "error while stopping");
      exit(1);
      return;
    }
    log.info("stopped");
    exit(0);
  };
  // Installed before the listening line: whoever waits for that line may signal at once.
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));

  const scheme =
    config.tls === undefined
      ? ""
      : config.tls.clientCa === undefined
        ? " (TLS)"
        : ` (mTLS: client certificates for ${config.tls.clientAuth === "all" ? "every call" : "TokenAdminService"})`;
  const grpcAt = formatHostPort({ host: config.grpcListen.host, port: grpcPort });
  const httpAt = formatHostPort({ host: config.httpListen.host, port: httpPort });
  if (cluster.isWorker) {
    log.info({ grpc: grpcAt, http: httpAt }, "worker listening");
  } else {
    process.stderr.write(
      `latchkey: gRPC listening on ${grpcAt}${scheme}; HTTP (Connect, gRPC-Web, /healthz, /readyz, /metrics) on ${httpAt}${scheme}\n`,
    );
  }
}

/** A start-up failure as one line an operator can act on (no stack; details at debug level). */
function startupMessage(err: unknown): string {
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  const message = err instanceof Error ? err.message : String(err);
  if (isConnectionError(err)) {
    const why = message.replace(/^write CONNECT_TIMEOUT /, "connect timeout to ");
    return `cannot reach Postgres (${why}); check DATABASE_URL and that the server is running`;
  }
  if (err instanceof DataDirLockedError) return message;
  if (code === "EADDRINUSE" || message.includes("EADDRINUSE")) {
    const what = message.replace(
      /^listen EADDRINUSE: address already in use (.*)$/,
      "HTTP listen address $1 is already in use by another process",
    );
    return `${what}; set LATCHKEY_GRPC_LISTEN / LATCHKEY_HTTP_LISTEN to free ports`;
  }
  return message;
}

try {
  await main();
} catch (err) {
  process.stderr.write(`latchkey: cannot start: ${startupMessage(err)}\n`);
  process.exit(1);
}
