import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { connect as netConnect } from "node:net";
import { delimiter, join } from "node:path";
import { freePort } from "../../src/store/embedded.js";

/** A Redis for one test file; `prefix` is unique to the file, so files sharing a server never collide. */
export interface TestRedis {
  readonly url: string;
  readonly prefix: string;
  readonly stop: () => Promise<void>;
}

/** A Redis the test controls completely: it can be stopped and started again on the same port. */
export interface ThrowawayRedis {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

function findRedisServer(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "redis-server");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** Resolves when Redis on `port` answers PING, or rejects after `ms`. */
async function waitForPing(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = netConnect(port, "127.0.0.1");
      let buf = "";
      socket.setTimeout(500, () => {
        socket.destroy();
        resolve(false);
      });
      socket.on("error", () => resolve(false));
      socket.on("connect", () => socket.write("PING\r\n"));
      socket.on("data", (d) => {
        buf += d.toString();
        if (buf.includes("\r\n")) {
          socket.destroy();
          resolve(buf.startsWith("+PONG"));
        }
      });
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function spawnRedis(binary: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    binary,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  child.once("exit", () => process.removeListener("exit", killOnExit));
  const died = new Promise<never>((_, reject) => {
    child.once("exit", (code) => reject(new Error(`redis-server exited early (code ${code})`)));
    child.once("error", reject);
  });
  died.catch(() => {});
  await Promise.race([waitForPing(port, 5_000), died]);
  return child;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  await exited;
}

/**
 * Redis for an integration test file: REDIS_URL's server with a fresh key prefix, else a private
 * redis-server on a free port, else undefined (with one line saying why) so the file can
 * `describe.skipIf` instead of failing on machines without Redis.
 */
export async function redisForTests(): Promise<TestRedis | undefined> {
  const prefix = `lktest:${randomBytes(4).toString("hex")}:`;
  const shared = process.env.REDIS_URL;
  if (shared !== undefined && shared !== "") {
    return { url: shared, prefix, stop: async () => {} };
  }
  const binary = findRedisServer();
  if (binary === undefined) {
    console.log("redis-server not found and REDIS_URL unset: skipping Redis tests");
    return undefined;
  }
  const port = await freePort();
  const child = await spawnRedis(binary, port);
  return { url: `redis://127.0.0.1:${port}`, prefix, stop: () => stopChild(child) };
}

/**
 * Always a private redis-server (for tests that take Redis away mid-test and bring it back):
 * `start()` again after `stop()` reuses the same port, so clients reconnect to the same URL.
 * Throws when redis-server is not on PATH.
 */
export async function startThrowawayRedis(): Promise<ThrowawayRedis> {
  const binary = findRedisServer();
  if (binary === undefined) throw new Error("redis-server is not on PATH");
  const port = await freePort();
  let child: ChildProcess | undefined = await spawnRedis(binary, port);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await stopChild(child);
      child = undefined;
    },
    async start() {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) return;
      child = await spawnRedis(binary, port);
    },
  };
}
