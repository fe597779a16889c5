/** The Config type and the shapes and enumerations it is built from. */

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
  /** Unary calls on the gRPC listener take the lean lane (on) or grpc-js's own path (off). */
  readonly grpcFastUnary: boolean;

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

export type Env = Readonly<Record<string, string | undefined>>;

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export const AUDIT_MODES = ["all", "denials", "none"] as const;
export const CLIENT_AUTH_MODES = ["all", "admin"] as const;

/** Where client certificates are required (LATCHKEY_TLS_CLIENT_AUTH). */
export type ClientAuthMode = (typeof CLIENT_AUTH_MODES)[number];

// --- Redis Sentinel and Cluster (issue #11 item 6) ---
/** Where the shared cache lives: one Redis (a URL), a Sentinel set, or a Redis Cluster. */
export type RedisTarget =
  | {
      readonly kind: "standalone";
      /** The URL as configured; its scheme may be any of redis, rediss, valkey, valkeys. */
      readonly url: string;
      /** rediss:// or valkeys:// (any case): the client must speak TLS, never fall back. */
      readonly tls: boolean;
    }
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
