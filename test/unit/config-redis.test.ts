import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { toRedisTarget } from "../../src/store/redis-client.js";

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("REDIS_URL and LATCHKEY_REDIS_CLUSTER_NODES (issue #11 item 6)", () => {
  it("a plain URL is one Redis", () => {
    expect(loadConfig({ REDIS_URL: "redis://127.0.0.1:6379/2" }).redis).toEqual({
      kind: "standalone",
      url: "redis://127.0.0.1:6379/2",
    });
  });

  it("reads a Sentinel set with credentials, database, TLS and a sentinel password", () => {
    const c = loadConfig({
      REDIS_URL:
        "rediss+sentinel://lk:p%40ss@10.0.0.1:26380,sen.internal/mymaster/3?sentinelPassword=s3",
    });
    expect(c.redis).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "10.0.0.1", port: 26380 },
        { host: "sen.internal", port: 26379 },
      ],
      name: "mymaster",
      db: 3,
      username: "lk",
      password: "p@ss",
      tls: true,
      sentinelPassword: "s3",
    });
    expect(toRedisTarget("redis+sentinel://[::1]:5000/m")).toMatchObject({
      kind: "sentinel",
      sentinels: [{ host: "::1", port: 5000 }],
      name: "m",
      db: 0,
      tls: false,
      password: undefined,
    });
  });

  it("reads cluster seed nodes, alone or with a plain REDIS_URL lending credentials and TLS", () => {
    expect(
      loadConfig({ LATCHKEY_REDIS_CLUSTER_NODES: "10.0.0.1:7000, 10.0.0.2:7001,10.0.0.1:7000" })
        .redis,
    ).toEqual({
      kind: "cluster",
      nodes: [
        { host: "10.0.0.1", port: 7000 },
        { host: "10.0.0.2", port: 7001 },
      ],
      username: undefined,
      password: undefined,
      tls: false,
    });
    expect(
      loadConfig({
        LATCHKEY_REDIS_CLUSTER_NODES: "10.0.0.1:7000",
        REDIS_URL: "rediss://:secret@redis.internal:7002",
      }).redis,
    ).toEqual({
      kind: "cluster",
      nodes: [
        { host: "10.0.0.1", port: 7000 },
        { host: "redis.internal", port: 7002 },
      ],
      username: undefined,
      password: "secret",
      tls: true,
    });
  });

  it("reports every Redis problem with the others, never echoing a password", () => {
    const problems = problemsOf({
      REDIS_URL: "redis+sentinel://u:hunter2@h1:1,:5,h3:99999/bad name?x=1",
      LATCHKEY_REDIS_CLUSTER_NODES: "h:1,nope",
      LATCHKEY_WORKERS: "0",
    });
    const joined = problems.join("\n");
    expect(joined).toContain("LATCHKEY_WORKERS=0");
    expect(joined).toContain("LATCHKEY_REDIS_CLUSTER_NODES: cannot be combined");
    expect(joined).toContain("REDIS_URL: the Sentinel master name must be");
    expect(joined).not.toContain("hunter2");

    const more = problemsOf({
      REDIS_URL: "redis+sentinel://u:hunter2@h1:1,:5,h3:99999/m?x=1",
    }).join("\n");
    expect(more).toContain('REDIS_URL: ":5" is not host:port');
    expect(more).toContain('REDIS_URL: "h3:99999" is not host:port');
    expect(more).toContain('unknown parameter "x"');
    expect(more).not.toContain("hunter2");

    const cluster = problemsOf({
      LATCHKEY_REDIS_CLUSTER_NODES: "h:1,nope,h:0",
      REDIS_URL: "redis://:hunter2@h:2/4",
    });
    expect(cluster).toEqual([
      'LATCHKEY_REDIS_CLUSTER_NODES: "nope" is not host:port (e.g. 10.0.0.5:6379)',
      'LATCHKEY_REDIS_CLUSTER_NODES: "h:0" is not host:port (e.g. 10.0.0.5:6379)',
      "REDIS_URL: a Redis Cluster has only database 0; drop the /db path",
    ]);
    expect(problemsOf({ REDIS_URL: "http://h:1" })).toEqual([
      'REDIS_URL: expected a redis, rediss, valkey, valkeys, redis+sentinel or rediss+sentinel URL, got scheme "http"',
    ]);
    expect(problemsOf({ REDIS_URL: "redis+sentinel://u:hunter2@h:1" })).toEqual([
      "REDIS_URL: expected redis+sentinel://[user:password@]host:port,host:port/master-name[/db]",
    ]);
    expect(() => toRedisTarget("redis+sentinel://h")).toThrow(/invalid Redis connection string/);
  });
});
