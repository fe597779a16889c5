import { readdirSync, readFileSync } from "node:fs";
import { CLOCK_TICKS } from "./env.js";

/** utime + stime of one process (all its threads), in µs; undefined once it is gone. */
function processMicros(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
  } catch {
    return undefined;
  }
}

/** Direct children of a process (every thread's list), from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text !== "") for (const c of text.split(" ")) out.push(Number(c));
    }
  } catch {}
  return out;
}

/**
 * CPU time (user + system, µs) used so far by a process and its descendants: the server is
 * one process, or a cluster primary with its workers (LATCHKEY_WORKERS), and the bench wants
 * the whole server's share either way.
 */
export function treeMicros(pid: number): number {
  let total = 0;
  const stack = [pid];
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    total += processMicros(p) ?? 0;
    stack.push(...childrenOf(p));
  }
  return total;
}

/**
 * Busy and total jiffies of one core since boot (/proc/stat), to tell a load-generator-bound
 * phase (the core idled) from a phase where other processes took the server's core.
 */
export function coreTicks(cpu: number): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8")
      .split("\n")
      .find((l) => l.startsWith(`cpu${cpu} `));
    if (line === undefined) return undefined;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}
