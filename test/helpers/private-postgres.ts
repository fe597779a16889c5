import { execFile } from "node:child_process";
import { chown, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../src/store/embedded.js";

const run = promisify(execFile);

/** A Postgres server the test owns: it can stop it (`pg_ctl -m fast`) and start it again. */
export interface PrivatePostgres {
  /** Superuser URL (user `root`, trust auth on 127.0.0.1 only). */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

async function findBinDir(): Promise<string | undefined> {
  const root = "/usr/lib/postgresql";
  try {
    const versions = (await readdir(root)).filter((v) => /^\d+$/.test(v));
    versions.sort((a, b) => Number(b) - Number(a));
    return versions[0] === undefined ? undefined : join(root, versions[0], "bin");
  } catch {
    return undefined;
  }
}

async function postgresUid(): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
    const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts a private Postgres (the distribution's initdb/pg_ctl) in a fresh temporary directory on
 * a free port, or returns undefined with the reason when this machine cannot (no binaries, or
 * root without a `postgres` user: Postgres refuses to run as root). As root every command runs
 * as `postgres` through runuser, in a directory that user owns.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres | string> {
  const bin = await findBinDir();
  if (bin === undefined) return "no Postgres binaries under /usr/lib/postgresql";
  const isRoot = process.getuid?.() === 0;
  const owner = isRoot ? await postgresUid() : undefined;
  if (isRoot && owner === undefined) return "running as root and there is no postgres user";
  const dir = await mkdtemp(join(tmpdir(), "latchkey-fault-pg-"));
  if (owner !== undefined) await chown(dir, owner.uid, owner.gid);
  const data = join(dir, "data");
  const as = (cmd: string, args: string[]) =>
    isRoot ? run("runuser", ["-u", "postgres", "--", cmd, ...args]) : run(cmd, args);
  await as(join(bin, "initdb"), ["-D", data, "-U", "root", "--auth=trust", "--no-sync"]);
  let port = 0;
  const start = async (): Promise<void> => {
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    await as(join(bin, "pg_ctl"), ["-D", data, "-o", opts, "-l", join(dir, "log"), "-w", "start"]);
  };
  const stop = async (): Promise<void> => {
    await as(join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"]).catch(() => {});
  };
  // The port is found free right before the first start (not before initdb, seconds earlier);
  // should another process take it in between, Postgres cannot bind it and the first start is
  // retried on a fresh one. Restarts reuse it: clients know the server by it.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await start();
      break;
    } catch (err) {
      const log = await readFile(join(dir, "log"), "utf8").catch(() => "");
      if (attempt >= 3 || !log.includes("Address already in use")) throw err;
    }
  }
  return {
    url: `postgres://root@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    async destroy() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
