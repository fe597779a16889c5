import { Cluster, Redis } from "ioredis";
import { type RedisTarget, redisTarget } from "../config.js";

/** A connection to one Redis (direct or found through Sentinel) or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  /**
   * `commands` fail fast while Redis is away (no offline queue, a per-command timeout);
   * `subscriber` queues its SUBSCRIBE until the connection is up.
   */
  readonly role: "commands" | "subscriber";
  /** Per-command timeout of the `commands` role: a slow Redis must not hold verification up. */
  readonly commandTimeoutMs?: number | undefined;
}

/**
 * A connection string (REDIS_URL syntax, read by the same parser as the configuration) or a
 * parsed target. Throws on a string the configuration would refuse: callers pass validated
 * configuration, so this only fires on a programming error.
 */
export function toRedisTarget(target: string | RedisTarget): RedisTarget {
  if (typeof target !== "string") return target;
  const problems: string[] = [];
  const parsed = redisTarget(target, undefined, problems);
  if (parsed === undefined || problems.length > 0) {
    throw new Error(`invalid Redis connection string: ${problems.join("; ")}`);
  }
  return parsed;
}

/**
 * The one place ioredis clients are built, so the cache tier, its revocation subscriber and the
 * readiness check reach a single Redis, a Sentinel-managed master or a Cluster the same way:
 * short connect timeouts, reconnection capped at 1 s, and no retries per request (the verifier
 * falls back to its local tier and Postgres instead of waiting).
 */
export function createRedisClient(
  target: string | RedisTarget,
  options: RedisClientOptions,
): RedisClient {
  const t = toRedisTarget(target);
  const commands = options.role === "commands";
  const perNode = {
    lazyConnect: false,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    ...(commands && options.commandTimeoutMs !== undefined
      ? { commandTimeout: options.commandTimeoutMs }
      : {}),
  };
  const retry = (times: number): number => Math.min(100 * times, 1_000);
  const queue = { enableOfflineQueue: !commands, enableAutoPipelining: commands };
  switch (t.kind) {
    case "standalone":
      // ioredis reads only lower-case redis:// and rediss://: it took valkey[s]:// for a socket
      // path and sent REDISS:// in plaintext. The configuration decides TLS; ioredis is told.
      return new Redis(t.url.replace(/^[a-z]+:/i, "redis:"), {
        ...perNode,
        ...queue,
        retryStrategy: retry,
        ...(t.tls ? { tls: {} } : {}),
      });
    case "sentinel":
      return new Redis({
        ...perNode,
        ...queue,
        retryStrategy: retry,
        sentinels: t.sentinels.map((s) => ({ host: s.host, port: s.port })),
        name: t.name,
        db: t.db,
        ...auth(t),
        ...(t.sentinelPassword === undefined ? {} : { sentinelPassword: t.sentinelPassword }),
        ...(t.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
        sentinelRetryStrategy: retry,
        // After a failover the old master turns replica: reconnect, and Sentinel names the new one.
        reconnectOnError: (err) => err.message.startsWith("READONLY"),
      });
    case "cluster":
      return new Cluster(
        t.nodes.map((n) => ({ host: n.host, port: n.port })),
        {
          ...queue,
          clusterRetryStrategy: retry,
          slotsRefreshTimeout: 1_000,
          redisOptions: { ...perNode, ...auth(t), ...(t.tls ? { tls: {} } : {}) },
        },
      );
  }
}

function auth(t: { username: string | undefined; password: string | undefined }): {
  username?: string;
  password?: string;
} {
  return {
    ...(t.username === undefined ? {} : { username: t.username }),
    ...(t.password === undefined ? {} : { password: t.password }),
  };
}

/**
 * Readiness of a client: PING for one Redis (through Sentinel, the master it found), and for a
 * Cluster `CLUSTER INFO` saying `cluster_state:ok` — a cluster with uncovered slots answers PING
 * but fails the commands whose keys live there.
 */
export async function redisHealthy(client: RedisClient): Promise<boolean> {
  if (client.status !== "ready") return false;
  try {
    if (client instanceof Cluster) {
      return (await client.cluster("INFO")).includes("cluster_state:ok");
    }
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  }
}
