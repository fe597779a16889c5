import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import type { RedisTarget } from "../../src/config.js";
import { CACHE_KEY_SETTING } from "../../src/services/verify/verifier.js";
import { RedisTier } from "../../src/store/cache/redis.js";
import { type Sql, serverKey } from "../../src/store/db.js";
import { freePort } from "../../src/store/embedded.js";
import { makeTestPki, pemFiles } from "./certificates.js";
import { startVerifyInstance, type VerifyInstance, waitFor } from "./verify-harness.js";

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

function findRedisServer(name = "redis-server"): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** Where a TLS-only redis-server finds its certificate and key, and the CA its clients trust. */
interface RedisTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** Resolves when Redis on `port` (over TLS, with `tls`) answers PING, or rejects after `ms`. */
async function waitForPing(port: number, ms: number, tls?: RedisTlsFiles): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket =
        tls === undefined
          ? netConnect(port, "127.0.0.1")
          : tlsConnect({
              port,
              host: "127.0.0.1",
              servername: "localhost",
              ca: readFileSync(tls.ca),
            });
      let buf = "";
      socket.setTimeout(500, () => {
        socket.destroy();
        resolve(false);
      });
      socket.on("error", () => resolve(false));
      // Over TLS, only once the handshake is done.
      socket.on(tls === undefined ? "connect" : "secureConnect", () => socket.write("PING\r\n"));
      socket.on("data", (d) => {
        buf += d.toString();
        if (buf.includes("\r\n")) {
          socket.destroy();
          resolve(buf.startsWith("+PONG") || buf.startsWith("-NOAUTH"));
        }
      });
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * redis-server on `port`: plaintext, or with `tls` TLS only (`--port 0 --tls-port`, client
 * certificates not asked for).
 */
async function spawnRedis(
  binary: string,
  port: number,
  extra: readonly string[] = [],
  configFile?: string,
  tls?: RedisTlsFiles,
): Promise<ChildProcess> {
  const listen =
    tls === undefined
      ? ["--port", String(port)]
      : ["--port", "0", "--tls-port", String(port), "--tls-cert-file", tls.cert]
          .concat(["--tls-key-file", tls.key, "--tls-ca-cert-file", tls.ca])
          .concat(["--tls-auth-clients", "no"]);
  const child = spawn(
    binary,
    [
      ...(configFile === undefined ? [] : [configFile]),
      ...listen,
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      ...extra,
    ],
    { stdio: "ignore" },
  );
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  child.once("exit", () => process.removeListener("exit", killOnExit));
  const died = new Promise<never>((_, reject) => {
    child.once("exit", (code) => reject(new RedisExitedEarly(port, code)));
    child.once("error", reject);
  });
  died.catch(() => {});
  await Promise.race([waitForPing(port, 5_000, tls), died]);
  return child;
}

class RedisExitedEarly extends Error {
  constructor(port: number, code: number | null) {
    super(`redis-server on port ${port} exited early (code ${code})`);
  }
}

/**
 * spawnRedis on a port found free. Between finding it and redis-server binding it, another
 * process (another test file, or any outgoing connection, which takes its local port from the
 * same range) can take it; redis-server then exits at once, and the start is retried on a
 * fresh port (`args` is asked again for the new one).
 */
async function spawnRedisOnFreePort(
  binary: string,
  args: (port: number) => Promise<readonly string[]> | readonly string[] = () => [],
  configFile?: string,
  tls?: RedisTlsFiles,
): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      const child = await spawnRedis(binary, port, await args(port), configFile, tls);
      return { child, port };
    } catch (err) {
      if (!(err instanceof RedisExitedEarly) || attempt >= 3) throw err;
    }
  }
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
  const { child, port } = await spawnRedisOnFreePort(binary);
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
  const first = await spawnRedisOnFreePort(binary);
  const port = first.port;
  let child: ChildProcess | undefined = first.child;
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

// --- Redis Cluster and Sentinel (issue #11 item 6) ---

/** Private redis-servers forming one deployment (a Cluster, or a master behind a Sentinel). */
export interface TestRedisSet {
  /** How latchkey reaches it (what LATCHKEY_REDIS_CLUSTER_NODES or REDIS_URL would say). */
  readonly target: RedisTarget;
  /** Ports of the data nodes (cluster masters, or the one master). */
  readonly ports: readonly number[];
  /** Stops the data node on `port` (a crash, as far as clients can tell). */
  stopNode(port: number): Promise<void>;
  /** Stops these servers only and removes their directory. */
  stop(): Promise<void>;
}

/**
 * redis-server, or undefined after one printed line; under CI a missing redis-server fails
 * instead, so a CI image without Redis cannot pass by skipping.
 */
function redisServerOrSkip(what: string): string | undefined {
  const binary = findRedisServer();
  if (binary !== undefined) return binary;
  const line = `redis-server not found on PATH: skipping the ${what} tests`;
  if (process.env.CI !== undefined && process.env.CI !== "") throw new Error(`${line} (CI is set)`);
  console.log(line);
  return undefined;
}

/** Stops the data node listening on `ports[i]` (children start with the data nodes, in order). */
function stopNodeOf(ports: readonly number[], children: readonly ChildProcess[]) {
  return (port: number): Promise<void> => stopChild(children[ports.indexOf(port)]);
}

async function stopAll(children: readonly ChildProcess[], dir: string): Promise<void> {
  await Promise.all(children.map((c) => stopChild(c)));
  await rm(dir, { recursive: true, force: true });
}

/**
 * A real Redis Cluster of `masters` masters (no replicas) on free ports: each redis-server with
 * `cluster-enabled yes`, its node file in a temp dir and its bus on a second free port, joined
 * by `redis-cli --cluster create`; resolves once every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3): Promise<TestRedisSet | undefined> {
  const binary = redisServerOrSkip("Redis Cluster");
  if (binary === undefined) return undefined;
  const cli = findRedisServer("redis-cli");
  if (cli === undefined) throw new Error("redis-server is on PATH but redis-cli is not");
  const dir = await mkdtemp(join(tmpdir(), "latchkey-redis-cluster-"));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const { child, port } = await spawnRedisOnFreePort(binary, async (p) => [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, `nodes-${p}.conf`),
        "--cluster-port",
        String(await freePort()),
        "--cluster-node-timeout",
        "2000",
        "--dir",
        dir,
      ]);
      ports.push(port);
      children.push(child);
    }
    await promisify(execFile)(cli, [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    await Promise.all(
      ports.map((p) =>
        untilReply(p, (r) => r.cluster("INFO").then((info) => info.includes("cluster_state:ok"))),
      ),
    );
  } catch (err) {
    await stopAll(children, dir);
    throw err;
  }
  return {
    target: {
      kind: "cluster",
      nodes: ports.map((port) => ({ host: "127.0.0.1", port })),
      username: undefined,
      password: undefined,
      tls: false,
    },
    ports,
    stopNode: stopNodeOf(ports, children),
    stop: () => stopAll(children, dir),
  };
}

/**
 * One master (with `password`, when given) and, with `replica`, one replica of it, watched by
 * one Sentinel (`redis-server --sentinel`) as `mymaster`, all on free ports; resolves once the
 * Sentinel names the master (and knows the replica, so `SENTINEL FAILOVER` can promote it).
 */
export async function startRedisSentinel(
  opts: { password?: string; replica?: boolean } = {},
): Promise<TestRedisSet | undefined> {
  const { password, replica = false } = opts;
  const binary = redisServerOrSkip("Redis Sentinel");
  if (binary === undefined) return undefined;
  const dir = await mkdtemp(join(tmpdir(), "latchkey-redis-sentinel-"));
  const children: ChildProcess[] = [];
  try {
    const auth =
      password === undefined ? [] : ["--requirepass", password, "--masterauth", password];
    const master = await spawnRedisOnFreePort(binary, () => auth);
    children.push(master.child);
    const port = master.port;
    const ports = [port];
    if (replica) {
      const r = await spawnRedisOnFreePort(binary, () => [
        ...auth,
        "--replicaof",
        "127.0.0.1",
        String(port),
      ]);
      const replicaPort = r.port;
      ports.push(replicaPort);
      children.push(r.child);
      await untilReply(
        replicaPort,
        async (r) => (await r.info("replication")).includes("master_link_status:up"),
        password,
      );
    }
    const conf = join(dir, "sentinel.conf");
    // Sentinel rewrites its configuration file, so it must be a writable file of its own.
    await writeFile(
      conf,
      [
        `dir ${dir}`,
        `sentinel monitor mymaster 127.0.0.1 ${port} 1`,
        // Quick to notice a dead master and to fail over, so the test does not wait long.
        "sentinel down-after-milliseconds mymaster 1000",
        "sentinel failover-timeout mymaster 5000",
        ...(password === undefined ? [] : [`sentinel auth-pass mymaster ${password}`]),
        "",
      ].join("\n"),
    );
    const sentinel = await spawnRedisOnFreePort(binary, () => ["--sentinel"], conf);
    const sentinelPort = sentinel.port;
    children.push(sentinel.child);
    await untilReply(sentinelPort, async (r) => {
      const addr = await r.call("SENTINEL", "get-master-addr-by-name", "mymaster");
      const replicas = await r.call("SENTINEL", "replicas", "mymaster");
      const known = Array.isArray(replicas) ? replicas.length : 0;
      return Array.isArray(addr) && addr[1] === String(port) && known === ports.length - 1;
    });
    return {
      target: {
        kind: "sentinel",
        sentinels: [{ host: "127.0.0.1", port: sentinelPort }],
        name: "mymaster",
        db: 0,
        username: undefined,
        password,
        tls: false,
        sentinelPassword: undefined,
      },
      ports,
      stopNode: stopNodeOf(ports, children),
      stop: () => stopAll(children, dir),
    };
  } catch (err) {
    await stopAll(children, dir);
    throw err;
  }
}

/** Polls `check` on a plain connection to `port` until it holds (10 s at most). */
async function untilReply(
  port: number,
  check: (r: Redis) => Promise<boolean>,
  password?: string,
): Promise<void> {
  const r = new Redis(port, "127.0.0.1", {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    ...(password === undefined ? {} : { password }),
  });
  r.on("error", () => {});
  try {
    await r.connect();
    const end = Date.now() + 10_000;
    while (!(await check(r).catch(() => false))) {
      if (Date.now() > end) throw new Error(`redis on port ${port}: not ready after 10 s`);
      await new Promise((res) => setTimeout(res, 50));
    }
  } finally {
    r.disconnect();
  }
}

/** Both instances answer PING (a cluster: is ok) and hear invalidations. */
export function redisPairReady(a: VerifyInstance, b: VerifyInstance): () => Promise<boolean> {
  return async () =>
    (await a.verifier.redisHealthy()) &&
    (await b.verifier.redisHealthy()) &&
    a.verifier.stats().redisSubscribed === true &&
    b.verifier.stats().redisSubscribed === true;
}

/**
 * Two latchkey instances sharing `target` under `prefix`, pushed to `open` (the caller closes
 * them), resolved once both are ready. The change log is polled once a minute, so a revocation
 * that reaches B within a test came through Redis pub/sub.
 */
export async function startRedisPair(
  sql: Sql,
  target: string | RedisTarget,
  prefix: string,
  open: VerifyInstance[],
): Promise<{ a: VerifyInstance; b: VerifyInstance }> {
  const opts = {
    sql,
    redisUrl: target,
    redisKeyPrefix: prefix,
    auditMode: "none",
    changePollMs: 60_000,
  } as const;
  const a = await startVerifyInstance(opts);
  open.push(a);
  const b = await startVerifyInstance(opts);
  open.push(b);
  if ((await waitFor(redisPairReady(a, b), 10_000)) < 0) {
    throw new Error("instances not ready on Redis within 10 s");
  }
  return { a, b };
}

/** The Redis tier alone, as an instance builds it, for tests that drive its scripts directly. */
export function testRedisTier(sql: Sql, target: string | RedisTarget, prefix: string): RedisTier {
  return new RedisTier({
    target,
    keyPrefix: prefix,
    recordTtlMs: 60_000,
    tombstoneMs: 5_000,
    floorTtlMs: 65_000,
    loadKey: () => serverKey(sql, CACHE_KEY_SETTING),
    commandTimeoutMs: 1_000,
    events: { invalidated: () => {}, resubscribed: () => {} },
    warn: () => {},
  });
}

// --- Redis over TLS ---

/** A private TLS-only redis-server with a password, its certificate signed by a private CA. */
export interface TlsRedis {
  /** `rediss://:<password>@localhost:<port>`. */
  readonly url: string;
  readonly port: number;
  readonly password: string;
  /** PEM file of the CA that signed the server's certificate (for DNS:localhost, IP:127.0.0.1). */
  readonly caFile: string;
  /** Stops the server and removes its certificates. */
  stop(): Promise<void>;
}

/**
 * redis-server with `--port 0 --tls-port <free port>` (no plaintext listener at all) and
 * `--requirepass`, using the CA and server certificate of certificates.ts; undefined after one
 * printed line when redis-server is not on PATH (an error under CI).
 */
export async function startTlsRedis(): Promise<TlsRedis | undefined> {
  const binary = redisServerOrSkip("Redis over TLS");
  if (binary === undefined) return undefined;
  const dir = await mkdtemp(join(tmpdir(), "latchkey-redis-tls-"));
  try {
    await makeTestPki(dir);
    const server = pemFiles(dir, "localhost");
    const caFile = pemFiles(dir, "client-ca").cert;
    const tls = { cert: server.cert, key: server.key, ca: caFile };
    const password = randomBytes(12).toString("hex");
    const { child, port } = await spawnRedisOnFreePort(
      binary,
      () => ["--requirepass", password],
      undefined,
      tls,
    );
    return {
      url: `rediss://:${password}@localhost:${port}`,
      port,
      password,
      caFile,
      stop: () => stopAll([child], dir),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
