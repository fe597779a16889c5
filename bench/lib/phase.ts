import { coreTicks, treeMicros } from "./cpu.js";
import {
  CONNECTIONS,
  LATENCY_CLIENTS,
  PINNED,
  SECONDS,
  SERVER_BOUND_BUSY,
  SERVER_CPU,
  STREAMS,
  WARMUP_SECONDS,
} from "./env.js";
import { type LoadSpec, runLoad } from "./load.js";
import type { Server } from "./server.js";
import { percentile } from "./stats.js";

/**
 * One RPC the bench can load: a name for the report, the method path, the request bytes and
 * any metadata. Adding a call to the bench is adding one of these (see bench/phases.ts).
 */
export interface PhaseSpec {
  readonly name: string;
  readonly path: string;
  readonly body: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
}

/** What one flat-out phase measured, server side and client side. */
export interface PhaseResult {
  readonly name: string;
  readonly rps: number;
  readonly failed: number;
  /** Server CPU (its process tree) per completed call, µs. */
  readonly usPerCall: number | undefined;
  /** Server CPU ÷ wall time over the measured window (1 = one full core). */
  readonly serverBusy: number;
  /** Share of the server core that anything used (server or not), when /proc/stat tells. */
  readonly coreBusy: number | undefined;
  /** The server's core was ≥ 90 % busy with the server: the phase measured latchkey. */
  readonly serverBound: boolean;
  /** Why not, in the report's words. */
  readonly limit: "server" | "load generator" | "core shared";
  readonly trouble?: string | undefined;
  /** Calls completed in the measured window. */
  readonly calls: number;
  /** The measured window on CLOCK_MONOTONIC (process.hrtime), µs: to cut a CPU profile. */
  readonly windowUs: readonly [number, number];
}

function loadSpec(server: Server, spec: PhaseSpec, clients: number, streams: number): LoadSpec {
  const { path, body, headers } = spec;
  return { address: server.address, path, body, headers, seconds: SECONDS, clients, streams };
}

/** CLOCK_MONOTONIC in µs, the clock V8 stamps CPU profile samples with. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Runs one flat-out phase (h2load -t1 -c4 -m32) and samples the server's CPU (utime + stime of
 * its process tree) and the server core's busy time at the start and the end of the measured
 * window, so every phase knows whether the server was the bottleneck.
 */
export async function runPhase(server: Server, spec: PhaseSpec): Promise<PhaseResult> {
  let start: { t: number; cpu: number; core: ReturnType<typeof coreTicks> } | undefined;
  let end: typeof start;
  const sample = () => ({
    t: monotonicUs() / 1000,
    cpu: treeMicros(server.pid),
    core: coreTicks(SERVER_CPU),
  });
  const t1 = setTimeout(() => {
    start = sample();
  }, WARMUP_SECONDS * 1000);
  const t2 = setTimeout(
    () => {
      end = sample();
    },
    (WARMUP_SECONDS + SECONDS) * 1000,
  );
  const load = await runLoad(loadSpec(server, spec, CONNECTIONS, STREAMS));
  clearTimeout(t1);
  clearTimeout(t2);
  end ??= sample();
  const wallUs = start === undefined ? 0 : (end.t - start.t) * 1000;
  const cpuUs = start === undefined ? 0 : end.cpu - start.cpu;
  const calls = (load.rps * wallUs) / 1e6;
  const serverBusy = wallUs > 0 ? cpuUs / wallUs : 0;
  const coreBusy =
    start?.core === undefined || end.core === undefined || end.core.total === start.core.total
      ? undefined
      : (end.core.busy - start.core.busy) / (end.core.total - start.core.total);
  const serverBound = PINNED && serverBusy >= SERVER_BOUND_BUSY;
  const limit = serverBound
    ? "server"
    : coreBusy !== undefined && coreBusy >= SERVER_BOUND_BUSY
      ? "core shared"
      : "load generator";
  return {
    name: spec.name,
    rps: load.rps,
    failed: load.failed,
    usPerCall: calls > 0 ? cpuUs / calls : undefined,
    serverBusy,
    coreBusy,
    serverBound,
    limit,
    trouble: load.trouble,
    calls,
    windowUs: [(start?.t ?? 0) * 1000, end.t * 1000],
  };
}

/** Latency of one call paced at a fixed total rate: p50 and p99 in ms. */
export interface LatencyResult {
  readonly name: string;
  readonly rps: number;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
}

/**
 * Runs one paced phase: 32 clients with one call in flight each, at `rps` calls per second in
 * total (h2load --rps per client). Many single-stream clients, because --rps with many streams
 * per client sends each tick's calls in a burst and measures h2load's own queue.
 */
export async function runLatency(
  server: Server,
  spec: PhaseSpec,
  rps: number,
): Promise<LatencyResult> {
  const load = await runLoad({ ...loadSpec(server, spec, LATENCY_CLIENTS, 1), rps, latency: true });
  const lat = load.latenciesMs ?? new Float64Array(0);
  return {
    name: spec.name,
    rps: load.rps,
    p50Ms: percentile(lat, 0.5),
    p99Ms: percentile(lat, 0.99),
  };
}

/** The server-bound share of a set of phases, as the report prints it (`3/3 server-bound`). */
export function boundNote(results: readonly PhaseResult[]): string {
  const bound = results.filter((r) => r.serverBound).length;
  const limits = [...new Set(results.filter((r) => !r.serverBound).map((r) => r.limit))];
  return `${bound}/${results.length} server-bound${limits.length > 0 ? ` (else ${limits.join(", ")})` : ""}`;
}
