import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";

/**
 * The URL of the embedded Postgres that a running latchkey started under `dataDir`, or
 * undefined when none runs there. Tools that must work next to a running server (the
 * break-glass `latchkey admin bootstrap`) connect through this instead of starting a second
 * server on the same directory, which would stop the first one's database. It reads
 * Postgres' own `postmaster.pid` (line 4 is the port) and the password file the server keeps.
 */
export async function runningEmbeddedUrl(dataDir: string): Promise<string | undefined> {
  const base = resolve(dataDir);
  const pid = await readFile(join(base, "pg", "postmaster.pid"), "utf8").catch(() => undefined);
  if (pid === undefined) return undefined;
  const lines = pid.split("\n");
  const processId = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(processId) || !Number.isInteger(port) || port <= 0) return undefined;
  try {
    process.kill(processId, 0);
  } catch {
    return undefined; // a stale pid file: no server runs there
  }
  const password = (await readFile(join(base, "pg-password"), "utf8").catch(() => "")).trim();
  if (password === "") return undefined;
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/latchkey`;
}

/** A database was ever created under `dataDir` (so there is something to recover). */
export function embeddedExists(dataDir: string): boolean {
  return existsSync(join(resolve(dataDir), "pg", "PG_VERSION"));
}
