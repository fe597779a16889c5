import type { Report } from "../lib/report.js";
import { type Server, startServer } from "../lib/server.js";
import type { CheckedPhase } from "../phases.js";
import { alternate, phaseRows, type Rounds, ratioRows } from "./throughput.js";

/**
 * One server mode: starts a server with `env`, alternates `phases` (the first is the
 * Health/Check baseline) for ROUNDS rounds, and reports each phase's req/s, CPU per call and
 * ratio to the baseline (against `targets[name]` where the issue sets one). `after` runs on
 * the same server before it stops (the latency phases use it).
 */
export async function serverScenario(
  report: Report,
  env: Record<string, string>,
  label: string,
  phases: readonly CheckedPhase[],
  rounds: number,
  targets: Readonly<Record<string, number>> = {},
  after?: (server: Server, runs: Rounds) => Promise<void>,
): Promise<Rounds> {
  const server = await startServer(env, label);
  try {
    const runs = await alternate(server, phases, rounds);
    const [baseline, ...rest] = phases;
    const base = baseline === undefined ? [] : (runs.get(baseline.name) ?? []);
    if (baseline !== undefined) phaseRows(report, `${baseline.name} (${label} server)`, base);
    for (const p of rest) {
      const r = runs.get(p.name) ?? [];
      phaseRows(report, p.name, r);
      ratioRows(report, p.name, base, r, targets[p.name]);
    }
    if (after !== undefined) await after(server, runs);
    return runs;
  } finally {
    await server.stop();
  }
}
