import { describe, expect, it } from "vitest";
import { ConfigError, formatHostPort, loadConfig, parseHostPort } from "../../src/config.js";

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
