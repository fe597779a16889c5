const UNITS: Readonly<Record<string, number>> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/**
 * Parses the CLI's human durations (`90s`, `15m`, `12h`, `30d`, `2w`, `1y` = 365 days, or
 * combinations like `1d12h`) into milliseconds. Strict on purpose: a typo must not silently become a lifetime.
 */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+[smhdwy])+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)([smhdwy])/g)) {
    const factor = unit === undefined ? undefined : UNITS[unit];
    if (amount === undefined || factor === undefined) return undefined;
    total += Number(amount) * factor;
  }
  return Number.isSafeInteger(total) ? total : undefined;
}
