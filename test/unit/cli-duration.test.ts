import { describe, expect, it } from "vitest";
import { parseDuration } from "../../src/cli/duration.js";

describe("parseDuration", () => {
  it.each([
    ["90s", 90_000],
    ["15m", 900_000],
    ["12h", 43_200_000],
    ["30d", 2_592_000_000],
    ["2w", 1_209_600_000],
    ["1d12h", 129_600_000],
    ["1y", 31_536_000_000],
  ])("%s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "10", "1x", "-5m", "1.5h", "h", "1 h", "1d 2h"])("rejects %j", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
