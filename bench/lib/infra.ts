import { execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startEmbeddedPostgres } from "../../src/store/embedded.js";
import { has, LOAD_CPU, PINNED, say, sleep } from "./env.js";

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
  // Run as root, the embedded Postgres runs as the postgres user, which must enter this dir.
  chmodSync(work, 0o711);
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  let databaseUrl = process.env.DATABASE_URL ?? "";
  if (databaseUrl === "") {
    const pgDir = join(work, "pg"); // its data directory is pgDir/pg
    const pg = await startEmbeddedPostgres(pgDir, () => {}, { unsafeNoFsync: false });
    cleanups.unshift(() => pg.stop());
    databaseUrl = pg.url;
    const pinned = pinToLoadCore(postmasterPid(join(pgDir, "pg")));
    say(
      `postgres: embedded (DATABASE_URL unset)${pinned ? `, pinned to cpu ${LOAD_CPU} with the load generator` : ""}`,
    );
  } else say("postgres: DATABASE_URL (not pinned: it may take turns on the server's core)");
  let redisUrl: string | undefined = process.env.REDIS_URL ?? "";
  if (redisUrl !== "") say("redis: REDIS_URL");
  else if (has("redis-server")) {
    const port = await freePort();
    const args = ["--port", String(port), "--save", "", "--appendonly", "no"];
    // On the load core too, so that the server's core is its alone.
    const [cmd, full] = PINNED
      ? ["taskset", ["-c", String(LOAD_CPU), "redis-server", ...args]]
      : ["redis-server", args];
    const proc = spawn(cmd, full, { stdio: "ignore" });
    cleanups.unshift(async () => {
      proc.kill("SIGTERM");
    });
    await sleep(300);
    redisUrl = `redis://127.0.0.1:${port}`;
    say(`redis: throwaway redis-server (REDIS_URL unset)${PINNED ? `, on cpu ${LOAD_CPU}` : ""}`);
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

/** The postmaster's pid from its pid file, or undefined. */
function postmasterPid(pgDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(pgDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Moves a process and its children to the load generator's core (backends forked later inherit
 * it), so the server's core is the server's alone, as a server-bound phase needs. True if done.
 */
function pinToLoadCore(pid: number | undefined): boolean {
  if (!PINNED || pid === undefined) return false;
  const pin = (p: string): void => {
    execFileSync("taskset", ["-a", "-p", "-c", String(LOAD_CPU), p], { stdio: "ignore" });
  };
  try {
    pin(String(pid));
  } catch {
    return false;
  }
  let children: string[] = [];
  try {
    children = execFileSync("pgrep", ["-P", String(pid)])
      .toString()
      .split("\n");
  } catch {
    // pgrep exits 1 when there is no child yet: nothing more to move.
  }
  for (const c of children) {
    try {
      if (c.trim() !== "") pin(c.trim());
    } catch {
      // a child that exited meanwhile
    }
  }
  return true;
}
