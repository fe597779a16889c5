import { copyFile, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, ensureAuditPartitions, type Sql, serverKey } from "../../src/store/db.js";
import { MIGRATIONS_DIR, migrate, pendingMigrations } from "../../src/store/migrate.js";
import { createTestDatabase } from "../helpers/postgres.js";

type TestDb = Awaited<ReturnType<typeof createTestDatabase>>;

describe("migrate on a fresh database", () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => {
    await db.drop();
  });

  it("lists every file as pending before the first run", async () => {
    expect(await pendingMigrations(db.sql, MIGRATIONS_DIR)).toContain("0001_init.sql");
  });

  it("applies each file once when two processes migrate at the same time", async () => {
    const a = connect(db.url, { max: 1 });
    const b = connect(db.url, { max: 1 });
    try {
      const [ra, rb] = await Promise.all([migrate(a, MIGRATIONS_DIR), migrate(b, MIGRATIONS_DIR)]);
      const applied = [...ra.applied, ...rb.applied];
      expect(applied.filter((f) => f === "0001_init.sql")).toHaveLength(1);
      expect([ra.applied.length, rb.applied.length].sort()).toEqual([0, applied.length]);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
    const rows = await db.sql<{ version: number; checksum: string }[]>`
      select version, checksum from schema_migrations order by version`;
    expect(rows[0]?.version).toBe(1);
    expect(rows[0]?.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(await pendingMigrations(db.sql, MIGRATIONS_DIR)).toEqual([]);
  });

  it("does nothing when run again", async () => {
    expect(await migrate(db.sql, MIGRATIONS_DIR)).toEqual({ applied: [] });
  });
});

describe("migrate refuses a database that does not match the files", () => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
    dir = await mkdtemp(join(tmpdir(), "latchkey-migrations-"));
    await copyFile(join(MIGRATIONS_DIR, "0001_init.sql"), join(dir, "0001_init.sql"));
    await writeFile(join(dir, "0002_extra.sql"), "create table extra (id int primary key);\n");
    await writeFile(join(dir, "README.md"), "not a migration\n");
    const logged: string[] = [];
    const { applied } = await migrate(db.sql, dir, (m) => logged.push(m));
    expect(applied).toEqual(["0001_init.sql", "0002_extra.sql"]);
    expect(logged).toEqual([
      "applying migration 0001_init.sql",
      "applying migration 0002_extra.sql",
    ]);
  });
  afterAll(async () => {
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it("names an applied file that was edited", async () => {
    await writeFile(join(dir, "0002_extra.sql"), "create table extra (id bigint primary key);\n");
    await expect(migrate(db.sql, dir)).rejects.toThrow(/0002_extra\.sql was changed/);
  });

  it("accepts the same file with CRLF line endings", async () => {
    await writeFile(join(dir, "0002_extra.sql"), "create table extra (id int primary key);\r\n");
    expect(await migrate(db.sql, dir)).toEqual({ applied: [] });
  });

  it("names an applied file that is missing", async () => {
    await unlink(join(dir, "0002_extra.sql"));
    await expect(migrate(db.sql, dir)).rejects.toThrow(/0002_extra\.sql is applied.*missing/);
  });

  it("rejects a file that is not named NNNN_name.sql", async () => {
    await writeFile(join(dir, "0002_extra.sql"), "create table extra (id int primary key);\n");
    await writeFile(join(dir, "3_bad.sql"), "select 1;\n");
    await expect(migrate(db.sql, dir)).rejects.toThrow(/3_bad\.sql .*NNNN_name\.sql/);
    await unlink(join(dir, "3_bad.sql"));
  });

  it("rolls back every file of a run when one fails", async () => {
    await writeFile(join(dir, "0003_ok.sql"), "create table ok3 (id int);\n");
    await writeFile(join(dir, "0004_broken.sql"), "create table broken (;\n");
    await expect(migrate(db.sql, dir)).rejects.toThrow();
    const [row] = await db.sql<{ t: string | null }[]>`select to_regclass('ok3')::text as t`;
    expect(row?.t).toBeNull();
    expect(await pendingMigrations(db.sql, dir)).toEqual(["0003_ok.sql", "0004_broken.sql"]);
  });
});

describe("store bootstrap helpers", () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  async function partitions(sql: Sql): Promise<string[]> {
    const rows = await sql<{ name: string }[]>`
      select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'audit_events'::regclass order by 1`;
    return rows.map((r) => r.name);
  }

  it("ensures this month's and next month's audit partitions, twice and concurrently", async () => {
    const now = new Date("2030-12-20T23:59:00Z");
    const other = connect(db.url, { max: 1 });
    try {
      await Promise.all([ensureAuditPartitions(db.sql, now), ensureAuditPartitions(other, now)]);
      await ensureAuditPartitions(db.sql, now);
    } finally {
      await other.end();
    }
    expect(await partitions(db.sql)).toEqual(
      expect.arrayContaining([
        "audit_events_203012",
        "audit_events_203101",
        "audit_events_default",
      ]),
    );
    await db.sql`
      insert into audit_events (id, time, org_id, action, decision)
      values ('aud_1', '2030-12-31T23:59:59Z', 'org', 'token.verify', 1)`;
    const [row] = await db.sql<{ t: string }[]>`
      select tableoid::regclass::text as t from audit_events where id = 'aud_1'`;
    expect(row?.t).toBe("audit_events_203012");
  });

  it("skips (and says so) a month whose rows already sit in the DEFAULT partition", async () => {
    await db.sql`
      insert into audit_events (id, time, org_id, action, decision)
      values ('aud_2', '2031-06-10T00:00:00Z', 'org', 'token.verify', 1)`;
    const logged: string[] = [];
    await ensureAuditPartitions(db.sql, new Date("2031-05-15T00:00:00Z"), (m) => logged.push(m));
    const names = await partitions(db.sql);
    expect(names).toContain("audit_events_203105");
    expect(names).not.toContain("audit_events_203106");
    expect(logged.join("\n")).toMatch(/2031-06.*DEFAULT partition already holds rows/);
  });

  it("gives every caller and every connection the same server key", async () => {
    const other = connect(db.url, { max: 2 });
    try {
      const [a, b, c] = await Promise.all([
        serverKey(db.sql, "page_token_key"),
        serverKey(other, "page_token_key"),
        serverKey(other, "page_token_key"),
      ]);
      expect(a).toHaveLength(32);
      expect(b.equals(a)).toBe(true);
      expect(c.equals(a)).toBe(true);
      expect((await serverKey(db.sql, "page_token_key")).equals(a)).toBe(true);
      expect((await serverKey(db.sql, "another_key")).equals(a)).toBe(false);
    } finally {
      await other.end();
    }
  });
});
