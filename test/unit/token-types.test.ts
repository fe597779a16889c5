import { describe, expect, it } from "vitest";
import { DEFAULT_TYPE_POLICIES, findTypePolicy, typePolicy } from "../../src/domain/token-types.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";

const DAY = 24 * 3600 * 1000;

describe("type policies", () => {
  it.each([
    [TokenType.PERSONAL, 365 * DAY, 90 * DAY, null],
    [TokenType.TEAM, 365 * DAY, 90 * DAY, null],
    [TokenType.CICD, 90 * DAY, 30 * DAY, null],
    [TokenType.EPHEMERAL, DAY, 3600 * 1000, 1],
  ] as const)("type %i: max %i, default %i, uses %s", (type, max, def, uses) => {
    const p = typePolicy(DEFAULT_TYPE_POLICIES, type);
    expect(p).toEqual({ maxLifetimeMs: max, defaultLifetimeMs: def, defaultMaxUses: uses });
    expect(findTypePolicy(DEFAULT_TYPE_POLICIES, type)).toBe(p);
    expect(p.maxLifetimeMs === null || p.defaultLifetimeMs <= p.maxLifetimeMs).toBe(true);
  });

  it("has no policy for UNSPECIFIED or unknown values", () => {
    expect(findTypePolicy(DEFAULT_TYPE_POLICIES, TokenType.UNSPECIFIED)).toBeUndefined();
    expect(findTypePolicy(DEFAULT_TYPE_POLICIES, 99 as TokenType)).toBeUndefined();
    expect(() => typePolicy(DEFAULT_TYPE_POLICIES, TokenType.UNSPECIFIED)).toThrow(RangeError);
  });

  it("honours a deployment's own table", () => {
    const custom = {
      ...DEFAULT_TYPE_POLICIES,
      [TokenType.PERSONAL]: { maxLifetimeMs: null, defaultLifetimeMs: DAY, defaultMaxUses: null },
    };
    expect(typePolicy(custom, TokenType.PERSONAL).maxLifetimeMs).toBeNull();
    expect(Object.isFrozen(DEFAULT_TYPE_POLICIES)).toBe(true);
  });
});
