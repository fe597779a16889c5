import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ClientAuthMode } from "../../src/config.js";
import { pemFiles } from "../helpers/certificates.js";
import { type CliResult, runCli } from "../helpers/cli-runner.js";
import { type MtlsInstances, startMtlsInstances } from "../helpers/mtls-instances.js";

// The built CLI against latchkey with TLS and a client CA (LATCHKEY_TLS_CLIENT_CA), in both
// client-auth modes, with the certificates of mtls.test.ts: --ca-cert, --client-cert and
// --client-key, their LATCHKEY_* variables, what login saves, and the usage errors.
// Every test starts the CLI (a fresh node process), several times: nothing is timed; they get
// 90 s instead of the default 30 s, as the other CLI tests do.
vi.setConfig({ testTimeout: 90_000 });

let dir: string;
let home: string;
let servers: MtlsInstances | undefined;

/** Paths of the CA that signed the server certificate, a good and a foreign client cert. */
const files = () => ({
  ca: pemFiles(dir, "client-ca").cert,
  cert: pemFiles(dir, "deploy-bot").cert,
  key: pemFiles(dir, "deploy-bot").key,
  wrongCert: pemFiles(dir, "intruder").cert,
  wrongKey: pemFiles(dir, "intruder").key,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "latchkey-cli-tls-"));
  home = await mkdtemp(join(tmpdir(), "latchkey-cli-tls-home-"));
  servers = await startMtlsInstances(dir, "tls admin");
});

afterAll(async () => {
  await servers?.close();
  await rm(dir, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
});

/** The gRPC listener of the `mode` instance, as https:// (its certificate names 127.0.0.1). */
function server(mode: ClientAuthMode): string {
  if (servers === undefined) throw new Error("the mTLS instances are used outside their tests");
  return `https://127.0.0.1:${servers.instance(mode).grpcPort}`;
}

/** The built CLI with a private HOME, the admin token and `env` (nothing else leaks in). */
function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { env: { HOME: home, LATCHKEY_TOKEN: servers?.adminToken ?? "", ...env } });
}

/** `--ca-cert`, `--client-cert`, `--client-key` with the good files. */
const tlsFlags = (): string[] => {
  const f = files();
  return ["--ca-cert", f.ca, "--client-cert", f.cert, "--client-key", f.key];
};

/** One line on stderr, no Node stack trace, no "at file:line" frame, nothing on stdout. */
function expectCleanFailure(r: CliResult, code: number): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stdout).toBe("");
  expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
  expect(r.stderr).not.toMatch(/node:internal|Error \[ERR_/);
}

describe("LATCHKEY_TLS_CLIENT_AUTH=all", () => {
  it("a call succeeds with --ca-cert, --client-cert and --client-key", async () => {
    const r = await cli(["whoami", "--server", server("all"), ...tlsFlags()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^token:\s+tok_\S+ \("tls admin"\)$/m);
    const list = await cli(["tokens", "list", "--json", "--server", server("all"), ...tlsFlags()]);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "tls admin" })]),
    );
  });

  it("takes LATCHKEY_CACERT, LATCHKEY_CLIENT_CERT and LATCHKEY_CLIENT_KEY; flags win", async () => {
    const f = files();
    const env = {
      LATCHKEY_SERVER: server("all"),
      LATCHKEY_CACERT: f.ca,
      LATCHKEY_CLIENT_CERT: f.cert,
      LATCHKEY_CLIENT_KEY: f.key,
    };
    const r = await cli(["whoami"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"tls admin"');

    // Each flag wins over its variable: the variables' files are never read.
    const missing = join(dir, "missing.pem");
    const flags = await cli(["whoami", ...tlsFlags()], {
      ...env,
      LATCHKEY_CACERT: missing,
      LATCHKEY_CLIENT_CERT: missing,
      LATCHKEY_CLIENT_KEY: missing,
    });
    expect(flags.code, flags.stderr).toBe(0);
    // A flag and a variable make a pair too.
    const mixed = await cli(["whoami", "--client-key", f.key], {
      ...env,
      LATCHKEY_CLIENT_KEY: missing,
    });
    expect(mixed.code, mixed.stderr).toBe(0);
  });

  it("without --ca-cert: a clear message about the server's certificate", async () => {
    const f = files();
    const r = await cli([
      "whoami",
      "--server",
      server("all"),
      "--client-cert",
      f.cert,
      "--client-key",
      f.key,
    ]);
    expectCleanFailure(r, 3);
    expect(r.stderr).toMatch(/certificate/i);
    expect(r.stderr).toContain("--ca-cert");
  });

  it.each([
    ["no client certificate", []],
    ["a client certificate from another CA", ["wrong"]],
  ])("%s: fails cleanly, naming the client certificate", async (_, which) => {
    const f = files();
    const client =
      which.length === 0 ? [] : ["--client-cert", f.wrongCert, "--client-key", f.wrongKey];
    // Three times: how the dropped connection surfaces (cancelled, reset) depends on timing.
    for (let i = 0; i < 3; i++) {
      const r = await cli(["whoami", "--server", server("all"), "--ca-cert", f.ca, ...client]);
      expectCleanFailure(r, 3);
      expect(r.stderr).toMatch(which.length === 0 ? /wants a client certificate/ : /--client-cert/);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});

describe("LATCHKEY_TLS_CLIENT_AUTH=admin", () => {
  it("--ca-cert alone: verify works, an admin call is refused for want of a certificate", async () => {
    const f = files();
    const verify = await cli(["verify", "lk_x", "--server", server("admin"), "--ca-cert", f.ca]);
    expect(verify.code, verify.stderr).toBe(1);
    expect(verify.stdout).toContain("denied: MALFORMED");
    const who = await cli(["whoami", "--server", server("admin"), "--ca-cert", f.ca]);
    expectCleanFailure(who, 1);
    expect(who.stderr).toContain("Unauthenticated");
    expect(who.stderr).toMatch(/certificate/i);
    const ok = await cli(["whoami", "--server", server("admin"), ...tlsFlags()]);
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe("login", () => {
  it("saves the server, the token and the CA's path; never the client certificate or key", async () => {
    const f = files();
    const login = await cli(["login", "--server", server("all"), ...tlsFlags()]);
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain(`(with the CA ${f.ca})`);
    const saved = JSON.parse(
      await readFile(join(home, ".config", "latchkey", "config.json"), "utf8"),
    );
    expect(saved).toEqual({ token: servers?.adminToken, server: server("all"), caCert: f.ca });

    // Later runs trust the saved CA for the saved server; the client pair comes from the env.
    const pair = { LATCHKEY_CLIENT_CERT: f.cert, LATCHKEY_CLIENT_KEY: f.key };
    const who = await cli(["whoami"], pair);
    expect(who.code, who.stderr).toBe(0);
    // The saved CA belongs to the saved server: another server does not get it.
    const other = await cli(["whoami", "--server", server("admin")], pair);
    expectCleanFailure(other, 3);
    expect(other.stderr).toContain("--ca-cert");

    expect((await cli(["logout"])).code).toBe(0);
  });
});

describe("usage errors (exit 2, nothing sent)", () => {
  const cases: [string, () => string[], Record<string, string>, RegExp][] = [
    [
      "an unreadable --ca-cert names the flag and the path",
      () => ["--ca-cert", join(dir, "missing.pem")],
      {},
      /^latchkey: --ca-cert: cannot read ".*missing\.pem" \(no such file\)$/m,
    ],
    [
      "an unreadable LATCHKEY_CACERT names the variable",
      () => [],
      { LATCHKEY_CACERT: "/nonexistent/ca.pem" },
      /^latchkey: LATCHKEY_CACERT: cannot read "\/nonexistent\/ca\.pem" \(no such file\)$/m,
    ],
    [
      "a directory as --client-cert",
      () => ["--ca-cert", files().ca, "--client-cert", dir, "--client-key", files().key],
      {},
      /--client-cert: cannot read ".*" \(it is a directory\)/,
    ],
    [
      "a file that is not PEM",
      () => ["--ca-cert", join(dir, "client-ca.srl")],
      {},
      /--ca-cert: ".*client-ca\.srl" holds no PEM certificate/,
    ],
    [
      "a private key as --ca-cert (its contents are never printed)",
      () => ["--ca-cert", files().key],
      {},
      /--ca-cert: ".*deploy-bot\.key" holds no PEM certificate/,
    ],
    [
      "a key that does not belong to the certificate",
      () => [
        "--ca-cert",
        files().ca,
        "--client-cert",
        files().cert,
        "--client-key",
        files().wrongKey,
      ],
      {},
      /--client-cert and --client-key: not usable for TLS/,
    ],
    [
      "--client-cert without --client-key",
      () => ["--ca-cert", files().ca, "--client-cert", files().cert],
      {},
      /--client-cert needs --client-key \(or LATCHKEY_CLIENT_KEY\)/,
    ],
    [
      "LATCHKEY_CLIENT_KEY without a certificate",
      () => ["--ca-cert", files().ca],
      { LATCHKEY_CLIENT_KEY: "/x.key" },
      /LATCHKEY_CLIENT_KEY needs --client-cert \(or LATCHKEY_CLIENT_CERT\)/,
    ],
  ];
  it.each(cases)("%s", async (_, args, env, message) => {
    const r = await cli(["whoami", "--server", server("all"), ...args()], env);
    expectCleanFailure(r, 2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/BEGIN|PRIVATE KEY|CERTIFICATE-----/);
  });

  it("TLS flags with an http:// server say that TLS needs https://", async () => {
    for (const target of ["http://127.0.0.1:1", "127.0.0.1:1"]) {
      const r = await cli(["whoami", "--server", target, "--ca-cert", files().ca]);
      expectCleanFailure(r, 2);
      expect(r.stderr).toContain("--ca-cert: TLS needs an https:// server, got http://127.0.0.1:1");
    }
    const env = await cli(["tokens", "list"], {
      LATCHKEY_SERVER: "http://127.0.0.1:1",
      LATCHKEY_CLIENT_CERT: files().cert,
      LATCHKEY_CLIENT_KEY: files().key,
    });
    expectCleanFailure(env, 2);
    expect(env.stderr).toContain("LATCHKEY_CLIENT_CERT: TLS needs an https:// server");
  });

  it("commands that never connect do not read the TLS files", async () => {
    const r = await cli(["logout"], { LATCHKEY_CACERT: "/nonexistent/ca.pem" });
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("help and completion", () => {
  it("show the TLS flags as global flags", async () => {
    const main = await cli(["--help"]);
    expect(main.stdout).toMatch(
      /^ {2}--ca-cert FILE +PEM CA bundle to trust for an https:\/\/ server$/m,
    );
    expect(main.stdout).toMatch(/^ {2}--client-cert FILE +PEM client certificate/m);
    expect(main.stdout).toMatch(/^ {2}--client-key FILE +PEM private key/m);
    expect(main.stdout).toContain("LATCHKEY_CACERT");
    const cmd = await cli(["tokens", "list", "--help"]);
    expect(cmd.stdout).toMatch(/^ {2}--client-key FILE/m);
    const bash = await cli(["completion", "bash"]);
    expect(bash.stdout).toContain(
      '--ca-cert|--client-cert|--client-key) COMPREPLY=($(compgen -f -- "$cur"))',
    );
    expect(bash.stdout).toMatch(/"tokens list"\) opts="[^"]*--ca-cert --client-cert --client-key/);
    const fish = await cli(["completion", "fish"]);
    expect(fish.stdout).toContain("complete -c latchkey -l client-key -r -F");
  });
});
