import { describe, expect, it } from "vitest";
import { ConfigError, formatHostPort, loadConfig, parseHostPort } from "../../src/config.js";
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

describe("loadConfig defaults", () => {
  it("uses the contract's defaults and bootstraps `default` in embedded mode", () => {
    const c = loadConfig({});
    expect(formatHostPort(c.grpcListen)).toBe("127.0.0.1:50051");
    expect(formatHostPort(c.httpListen)).toBe("127.0.0.1:8080");
    expect(c.databaseUrl).toBeUndefined();
    expect(c.redis).toBeUndefined();
    expect(c.tokenPrefix).toBe("lk");
    expect(c.bootstrapOrg).toBe("default");
    expect(c.dataDir.endsWith(".latchkey")).toBe(true);
    expect(c.auditMode).toBe("all");
    expect(c.workers).toBe(1);
    expect(c.grpcFastUnary).toBe(true);
  });

  it("LATCHKEY_GRPC_FAST_UNARY=off hands unary gRPC calls back to grpc-js; other values are refused", () => {
    expect(loadConfig({ LATCHKEY_GRPC_FAST_UNARY: "off" }).grpcFastUnary).toBe(false);
    expect(loadConfig({ LATCHKEY_GRPC_FAST_UNARY: "on" }).grpcFastUnary).toBe(true);
    expect(problemsOf({ LATCHKEY_GRPC_FAST_UNARY: "maybe" }).join("\n")).toContain(
      "LATCHKEY_GRPC_FAST_UNARY=maybe",
    );
  });

  it("does not bootstrap by default when DATABASE_URL is set", () => {
    const c = loadConfig({ DATABASE_URL: "postgres://u@127.0.0.1:5432/db" });
    expect(c.bootstrapOrg).toBeUndefined();
    expect(
      loadConfig({ DATABASE_URL: "postgres://h/db", LATCHKEY_BOOTSTRAP_ORG: "acme" }).bootstrapOrg,
    ).toBe("acme");
  });

  it("an empty LATCHKEY_BOOTSTRAP_ORG disables bootstrap in embedded mode", () => {
    expect(loadConfig({ LATCHKEY_BOOTSTRAP_ORG: "" }).bootstrapOrg).toBeUndefined();
  });
});

describe("loadConfig problems", () => {
  it("reports every problem together, each naming its variable", () => {
    const problems = problemsOf({
      LATCHKEY_GRPC_LISTEN: "abc",
      LATCHKEY_HTTP_LISTEN: "127.0.0.1:99999",
      DATABASE_URL: "mysql://x/y",
      REDIS_URL: "not a url",
      LATCHKEY_TOKEN_PREFIX: "LK_",
      LATCHKEY_WORKERS: "0",
      LATCHKEY_AUDIT_MODE: "some",
      LATCHKEY_TLS_CERT: "/nonexistent.pem",
    });
    const joined = problems.join("\n");
    for (const name of [
      "LATCHKEY_GRPC_LISTEN=abc",
      "LATCHKEY_HTTP_LISTEN=127.0.0.1:99999",
      "DATABASE_URL",
      "REDIS_URL",
      "LATCHKEY_TOKEN_PREFIX=LK_",
      "LATCHKEY_WORKERS=0",
      "LATCHKEY_AUDIT_MODE=some",
      "LATCHKEY_TLS_CERT and LATCHKEY_TLS_KEY",
    ]) {
      expect(joined).toContain(name);
    }
    expect(problems).toHaveLength(8);
  });

  it("refuses the same port for both listeners", () => {
    expect(
      problemsOf({ LATCHKEY_GRPC_LISTEN: ":7000", LATCHKEY_HTTP_LISTEN: "127.0.0.1:7000" }),
    ).toHaveLength(1);
  });

  it("never echoes a database password", () => {
    const problems = problemsOf({ DATABASE_URL: "mysql://user:hunter2@db/x" });
    expect(problems.join()).not.toContain("hunter2");
  });
});

describe("parseHostPort", () => {
  it.each([
    ["127.0.0.1:50051", "127.0.0.1", 50051],
    ["[::1]:8080", "::1", 8080],
    [":9000", "0.0.0.0", 9000],
    ["localhost:0", "localhost", 0],
  ])("%s", (raw, host, port) => {
    expect(parseHostPort(raw)).toEqual({ host, port });
  });

  it.each(["abc", "1.2.3.4", "[zz]:80", "host:65536", "a b:80", "::1:80"])("rejects %s", (raw) => {
    expect(parseHostPort(raw)).toBeUndefined();
  });
});

describe("LATCHKEY_CORS_ORIGINS", () => {
  it("is off by default and takes exact, comma-separated origins", () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(
      loadConfig({ LATCHKEY_CORS_ORIGINS: "https://Admin.example.com, http://localhost:5173/" })
        .corsOrigins,
    ).toEqual(["https://admin.example.com", "http://localhost:5173"]);
  });

  it("refuses wildcards, paths and other schemes, naming the variable", () => {
    for (const bad of ["*", "https://a.example.com/app", "ftp://a.example.com", "a.example.com"]) {
      const problems = problemsOf({ LATCHKEY_CORS_ORIGINS: bad });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain("LATCHKEY_CORS_ORIGINS");
    }
  });
});

// --- Redis Sentinel and Cluster (issue #11 item 6) ---
describe("REDIS_URL and LATCHKEY_REDIS_CLUSTER_NODES (issue #11 item 6)", () => {
  it("a plain URL is one Redis", () => {
    expect(loadConfig({ REDIS_URL: "redis://127.0.0.1:6379/2" }).redis).toEqual({
      kind: "standalone",
      url: "redis://127.0.0.1:6379/2",
      tls: false,
    });
  });

  it("rediss:// and valkeys://, in any case, are TLS; redis:// and valkey:// are not", () => {
    const tlsOf = (url: string) => {
      const r = loadConfig({ REDIS_URL: url }).redis;
      return r?.kind === "standalone" ? r.tls : undefined;
    };
    expect(tlsOf("rediss://:pw@redis.internal:6380")).toBe(true);
    expect(tlsOf("REDISS://redis.internal:6380")).toBe(true);
    expect(tlsOf("valkeys://redis.internal:6380")).toBe(true);
    expect(tlsOf("valkey://redis.internal:6379")).toBe(false);
    expect(tlsOf("Redis://redis.internal:6379")).toBe(false);
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
