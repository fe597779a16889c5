import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { grpcFrame } from "../../test/helpers/h2.js";
import type { LoadJob, LoadResult } from "../load-worker.js";
import { CORES, HAVE_H2LOAD, LOAD_CPU, PINNED, WARMUP_SECONDS } from "./env.js";

/** One load run: which call, how hard, for how long. */
export interface LoadSpec {
  readonly address: string;
  readonly path: string;
  /** The serialized request message (no gRPC frame header). */
  readonly body: Uint8Array;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly seconds: number;
  readonly clients: number;
  readonly streams: number;
  /** Total calls per second to pace at (h2load --rps, split over the clients); unset: flat out. */
  readonly rps?: number | undefined;
  /** Keep every call's latency (h2load --log-file). */
  readonly latency?: boolean | undefined;
}

/** What a load run measured over its `seconds` (the warm-up excluded). */
export interface LoadOutcome {
  readonly rps: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Ascending latencies in ms, when asked for. */
  readonly latenciesMs?: Float64Array;
  /** The generator's last lines when it measured nothing (for the report). */
  readonly trouble?: string;
}

const work = mkdtempSync(join(tmpdir(), "latchkey-bench-load-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
let files = 0;

/**
 * Drives one RPC with h2load pinned to the load core (Debian nghttp2-client), or, without
 * h2load, with grpc-js clients in worker threads (which cost as much CPU as the server: the
 * report says so). Starts measuring after a one-second warm-up.
 */
export function runLoad(spec: LoadSpec): Promise<LoadOutcome> {
  return HAVE_H2LOAD ? h2load(spec) : threads(spec);
}

async function h2load(spec: LoadSpec): Promise<LoadOutcome> {
  const n = files++;
  const bodyFile = join(work, `body-${n}.bin`);
  const logFile = join(work, `log-${n}.tsv`);
  writeFileSync(bodyFile, grpcFrame(spec.body));
  const perClient = spec.rps === undefined ? undefined : Math.max(1, spec.rps / spec.clients);
  const args = [
    ...["-D", String(spec.seconds), "--warm-up-time", String(WARMUP_SECONDS)],
    ...["-t", "1", "-c", String(spec.clients), "-m", String(spec.streams), "-d", bodyFile],
    ...["-H", "content-type: application/grpc", "-H", "te: trailers"],
    ...Object.entries(spec.headers ?? {}).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    ...(perClient === undefined ? [] : [`--rps=${perClient.toFixed(2)}`]),
    ...(spec.latency === true ? [`--log-file=${logFile}`] : []),
    `http://${spec.address}${spec.path}`,
  ];
  const [cmd, full] = PINNED
    ? ["taskset", ["-c", String(LOAD_CPU), "h2load", ...args]]
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
  const counts = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(
    out,
  );
  const outcome = {
    rps,
    succeeded: Number(counts?.[1] ?? "0"),
    failed: Number(counts?.[2] ?? "0"),
    ...(rps === 0 ? { trouble: out.trim().split("\n").slice(-4).join(" | ") } : {}),
  };
  if (spec.latency !== true) return outcome;
  let latenciesMs = new Float64Array(0);
  try {
    const rows = readFileSync(logFile, "utf8").trim().split("\n");
    const lat = new Float64Array(rows.length);
    let k = 0;
    for (const row of rows) {
      const v = Number(row.split("\t")[2]);
      if (Number.isFinite(v)) lat[k++] = v / 1000;
    }
    latenciesMs = lat.subarray(0, k).sort();
  } catch {}
  return { ...outcome, latenciesMs };
}

const here = dirname(fileURLToPath(import.meta.url));

async function threads(spec: LoadSpec): Promise<LoadOutcome> {
  const job: LoadJob = {
    address: spec.address,
    path: spec.path,
    body: spec.body,
    connections: Math.max(1, spec.clients >> 1),
    inFlight: spec.streams,
    durationMs: spec.seconds * 1000,
    warmupMs: WARMUP_SECONDS * 1000,
    headers: spec.headers,
  };
  const results = await Promise.all(
    Array.from(
      { length: Math.max(2, CORES) },
      () =>
        new Promise<LoadResult>((res, rej) => {
          const w = new Worker(join(here, "..", "load-worker.js"), { workerData: job });
          w.once("message", (m: LoadResult) => {
            res(m);
            void w.terminate();
          });
          w.once("error", rej);
        }),
    ),
  );
  const succeeded = results.reduce((a, r) => a + r.completed, 0);
  return {
    rps: succeeded / spec.seconds,
    succeeded,
    failed: results.reduce((a, r) => a + r.failed, 0),
    ...(spec.latency === true
      ? {
          latenciesMs: Float64Array.from(results.flatMap((r) => r.latenciesUs))
            .map((us) => us / 1000)
            .sort(),
        }
      : {}),
  };
}
