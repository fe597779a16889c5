import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, parse } from "node:path";
import { fileURLToPath } from "node:url";
import type { Sql } from "./db.js";

/**
 * Advisory lock key held while migrating, so that instances starting together apply each
 * migration once. Arbitrary but fixed forever: it is the first 8 bytes of
 * sha256("latchkey.migrate") as a signed bigint.
 */
const MIGRATION_LOCK_KEY = "-432359584014915002";

const FILE_PATTERN = /^(\d{4})_([A-Za-z0-9_-]+)\.sql$/;

function findMigrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  const { root } = parse(dir);
  for (;;) {
    const candidate = join(dir, "migrations");
    if (existsSync(candidate) && statSync(candidate).isDirectory()) return candidate;
    if (dir === root) break;
    dir = dirname(dir);
  }
  // Not found: return the conventional place so migrate() fails naming a real path.
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "migrations");
}

/**
 * The schema files shipped with latchkey. Found by walking up from this module to the first
 * `migrations` folder, so it works from `src/store/` (vitest, tsx) and `dist/src/store/` (tsc
 * output) alike, whatever the working directory.
 */
export const MIGRATIONS_DIR: string = findMigrationsDir();

interface MigrationFile {
  readonly version: number;
  readonly file: string;
  readonly name: string;
  readonly text: string;
  readonly checksum: string;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

async function readMigrations(dir: string): Promise<MigrationFile[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new Error(`migrations directory ${dir} cannot be read`, { cause: err });
  }
  const files: MigrationFile[] = [];
  const seen = new Map<number, string>();
  for (const file of entries.sort()) {
    if (!file.endsWith(".sql")) continue;
    const match = FILE_PATTERN.exec(file);
    const digits = match?.[1];
    const name = match?.[2];
    if (digits === undefined || name === undefined) {
      throw new Error(`migration file ${file} in ${dir} is not named NNNN_name.sql`);
    }
    const version = Number(digits);
    const other = seen.get(version);
    if (other !== undefined) {
      throw new Error(`migration files ${other} and ${file} share version ${digits}`);
    }
    seen.set(version, file);
    // Line endings are normalised so a checkout with CRLF does not look like an edit.
    const text = (await readFile(join(dir, file), "utf8")).replace(/\r\n/g, "\n");
    const checksum = createHash("sha256").update(text).digest("hex");
    files.push({ version, file, name, text, checksum });
  }
  return files;
}

function fileName(row: AppliedRow): string {
  return `${String(row.version).padStart(4, "0")}_${row.name}.sql`;
}

/**
 * Brings the schema up to date before anything else touches the database. Everything happens
 * in one transaction under an advisory lock: instances starting together apply each file once
 * (the others wait, then find nothing to do), and a failing file leaves the schema as it was.
 * It refuses to run, naming the file, when an applied migration was edited or deleted: the
 * database no longer matches what the code was written against, and guessing would be worse.
 * Files must therefore be transaction-safe (no CREATE INDEX CONCURRENTLY).
 */
export async function migrate(
  sql: Sql,
  dir: string,
  log: (msg: string) => void = () => {},
): Promise<{ applied: string[] }> {
  const files = await readMigrations(dir);
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY}::bigint)`;
    await tx`set local client_min_messages = warning`;
    await tx`
      create table if not exists schema_migrations (
        version    integer     primary key,
        name       text        not null,
        checksum   text        not null,
        applied_at timestamptz not null default now()
      )`;
    const rows = await tx<AppliedRow[]>`
      select version, name, checksum from schema_migrations order by version`;
    const byVersion = new Map(files.map((f) => [f.version, f]));
    for (const row of rows) {
      const file = byVersion.get(row.version);
      if (file === undefined) {
        throw new Error(
          `migration ${fileName(row)} is applied to the database but missing from ${dir}: this build is older than the database schema`,
        );
      }
      if (file.checksum !== row.checksum) {
        throw new Error(
          `migration ${file.file} was changed after it was applied (checksum ${file.checksum} != ${row.checksum}): add a new migration instead of editing it`,
        );
      }
    }
    const done = new Set(rows.map((r) => r.version));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file.version)) continue;
      log(`applying migration ${file.file}`);
      await tx.unsafe(file.text);
      await tx`
        insert into schema_migrations (version, name, checksum)
        values (${file.version}, ${file.name}, ${file.checksum})`;
      applied.push(file.file);
    }
    return { applied };
  });
}

/**
 * File names not yet applied, for /readyz: an instance that is up but whose database lags the
 * code (or was never migrated) must not take traffic.
 */
export async function pendingMigrations(sql: Sql, dir: string): Promise<string[]> {
  const files = await readMigrations(dir);
  const [exists] = await sql<{ ok: boolean }[]>`
    select to_regclass('schema_migrations') is not null as ok`;
  if (exists?.ok !== true) return files.map((f) => f.file);
  const rows = await sql<{ version: number }[]>`select version from schema_migrations`;
  const done = new Set(rows.map((r) => r.version));
  return files.filter((f) => !done.has(f.version)).map((f) => f.file);
}
