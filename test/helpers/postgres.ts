import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";
import { connect, type Sql } from "../../src/store/db.js";

/** What test/global-setup.ts hands every test file. */
export interface TestPostgres {
  /** A superuser URL on the test server, for CREATE/DROP DATABASE. */
  readonly adminUrl: string;
  /** Migrated template database to clone. */
  readonly template: string;
  /** Prefix of this run's database names, so teardown drops only its own leftovers. */
  readonly runId: string;
}

/** Double-quotes an identifier for the few statements (CREATE DATABASE) that cannot take parameters. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The same server and credentials as `url`, another database. */
export function databaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/**
 * A fresh, migrated database for one test file, cloned from the template in a few tens of
 * milliseconds, so files run in parallel without seeing each other's rows. Call `drop()` in
 * afterAll; databases left behind by a crashed file are dropped by the global teardown.
 * `migrated: false` gives an empty database instead (for testing the migrations themselves).
 */
export async function createTestDatabase(opts: { migrated?: boolean } = {}): Promise<{
  url: string;
  sql: Sql;
  drop: () => Promise<void>;
}> {
  const { adminUrl, template, runId } = inject("latchkeyPostgres");
  const name = `latchkey_t_${runId}_${randomBytes(5).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const source = opts.migrated === false ? "template0" : template;
    const started = Date.now();
    await admin.unsafe(`create database ${quoteIdent(name)} template ${quoteIdent(source)}`);
    if (process.env.LATCHKEY_TEST_TIMINGS === "1") {
      console.error(`test database ${name} from ${source}: ${Date.now() - started} ms`);
    }
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = databaseUrl(adminUrl, name);
  const sql = connect(url, { max: 4 });
  let dropped: Promise<void> | undefined;
  const drop = (): Promise<void> => {
    dropped ??= (async () => {
      await sql.end({ timeout: 5 });
      const admin2 = postgres(adminUrl, { max: 1, onnotice: () => {} });
      try {
        await admin2.unsafe(`drop database if exists ${quoteIdent(name)} with (force)`);
      } finally {
        await admin2.end({ timeout: 5 });
      }
    })();
    return dropped;
  };
  return { url, sql, drop };
}
