import { describe, expect, it } from "vitest";
import { deriveState, type StateInputs } from "../../src/domain/state.js";
import { TokenState } from "../../src/gen/latchkey/v1/token_pb.js";

const NOW = Date.UTC(2026, 0, 1);
const base: StateInputs = { revokeTime: null, expireTime: null, maxUses: null, useCount: 0 };

describe("deriveState", () => {
  it.each([
    ["fresh, unlimited", {}, TokenState.ACTIVE],
    ["expires later", { expireTime: new Date(NOW + 1) }, TokenState.ACTIVE],
    ["expires exactly now", { expireTime: new Date(NOW) }, TokenState.EXPIRED],
    ["expired", { expireTime: new Date(NOW - 1) }, TokenState.EXPIRED],
    ["expired (epoch ms)", { expireTime: NOW - 1 }, TokenState.EXPIRED],
    ["revoked", { revokeTime: new Date(NOW - 1) }, TokenState.REVOKED],
    ["revoked (epoch ms)", { revokeTime: NOW }, TokenState.REVOKED],
    // 13.6: revoked by an instance whose clock runs ahead of this one: revoked all the same.
    ["revoke_time ahead of this clock", { revokeTime: new Date(NOW + 60_000) }, TokenState.REVOKED],
    [
      "revoked and expired",
      { revokeTime: new Date(NOW - 5), expireTime: new Date(NOW - 10) },
      TokenState.REVOKED,
    ],
    [
      "revoked and exhausted",
      { revokeTime: new Date(NOW), maxUses: 1, useCount: 1 },
      TokenState.REVOKED,
    ],
    [
      "expired and exhausted",
      { expireTime: new Date(NOW), maxUses: 1, useCount: 5 },
      TokenState.EXPIRED,
    ],
    ["uses left", { maxUses: 3, useCount: 2 }, TokenState.ACTIVE],
    ["uses spent", { maxUses: 3, useCount: 3 }, TokenState.EXHAUSTED],
    ["uses over", { maxUses: 3, useCount: 4 }, TokenState.EXHAUSTED],
    ["bigint uses spent", { maxUses: 1n, useCount: 1n }, TokenState.EXHAUSTED],
    ["bigint uses left", { maxUses: 2n, useCount: 1 }, TokenState.ACTIVE],
    ["mixed bigint/number spent", { maxUses: 2, useCount: 2n }, TokenState.EXHAUSTED],
    ["huge bigint", { maxUses: 2n ** 62n, useCount: 2n ** 62n - 1n }, TokenState.ACTIVE],
    ["many uses, no limit", { useCount: 1_000_000 }, TokenState.ACTIVE],
  ] as [string, Partial<StateInputs>, TokenState][])("%s", (_name, patch, expected) => {
    expect(deriveState({ ...base, ...patch }, NOW)).toBe(expected);
  });
});
