import { type Spread, spread } from "./stats.js";

interface Row {
  readonly metric: string;
  readonly median: string;
  readonly range: string;
  readonly target: string;
  readonly verdict: string;
}

/** Formats a number with thousands separators, no decimals. */
export const f0 = (n: number | undefined): string =>
  n === undefined ? "n/a" : Math.round(n).toLocaleString("en-US");
/** Formats a number with two decimals. */
export const f2 = (n: number | undefined): string => (n === undefined ? "n/a" : n.toFixed(2));
/** Formats a number with one decimal. */
export const f1 = (n: number | undefined): string => (n === undefined ? "n/a" : n.toFixed(1));

/**
 * The one table `npm run bench` prints: a median, the spread it came from (min–max and how
 * many samples, plus why some were not used) and, where the issue sets one, a target and a
 * verdict. Never an exit code: a benchmark reports, it does not fail.
 */
export class Report {
  private readonly rows: Row[] = [];
  private readonly notes: string[] = [];

  /** A row from samples: their median, and their range as the spread. */
  samples(
    metric: string,
    values: readonly (number | undefined)[],
    fmt: (n: number | undefined) => string,
    extra = "",
  ): Spread | undefined {
    const s = spread(values);
    const range = s === undefined ? "" : s.n === 1 ? "1 sample" : `${fmt(s.min)}–${fmt(s.max)}`;
    this.rows.push({
      metric,
      median: fmt(s?.median),
      range: [range, extra].filter((x) => x !== "").join("; "),
      target: "",
      verdict: "",
    });
    return s;
  }

  /** A ratio row with its target: `meets` or `SHORT`; `n/a` when there was nothing to divide. */
  ratio(
    metric: string,
    values: readonly (number | undefined)[],
    target: string,
    ok: (v: number) => boolean,
    extra = "",
  ): void {
    const s = this.samples(metric, values, f2, extra);
    const last = this.rows[this.rows.length - 1];
    if (last === undefined) return;
    this.rows[this.rows.length - 1] = {
      ...last,
      target,
      verdict: s === undefined ? "n/a" : ok(s.median) ? "meets" : "SHORT",
    };
  }

  /** A row with a single value (no spread). */
  value(metric: string, value: string, target = "", verdict = ""): void {
    this.rows.push({ metric, median: value, range: "", target, verdict });
  }

  /** A line printed under the table. */
  note(line: string): void {
    this.notes.push(line);
  }

  /** The table as Markdown (it pastes into the README as is), then the notes. */
  render(): string {
    const head: Row = {
      metric: "metric",
      median: "median",
      range: "spread (min–max; phases)",
      target: "target",
      verdict: "verdict",
    };
    const all = [head, ...this.rows];
    const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
    const line = (r: Row) =>
      `| ${r.metric.padEnd(w("metric"))} | ${r.median.padStart(w("median"))} | ${r.range.padEnd(w("range"))} | ${r.target.padEnd(w("target"))} | ${r.verdict.padEnd(w("verdict"))} |`;
    const rule = `|${(["metric", "median", "range", "target", "verdict"] as const).map((k) => "-".repeat(w(k) + 2)).join("|")}|`;
    return [line(head), rule, ...this.rows.map(line), "", ...this.notes.map((n) => `- ${n}`)].join(
      "\n",
    );
  }
}
