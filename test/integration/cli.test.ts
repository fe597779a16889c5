import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type AdminHarness, startAdminHarness } from "../helpers/admin-harness.js";
import { type CliResult, runCli } from "../helpers/cli-runner.js";

// The tests here start the CLI (a fresh node process), many of them several times in a row:
// twice as slow under load as on a quiet machine (cli-output's slowest test took 10.7 s with
// two CPU hogs on 2 cores). Nothing is timed; they get 90 s instead of the default 30 s.
vi.setConfig({ testTimeout: 90_000 });

let h: AdminHarness;
let home: string;

/** Runs the built `latchkey` CLI with a clean environment (HOME in a temp dir). */
function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { env: { HOME: home, LATCHKEY_SERVER: `http://${h.address}`, ...env } });
}

beforeAll(async () => {
  h = await startAdminHarness();
  home = mkdtempSync(join(tmpdir(), "latchkey-cli-"));
});

afterAll(async () => {
  await h.close();
  rmSync(home, { recursive: true, force: true });
});

describe("latchkey CLI against a real server", () => {
  it("creates, lists, rotates, revokes and verifies, with --token", async () => {
    const t = ["--token", h.bootstrapSecret];
    const created = await cli([
      ...t,
      "--json",
      "tokens",
      "create",
      "--name",
      "deploy bot",
      "--type",
      "cicd",
      "--role",
      "cicd",
      "--ttl",
      "30d",
      "--meta",
      "region=eu-west",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const { token, secret } = JSON.parse(created.stdout) as {
      token: { id: string; metadata: Record<string, string> };
      secret: string;
    };
    expect(token.metadata).toEqual({ region: "eu-west" });
    expect(secret).toMatch(/^lk_c_[0-9A-Za-z]{49}$/);

    const listed = await cli([...t, "tokens", "list", "--type", "cicd"]);
    expect(listed.stdout).toContain(token.id);
    expect(listed.stdout).not.toContain(secret);

    const valid = await cli(["verify", secret, "--permission", "deploy:run"]);
    expect(valid).toMatchObject({ code: 0 });
    expect(valid.stdout).toContain("valid: VALID");

    const rotated = await cli([...t, "tokens", "rotate", token.id, "--grace", "1h"]);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/secret \(shown once, store it now\): lk_c_/);

    const revoked = await cli([...t, "tokens", "revoke", token.id, "--reason", "laptop stolen"]);
    expect(revoked.stdout).toContain("revoked");
    const again = await cli([...t, "tokens", "revoke", token.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("FailedPrecondition");

    const denied = await cli(["verify", secret]);
    expect(denied.code).toBe(1);
    expect(denied.stdout).toContain("denied: REVOKED");
  });

  it("takes the token from LATCHKEY_TOKEN, then from the file `login` writes (mode 0600)", async () => {
    const none = await cli(["tokens", "list"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("Unauthenticated");

    const fromEnv = await cli(["tokens", "list"], { LATCHKEY_TOKEN: h.bootstrapSecret });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);

    const login = await cli(["login", "--token", h.bootstrapSecret]);
    expect(login.code).toBe(0);
    const file = join(home, ".config", "latchkey", "config.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await cli(["tokens", "list"])).code).toBe(0);

    // The flag wins over the environment and the file.
    const flag = await cli(["--token", "lk_p_wrong", "tokens", "list"], {
      LATCHKEY_TOKEN: h.bootstrapSecret,
    });
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain("Unauthenticated");

    expect((await cli(["logout"])).code).toBe(0);
    expect((await cli(["tokens", "list"])).code).toBe(1);
  });

  it("refuses bad usage with exit code 2 and a message naming the flag", async () => {
    const create = (...flags: string[]) =>
      cli(["--token", h.bootstrapSecret, "tokens", "create", "--name", "x", ...flags]);
    const bad = await create("--type", "robot");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--type: expected one of personal, team, cicd, ephemeral");
    const ttl = await create("--type", "cicd", "--ttl", "1x");
    expect(ttl.code).toBe(2);
    expect(ttl.stderr).toContain("--ttl");
  });
});
