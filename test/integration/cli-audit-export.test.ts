import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type AdminHarness, ORG_A, startAdminHarness } from "../helpers/admin-harness.js";

// The tests here start the CLI (a fresh node process), many of them several times in a row:
// twice as slow under load as on a quiet machine (cli-output's slowest test took 10.7 s with
// two CPU hogs on 2 cores). Nothing is timed; they get 90 s instead of the default 30 s.
vi.setConfig({ testTimeout: 90_000 });

const CLI = resolve(import.meta.dirname, "../../dist/src/cli/main.js");

/** Rows seeded into the window: more than two default pages (1000 each). */
const ROWS = 2_345;

let h: AdminHarness;
let home: string;
/** The seeded window: [from, to), ten days ago, away from the bootstrap's own audit rows. */
let from: Date;
let to: Date;

function env(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: home,
    LATCHKEY_SERVER: `http://${h.address}`,
    LATCHKEY_TOKEN: h.bootstrapSecret,
  };
}

/**
 * Runs the built `latchkey` CLI with stdout and stderr on pipes (not terminals). With
 * `closeAfterFirstChunk`, stdout is closed after its first chunk, as `| head -1` does.
 */
function cli(
  args: readonly string[],
  opts: { closeAfterFirstChunk?: boolean } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: env() });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (c: Buffer) => {
    out.push(c);
    if (opts.closeAfterFirstChunk === true) child.stdout.destroy();
  });
  child.stderr.on("data", (c: Buffer) => err.push(c));
  return new Promise((done) =>
    child.on("close", (code) =>
      done({
        code,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    ),
  );
}

interface ExportedEvent {
  id: string;
  time: string;
  orgId: string;
  action: string;
  decision: string;
  tokenId?: string;
  actorId?: string;
  details?: Record<string, unknown>;
}

/** Every stdout line parsed on its own (JSON Lines); a line that does not parse fails the test. */
function lines(stdout: string): ExportedEvent[] {
  expect(stdout.endsWith("\n")).toBe(true);
  return stdout
    .slice(0, -1)
    .split("\n")
    .map((l) => JSON.parse(l) as ExportedEvent);
}

async function sqlCount(where: { action?: string; decision?: number; tokenId?: string }) {
  const [row] = await h.sql<{ n: string }[]>`
    SELECT count(*)::text AS n FROM audit_events
    WHERE org_id = ${ORG_A} AND time >= ${from} AND time < ${to}
      ${where.action === undefined ? h.sql`` : h.sql`AND action = ${where.action}`}
      ${where.decision === undefined ? h.sql`` : h.sql`AND decision = ${where.decision}`}
      ${where.tokenId === undefined ? h.sql`` : h.sql`AND token_id = ${where.tokenId}`}`;
  return Number(row?.n ?? "-1");
}

const window = (): string[] => ["--since", from.toISOString(), "--until", to.toISOString()];

beforeAll(async () => {
  h = await startAdminHarness();
  home = mkdtempSync(join(tmpdir(), "latchkey-cli-export-"));
  to = new Date(Math.floor((Date.now() - 10 * 86_400_000) / 1000) * 1000);
  from = new Date(to.getTime() - 3_600_000);
  // Rows one second apart inside the window, a third denials, a mix of actions and tokens,
  // some with details; plus rows just outside it on both sides and rows of another org.
  await h.sql`
    INSERT INTO audit_events (id, time, org_id, actor_id, action, token_id, decision, code, details)
    SELECT 'aud_' || lpad(g::text, 26, '0'), ${from}::timestamptz + g * interval '1 second',
           ${ORG_A}, CASE WHEN g % 5 = 0 THEN 'tok_actor' ELSE '' END,
           CASE WHEN g % 2 = 0 THEN 'token.verify' ELSE 'token.update' END,
           'tok_' || (g % 7)::text, CASE WHEN g % 3 = 0 THEN 2 ELSE 1 END,
           CASE WHEN g % 3 = 0 THEN 'REVOKED' ELSE 'VALID' END,
           CASE WHEN g % 11 = 0 THEN jsonb_build_object('changed', jsonb_build_array('name'))
                ELSE NULL END
    FROM generate_series(0, ${ROWS - 1}) g`;
  await h.sql`
    INSERT INTO audit_events (id, time, org_id, action, decision)
    VALUES ('aud_before', ${from}::timestamptz - interval '1 millisecond', ${ORG_A}, 'token.verify', 1),
           ('aud_atend', ${to}, ${ORG_A}, 'token.verify', 1),
           ('aud_other', ${from}::timestamptz + interval '5 seconds', 'org-other', 'token.verify', 1)`;
});

afterAll(async () => {
  await h?.close();
  rmSync(home, { recursive: true, force: true });
});

describe("latchkey audit export (built CLI, real server)", () => {
  it("streams every page as JSON Lines: each line parses, the count matches the database", async () => {
    const res = await cli(["audit", "export", ...window()]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toBe(""); // no progress line: stderr is not a terminal
    const events = lines(res.stdout);
    expect(await sqlCount({})).toBe(ROWS);
    expect(events).toHaveLength(ROWS);
    expect(new Set(events.map((e) => e.id)).size).toBe(ROWS);
    expect(events.every((e) => e.orgId === ORG_A)).toBe(true);
    // Newest first, exactly as ListAuditEvents pages them.
    const times = events.map((e) => Date.parse(e.time));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(events[0]?.id).toBe(`aud_${String(ROWS - 1).padStart(26, "0")}`);
    // Protobuf JSON form: enum names, RFC 3339 times, details as an object.
    expect(events[0]?.decision).toMatch(/^AUDIT_DECISION_(ALLOW|DENY)$/);
    expect(events.find((e) => e.id === `aud_${"0".repeat(24)}11`)?.details).toEqual({
      changed: ["name"],
    });
  });

  it("small pages give the same rows", async () => {
    const res = await cli(["audit", "export", ...window(), "--page-size", "400"]);
    expect(res.code, res.stderr).toBe(0);
    expect(lines(res.stdout)).toHaveLength(ROWS);
  });

  it("applies the same filters as audit list: decision, action, token, actor", async () => {
    const denied = await cli(["audit", "export", ...window(), "--decision", "deny"]);
    expect(denied.code, denied.stderr).toBe(0);
    const d = lines(denied.stdout);
    expect(d).toHaveLength(await sqlCount({ decision: 2 }));
    expect(d.every((e) => e.decision === "AUDIT_DECISION_DENY")).toBe(true);

    const both = await cli([
      "audit",
      "export",
      ...window(),
      "--action",
      "token.verify",
      "--decision",
      "allow",
      "--token-id",
      "tok_3",
    ]);
    expect(both.code, both.stderr).toBe(0);
    const b = lines(both.stdout);
    expect(b.length).toBeGreaterThan(0);
    expect(b).toHaveLength(
      await sqlCount({ action: "token.verify", decision: 1, tokenId: "tok_3" }),
    );

    const actor = await cli(["audit", "export", ...window(), "--actor-id", "tok_actor"]);
    expect(lines(actor.stdout)).toHaveLength(Math.ceil(ROWS / 5));
  });

  it("stops quietly with exit 0 when the reader closes the pipe (| head)", async () => {
    const res = await cli(["audit", "export", ...window()], { closeAfterFirstChunk: true });
    expect(JSON.parse(res.stdout.split("\n")[0] ?? "")).toHaveProperty("id");
    expect(res.stdout.split("\n").length).toBeLessThan(ROWS);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
  });

  it("exit codes: 2 for a bad command line, 1 when the server refuses", async () => {
    for (const bad of [
      ["--since", "yesterday"],
      ["--since", "2026-13-45"],
      ["--decision", "maybe"],
      ["--page-size", "0"],
      ["--since", "1d", "--until", "2d"],
      ["--nope"],
      ["extra"],
    ]) {
      const res = await cli(["audit", "export", ...bad]);
      expect(res.code, bad.join(" ")).toBe(2);
      expect(res.stdout).toBe("");
      expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    const refused = await cli(["--token", "lk_p_wrong", "audit", "export", "--since", "1d"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("Unauthenticated");
    expect(refused.stdout).toBe("");

    const help = await cli(["audit", "export", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("JSON Lines");
  });

  it("is an ordinary command: `audit list --action export` is not taken for it", async () => {
    const list = await cli(["audit", "list", "--action", "export"]);
    expect(list.code, list.stderr).toBe(0);
  });

  it("help and completion show its flags from the shared flag table", async () => {
    const help = await cli(["help", "audit", "export"]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain("Usage: latchkey audit export [flags]");
    expect(help.stdout).toMatch(/^ {2}--page-size N +rows per ListAuditEvents call/m);
    expect(help.stdout).toMatch(/^ {2}--decision DECISION +allow or deny/m);
    expect((await cli(["help", "audit"])).stdout).toContain("audit export [flags]");

    const bash = await cli(["completion", "bash"]);
    const line = bash.stdout.split("\n").find((l) => l.includes('"audit export")')) ?? "";
    for (const f of [
      "--since",
      "--until",
      "--token-id",
      "--actor-id",
      "--decision",
      "--page-size",
    ]) {
      expect(line, f).toContain(f);
    }
    const fish = await cli(["completion", "fish"]);
    expect(fish.stdout).toContain("-l page-size -r");
    expect(fish.stdout).toContain('__fish_seen_subcommand_from audit" -a export');
  });
});
