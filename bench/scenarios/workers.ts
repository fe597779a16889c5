import type { PhaseResult } from "../lib/phase.js";
import { f0, f2, type Report } from "../lib/report.js";
import { startServer } from "../lib/server.js";
import type { CheckedPhase } from "../phases.js";
import { alternate } from "./throughput.js";

/**
 * LATCHKEY_WORKERS=2 against 1, both pinned to the one server core (this machine has two cores
 * and h2load needs one), VerifyToken alternately on each. Compared per server-CPU-second
 * (calls ÷ CPU seconds of the whole process tree): what a worker costs in cluster overhead.
 * On a machine that can give each worker a core, scaling ≈ 2 × this ratio.
 */
export async function workerRows(
  report: Report,
  env: Record<string, string>,
  verify: CheckedPhase,
  rounds: number,
): Promise<void> {
  const one = await startServer({ ...env, LATCHKEY_WORKERS: "1" }, "workers=1");
  const two = await startServer({ ...env, LATCHKEY_WORKERS: "2" }, "workers=2");
  const r1: PhaseResult[] = [];
  const r2: PhaseResult[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      r1.push(...((await alternate(one, [verify], 1)).get(verify.name) ?? []));
      r2.push(...((await alternate(two, [verify], 1)).get(verify.name) ?? []));
    }
  } finally {
    await one.stop();
    await two.stop();
  }
  const perCpuSecond = (r: PhaseResult) =>
    r.usPerCall === undefined ? undefined : 1e6 / r.usPerCall;
  report.samples("workers=1: VerifyToken calls per server-CPU-second", r1.map(perCpuSecond), f0);
  report.samples("workers=2: VerifyToken calls per server-CPU-second", r2.map(perCpuSecond), f0);
  const ratios = r2.map((b, i) => {
    const a = r1[i];
    const x = a === undefined ? undefined : perCpuSecond(a);
    const y = perCpuSecond(b);
    return x === undefined || y === undefined ? undefined : y / x;
  });
  report.samples("workers: 2 ÷ 1 per server-CPU-second (both on one core)", ratios, f2);
  report.ratio(
    "workers: projected 2-core scaling (2 × the row above)",
    ratios.map((x) => (x === undefined ? undefined : 2 * x)),
    "≥ 1.60",
    (x) => x >= 1.6,
    "projection, not measured: 2 cores cannot be given to the server here",
  );
}
