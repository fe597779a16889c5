import { describe, expect, it, vi } from "vitest";
import { parse as parseYaml } from "yaml";
import { mint } from "../../src/domain/mint.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { createTokenRepo } from "../../src/store/token-repo.js";
import { ORG_A, PREFIX } from "../helpers/admin-harness.js";
import { useCliHarness } from "../helpers/cli-harness.js";

// The tests here start the CLI (a fresh node process), many of them several times in a row:
// twice as slow under load as on a quiet machine (cli-output's slowest test took 10.7 s with
// two CPU hogs on 2 cores). Nothing is timed; they get 90 s instead of the default 30 s.
vi.setConfig({ testTimeout: 90_000 });

const t = useCliHarness({ server: true, bootstrap: true });
const cli = t.cli;

interface TokenJson {
  id: string;
  name: string;
  state: string;
  type: string;
  permissions?: string[];
  expireTime?: string;
}

async function json<T>(args: readonly string[]): Promise<T> {
  const r = await cli([...args, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

async function createTeamToken(name: string, extra: string[] = []): Promise<TokenJson> {
  const r = await json<{ token: TokenJson }>([
    "tokens",
    "create",
    "--name",
    name,
    "--type",
    "team",
    "--team",
    "bulk",
    "--permission",
    "deploy:read",
    ...extra,
  ]);
  return r.token;
}

describe("tokens list output", () => {
  it("prints one JSON array holding every page; --limit stops early; yaml parses to the same", async () => {
    // More than one server page (the CLI asks for 1000 at a time; --limit 3 pages by 3).
    const made: TokenJson[] = [];
    for (let i = 0; i < 7; i++) made.push(await createTeamToken(`bulk ${i}`));

    const all = await json<TokenJson[]>(["tokens", "list", "--team", "bulk"]);
    expect(Array.isArray(all)).toBe(true);
    expect(all.map((t) => t.id).sort()).toEqual(made.map((t) => t.id).sort());

    const three = await json<TokenJson[]>(["tokens", "list", "--team", "bulk", "--limit", "3"]);
    expect(three).toHaveLength(3);
    expect(three.map((t) => t.id)).toEqual(all.slice(0, 3).map((t) => t.id));

    const yaml = await cli(["tokens", "list", "--team", "bulk", "-o", "yaml"]);
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(parseYaml(yaml.stdout)).toEqual(all);
  });

  it("follows next_page_token past the server's largest page (1000)", async () => {
    const many = Array.from({ length: 1_010 }, (_, i) => {
      const { secret: _secret, ...stored } = mint(PREFIX, TokenType.TEAM);
      return {
        ...stored,
        name: `seeded ${i}`,
        type: TokenType.TEAM,
        orgId: ORG_A,
        teamId: "many",
        permissions: ["deploy:read"],
        createTime: new Date(),
        expireTime: null,
      };
    });
    await createTokenRepo(t.h.sql).insert(many);
    const all = await json<TokenJson[]>(["tokens", "list", "--team", "many"]);
    expect(all).toHaveLength(1_010);
    expect(new Set(all.map((t) => t.id)).size).toBe(1_010);
    const some = await json<TokenJson[]>(["tokens", "list", "--team", "many", "--limit", "1005"]);
    expect(some.map((t) => t.id)).toEqual(all.slice(0, 1_005).map((t) => t.id));
  });

  it("prints an aligned table by default: ID NAME TYPE STATE LAST USED EXPIRES SLOTS", async () => {
    const slotted = await json<{ token: TokenJson }>([
      "tokens",
      "create",
      "--name",
      "runner pool",
      "--type",
      "cicd",
      "--permission",
      "deploy:run",
      "--ttl",
      "30d",
      "--max-concurrent",
      "4",
    ]);
    const r = await cli(["tokens", "list", "--type", "cicd"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    const header = lines[0] ?? "";
    expect(header).toMatch(/^ID\s+NAME\s+TYPE\s+STATE\s+LAST USED\s+EXPIRES\s+SLOTS$/);
    const row = lines.find((l) => l.startsWith(slotted.token.id)) ?? "";
    // Columns line up: every column starts where its header does.
    for (const col of ["NAME", "TYPE", "STATE", "LAST USED", "EXPIRES", "SLOTS"]) {
      expect(row.slice(header.indexOf(col)), col).not.toMatch(/^\s/);
    }
    expect(row).toMatch(/runner pool\s+cicd\s+active\s+never\s+in (29|30)d\s+0\/4$/);
  });

  it("lists active tokens unless --state widens it", async () => {
    const gone = await createTeamToken("soon revoked");
    expect((await cli(["tokens", "revoke", gone.id, "--reason", "test"])).code).toBe(0);
    const active = await json<TokenJson[]>(["tokens", "list", "--team", "bulk"]);
    expect(active.map((t) => t.id)).not.toContain(gone.id);
    const revoked = await json<TokenJson[]>(["tokens", "list", "--state", "revoked"]);
    expect(revoked.map((t) => t.id)).toContain(gone.id);
    const every = await json<TokenJson[]>(["tokens", "list", "--state", "all", "--team", "bulk"]);
    expect(every.map((t) => t.id)).toContain(gone.id);
    expect(every.length).toBe(active.length + 1);
  });
});

describe("single-token commands", () => {
  it("rotate prints the new secret in every format, and the old one stops working", async () => {
    const t = await createTeamToken("to rotate");
    const rotated = await json<{ token: TokenJson; secret: string; previous: TokenJson }>([
      "tokens",
      "rotate",
      t.id,
    ]);
    expect(rotated.secret).toMatch(/^lk_t_[0-9A-Za-z]{49}$/);
    expect(rotated.previous.id).toBe(t.id);
    const check = await cli(["verify", rotated.secret, "--permission", "deploy:read"]);
    expect(check.stdout).toContain("valid: VALID");

    const again = await cli(["tokens", "rotate", rotated.token.id, "-o", "yaml"]);
    expect(again.code, again.stderr).toBe(0);
    const doc = parseYaml(again.stdout) as { secret: string };
    expect(doc.secret).toMatch(/^lk_t_/);
  });

  it("update --permission narrows the permissions; widening is refused by the server", async () => {
    const t = await createTeamToken("narrow me", ["--permission", "deploy:write"]);
    const narrowed = await json<TokenJson>([
      "tokens",
      "update",
      t.id,
      "--permission",
      "deploy:read",
    ]);
    expect(narrowed.permissions).toEqual(["deploy:read"]);
    const wider = await cli(["tokens", "update", t.id, "--permission", "billing:read"]);
    expect(wider.code).toBe(1);
    expect(wider.stderr).toMatch(/^latchkey: InvalidArgument|^latchkey: PermissionDenied/);
  });

  it("get prints every field for a person, and the token for --json", async () => {
    const t = await createTeamToken("look at me", ["--meta", "region=eu-west", "--ttl", "1y"]);
    const r = await cli(["tokens", "get", t.id]);
    expect(r.stdout).toMatch(/^id:\s+tok_/m);
    expect(r.stdout).toMatch(/^metadata:\s+region=eu-west$/m);
    expect(r.stdout).toMatch(/^expires:\s+\S+ \(in 36[45]d\)$/m);
    expect((await json<TokenJson>(["tokens", "get", t.id])).id).toBe(t.id);
  });
});

describe("tokens batch-revoke", () => {
  it("shows the selection with --dry-run, then revokes by filter; by ids too", async () => {
    const a = await createTeamToken("batch a", ["--team", "doomed"]);
    const b = await createTeamToken("batch b", ["--team", "doomed"]);
    const dry = await json<{ dryRun: boolean; count: number; tokens: TokenJson[] }>([
      "tokens",
      "batch-revoke",
      "--filter",
      "team=doomed,type=team",
      "--dry-run",
    ]);
    expect(dry.dryRun).toBe(true);
    expect(dry.count).toBe(2);
    expect(dry.tokens.map((t) => t.state)).toEqual(["TOKEN_STATE_ACTIVE", "TOKEN_STATE_ACTIVE"]);

    const done = await json<{ count: number; tokens: TokenJson[] }>([
      "tokens",
      "batch-revoke",
      "--filter",
      "team=doomed",
      "--reason",
      "team dissolved",
    ]);
    expect(done.count).toBe(2);
    expect(done.tokens.map((t) => t.id).sort()).toEqual([a.id, b.id].sort());
    expect(done.tokens.every((t) => t.state === "TOKEN_STATE_REVOKED")).toBe(true);

    const c = await createTeamToken("batch c");
    const byId = await cli(["tokens", "batch-revoke", c.id]);
    expect(byId.code, byId.stderr).toBe(0);
    expect(byId.stdout).toContain("revoked 1 token(s)");
  });
});

describe("audit list", () => {
  it("prints one JSON array and filters by decision and time", async () => {
    // A verification of a revoked token of this org writes a deny row.
    const made = await json<{ token: TokenJson; secret: string }>([
      "tokens",
      "create",
      "--name",
      "audited",
      "--type",
      "team",
      "--team",
      "x",
      "--role",
      "viewer",
    ]);
    expect((await cli(["tokens", "revoke", made.token.id])).code).toBe(0);
    const denied = await cli(["verify", made.secret]);
    expect(denied.code).toBe(1);
    await t.h.counts(); // flushes the verifier's audit buffer
    const deny = await json<{ decision: string; action: string }[]>([
      "audit",
      "list",
      "--decision",
      "deny",
      "--since",
      "1h",
    ]);
    expect(deny.length).toBeGreaterThan(0);
    expect(deny.every((e) => e.decision === "AUDIT_DECISION_DENY")).toBe(true);
    const allow = await json<{ decision: string }[]>(["audit", "list", "--decision", "allow"]);
    expect(allow.length).toBeGreaterThan(0);
    expect(allow.every((e) => e.decision === "AUDIT_DECISION_ALLOW")).toBe(true);
    const future = await json<unknown[]>(["audit", "list", "--since", "2999-01-01T00:00:00Z"]);
    expect(future).toEqual([]);
    const old = await json<unknown[]>(["audit", "list", "--until", "2000-01-01T00:00:00Z"]);
    expect(old).toEqual([]);
    const table = await cli(["audit", "list", "--limit", "2"]);
    expect(table.stdout.split("\n")[0]).toMatch(/^TIME\s+ACTION\s+DECISION\s+CODE\s+ACTOR\s+TOKEN/);
    expect(table.stdout.trimEnd().split("\n")).toHaveLength(3);
  });
});
