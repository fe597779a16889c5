import { readFileSync, unlinkSync } from "node:fs";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";

/** Held for the life of the process; `release()` is idempotent (and also runs at exit). */
export interface DataDirLock {
  readonly path: string;
  release(): void;
}

/** Another live latchkey holds the data directory: nothing was touched. */
export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
  readonly code = "DATA_DIR_LOCKED";
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `${dataDir} is in use by latchkey pid ${pid}; stop that one first, or set LATCHKEY_DATA_DIR to another directory`,
    );
  }
}

/** Whether `pid` names a live process (EPERM: alive, someone else's). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A live process that may be latchkey (node); a pid reused by something else is not. */
async function isLatchkey(pid: number): Promise<boolean> {
  if (pid <= 0 || pid === process.pid || !isAlive(pid)) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => undefined);
  // No /proc (not Linux) or not ours to read: a live pid is assumed to be the holder.
  if (cmdline === undefined) return true;
  return /node|latchkey/.test(cmdline);
}

async function readPid(path: string): Promise<number | undefined> {
  const text = await readFile(path, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  const pid = Number(text.trim().split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

/**
 * Claims `<dataDir>/latchkey.pid` (created exclusively, holding our pid) for as long as this
 * process lives, so a second `npm start` on the same checkout refuses with one line naming the
 * running pid instead of "cleaning up" the first one's embedded Postgres. A file left by a
 * latchkey that is gone (killed, machine crashed) is taken over; only then may a leftover
 * Postgres of that directory be stopped (embedded.ts does that after this succeeded).
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const dir = resolve(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "latchkey.pid");
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = await open(path, "wx", 0o600);
      await fd.writeFile(`${process.pid}\n`);
      await fd.close();
      return held(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const pid = await readPid(path);
    if (pid === undefined) continue; // removed meanwhile: try again
    if (await isLatchkey(pid)) throw new DataDirLockedError(dir, pid);
    // Stale: remove it only if it still names the dead holder (another starter may have
    // replaced it in the meantime).
    if ((await readPid(path)) === pid) await rm(path, { force: true });
  }
  const pid = (await readPid(path)) ?? 0;
  throw new DataDirLockedError(dir, pid);
}

function held(path: string): DataDirLock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.removeListener("exit", release);
    try {
      // Only our own file: never a successor's.
      if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
    } catch {}
  };
  process.once("exit", release);
  return { path, release };
}
