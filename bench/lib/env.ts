import { execFileSync } from "node:child_process";
import { availableParallelism, cpus } from "node:os";

/**
 * The bench's settings and the machine it runs on, read once. Every knob is an environment
 * variable so the lead can re-run the same program longer on a quiet machine.
 */

function intFrom(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** Seconds measured per phase (after a one-second warm-up). */
export const SECONDS = intFrom("BENCH_SECONDS", 5);
/** Health/Verify alternations per server (≥ 3 for a median that means something). */
export const ROUNDS = intFrom("BENCH_ROUNDS", 3);
export const WARMUP_SECONDS = 1;
/** h2load -c / -m of the throughput phases (the issue's -t1 -c4 -m32). */
export const CONNECTIONS = 4;
export const STREAMS = 32;
/** Latency phases: this many clients with one call in flight each, paced by --rps. */
export const LATENCY_CLIENTS = 32;
/** Below this share of one core the server was not the bottleneck of a phase. */
export const SERVER_BOUND_BUSY = 0.9;

/** True when `binary` is on PATH. */
export function has(binary: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${binary}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export const CORES = availableParallelism();
export const CPU_MODEL = cpus()[0]?.model ?? "?";
export const HAVE_H2LOAD = has("h2load");
/** The server alone on core 0, the load generator alone on core 1 (when both exist). */
export const PINNED = has("taskset") && CORES >= 2;
export const SERVER_CPU = 0;
export const LOAD_CPU = 1;

/** Kernel clock ticks per second, the unit of utime/stime in /proc. */
export const CLOCK_TICKS = (() => {
  try {
    const n = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Prints a line at once (the bench runs for minutes; progress matters). */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}
