import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startEmbeddedPostgres } from "../../src/store/embedded.js";
import { has, say, sleep } from "./env.js";

/** Where the servers find their storage, and how to take it down afterwards. */
export interface Infra {
  readonly databaseUrl: string;
  readonly redisUrl: string | undefined;
  close(): Promise<void>;
}

/**
 * Postgres from DATABASE_URL, else an embedded one; Redis from REDIS_URL, else a throwaway
 * redis-server when one is on PATH, else none (the propagation row is then skipped).
 */
export async function startInfra(): Promise<Infra> {
  const cleanups: (() => Promise<void>)[] = [];
  const work = mkdtempSync(join(tmpdir(), "latchkey-bench-"));
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  let databaseUrl = process.env.DATABASE_URL ?? "";
  if (databaseUrl === "") {
    const pg = await startEmbeddedPostgres(join(work, "pg"), () => {}, { unsafeNoFsync: false });
    cleanups.unshift(() => pg.stop());
    databaseUrl = pg.url;
    say("postgres: embedded (DATABASE_URL unset)");
  } else say("postgres: DATABASE_URL");
  let redisUrl: string | undefined = process.env.REDIS_URL ?? "";
  if (redisUrl !== "") say("redis: REDIS_URL");
  else if (has("redis-server")) {
    const port = await freePort();
    const proc = spawn(
      "redis-server",
      ["--port", String(port), "--save", "", "--appendonly", "no"],
      {
        stdio: "ignore",
      },
    );
    cleanups.unshift(async () => {
      proc.kill("SIGTERM");
    });
    await sleep(300);
    redisUrl = `redis://127.0.0.1:${port}`;
    say("redis: throwaway redis-server (REDIS_URL unset)");
  } else {
    redisUrl = undefined;
    say("redis: none (no cold Redis path, no propagation between instances)");
  }
  return {
    databaseUrl,
    redisUrl,
    async close() {
      for (const c of cleanups) await c().catch(() => {});
    },
  };
}
