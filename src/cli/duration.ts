import { parseDuration as parseWith } from "../domain/duration.js";

/**
 * Parses the CLI's human durations (`90s`, `15m`, `12h`, `30d`, `2w`, `1y` = 365 days, or
 * combinations like `1d12h`) into milliseconds. Strict on purpose: a typo must not silently become a lifetime.
 */
export function parseDuration(text: string): number | undefined {
  return parseWith(text, { units: ["s", "m", "h", "d", "w", "y"], compound: true });
}
