/**
 * Lays rows out in aligned columns (two spaces apart, header in capitals), the way `kubectl get`
 * and `gh` print lists, so a human can scan them and `awk '{print $1}'` still works.
 */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

const UNITS: readonly (readonly [string, number])[] = [
  ["y", 365 * 86_400_000],
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000],
];

/**
 * A time relative to now in the largest whole unit ("in 29d", "3h ago"); "never" when unset.
 * Tables show this because "expires in 2d" answers the question a person asks of a token.
 */
export function relativeTime(ms: number | undefined, nowMs: number): string {
  if (ms === undefined) return "never";
  const diff = ms - nowMs;
  const abs = Math.abs(diff);
  if (abs < 1_000) return "now";
  for (const [unit, size] of UNITS) {
    if (abs >= size) {
      const n = Math.floor(abs / size);
      return diff > 0 ? `in ${n}${unit}` : `${n}${unit} ago`;
    }
  }
  return "now";
}
