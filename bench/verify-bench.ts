/**
 * `npm run bench`: how close VerifyToken comes to an empty gRPC call, measured in one run on
 * this machine. A program, not a test: it prints a report and exits 0 whatever the numbers.
 *
 * It starts latchkey as child processes of dist/src/main.js, on DATABASE_URL / REDIS_URL when set,
 * else on an embedded Postgres and a throwaway redis-server. Load comes from h2load (Debian
 * nghttp2-client) pinned to the last core with taskset, the server to the others; without
 * h2load, from grpc-js clients in worker threads.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import postgres from "postgres";
import {
  Authorization,
  CheckRequestSchema,
} from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  RevokeTokenRequestSchema,
  TokenAdminService,
} from "../src/gen/latchkey/v1/token_admin_service_pb.js";
import { TokenType } from "../src/gen/latchkey/v1/token_pb.js";
import {
  TokenVerifyService,
  VerifyCode,
  VerifyTokenRequestSchema,
  VerifyTokenResponseSchema,
} from "../src/gen/latchkey/v1/token_verify_service_pb.js";
import { freePort, startEmbeddedPostgres } from "../src/store/embedded.js";
import { seedToken } from "../test/helpers/seed.js";
import type { LoadJob, LoadResult } from "./load-worker.js";

const here = dirname(fileURLToPath(import.meta.url));
const distRoot = resolve(here, "..");
const MAIN = join(distRoot, "src", "main.js");
const VERIFY_PATH = `/${TokenVerifyService.typeName}/VerifyToken`;
const HEALTH_PATH = "/grpc.health.v1.Health/Check";
const CHECK_PATH = `/${Authorization.typeName}/Check`;
const ORG = "bench";
const PREFIX = "lk";
const SECONDS = Number(process.env.BENCH_SECONDS ?? "5");
const CONNECTIONS = 4;
const STREAMS = 32;

const lines: string[] = [];
function say(line: string): void {
  lines.push(line);
  process.stdout.write(`${line}\n`);
}

function has(binary: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${binary}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const cores = availableParallelism();
const haveTaskset = has("taskset") && cores >= 2;
const haveH2load = has("h2load");
/** Server on cores 0..n-2, load generator on the last core. */
const serverCpus = cores > 2 ? `0-${cores - 2}` : "0";
const loadCpu = String(cores - 1);

// ---------------------------------------------------------------------------------------------
// Servers

interface Server {
  readonly grpc: string;
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

async function startServer(
  env: Record<string, string>,
  label: string,
  pinned = true,
): Promise<Server> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const childEnv: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    LATCHKEY_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
    LATCHKEY_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    LATCHKEY_LOG_LEVEL: "warn",
    LATCHKEY_BOOTSTRAP_ORG: "",
    ...env,
  };
  const nodeArgs = [
    ...(process.env.BENCH_PROFILE === label
      ? ["--cpu-prof", `--cpu-prof-dir=${join(tmpdir(), "latchkey-prof")}`]
      : []),
    MAIN,
  ];
  const [cmd, args] =
    haveTaskset && pinned
      ? ["taskset", ["-c", serverCpus, process.execPath, ...nodeArgs]]
      : [process.execPath, nodeArgs];
  const proc = spawn(cmd, args, { env: childEnv, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
  });
  const address = `127.0.0.1:${grpcPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`server exited early (${label}): ${stderr.slice(-2_000)}`);
    }
    if (await healthOk(address)) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`server did not become healthy (${label}): ${stderr.slice(-2_000)}`);
    }
    await sleep(100);
  }
  return {
    grpc: address,
    proc,
    stop: () =>
      new Promise<void>((res) => {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          res();
          return;
        }
        const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
        proc.once("exit", () => {
          clearTimeout(t);
          res();
        });
        proc.kill("SIGTERM");
      }),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function unary(
  address: string,
  path: string,
  body: Uint8Array,
  timeoutMs = 2_000,
): Promise<Buffer> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<Buffer>((res, rej) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(body),
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, value) => {
        client.close();
        if (err === null && value !== undefined) res(value);
        else rej(err ?? new Error("no response"));
      },
    );
  });
}

async function healthOk(address: string): Promise<boolean> {
  try {
    const r = await unary(address, HEALTH_PATH, new Uint8Array(0), 500);
    return r.length === 2 && r[1] === 1; // status: SERVING
  } catch {
    return false;
  }
}

/** A long-lived client for latency-sensitive loops (propagation). */
class Caller {
  private readonly client: grpc.Client;
  constructor(
    address: string,
    private readonly authorization?: string,
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }
  call(path: string, body: Uint8Array): Promise<Buffer> {
    const md = new grpc.Metadata();
    if (this.authorization !== undefined) md.set("authorization", `Bearer ${this.authorization}`);
    return new Promise((res, rej) => {
      this.client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(body),
        md,
        { deadline: Date.now() + 5_000 },
        (err, v) => (err === null && v !== undefined ? res(v) : rej(err ?? new Error("empty"))),
      );
    });
  }
  async verifyCode(token: string): Promise<VerifyCode> {
    const req = toBinary(VerifyTokenRequestSchema, create(VerifyTokenRequestSchema, { token }));
    return fromBinary(VerifyTokenResponseSchema, await this.call(VERIFY_PATH, req)).code;
  }
  close(): void {
    this.client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Load

interface LoadRun {
  readonly rps: number;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  readonly failed: number;
}

function percentile(sorted: Float64Array, q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

const work = mkdtempSync(join(tmpdir(), "latchkey-bench-"));

async function load(
  address: string,
  path: string,
  message: Uint8Array,
  opts: { perClientRps?: number; latency?: boolean; pinned?: boolean } = {},
): Promise<LoadRun> {
  if (haveH2load) return h2load(address, path, message, opts);
  return threadLoad(address, path, message);
}

async function h2load(
  address: string,
  path: string,
  message: Uint8Array,
  opts: { perClientRps?: number; latency?: boolean; pinned?: boolean },
): Promise<LoadRun> {
  const bodyFile = join(work, `body-${Math.random().toString(36).slice(2)}.bin`);
  writeFileSync(bodyFile, grpcFrame(message));
  const logFile = join(work, `log-${Math.random().toString(36).slice(2)}.tsv`);
  const args = [
    "-D",
    String(SECONDS),
    "--warm-up-time",
    "1",
    "-c",
    String(opts.latency === true ? LATENCY_CLIENTS : CONNECTIONS),
    "-m",
    String(opts.latency === true ? 1 : STREAMS),
    "-t",
    "1",
    "-d",
    bodyFile,
    "-H",
    "content-type: application/grpc",
    "-H",
    "te: trailers",
    ...(opts.perClientRps === undefined ? [] : [`--rps=${opts.perClientRps}`]),
    ...(opts.latency === true ? [`--log-file=${logFile}`] : []),
    `http://${address}${path}`,
  ];
  const [cmd, full] =
    haveTaskset && opts.pinned !== false
      ? ["taskset", ["-c", loadCpu, "h2load", ...args]]
      : ["h2load", args];
  const out = await new Promise<string>((res) => {
    const p = spawn(cmd, full, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    p.stdout.on("data", (d: Buffer) => {
      text += d.toString();
    });
    p.stderr.on("data", (d: Buffer) => {
      text += d.toString();
    });
    p.on("exit", () => res(text));
  });
  const rps = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out)?.[1] ?? "0");
  const failed = Number(
    /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed/.exec(out)?.[1] ?? "0",
  );
  if (rps === 0) say(`  (h2load output: ${out.trim().split("\n").slice(-6).join(" | ")})`);
  let p50: number | undefined;
  let p99: number | undefined;
  if (opts.latency === true) {
    try {
      const rows = readFileSync(logFile, "utf8").trim().split("\n");
      const lat = new Float64Array(rows.length);
      let n = 0;
      for (const row of rows) {
        const v = Number(row.split("\t")[2]);
        if (Number.isFinite(v)) lat[n++] = v / 1000;
      }
      const sorted = lat.subarray(0, n).sort();
      p50 = percentile(sorted, 0.5);
      p99 = percentile(sorted, 0.99);
    } catch {}
  }
  return { rps, p50Ms: p50, p99Ms: p99, failed };
}

async function threadLoad(address: string, path: string, message: Uint8Array): Promise<LoadRun> {
  const threads = Math.max(2, cores);
  const job: LoadJob = {
    address,
    path,
    body: message,
    connections: 2,
    inFlight: 32,
    durationMs: SECONDS * 1000,
    warmupMs: 1000,
  };
  const results = await Promise.all(
    Array.from(
      { length: threads },
      () =>
        new Promise<LoadResult>((res, rej) => {
          const w = new Worker(join(here, "load-worker.js"), { workerData: job });
          w.once("message", (m: LoadResult) => {
            res(m);
            void w.terminate();
          });
          w.once("error", rej);
        }),
    ),
  );
  const completed = results.reduce((a, r) => a + r.completed, 0);
  const all = Float64Array.from(results.flatMap((r) => r.latenciesUs)).sort();
  return {
    rps: completed / SECONDS,
    p50Ms: (percentile(all, 0.5) ?? 0) / 1000,
    p99Ms: (percentile(all, 0.99) ?? 0) / 1000,
    failed: results.reduce((a, r) => a + r.failed, 0),
  };
}

/**
 * Baseline and VerifyToken alternately, three times each, keeping the best of each: on a
 * shared machine a burst of other work then lowers one sample, not the ratio.
 */
/** CPU time (user + system) a process has used so far, in microseconds (Linux /proc). */
function cpuMicros(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    return (ticks / CLOCK_TICKS) * 1e6;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = 100;
/** Clients of the latency run, each with one request in flight. */
const LATENCY_CLIENTS = 32;

/** One load run plus the server CPU it cost per request (µs), where /proc tells. */
async function measured(
  server: Server,
  path: string,
  body: Uint8Array,
): Promise<LoadRun & { cpuUsPerReq: number | undefined }> {
  const before = cpuMicros(server.proc.pid);
  const run = await load(server.grpc, path, body);
  const after = cpuMicros(server.proc.pid);
  const requests = run.rps * SECONDS;
  const cpuUsPerReq =
    before === undefined || after === undefined || requests === 0
      ? undefined
      : (after - before) / requests;
  return { ...run, cpuUsPerReq };
}

/**
 * Health/Check and VerifyToken alternately, three rounds, best of each. Besides req/s it
 * returns the server's CPU per request: on 2 cores the load generator can be the bottleneck
 * (the server then idles), and CPU per request is what the server itself spends.
 */
async function alternate(
  server: Server,
  body: Uint8Array,
): Promise<
  [LoadRun & { cpuUsPerReq: number | undefined }, LoadRun & { cpuUsPerReq: number | undefined }]
> {
  let health: Awaited<ReturnType<typeof measured>> | undefined;
  let verify: Awaited<ReturnType<typeof measured>> | undefined;
  for (let i = 0; i < 3; i++) {
    const h = await measured(server, HEALTH_PATH, new Uint8Array(0));
    const v = await measured(server, VERIFY_PATH, body);
    if (health === undefined || h.rps > health.rps) health = h;
    if (verify === undefined || v.rps > verify.rps) verify = v;
  }
  if (health === undefined || verify === undefined) throw new Error("unreachable");
  return [health, verify];
}

// ---------------------------------------------------------------------------------------------
// Data

async function insertToken(
  sql: postgres.Sql,
  permissions: string[],
): Promise<{ id: string; secret: string }> {
  return await seedToken(sql, PREFIX, {
    name: "bench",
    type: TokenType.PERSONAL,
    orgId: ORG,
    permissions,
    createdBy: "bench",
    expireTime: null,
  });
}

function verifyBody(token: string): Uint8Array {
  return toBinary(
    VerifyTokenRequestSchema,
    create(VerifyTokenRequestSchema, {
      token,
      requiredPermissions: ["deploy:run"],
      clientIp: "10.1.2.3",
      method: "POST",
      path: "/v1/deploy",
      requestId: "bench",
    }),
  );
}

/** The request of verifyBody as Envoy's ext_authz filter sends it (issue #9). */
function checkBody(token: string): Uint8Array {
  return toBinary(
    CheckRequestSchema,
    create(CheckRequestSchema, {
      attributes: {
        source: { address: { address: { case: "socketAddress", value: { address: "10.1.2.3" } } } },
        request: {
          http: {
            id: "bench",
            method: "POST",
            path: "/v1/deploy",
            headers: { authorization: `Bearer ${token}` },
          },
        },
        contextExtensions: { "latchkey.permissions": "deploy:run" },
      },
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Report

interface Row {
  readonly metric: string;
  readonly value: string;
  readonly target: string;
  readonly verdict: string;
}
const rows: Row[] = [];
function row(metric: string, value: string, target = "", ok?: boolean): void {
  rows.push({ metric, value, target, verdict: ok === undefined ? "" : ok ? "meets" : "SHORT" });
}
const f0 = (n: number): string => Math.round(n).toLocaleString("en-US");
const f2 = (n: number | undefined): string => (n === undefined ? "n/a" : n.toFixed(2));

/** Server CPU per request for both calls, and their ratio (the server's own cost, load aside). */
function cpuRows(mode: string, health: number | undefined, verify: number | undefined): void {
  row(`server CPU per Health/Check, µs (${mode})`, f2(health));
  row(`server CPU per VerifyToken, µs (${mode})`, f2(verify));
  const ratio = health === undefined || verify === undefined ? undefined : health / verify;
  row(
    `CPU ratio Health/Verify (${mode}; req/s ratio if the server were the bottleneck)`,
    f2(ratio),
  );
}

async function main(): Promise<void> {
  say(`latchkey verify bench — ${new Date().toISOString()}`);
  say(`machine: ${cores} cores (${cpus()[0]?.model ?? "?"}), node ${process.version}`);
  say(
    `command: npm run bench (BENCH_SECONDS=${SECONDS}; h2load -c ${CONNECTIONS} -m ${STREAMS} -t 1)`,
  );
  if (!haveH2load) {
    say(
      "h2load not found (apt-get install -y nghttp2-client): falling back to grpc-js clients in worker threads; those cost as much CPU as the server, so every figure is lower",
    );
  }
  say(
    haveTaskset
      ? `pinning: server on cpu ${serverCpus}, load generator on cpu ${loadCpu}`
      : "taskset unavailable or one core: no pinning",
  );

  const cleanups: (() => Promise<void>)[] = [];
  try {
    let databaseUrl = process.env.DATABASE_URL;
    if (databaseUrl === undefined || databaseUrl === "") {
      const dir = join(work, "pg");
      const pg = await startEmbeddedPostgres(dir, () => {}, { unsafeNoFsync: false });
      cleanups.push(() => pg.stop());
      databaseUrl = pg.url;
      say("postgres: embedded (DATABASE_URL unset)");
    } else say("postgres: DATABASE_URL");
    let redisUrl = process.env.REDIS_URL;
    if ((redisUrl === undefined || redisUrl === "") && has("redis-server")) {
      const port = await freePort();
      const proc = spawn(
        "redis-server",
        ["--port", String(port), "--save", "", "--appendonly", "no"],
        { stdio: "ignore" },
      );
      cleanups.push(async () => {
        proc.kill("SIGTERM");
      });
      await sleep(300);
      redisUrl = `redis://127.0.0.1:${port}`;
      say("redis: throwaway redis-server (REDIS_URL unset)");
    } else if (redisUrl !== undefined && redisUrl !== "") say("redis: REDIS_URL");
    else say("redis: none (propagation between instances cannot be measured)");
    const redisEnv: Record<string, string> =
      redisUrl === undefined || redisUrl === "" ? {} : { REDIS_URL: redisUrl };
    const base = { DATABASE_URL: databaseUrl, ...redisEnv };

    const first = await startServer({ ...base, LATCHKEY_AUDIT_MODE: "all" }, "all");
    say(`server: ${MAIN}`);

    const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
    cleanups.unshift(async () => {
      await sql.end({ timeout: 2 });
    });
    const token = await insertToken(sql, ["deploy:*"]);
    const body = verifyBody(token.secret);
    const probe = new Caller(first.grpc);
    const code = await probe.verifyCode(token.secret);
    probe.close();
    say(`sanity: VerifyToken answered ${VerifyCode[code]} for the bench token`);

    // 1. Audit all: baseline, cache hits, latency at half of peak.
    const [healthAll, hitAll] = await alternate(first, body);
    // Latency uses many clients with one request in flight each: h2load's --rps with many
    // streams per client sends each tick's requests in a burst, which measures its own queue.
    const perClient = Math.max(1, Math.floor(hitAll.rps / 2 / LATENCY_CLIENTS));
    const half = await load(first.grpc, VERIFY_PATH, body, {
      perClientRps: perClient,
      latency: true,
    });
    const halfHealth = await load(first.grpc, HEALTH_PATH, new Uint8Array(0), {
      perClientRps: perClient,
      latency: true,
    });
    // Envoy ext_authz (#9): Check runs the same verification and must not be the slow door.
    const check = await load(first.grpc, CHECK_PATH, checkBody(token.secret));
    const verifyNext = await load(first.grpc, VERIFY_PATH, body);
    await first.stop();
    const ratioCheck = check.rps / verifyNext.rps;
    const ratioAll = hitAll.rps / healthAll.rps;
    row("Health/Check req/s (baseline, audit-all server)", f0(healthAll.rps));
    row("VerifyToken cache hit req/s, audit all", f0(hitAll.rps));
    row("ratio to baseline, audit all", f2(ratioAll), "≥ 0.80", ratioAll >= 0.8);
    row("ext_authz Check req/s, audit all", f0(check.rps));
    row(
      "ratio Check / VerifyToken (measured back to back)",
      f2(ratioCheck),
      "≥ 0.90",
      ratioCheck >= 0.9,
    );
    cpuRows("audit all", healthAll.cpuUsPerReq, hitAll.cpuUsPerReq);
    row(`p50 at half of peak (${f0(perClient * LATENCY_CLIENTS)} req/s), ms`, f2(half.p50Ms));
    row("p99 at half of peak, ms", f2(half.p99Ms), "< 2 ms", (half.p99Ms ?? 99) < 2);
    row(
      "Health/Check p50 / p99 at the same rate, ms (the harness's own floor)",
      `${f2(halfHealth.p50Ms)} / ${f2(halfHealth.p99Ms)}`,
    );

    // 2. Audit denials (the bench token is valid: nothing is audited).
    const den = await startServer({ ...base, LATCHKEY_AUDIT_MODE: "denials" }, "denials");
    const [healthDen, hitDen] = await alternate(den, body);
    await den.stop();
    const ratioDen = hitDen.rps / healthDen.rps;
    row("Health/Check req/s (baseline, audit-denials server)", f0(healthDen.rps));
    row("VerifyToken cache hit req/s, audit denials", f0(hitDen.rps));
    row("ratio to baseline, audit denials", f2(ratioDen), "≥ 0.90", ratioDen >= 0.9);
    cpuRows("audit denials", healthDen.cpuUsPerReq, hitDen.cpuUsPerReq);

    // 3. Cold paths: no local tier, so every call reads Redis (or Postgres).
    if (redisUrl !== undefined && redisUrl !== "") {
      const cold = await startServer(
        { ...base, LATCHKEY_CACHE_SIZE: "0", LATCHKEY_AUDIT_MODE: "all" },
        "cold-redis",
      );
      const r = await load(cold.grpc, VERIFY_PATH, body);
      await cold.stop();
      row("cold path req/s (local tier off, Redis hit)", f0(r.rps));
    }
    const coldPg = await startServer(
      { DATABASE_URL: databaseUrl, LATCHKEY_CACHE_SIZE: "0", LATCHKEY_AUDIT_MODE: "all" },
      "cold-pg",
    );
    const rpg = await load(coldPg.grpc, VERIFY_PATH, body);
    await coldPg.stop();
    row("cold path req/s (no cache at all, Postgres lookup)", f0(rpg.rps));

    // 4. Revocation propagation between two instances sharing Redis.
    if (redisUrl !== undefined && redisUrl !== "") {
      const admin = await insertToken(sql, ["*", "platform:admin"]);
      const a = await startServer({ ...base, LATCHKEY_AUDIT_MODE: "denials" }, "prop-a");
      const b = await startServer({ ...base, LATCHKEY_AUDIT_MODE: "denials" }, "prop-b");
      const onA = new Caller(a.grpc, admin.secret);
      const onB = new Caller(b.grpc);
      const samples: number[] = [];
      let failure = "";
      try {
        for (let i = 0; i < 100; i++) {
          const t = await insertToken(sql, ["deploy:*"]);
          if ((await onA.verifyCode(t.secret)) !== VerifyCode.VALID)
            throw new Error("A: not valid");
          if ((await onB.verifyCode(t.secret)) !== VerifyCode.VALID)
            throw new Error("B: not valid");
          await onA.call(
            `/${TokenAdminService.typeName}/RevokeToken`,
            toBinary(
              RevokeTokenRequestSchema,
              create(RevokeTokenRequestSchema, { id: t.id, reason: "bench" }),
            ),
          );
          const t0 = performance.now();
          for (;;) {
            if ((await onB.verifyCode(t.secret)) === VerifyCode.REVOKED) break;
            if (performance.now() - t0 > 5_000) throw new Error("B never saw the revocation");
          }
          samples.push(performance.now() - t0);
        }
      } catch (err) {
        failure = String(err).split("\n")[0] ?? "";
      }
      onA.close();
      onB.close();
      await a.stop();
      await b.stop();
      if (samples.length > 0) {
        const s = Float64Array.from(samples).sort();
        const p99 = percentile(s, 0.99) ?? 0;
        row(
          `revocation A→B p50 (${samples.length} revocations, RevokeToken return → B denies), ms`,
          f2(percentile(s, 0.5)),
        );
        row("revocation A→B p99, ms", f2(p99), "< 100 ms", p99 < 100);
      }
      if (failure !== "") row("revocation propagation", `stopped: ${failure}`);
    }

    // 5. One worker vs two, nothing pinned (server and load generator share every core).
    const one = await startServer({ ...base, LATCHKEY_AUDIT_MODE: "all" }, "workers-1", false);
    const hitOne = await load(one.grpc, VERIFY_PATH, body, { pinned: false });
    await one.stop();
    const two = await startServer(
      { ...base, LATCHKEY_AUDIT_MODE: "all", LATCHKEY_WORKERS: "2" },
      "workers-2",
      false,
    );
    const hitTwo = await load(two.grpc, VERIFY_PATH, body, { pinned: false });
    await two.stop();
    const scale = hitTwo.rps / hitOne.rps;
    row("VerifyToken req/s, 1 worker, unpinned (audit all)", f0(hitOne.rps));
    row("VerifyToken req/s, 2 workers, unpinned (audit all)", f0(hitTwo.rps));
    row("2 workers / 1 worker", f2(scale), "≥ 1.6", scale >= 1.6);
    if (cores <= 2) {
      say(
        `note: ${cores} cores: h2load needs most of a core, so 2 workers cannot get 2 cores here; the scaling row measures this machine, not the design`,
      );
    }
  } catch (err) {
    say(`bench stopped early: ${String(err)}`);
  } finally {
    for (const c of cleanups) await c().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }

  const w1 = Math.max(6, ...rows.map((r) => r.metric.length));
  const w2 = Math.max(5, ...rows.map((r) => r.value.length));
  const w3 = Math.max(6, ...rows.map((r) => r.target.length));
  say("");
  say(`| ${"metric".padEnd(w1)} | ${"value".padStart(w2)} | ${"target".padEnd(w3)} | verdict |`);
  say(`|${"-".repeat(w1 + 2)}|${"-".repeat(w2 + 2)}|${"-".repeat(w3 + 2)}|---------|`);
  for (const r of rows) {
    say(
      `| ${r.metric.padEnd(w1)} | ${r.value.padStart(w2)} | ${r.target.padEnd(w3)} | ${r.verdict.padEnd(7)} |`,
    );
  }
  process.exit(0);
}

await main();
