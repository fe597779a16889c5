import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { normalizeCidr } from "./domain/cidr.js";

/** Which verifications write an audit row. */
export type AuditMode = "all" | "denials" | "none";

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** The whole configuration, read once from the environment at start. */
export interface Config {
  readonly grpcListen: ListenAddress;
  readonly httpListen: ListenAddress;
  /** Unset: run an embedded Postgres under dataDir. */
  readonly databaseUrl: string | undefined;
  /**
   * REDIS_URL / LATCHKEY_REDIS_CLUSTER_NODES: one Redis, a Sentinel set or a Cluster (issue #11
   * item 6). Unset: in-process cache only (a single instance).
   */
  readonly redis: RedisTarget | undefined;
  readonly dataDir: string;
  readonly tokenPrefix: string;
  /** Unset: never bootstrap. */
  readonly bootstrapOrg: string | undefined;
  readonly tls:
    | {
        readonly cert: Buffer;
        readonly key: Buffer;
        // --- mTLS (issue #11): LATCHKEY_TLS_CLIENT_CA, LATCHKEY_TLS_CLIENT_AUTH ---
        /** PEM CA that client certificates must chain to; unset: no client certificates. */
        readonly clientCa: Buffer | undefined;
        /** `all`: every connection needs one; `admin`: only TokenAdminService calls. */
        readonly clientAuth: ClientAuthMode;
      }
    | undefined;
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  readonly auditMode: AuditMode;
  /** Entries in the in-process token cache. */
  readonly cacheSize: number;
  /** How long a locally cached token may be trusted without re-reading it (ms). */
  readonly cacheMaxStalenessMs: number;
  /** Worker processes behind the listeners (node:cluster); 1 runs in-process. */
  readonly workers: number;
  /** Database pool size per process. */
  readonly databasePoolSize: number;
  // --- web console (issue 12) ---
  /** Origins allowed to call the API from a browser (CORS); empty: CORS off. */
  readonly corsOrigins: readonly string[];

  // --- operations (#8, #13): connect timeout and connection limits ---
  /** How long opening a Postgres connection may take (ms). */
  readonly databaseConnectTimeoutMs: number;
  /** First bytes / TLS handshake / HTTP/1.1 headers of a new connection (ms). */
  readonly headerTimeoutMs: number;
  /** An HTTP/2 or gRPC connection without an open stream is closed after this (ms). */
  readonly idleTimeoutMs: number;
  /** Concurrent streams per HTTP/2 or gRPC connection. */
  readonly maxConcurrentStreams: number;

  // --- gateways (issue #9) ---
  /** Peers whose x-forwarded-* / x-original-* headers are believed (canonical CIDRs). */
  readonly trustedProxies: readonly string[];
  /** Header the gateway checks (ext_authz, /v1/check) read the token from (lower case). */
  readonly gatewayTokenHeader: string;

  // --- verification hardening (issues 8, 13) ---
  /** Who may call TokenVerifyService: anyone, or bearers of `tokens:verify`. */
  readonly verifyAuth: "off" | "token";
  /** Lookups of unknown tokens per peer per second (burst twice that); 0 turns the limit off. */
  readonly verifyUnknownPerPeer: number;

  // --- audit retention (issue #11 item 5) ---
  /** LATCHKEY_AUDIT_RETENTION in ms: audit older than this is dropped daily; undefined keeps it forever. */
  readonly auditRetentionMs: number | undefined;
}

/** Thrown with every configuration problem at once, each naming its variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const AUDIT_MODES = ["all", "denials", "none"] as const;
const CLIENT_AUTH_MODES = ["all", "admin"] as const;

/** Where client certificates are required (LATCHKEY_TLS_CLIENT_AUTH). */
export type ClientAuthMode = (typeof CLIENT_AUTH_MODES)[number];

/**
 * Reads and validates the environment once. Nothing else in latchkey reads process.env, so
 * this is the one place that documents every knob. All problems are collected and reported
 * together, so an operator fixes a deployment in one round.
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const str = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };

  const listen = (name: string, fallback: string): ListenAddress => {
    const raw = str(name) ?? fallback;
    const parsed = parseHostPort(raw);
    if (parsed === undefined) {
      problems.push(`${name}=${raw}: expected host:port, e.g. 127.0.0.1:50051 or [::1]:50051`);
      return { host: "127.0.0.1", port: 0 };
    }
    return parsed;
  };

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name}=${raw}: expected a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };

  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const found = allowed.find((a) => a === raw.toLowerCase());
    if (found === undefined) {
      problems.push(`${name}=${raw}: expected one of ${allowed.join(", ")}`);
      return fallback;
    }
    return found;
  };

  const url = (name: string, schemes: readonly string[]): string | undefined => {
    const raw = str(name);
    if (raw === undefined) return undefined;
    let scheme: string;
    try {
      scheme = new URL(raw).protocol.replace(/:$/, "");
    } catch {
      problems.push(`${name}: not a valid URL (expected ${schemes[0]}://…)`);
      return undefined;
    }
    if (!schemes.includes(scheme)) {
      problems.push(`${name}: expected a ${schemes.join(" or ")} URL, got scheme "${scheme}"`);
      return undefined;
    }
    return raw;
  };

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

  // --- mTLS (issue #11): a client CA only means something on top of TLS.
  const mtls = {
    clientCa: clientCa(str("LATCHKEY_TLS_CLIENT_CA"), problems),
    clientAuth: oneOf("LATCHKEY_TLS_CLIENT_AUTH", CLIENT_AUTH_MODES, "all"),
  };
  if (mtls.clientCa !== undefined && str("LATCHKEY_TLS_CERT") === undefined) {
    problems.push(
      "LATCHKEY_TLS_CLIENT_CA: client certificates need TLS; set LATCHKEY_TLS_CERT and LATCHKEY_TLS_KEY too",
    );
  }
  if (
    str("LATCHKEY_TLS_CLIENT_AUTH") !== undefined &&
    str("LATCHKEY_TLS_CLIENT_CA") === undefined
  ) {
    problems.push(
      "LATCHKEY_TLS_CLIENT_AUTH: only meaningful with LATCHKEY_TLS_CLIENT_CA (the CA client certificates must chain to)",
    );
  }

  const certPath = str("LATCHKEY_TLS_CERT");
  const keyPath = str("LATCHKEY_TLS_KEY");
  let tls: Config["tls"];
  if ((certPath === undefined) !== (keyPath === undefined)) {
    problems.push("LATCHKEY_TLS_CERT and LATCHKEY_TLS_KEY: set both or neither");
  } else if (certPath !== undefined && keyPath !== undefined) {
    const read = (name: string, path: string): Buffer | undefined => {
      try {
        return readFileSync(path);
      } catch {
        problems.push(`${name}=${path}: cannot read the file`);
        return undefined;
      }
    };
    const cert = read("LATCHKEY_TLS_CERT", certPath);
    const key = read("LATCHKEY_TLS_KEY", keyPath);
    if (cert !== undefined && key !== undefined) tls = { cert, key, ...mtls };
  }

  // --- operations (#8, #13): durations are `500ms`, `10s`, `5m`, `1h`, or bare seconds.
  const duration = (name: string, fallbackMs: number, minMs: number, maxMs: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallbackMs;
    const m = /^(\d+)(ms|s|m|h)?$/.exec(raw);
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m?.[2] ?? "s"] ?? 1_000;
    const ms = m === null ? Number.NaN : Number(m[1]) * unit;
    if (!Number.isSafeInteger(ms) || ms < minMs || ms > maxMs) {
      problems.push(
        `${name}=${raw}: expected a duration from ${minMs} ms to ${maxMs / 1_000} s, e.g. 10s, 500ms, 5m`,
      );
      return fallbackMs;
    }
    return ms;
  };
  const ops = {
    databaseConnectTimeoutMs: duration("LATCHKEY_DATABASE_CONNECT_TIMEOUT", 10_000, 1_000, 300_000),
    headerTimeoutMs: duration("LATCHKEY_HEADER_TIMEOUT", 10_000, 100, 300_000),
    idleTimeoutMs: duration("LATCHKEY_IDLE_TIMEOUT", 300_000, 100, 86_400_000),
    maxConcurrentStreams: int("LATCHKEY_MAX_CONCURRENT_STREAMS", 1_000, 1, 100_000),
  };

  // --- gateways (issue #9) ---
  const trustedProxies: string[] = [];
  const proxiesRaw = str("LATCHKEY_TRUSTED_PROXIES") ?? "127.0.0.0/8,::1/128";
  if (proxiesRaw.toLowerCase() !== "none") {
    for (const entry of proxiesRaw.split(",").map((e) => e.trim())) {
      const cidr = normalizeCidr(entry);
      if (cidr === undefined) {
        problems.push(`LATCHKEY_TRUSTED_PROXIES: "${entry}" is not an IP address or CIDR`);
      } else trustedProxies.push(cidr);
    }
  }
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

    trustedProxies,
    gatewayTokenHeader,

    // --- verification hardening (issues 8, 13) ---
    verifyAuth: oneOf("LATCHKEY_VERIFY_AUTH", ["off", "token"] as const, "off"),
    verifyUnknownPerPeer: int("LATCHKEY_VERIFY_UNKNOWN_PER_PEER", 50, 0, 1_000_000),

    auditRetentionMs,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Parses `host:port`, `[v6]:port` or `:port` (all interfaces); port 0 picks a free one. */
export function parseHostPort(raw: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const v6 = m[1];
  if (v6 !== undefined) return isIP(v6) === 6 ? { host: v6, port } : undefined;
  const host = m[2] ?? "";
  if (host === "") return { host: "0.0.0.0", port };
  if (isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host)) return undefined;
  return { host, port };
}

/** Formats an address for logs and for grpc-js `bindAsync` (`[::1]:50051`). */
export function formatHostPort(a: ListenAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

// --- web console (issue 12) ---
/**
 * LATCHKEY_CORS_ORIGINS: comma-separated exact origins (`https://admin.example.com`) that may
 * call the API from a browser. Exact origins only, no `*`: the API takes bearer tokens, and a
 * wildcard would let any page that obtained one drive it from a victim's browser.
 */
function corsOrigins(raw: string | undefined, problems: string[]): readonly string[] {
  if (raw === undefined) return [];
  const out: string[] = [];
  for (const entry of raw.split(",").map((e) => e.trim())) {
    let origin: string | undefined;
    try {
      const u = new URL(entry);
      const bare = u.pathname === "/" && u.search === "" && u.hash === "" && u.username === "";
      if ((u.protocol === "http:" || u.protocol === "https:") && bare) origin = u.origin;
    } catch {
      origin = undefined;
    }
    if (origin === undefined) {
      problems.push(
        `LATCHKEY_CORS_ORIGINS: "${entry}" is not an origin (expected e.g. https://admin.example.com, comma-separated)`,
      );
    } else if (!out.includes(origin)) out.push(origin);
  }
  return out;
}

// --- mTLS (issue #11) ---
/**
 * LATCHKEY_TLS_CLIENT_CA: a PEM file of one or more CA certificates. Read and parsed here so a
 * wrong path or a file that is not a certificate stops the start with the other problems,
 * instead of surfacing as a TLS failure on the first client.
 */
function clientCa(path: string | undefined, problems: string[]): Buffer | undefined {
  if (path === undefined) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch {
    problems.push(`LATCHKEY_TLS_CLIENT_CA=${path}: cannot read the file`);
    return undefined;
  }
  try {
    new X509Certificate(pem);
  } catch {
    problems.push(`LATCHKEY_TLS_CLIENT_CA=${path}: not a PEM certificate`);
    return undefined;
  }
  return pem;
}

// --- audit retention (issue #11 item 5) ---
const DAY_MS = 86_400_000;
const RETENTION_UNIT_DAYS: Readonly<Record<string, number>> = { d: 1, w: 7, y: 365 };

/**
 * LATCHKEY_AUDIT_RETENTION in whole days (`30d`, `12w`, `1y` = 365 days), from 1 day to 100
 * years. Days, not hours: retention is a compliance setting, and a unit typo must not turn a
 * year into an hour of audit trail.
 */
function retentionDays(raw: string, problems: string[]): number {
  const m = /^(\d{1,6})([dwy])$/.exec(raw.toLowerCase());
  const days = m === null ? 0 : Number(m[1]) * (RETENTION_UNIT_DAYS[m[2] ?? ""] ?? 0);
  if (days < 1 || days > 36_500) {
    problems.push(
      `LATCHKEY_AUDIT_RETENTION=${raw}: expected a duration from 1d to 100y, e.g. 400d, 12w, 1y (unset keeps audit rows forever)`,
    );
    return 0;
  }
  return days;
}

// --- Redis Sentinel and Cluster (issue #11 item 6) ---
/** Where the shared cache lives: one Redis (a URL), a Sentinel set, or a Redis Cluster. */
export type RedisTarget =
  | { readonly kind: "standalone"; readonly url: string }
  | (RedisAuth & {
      readonly kind: "sentinel";
      readonly sentinels: readonly ListenAddress[];
      /** The master group name the sentinels watch. */
      readonly name: string;
      readonly db: number;
      readonly sentinelPassword: string | undefined;
    })
  | (RedisAuth & { readonly kind: "cluster"; readonly nodes: readonly ListenAddress[] });

/** Credentials and TLS of the data nodes (not of the sentinels). */
export interface RedisAuth {
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
}

const SENTINEL_URL =
  /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?#@]+)\/([^/?#]+)(?:\/(\d{1,5}))?\/?(?:\?([^#]*))?$/;

/**
 * Parses REDIS_URL and LATCHKEY_REDIS_CLUSTER_NODES into one target, reporting problems in
 * `problems` (never echoing the URL: it may hold a password). Exported because the verifier
 * also accepts a connection string and must read it exactly as the configuration does.
 *
 * - `redis[s]://…` (or `valkey[s]://`): one server.
 * - `redis[s]+sentinel://[user:pass@]h:p,h:p/master[/db][?sentinelPassword=…]`: a Sentinel set
 *   (port 26379 when omitted); `rediss+` is TLS to the sentinels and the master.
 * - LATCHKEY_REDIS_CLUSTER_NODES `h:p,h:p`: seed nodes of a Redis Cluster. REDIS_URL may then
 *   be set too, as a plain `redis[s]://` URL without a database: it lends its user, password
 *   and TLS to every node and its host is one more seed. A Sentinel URL with it is an error.
 */
export function redisTarget(
  url: string | undefined,
  clusterNodes: string | undefined,
  problems: string[],
): RedisTarget | undefined {
  const sentinel = url === undefined ? null : SENTINEL_URL.exec(url);
  if (url !== undefined && /^[a-z]+\+sentinel:/i.test(url)) {
    if (clusterNodes !== undefined) {
      problems.push(
        "LATCHKEY_REDIS_CLUSTER_NODES: cannot be combined with a Sentinel REDIS_URL; use one or the other",
      );
    }
    if (sentinel === null) {
      problems.push(
        "REDIS_URL: expected redis+sentinel://[user:password@]host:port,host:port/master-name[/db]",
      );
      return undefined;
    }
    return sentinelTarget(sentinel, problems);
  }
  let plain: URL | undefined;
  if (url !== undefined) {
    try {
      plain = new URL(url);
    } catch {
      problems.push("REDIS_URL: not a valid URL (expected redis://…)");
      return undefined;
    }
    if (!["redis:", "rediss:", "valkey:", "valkeys:"].includes(plain.protocol)) {
      problems.push(
        `REDIS_URL: expected a redis, rediss, valkey, valkeys, redis+sentinel or rediss+sentinel URL, got scheme "${plain.protocol.replace(/:$/, "")}"`,
      );
      return undefined;
    }
  }
  if (clusterNodes === undefined)
    return url === undefined ? undefined : { kind: "standalone", url };
  const nodes = redisNodes("LATCHKEY_REDIS_CLUSTER_NODES", clusterNodes, undefined, problems);
  if (plain !== undefined && !/^\/?0?$/.test(plain.pathname)) {
    problems.push("REDIS_URL: a Redis Cluster has only database 0; drop the /db path");
  }
  if (plain?.hostname)
    nodes.push({ host: plain.hostname.replace(/^\[|\]$/g, ""), port: Number(plain.port || 6379) });
  return {
    kind: "cluster",
    nodes,
    username: plain?.username ? decodeURIComponent(plain.username) : undefined,
    password: plain?.password ? decodeURIComponent(plain.password) : undefined,
    tls: plain?.protocol === "rediss:" || plain?.protocol === "valkeys:",
  };
}

function sentinelTarget(m: RegExpExecArray, problems: string[]): RedisTarget | undefined {
  const [, scheme, userinfo, hosts = "", name = "", db = "0", query = ""] = m;
  const sentinels = redisNodes("REDIS_URL", hosts, 26379, problems);
  const colon = userinfo?.indexOf(":") ?? -1;
  const decode = (s: string | undefined): string | undefined =>
    s === undefined || s === "" ? undefined : decodeURIComponent(s);
  let sentinelPassword: string | undefined;
  for (const [k, v] of new URLSearchParams(query)) {
    if (k === "sentinelPassword") sentinelPassword = v === "" ? undefined : v;
    else problems.push(`REDIS_URL: unknown parameter "${k}" (known: sentinelPassword)`);
  }
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(name)) {
    problems.push("REDIS_URL: the Sentinel master name must be letters, digits and . _ -");
  }
  return {
    kind: "sentinel",
    sentinels,
    name,
    db: Number(db),
    username: decode(colon < 0 ? userinfo : userinfo?.slice(0, colon)),
    password: decode(colon < 0 ? undefined : userinfo?.slice(colon + 1)),
    tls: scheme === "rediss",
    sentinelPassword,
  };
}

/** `host:port,host:port` (port optional when `defaultPort` is given); every entry checked. */
function redisNodes(
  name: string,
  raw: string,
  defaultPort: number | undefined,
  problems: string[],
): ListenAddress[] {
  const out: ListenAddress[] = [];
  for (const entry of raw.split(",").map((e) => e.trim())) {
    const withPort =
      defaultPort !== undefined && !/:\d+$/.test(entry) ? `${entry}:${defaultPort}` : entry;
    const a = parseHostPort(withPort);
    if (a === undefined || a.port === 0 || entry.startsWith(":")) {
      problems.push(`${name}: "${entry}" is not host:port (e.g. 10.0.0.5:6379)`);
    } else if (!out.some((o) => o.host === a.host && o.port === a.port)) out.push(a);
  }
  return out;
}
