/** Milliseconds per duration unit; `y` is 365 days. */
const UNIT_MS = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
} as const;

export type DurationUnit = keyof typeof UNIT_MS;

/** Which spellings a setting or flag accepts. */
export interface DurationGrammar {
  readonly units: readonly DurationUnit[];
  /** The unit of a bare number (`30` = 30 s); undefined: a unit is required. */
  readonly bare?: DurationUnit;
  /** Several terms in a row (`1d12h`); default one term. */
  readonly compound?: boolean;
}

/**
 * Parses a human duration into milliseconds, or undefined when it does not follow `grammar`.
 * The one parser behind the server's settings, the audit retention and the CLI's flags, each
 * with the units it allows: strict, so a typo never silently becomes a lifetime.
 */
export function parseDuration(text: string, grammar: DurationGrammar): number | undefined {
  // Longest unit first, so `ms` is not read as `m` followed by a stray `s`.
  const units = [...grammar.units].sort((a, b) => b.length - a.length).join("|");
  const term = `\\d+(?:${units})`;
  const whole =
    grammar.compound === true ? `(?:${term})+` : grammar.bare ? `\\d+(?:${units})?` : term;
  if (!new RegExp(`^${whole}$`).test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(new RegExp(`(\\d+)(${units})?`, "g"))) {
    const factor = UNIT_MS[(unit ?? grammar.bare) as DurationUnit];
    total += Number(amount) * factor;
  }
  return Number.isSafeInteger(total) ? total : undefined;
}
