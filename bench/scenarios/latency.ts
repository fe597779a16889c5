import { type LatencyResult, runLatency } from "../lib/phase.js";
import { f0, f2, type Report } from "../lib/report.js";
import type { Server } from "../lib/server.js";
import type { CheckedPhase } from "../phases.js";

/**
 * Latency as a ratio: VerifyToken and Health/Check alternately at the same fixed rate (half of
 * the measured Verify peak) on the same server, `rounds` times; p50 and p99 of each and their
 * ratios per round. Absolute milliseconds on 2 shared cores measure the harness as much as the
 * server; the ratio to the no-op at the same rate does not.
 */
export async function latencyRows(
  report: Report,
  server: Server,
  verify: CheckedPhase,
  health: CheckedPhase,
  rate: number,
  rounds: number,
): Promise<void> {
  const v: LatencyResult[] = [];
  const h: LatencyResult[] = [];
  for (let i = 0; i < rounds; i++) {
    v.push(await runLatency(server, verify, rate));
    h.push(await runLatency(server, health, rate));
    const a = v[v.length - 1];
    const b = h[h.length - 1];
    process.stdout.write(
      `  latency round ${i + 1} at ${f0(rate)} req/s: VerifyToken p50/p99 ${f2(a?.p50Ms)}/${f2(a?.p99Ms)} ms, Health ${f2(b?.p50Ms)}/${f2(b?.p99Ms)} ms\n`,
    );
  }
  const ratio = (pick: (r: LatencyResult) => number | undefined) =>
    v.map((a, i) => {
      const x = pick(a);
      const hb = h[i];
      const y = hb === undefined ? undefined : pick(hb);
      return x === undefined || y === undefined || y === 0 ? undefined : x / y;
    });
  const at = `at ${f0(rate)} req/s`;
  for (const q of ["p50Ms", "p99Ms"] as const) {
    const label = q === "p50Ms" ? "p50" : "p99";
    report.samples(
      `latency ${at}: VerifyToken ${label}, ms`,
      v.map((r) => r[q]),
      f2,
    );
    report.samples(
      `latency ${at}: Health/Check ${label}, ms`,
      h.map((r) => r[q]),
      f2,
    );
  }
  report.ratio(
    "latency: p50 ratio Verify ÷ Health",
    ratio((r) => r.p50Ms),
    "≤ 1.10",
    (x) => x <= 1.1,
  );
  report.ratio(
    "latency: p99 ratio Verify ÷ Health",
    ratio((r) => r.p99Ms),
    "≤ 1.25",
    (x) => x <= 1.25,
  );
}
