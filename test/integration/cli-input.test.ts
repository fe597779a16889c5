import { spawnSync } from "node:child_process";
import { describe, expect, it, vi } from "vitest";
import { useCliHarness } from "../helpers/cli-harness.js";
import type { CliResult } from "../helpers/cli-runner.js";

// The tests here start the CLI (a fresh node process), many of them several times in a row:
// twice as slow under load as on a quiet machine (cli-output's slowest test took 10.7 s with
// two CPU hogs on 2 cores). Nothing is timed; they get 90 s instead of the default 30 s.
vi.setConfig({ testTimeout: 90_000 });

const t = useCliHarness({ server: true, bootstrap: true });
const cli = t.cli;

/** No Node stack trace, no "at file:line" frame, in either stream. */
function expectNoStack(r: CliResult): void {
  const all = r.stdout + r.stderr;
  expect(all).not.toMatch(/\n\s+at .+:\d+:\d+/);
  expect(all).not.toMatch(/node:internal|Error \[ERR_/);
}

describe("bad input never ends in a stack trace", () => {
  it.each([
    [["tokens", "create", "--name", "x", "--type", "cicd", "--max-uses", "-1"], 2, "--max-uses"],
    [["tokens", "create", "--name", "x", "--type", "constructor"], 2, "--type: expected one of"],
    [["tokens", "create", "--name", "x", "--type", "__proto__"], 2, "--type: expected one of"],
    [["tokens", "list", "--state", "toString"], 2, "--state: expected one of"],
    [["tokens", "list", "--limit", "0"], 2, "--limit"],
    [["tokens", "list", "--bogus"], 2, "Unknown option"],
    [["tokens", "list", "--server"], 2, "argument missing"],
    [["tokens", "get"], 2, "tokens get: give ID"],
    [["tokens", "get", "a", "b"], 2, "unexpected argument"],
    [["tokens", "get", "tok_x", "--ttl", "1d"], 2, "--ttl does not apply here"],
    [["tokens", "frobnicate"], 2, 'unknown command "tokens frobnicate"'],
    [["frobnicate"], 2, 'unknown command "frobnicate"'],
    [["tokens", "list", "--server", "ftp://x:1"], 2, "--server: expected host:port"],
    [["tokens", "list", "--server", "127.0.0.1:1/path"], 2, "--server: give only"],
    [["tokens", "list", "-o", "xml"], 2, "--output: expected one of"],
    [["tokens", "create", "--name", "x", "--type", "cicd", "--meta", "novalue"], 2, "--meta"],
    [["audit", "list", "--since", "yesterday"], 2, "--since"],
    [["tokens", "batch-revoke"], 2, "give token ids or --filter"],
    [["tokens", "batch-revoke", "--filter", "color=red"], 2, 'unknown key "color"'],
    [["completion", "powershell"], 2, "expected one of bash, zsh, fish"],
    [["tokens", "get", "not-an-id"], 1, "InvalidArgument"],
    [["tokens", "list", "--server", "127.0.0.1:1"], 3, "cannot reach http://127.0.0.1:1"],
  ])("%j exits %i", async (args, code, message) => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe("");
    expectNoStack(r);
  });

  it("takes a flag value that starts with '-' (--reason \"-x\")", async () => {
    const made = await cli([
      "--json",
      "tokens",
      "create",
      "--name",
      "-dash",
      "--type",
      "team",
      "--team",
      "t",
      "--role",
      "viewer",
    ]);
    expect(made.code, made.stderr).toBe(0);
    const { token } = JSON.parse(made.stdout) as { token: { id: string; name: string } };
    expect(token.name).toBe("-dash");
    const r = await cli(["--json", "tokens", "revoke", token.id, "--reason", "-x"]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { revokeReason: string }).revokeReason).toBe("-x");
  });

  it("accepts --server host:port without a scheme", async () => {
    const r = await cli(["tokens", "list", "--server", t.h.address], {
      env: { LATCHKEY_SERVER: "" },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+NAME/);
  });

  it("exits quietly when the reader of a pipe goes away (tokens list | head -2)", async () => {
    for (let i = 0; i < 30; i++) {
      await t.h
        .client(t.h.bootstrapSecret)
        .createToken({ name: `pipe ${i}`, type: 2, teamId: "pipe", permissions: ["a:b"] });
    }
    const r = await cli(["tokens", "list", "--state", "all"], { pipeTo: "head -2" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split("\n").filter((l) => l !== "")).toHaveLength(2);
    expect(r.stderr).toBe("");
    const j = await cli(["--json", "tokens", "list", "--state", "all"], { pipeTo: "head -c 10" });
    expect(j.code, j.stderr).toBe(0);
    expect(j.stderr).toBe("");
  });
});

describe("help, version and completion", () => {
  it("prints the version, the group usage and per-command help", async () => {
    const v = await cli(["--version"]);
    expect(v).toMatchObject({ code: 0 });
    expect(v.stdout).toMatch(/^latchkey \d+\.\d+\.\d+\n$/);

    const group = await cli(["tokens"]);
    expect(group.code).toBe(0);
    expect(group.stdout).toContain("Usage: latchkey tokens <command>");
    expect(group.stdout).toContain("tokens batch-revoke");

    const a = await cli(["help", "tokens", "create"]);
    const b = await cli(["tokens", "create", "--help"]);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).toContain("--max-uses N");
    expect(a.stdout).toContain("Exit codes: 0 done, 1 the server refused");

    const alias = await cli(["help", "auth", "status"]);
    expect(alias.stdout).toContain("Usage: latchkey whoami");
    const top = await cli([]);
    expect(top.stdout).toContain("Usage: latchkey <command> [flags]");
  });

  it.each(["bash", "zsh", "fish"])(
    "prints a %s completion script that the shell accepts",
    async (shell) => {
      const r = await cli(["completion", shell]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("batch-revoke");
      expect(r.stdout).toContain(shell === "fish" ? "-l dry-run" : "--dry-run");
      if (shell === "bash") {
        // The script loads in bash and completes commands, flags and flag values.
        const out = spawnSync(
          "bash",
          [
            "-c",
            [
              'eval "$SCRIPT"',
              // biome-ignore lint/suspicious/noTemplateCurlyInString: bash, not a JS template
              'show() { _latchkey; echo "$(IFS=\' \'; echo "${COMPREPLY[*]}")"; }',
              "COMP_WORDS=(latchkey tokens b); COMP_CWORD=2; show",
              "COMP_WORDS=(latchkey tokens list --st); COMP_CWORD=3; show",
              'COMP_WORDS=(latchkey tokens list --state ""); COMP_CWORD=4; show',
              // A global flag's value before the command, and an id after it, are not
              // command words.
              "COMP_WORDS=(latchkey --server h:1 -o json tokens b); COMP_CWORD=6; show",
              "COMP_WORDS=(latchkey tokens revoke tok_1 --rea); COMP_CWORD=4; show",
            ].join("\n"),
          ],
          { env: { PATH: process.env.PATH ?? "", SCRIPT: r.stdout }, encoding: "utf8" },
        );
        expect(out.stdout.split("\n")).toEqual([
          "batch-revoke",
          "--state",
          "active expired revoked exhausted all",
          "batch-revoke",
          "--reason",
          "",
        ]);
      }
    },
  );
});

describe("confirmation on a terminal", () => {
  async function newToken(name: string): Promise<string> {
    const res = await t.h
      .client(t.h.bootstrapSecret)
      .createToken({ name, type: 2, teamId: "tty", permissions: ["a:b"] });
    return res.token?.id ?? "";
  }

  it("tokens revoke asks; 'n' changes nothing, 'y' revokes; --yes and a pipe do not ask", async () => {
    const id = await newToken("ask me");
    const no = await cli(["tokens", "revoke", id], { tty: true, input: "n\n" });
    expect(no.stdout).toContain(`Revoke ${id} ("ask me")?`);
    expect(no.stdout).toContain("cancelled; nothing was revoked");
    expect(no.code).toBe(1);
    expect((await t.h.client(t.h.bootstrapSecret).getToken({ id })).token?.state).toBe(1);

    const yes = await cli(["tokens", "revoke", id], { tty: true, input: "y\n" });
    expect(yes.code, yes.stdout).toBe(0);
    expect((await t.h.client(t.h.bootstrapSecret).getToken({ id })).token?.state).toBe(3);

    const other = await newToken("no question");
    const forced = await cli(["tokens", "revoke", other, "--yes"], { tty: true });
    expect(forced.code, forced.stdout).toBe(0);
    expect(forced.stdout).not.toContain("[y/N]");
  });

  it("batch-revoke --filter shows the count and asks", async () => {
    await newToken("batch tty 1");
    await newToken("batch tty 2");
    const no = await cli(["tokens", "batch-revoke", "--filter", "team=tty"], {
      tty: true,
      input: "n\n",
    });
    expect(no.stdout).toMatch(/Revoke 2 token\(s\)\? This cannot be undone\. \[y\/N\]/);
    expect(no.code).toBe(1);
    const yes = await cli(["tokens", "batch-revoke", "--filter", "team=tty"], {
      tty: true,
      input: "y\n",
    });
    expect(yes.code, yes.stdout).toBe(0);
    expect(yes.stdout).toContain("revoked 2 token(s)");
  });
});
