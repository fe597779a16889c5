import { Caller } from "../lib/grpc-client.js";
import { boundNote, type PhaseResult, runPhase } from "../lib/phase.js";
import { f0, f1, f2, type Report } from "../lib/report.js";
import type { Server } from "../lib/server.js";
import type { CheckedPhase } from "../phases.js";

/** Results of an alternation: per phase name, one result per round (same order as rounds). */
export type Rounds = Map<string, PhaseResult[]>;

/** Calls each phase once and throws when its answer is not the expected one. */
export async function sanity(server: Server, phases: readonly CheckedPhase[]): Promise<void> {
  for (const p of phases) {
    const c = new Caller(server.address, p.headers);
    try {
      const problem = p.check(await c.call(p.path, p.body));
      if (problem !== undefined) throw new Error(`${p.name} on ${server.label}: ${problem}`);
    } finally {
      c.close();
    }
  }
}

/**
 * Runs the phases in turn, `rounds` times (Health, Verify, Health, Verify, …), so a burst of
 * other work on a shared machine lowers one sample of each rather than one side of a ratio.
 */
export async function alternate(
  server: Server,
  phases: readonly CheckedPhase[],
  rounds: number,
): Promise<Rounds> {
  await sanity(server, phases);
  const out: Rounds = new Map(phases.map((p) => [p.name, []]));
  for (let i = 0; i < rounds; i++) {
    for (const p of phases) {
      const r = await runPhase(server, p);
      out.get(p.name)?.push(r);
      process.stdout.write(
        `  ${server.label} round ${i + 1} ${p.name}: ${f0(r.rps)} req/s, ${f1(r.usPerCall)} µs/call, server ${Math.round(r.serverBusy * 100)}% of its core (${r.limit})${r.failed > 0 ? `, ${r.failed} failed` : ""}${r.trouble === undefined ? "" : `, h2load: ${r.trouble}`}\n`,
      );
    }
  }
  return out;
}

/** Req/s and µs of server CPU per call of one phase, as two report rows. */
export function phaseRows(report: Report, label: string, results: readonly PhaseResult[]): void {
  const bound = results.filter((r) => r.serverBound);
  report.samples(
    `${label}: req/s (server-bound phases)`,
    bound.map((r) => r.rps),
    f0,
    boundNote(results),
  );
  // CPU per call grows when the server idles between calls (less batching per wake-up) or is
  // preempted, so server-bound phases are preferred when there are any.
  const cpuFrom = bound.length > 0 ? bound : results;
  report.samples(
    `${label}: server CPU per call, µs`,
    cpuFrom.map((r) => r.usPerCall),
    f1,
    bound.length > 0 ? "server-bound phases" : "all phases (none server-bound: inflated)",
  );
}

/**
 * The ratio of `call` to the no-op in the same round, from pairs where both phases were
 * server-bound (req/s), and from CPU per call in every pair (the figure that survives a noisy
 * machine: Health µs ÷ Verify µs is the req/s ratio a server-bound run would show).
 */
export function ratioRows(
  report: Report,
  label: string,
  baseline: readonly PhaseResult[],
  call: readonly PhaseResult[],
  target?: number,
): void {
  const pairs = call.map((c, i) => [baseline[i], c] as const);
  const rps = pairs.map(([h, c]) => (h?.serverBound && c.serverBound ? c.rps / h.rps : undefined));
  const cpu = pairs.map(([h, c]) =>
    h?.usPerCall !== undefined && c.usPerCall !== undefined ? h.usPerCall / c.usPerCall : undefined,
  );
  const used = rps.filter((x) => x !== undefined).length;
  const note = `${used}/${pairs.length} pairs server-bound`;
  if (target === undefined) {
    report.samples(`${label}: req/s ratio to Health/Check`, rps, f2, note);
    report.samples(`${label}: CPU ratio (Health µs ÷ its µs)`, cpu, f2);
    return;
  }
  const ok = (v: number) => v >= target;
  report.ratio(`${label}: req/s ratio to Health/Check`, rps, `≥ ${target.toFixed(2)}`, ok, note);
  report.ratio(`${label}: CPU ratio (Health µs ÷ its µs)`, cpu, `≥ ${target.toFixed(2)}`, ok);
}
