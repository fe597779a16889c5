import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminHarness, startAdminHarness } from "../helpers/admin-harness.js";
import { type CliResult, type CliRun, runCli } from "../helpers/cli-runner.js";

let h: AdminHarness;
let home: string;

/** The CLI with only HOME set: the server and token must come from flags or the saved login. */
function cli(args: readonly string[], opts: CliRun = {}): Promise<CliResult> {
  return runCli(args, { ...opts, env: { HOME: home, ...opts.env } });
}

beforeAll(async () => {
  h = await startAdminHarness();
  home = mkdtempSync(join(tmpdir(), "latchkey-cli-session-"));
});

afterAll(async () => {
  await h.close();
  rmSync(home, { recursive: true, force: true });
});

describe("login", () => {
  it("refuses a token with a bad checksum offline (exit 2, nothing saved)", async () => {
    const last = h.bootstrapSecret.at(-1) === "A" ? "B" : "A";
    const typo = `${h.bootstrapSecret.slice(0, -1)}${last}`;
    // No server runs on port 1: the check is made before any call.
    for (const bad of [typo, "garbage", `${h.bootstrapSecret}x`]) {
      const r = await cli(["login", "--token", bad, "--server", "127.0.0.1:1"]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain("not a latchkey token");
    }
    expect(() => readFileSync(join(home, ".config", "latchkey", "config.json"))).toThrow();
  });

  it("refuses a well-formed token the server does not know (exit 1, nothing saved)", async () => {
    const { token } = await h.client(h.bootstrapSecret).createToken({
      name: "short lived",
      type: 2,
      teamId: "x",
      permissions: ["a:b"],
    });
    const made = await h.client(h.bootstrapSecret).rotateToken({ id: token?.id ?? "" });
    await h.client(h.bootstrapSecret).revokeToken({ id: made.token?.id ?? "" });
    const r = await cli(["login", "--token", made.secret, "--server", h.address]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Unauthenticated");
  });

  it("reads the token from stdin (--token - and a plain pipe), checks it and saves it with --server", async () => {
    const piped = await cli(["login", "--token", "-", "--server", h.address], {
      input: `${h.bootstrapSecret}\n`,
    });
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toContain(`logged in to http://${h.address} as tok_`);
    const saved = JSON.parse(
      readFileSync(join(home, ".config", "latchkey", "config.json"), "utf8"),
    );
    expect(saved).toEqual({ token: h.bootstrapSecret, server: `http://${h.address}` });

    const plain = await cli(["login", "--server", h.address], { input: h.bootstrapSecret });
    expect(plain.code, plain.stderr).toBe(0);

    // Later commands need neither --server nor --token.
    const list = await cli(["tokens", "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+NAME/);
  });
});

describe("whoami (auth status)", () => {
  it("shows the saved caller through GetCaller, in text and JSON", async () => {
    await cli(["login", "--token", h.bootstrapSecret, "--server", h.address]);
    const text = await cli(["whoami"]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^server:\s+http:\/\/127\.0\.0\.1:\d+$/m);
    expect(text.stdout).toMatch(/^org:\s+org-a \(platform admin/m);
    const json = await cli(["auth", "status", "--json"]);
    const doc = JSON.parse(json.stdout) as {
      platform: boolean;
      orgWide: boolean;
      token: { permissions: string[] };
    };
    expect(doc.platform).toBe(true);
    expect(doc.orgWide).toBe(true);
    expect(doc.token.permissions).toContain("platform:admin");

    expect((await cli(["logout"])).code).toBe(0);
    const out = await cli(["whoami"]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("not logged in");
  });
});

describe("admin bootstrap (break-glass)", () => {
  it("mints a working platform token straight in the database and audits it", async () => {
    const before = await h.counts();
    const r = await cli(["admin", "bootstrap", "--org", "rescue", "--json"], {
      env: { DATABASE_URL: h.databaseUrl, LATCHKEY_TOKEN_PREFIX: "lk" },
    });
    expect(r.code, r.stderr).toBe(0);
    const minted = JSON.parse(r.stdout) as {
      token: { id: string; orgId: string; permissions: string[] };
      secret: string;
    };
    expect(minted.token.orgId).toBe("rescue");
    expect(minted.token.permissions).toEqual(["*", "platform:admin"]);

    const after = await h.counts();
    expect(after.tokens).toBe(before.tokens + 1);
    const rows = await h.sql<{ action: string; method: string; actor_id: string }[]>`
      SELECT action, method, actor_id FROM audit_events WHERE token_id = ${minted.token.id}`;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: "token.create", method: "break-glass" });
    expect(rows[0]?.actor_id).toMatch(/^operator:/);

    // The new token is a platform caller: it can act in another org.
    const made = await cli(
      [
        "tokens",
        "create",
        "--org",
        "acme",
        "--name",
        "acme admin",
        "--type",
        "cicd",
        "--permission",
        "*",
        "--json",
      ],
      { env: { LATCHKEY_TOKEN: minted.secret, LATCHKEY_SERVER: h.address } },
    );
    expect(made.code, made.stderr).toBe(0);
    expect((JSON.parse(made.stdout) as { token: { orgId: string } }).token.orgId).toBe("acme");
  });

  it("needs --org", async () => {
    const r = await cli(["admin", "bootstrap"], { env: { DATABASE_URL: h.databaseUrl } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--org is required");
  });
});
