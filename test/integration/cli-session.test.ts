import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { useCliHarness } from "../helpers/cli-harness.js";

// The tests here start the CLI (a fresh node process), many of them several times in a row:
// twice as slow under load as on a quiet machine (cli-output's slowest test took 10.7 s with
// two CPU hogs on 2 cores). Nothing is timed; they get 90 s instead of the default 30 s.
vi.setConfig({ testTimeout: 90_000 });

const t = useCliHarness({ server: false, bootstrap: false });
const cli = t.cli;

describe("login", () => {
  it("refuses a token with a bad checksum offline (exit 2, nothing saved)", async () => {
    const last = t.h.bootstrapSecret.at(-1) === "A" ? "B" : "A";
    const typo = `${t.h.bootstrapSecret.slice(0, -1)}${last}`;
    // No server runs on port 1: the check is made before any call.
    for (const bad of [typo, "garbage", `${t.h.bootstrapSecret}x`]) {
      const r = await cli(["login", "--token", bad, "--server", "127.0.0.1:1"]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain("not a latchkey token");
    }
    expect(() => readFileSync(join(t.home, ".config", "latchkey", "config.json"))).toThrow();
  });

  it("refuses a well-formed token the server does not know (exit 1, nothing saved)", async () => {
    const { token } = await t.h.client(t.h.bootstrapSecret).createToken({
      name: "short lived",
      type: 2,
      teamId: "x",
      permissions: ["a:b"],
    });
    const made = await t.h.client(t.h.bootstrapSecret).rotateToken({ id: token?.id ?? "" });
    await t.h.client(t.h.bootstrapSecret).revokeToken({ id: made.token?.id ?? "" });
    const r = await cli(["login", "--token", made.secret, "--server", t.h.address]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Unauthenticated");
  });

  it("reads the token from stdin (--token - and a plain pipe), checks it and saves it with --server", async () => {
    const piped = await cli(["login", "--token", "-", "--server", t.h.address], {
      input: `${t.h.bootstrapSecret}\n`,
    });
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toContain(`logged in to http://${t.h.address} as tok_`);
    const saved = JSON.parse(
      readFileSync(join(t.home, ".config", "latchkey", "config.json"), "utf8"),
    );
    expect(saved).toEqual({ token: t.h.bootstrapSecret, server: `http://${t.h.address}` });

    const plain = await cli(["login", "--server", t.h.address], { input: t.h.bootstrapSecret });
    expect(plain.code, plain.stderr).toBe(0);

    // Later commands need neither --server nor --token.
    const list = await cli(["tokens", "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+NAME/);
  });
});

describe("whoami (auth status)", () => {
  it("shows the saved caller through GetCaller, in text and JSON", async () => {
    await cli(["login", "--token", t.h.bootstrapSecret, "--server", t.h.address]);
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
    const before = await t.h.counts();
    const r = await cli(["admin", "bootstrap", "--org", "rescue", "--json"], {
      env: { DATABASE_URL: t.h.databaseUrl, LATCHKEY_TOKEN_PREFIX: "lk" },
    });
    expect(r.code, r.stderr).toBe(0);
    const minted = JSON.parse(r.stdout) as {
      token: { id: string; orgId: string; permissions: string[] };
      secret: string;
    };
    expect(minted.token.orgId).toBe("rescue");
    expect(minted.token.permissions).toEqual(["*", "platform:admin"]);

    const after = await t.h.counts();
    expect(after.tokens).toBe(before.tokens + 1);
    const rows = await t.h.sql<{ action: string; method: string; actor_id: string }[]>`
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
      { env: { LATCHKEY_TOKEN: minted.secret, LATCHKEY_SERVER: t.h.address } },
    );
    expect(made.code, made.stderr).toBe(0);
    expect((JSON.parse(made.stdout) as { token: { orgId: string } }).token.orgId).toBe("acme");
  });

  it("needs --org", async () => {
    const r = await cli(["admin", "bootstrap"], { env: { DATABASE_URL: t.h.databaseUrl } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--org is required");
  });
});
