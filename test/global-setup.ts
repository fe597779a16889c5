import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../src/store/embedded.js";
import { MIGRATIONS_DIR, migrate } from "../src/store/migrate.js";
import { databaseUrl, quoteIdent, type TestPostgres } from "./helpers/postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    latchkeyPostgres: TestPostgres;
  }
}

/**
 * Runs once per `vitest run`: reaches Postgres (DATABASE_URL, else an embedded one in a temp
 * dir), migrates a template database, and hands its name to the test files. Migrating once and
 * cloning per file keeps each file isolated without paying for the migrations each time.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const runId = randomBytes(4).toString("hex");
  let adminUrl = process.env.DATABASE_URL ?? "";
  let stopServer = async (): Promise<void> => {};
  if (adminUrl === "") {
    const dir = await mkdtemp(join(tmpdir(), "latchkey-test-pg-"));
    const log = process.env.LATCHKEY_TEST_PG_LOG === "1" ? console.error : () => {};
    const pg = await startEmbeddedPostgres(dir, log, { unsafeNoFsync: true });
    adminUrl = pg.url;
    stopServer = async () => {
      await pg.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }
  const serverReady = Date.now();
  const template = `latchkey_tpl_${runId}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${quoteIdent(template)}`);
    const tpl = postgres(databaseUrl(adminUrl, template), { max: 1, onnotice: () => {} });
    try {
      await migrate(tpl, MIGRATIONS_DIR);
    } finally {
      await tpl.end({ timeout: 5 });
    }
    // No one may connect to the template: a stray connection would make every clone fail.
    await admin.unsafe(
      `alter database ${quoteIdent(template)} with is_template true allow_connections false`,
    );
  } catch (err) {
    await admin.end({ timeout: 5 });
    await stopServer();
    throw err;
  }
  if (process.env.LATCHKEY_TEST_TIMINGS === "1") {
    console.error(
      `postgres for tests: server ${serverReady - started} ms, template ${Date.now() - serverReady} ms`,
    );
  }
  project.provide("latchkeyPostgres", { adminUrl, template, runId });

  return async () => {
    try {
      const left = await admin<{ datname: string }[]>`
        select datname from pg_database where datname like ${`latchkey_t_${runId}_%`}`;
      for (const { datname } of left) {
        await admin.unsafe(`drop database if exists ${quoteIdent(datname)} with (force)`);
      }
      await admin.unsafe(`alter database ${quoteIdent(template)} with is_template false`);
      await admin.unsafe(`drop database if exists ${quoteIdent(template)} with (force)`);
    } finally {
      await admin.end({ timeout: 5 });
      await stopServer();
    }
  };
}
