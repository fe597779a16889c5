import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

const DAY = 86_400_000;

describe("LATCHKEY_AUDIT_RETENTION", () => {
  it("is unset by default: audit rows are kept forever", () => {
    expect(loadConfig({}).auditRetentionMs).toBeUndefined();
  });

  it.each([
    ["400d", 400 * DAY],
    ["12w", 84 * DAY],
    ["1y", 365 * DAY],
    ["1D", DAY],
  ])("%s", (raw, ms) => {
    expect(loadConfig({ LATCHKEY_AUDIT_RETENTION: raw }).auditRetentionMs).toBe(ms);
  });

  it.each(["0d", "5h", "30", "1.5y", "-1d", "101y", "forever"])(
    "rejects %j naming the variable",
    (raw) => {
      expect(() => loadConfig({ LATCHKEY_AUDIT_RETENTION: raw })).toThrow(ConfigError);
      try {
        loadConfig({ LATCHKEY_AUDIT_RETENTION: raw });
      } catch (err) {
        expect((err as ConfigError).problems).toEqual([
          expect.stringMatching(/^LATCHKEY_AUDIT_RETENTION=.*expected a duration from 1d to 100y/),
        ]);
      }
    },
  );
});
