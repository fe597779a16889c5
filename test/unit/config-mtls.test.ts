import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

// LATCHKEY_TLS_CLIENT_CA / LATCHKEY_TLS_CLIENT_AUTH: checked at start, reported with the rest.

const dir = mkdtempSync(join(tmpdir(), "latchkey-mtls-config-"));
const pem = (name: string): string => join(dir, `${name}.pem`);
execFileSync(
  "openssl",
  [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
    ...["-days", "1", "-subj", "/CN=test", "-keyout", pem("key"), "-out", pem("cert")],
  ],
  { stdio: "ignore" },
);
writeFileSync(pem("garbage"), "not a certificate\n");
const TLS = { LATCHKEY_TLS_CERT: pem("cert"), LATCHKEY_TLS_KEY: pem("key") };

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The one ConfigError loadConfig throws for `env`, listing every problem. */
function configError(env: Record<string, string>): ConfigError {
  const err: unknown = (() => {
    try {
      return loadConfig(env);
    } catch (e) {
      return e;
    }
  })();
  if (!(err instanceof ConfigError)) throw new Error("expected a ConfigError");
  return err;
}

describe("mTLS configuration", () => {
  it("is off by default, and `all` once a client CA is given", () => {
    expect(loadConfig(TLS).tls?.clientCa).toBeUndefined();
    const c = loadConfig({ ...TLS, LATCHKEY_TLS_CLIENT_CA: pem("cert") });
    expect(c.tls?.clientCa?.toString()).toContain("BEGIN CERTIFICATE");
    expect(c.tls?.clientAuth).toBe("all");
  });

  it("takes `admin` in any case", () => {
    const env = { ...TLS, LATCHKEY_TLS_CLIENT_CA: pem("cert"), LATCHKEY_TLS_CLIENT_AUTH: "Admin" };
    expect(loadConfig(env).tls?.clientAuth).toBe("admin");
  });

  it("reports every mistake together, each naming its variable", () => {
    const { problems } = configError({
      LATCHKEY_TLS_CLIENT_CA: pem("garbage"),
      LATCHKEY_TLS_CLIENT_AUTH: "some",
      LATCHKEY_TOKEN_PREFIX: "BAD",
    });
    expect(problems).toHaveLength(3);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^LATCHKEY_TLS_CLIENT_CA=.*: not a PEM certificate$/),
        expect.stringMatching(/^LATCHKEY_TLS_CLIENT_AUTH=some: expected one of all, admin$/),
        expect.stringMatching(/^LATCHKEY_TOKEN_PREFIX=BAD/),
      ]),
    );
  });

  it("a client CA without LATCHKEY_TLS_CERT/KEY is refused", () => {
    expect(configError({ LATCHKEY_TLS_CLIENT_CA: pem("cert") }).problems).toEqual([
      expect.stringMatching(/^LATCHKEY_TLS_CLIENT_CA: client certificates need TLS/),
    ]);
  });

  it("LATCHKEY_TLS_CLIENT_AUTH without a client CA is refused, not ignored", () => {
    expect(configError({ ...TLS, LATCHKEY_TLS_CLIENT_AUTH: "admin" }).problems).toEqual([
      expect.stringMatching(/^LATCHKEY_TLS_CLIENT_AUTH: only meaningful with/),
    ]);
  });

  it("an unreadable client CA names the path", () => {
    const { problems } = configError({ ...TLS, LATCHKEY_TLS_CLIENT_CA: join(dir, "missing.pem") });
    expect(problems).toEqual([
      `LATCHKEY_TLS_CLIENT_CA=${join(dir, "missing.pem")}: cannot read the file`,
    ]);
  });
});
