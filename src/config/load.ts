import { resolve } from "node:path";
import { corsOrigins, DAY_MS, retentionDays, trustedProxies } from "./lists.js";
import { envReader } from "./reader.js";
import { redisTarget } from "./redis.js";
import { tlsConfig } from "./tls.js";
import { AUDIT_MODES, type Config, ConfigError, type Env, LOG_LEVELS } from "./types.js";

/**
 * Builds the Config from `env`, collecting every problem and throwing one ConfigError with all
 * of them. The caller passes the environment: only `loadConfig` (src/config.ts) reads process.env.
 */
export function buildConfig(env: Env): Config {
  const problems: string[] = [];
  const r = envReader(env, problems);
  const { str, listen, int, oneOf, url, duration } = r;

  const grpcListen = listen("LATCHKEY_GRPC_LISTEN", "127.0.0.1:50051");
  const httpListen = listen("LATCHKEY_HTTP_LISTEN", "127.0.0.1:8080");
  if (grpcListen.port !== 0 && grpcListen.port === httpListen.port) {
    problems.push(
      `LATCHKEY_GRPC_LISTEN and LATCHKEY_HTTP_LISTEN: both use port ${grpcListen.port}; give each its own port`,
    );
  }
  const databaseUrl = url("DATABASE_URL", ["postgres", "postgresql"]);
  const databaseUrlGiven = str("DATABASE_URL") !== undefined;
  const redis = redisTarget(str("REDIS_URL"), str("LATCHKEY_REDIS_CLUSTER_NODES"), problems);
  const dataDir = resolve(str("LATCHKEY_DATA_DIR") ?? "./.latchkey");

  const tokenPrefix = str("LATCHKEY_TOKEN_PREFIX") ?? "lk";
  if (!/^[a-z][a-z0-9]{0,15}$/.test(tokenPrefix)) {
    problems.push(
      `LATCHKEY_TOKEN_PREFIX=${tokenPrefix}: expected 1-16 lower-case letters or digits, starting with a letter`,
    );
  }

  const bootstrapRaw = env.LATCHKEY_BOOTSTRAP_ORG;
  let bootstrapOrg: string | undefined;
  if (bootstrapRaw === undefined) {
    bootstrapOrg = databaseUrlGiven ? undefined : "default";
  } else if (bootstrapRaw.trim() === "") {
    bootstrapOrg = undefined; // explicitly disabled
  } else if (!/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/.test(bootstrapRaw.trim())) {
    problems.push(
      `LATCHKEY_BOOTSTRAP_ORG=${bootstrapRaw}: expected an org id of letters, digits and _ . : @ - (at most 128)`,
    );
  } else {
    bootstrapOrg = bootstrapRaw.trim();
  }

  const tls = tlsConfig(r, problems);

  // --- operations (#8, #13) ---
  const ops = {
    databaseConnectTimeoutMs: duration("LATCHKEY_DATABASE_CONNECT_TIMEOUT", 10_000, 1_000, 300_000),
    headerTimeoutMs: duration("LATCHKEY_HEADER_TIMEOUT", 10_000, 100, 300_000),
    idleTimeoutMs: duration("LATCHKEY_IDLE_TIMEOUT", 300_000, 100, 86_400_000),
    maxConcurrentStreams: int("LATCHKEY_MAX_CONCURRENT_STREAMS", 1_000, 1, 100_000),
    grpcFastUnary: oneOf("LATCHKEY_GRPC_FAST_UNARY", ["on", "off"] as const, "on") === "on",
  };

  // --- gateways (issue #9) ---
  const proxies = trustedProxies(
    str("LATCHKEY_TRUSTED_PROXIES") ?? "127.0.0.0/8,::1/128",
    problems,
  );
  const gatewayTokenHeader = (
    str("LATCHKEY_GATEWAY_TOKEN_HEADER") ?? "authorization"
  ).toLowerCase();
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/.test(gatewayTokenHeader)) {
    problems.push(`LATCHKEY_GATEWAY_TOKEN_HEADER=${gatewayTokenHeader}: not an HTTP header name`);
  }

  // --- audit retention (issue #11 item 5): `400d`, `12w`, `1y` (365 days); unset: forever.
  const retentionRaw = str("LATCHKEY_AUDIT_RETENTION");
  const auditRetentionMs =
    retentionRaw === undefined ? undefined : retentionDays(retentionRaw, problems) * DAY_MS;

  const config: Config = {
    grpcListen,
    httpListen,
    databaseUrl,
    redis,
    dataDir,
    tokenPrefix,
    bootstrapOrg,
    tls,
    logLevel: oneOf("LATCHKEY_LOG_LEVEL", LOG_LEVELS, "info"),
    auditMode: oneOf("LATCHKEY_AUDIT_MODE", AUDIT_MODES, "all"),
    cacheSize: int("LATCHKEY_CACHE_SIZE", 100_000, 0, 10_000_000),
    cacheMaxStalenessMs: int("LATCHKEY_CACHE_MAX_STALENESS_MS", 30_000, 0, 3_600_000),
    workers: int("LATCHKEY_WORKERS", 1, 1, 64),
    databasePoolSize: int("LATCHKEY_DATABASE_POOL_SIZE", 10, 1, 200),
    corsOrigins: corsOrigins(str("LATCHKEY_CORS_ORIGINS"), problems),

    ...ops,

    trustedProxies: proxies,
    gatewayTokenHeader,

    // --- verification hardening (issues 8, 13) ---
    verifyAuth: oneOf("LATCHKEY_VERIFY_AUTH", ["off", "token"] as const, "off"),
    verifyUnknownPerPeer: int("LATCHKEY_VERIFY_UNKNOWN_PER_PEER", 50, 0, 1_000_000),

    auditRetentionMs,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
