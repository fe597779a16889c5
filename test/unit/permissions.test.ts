import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compilePermissions,
  DEFAULT_ROLES,
  expandRole,
  holds,
  holdsAll,
  holdsCompiled,
  isValidPermission,
  uncovered,
} from "../../src/domain/permissions.js";

describe("isValidPermission", () => {
  it.each([
    "*",
    "platform:admin",
    "tokens:read",
    "deploy:*",
    "a:b",
    "artifacts.v2:push-now",
    "x_y:z.w",
    `${"a".repeat(64)}:${"b".repeat(64)}`,
  ])("accepts %j", (p) => {
    expect(isValidPermission(p)).toBe(true);
  });

  it.each([
    "",
    "**",
    "*:*",
    "*:read",
    "tokens",
    "tokens:",
    ":read",
    "Tokens:read",
    "tokens:Read",
    "1tokens:read",
    "tokens:1read",
    "tokens:read:extra",
    "tokens:re ad",
    " tokens:read",
    "tokens:read ",
    "deploy:a*",
    `${"a".repeat(65)}:b`,
    `a:${"b".repeat(65)}`,
    "platform:*",
    "platform:read",
    "platform:admin2",
  ])("refuses %j", (p) => {
    expect(isValidPermission(p)).toBe(false);
  });
});

const HOLDS_TABLE: [readonly string[], string, boolean][] = [
  [["*"], "tokens:read", true],
  [["*"], "deploy:*", true],
  [["*"], "*", true],
  [["*"], "platform:admin", false],
  [["platform:admin"], "platform:admin", true],
  [["*", "platform:admin"], "platform:admin", true],
  [["platform:admin"], "tokens:read", false],
  [["platform:admin"], "*", false],
  [["deploy:*"], "deploy:read", true],
  [["deploy:*"], "deploy:*", true],
  [["deploy:*"], "deploy", false],
  [["deploy:*"], "deployx:read", false],
  [["deploy:*"], "billing:read", false],
  [["deploy:*"], "*", false],
  [["tokens:read"], "tokens:read", true],
  [["tokens:read"], "tokens:write", false],
  [["tokens:read"], "tokens:*", false],
  [["tokens:read"], "*", false],
  [[], "tokens:read", false],
  [[], "*", false],
  [["platform:*"], "platform:admin", false],
];

describe("holds / holdsCompiled", () => {
  it.each(HOLDS_TABLE)("%j holds %j: %s", (held, required, expected) => {
    expect(holds(held, required)).toBe(expected);
    expect(holdsCompiled(compilePermissions(held), required)).toBe(expected);
  });

  it("holdsAll needs every permission, and [] is always held", () => {
    expect(holdsAll(["deploy:*", "tokens:read"], ["deploy:run", "tokens:read"])).toBe(true);
    expect(holdsAll(["deploy:*"], ["deploy:run", "tokens:read"])).toBe(false);
    expect(holdsAll([], [])).toBe(true);
    expect(holdsAll(["*"], ["platform:admin"])).toBe(false);
  });

  it("compiled and plain agree on random inputs", () => {
    const part = fc.constantFrom("tokens", "deploy", "audit", "platform", "x");
    const action = fc.constantFrom("read", "write", "*", "admin");
    const perm = fc.oneof(
      fc.constant("*"),
      fc.constant("platform:admin"),
      fc.tuple(part, action).map(([r, a]) => `${r}:${a}`),
    );
    fc.assert(
      fc.property(fc.array(perm, { maxLength: 6 }), perm, (held, required) => {
        expect(holdsCompiled(compilePermissions(held), required)).toBe(holds(held, required));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("uncovered (no escalation)", () => {
  it.each([
    [["deploy:*"], ["deploy:read"], []],
    [["deploy:*"], ["deploy:*"], []],
    [["deploy:*"], ["*"], ["*"]],
    [["deploy:*"], ["billing:read"], ["billing:read"]],
    [["deploy:*"], ["deploy:read", "*", "billing:read"], ["*", "billing:read"]],
    [["deploy:read"], ["deploy:*"], ["deploy:*"]],
    [["*"], ["deploy:*", "billing:read", "*"], []],
    [["*"], ["platform:admin"], ["platform:admin"]],
    [["*", "platform:admin"], ["platform:admin", "*"], []],
    [["tokens:read"], ["tokens:read", "tokens:read", "x:y", "x:y"], ["x:y"]],
    [[], [], []],
  ] as [string[], string[], string[]][])("caller %j requesting %j lacks %j", (held, req, out) => {
    expect(uncovered(held, req)).toEqual(out);
  });
});

describe("roles", () => {
  it("default roles expand as documented", () => {
    expect(expandRole(DEFAULT_ROLES, "viewer")).toEqual(["tokens:read", "audit:read"]);
    expect(expandRole(DEFAULT_ROLES, "ops")).toEqual([
      "tokens:read",
      "tokens:update",
      "tokens:revoke",
      "audit:read",
    ]);
    expect(expandRole(DEFAULT_ROLES, "deployer")).toEqual(["deploy:*", "tokens:read"]);
    expect(expandRole(DEFAULT_ROLES, "cicd")).toEqual(["deploy:*", "artifacts:*"]);
    expect(expandRole(DEFAULT_ROLES, "admin")).toEqual(["*"]);
  });

  it("unknown roles and prototype keys are undefined", () => {
    for (const r of ["", "root", "Admin", "constructor", "__proto__", "toString"]) {
      expect(expandRole(DEFAULT_ROLES, r)).toBeUndefined();
    }
  });

  it("every default role permission is valid, and the table is frozen", () => {
    for (const perms of Object.values(DEFAULT_ROLES)) {
      for (const p of perms) expect(isValidPermission(p)).toBe(true);
    }
    expect(Object.isFrozen(DEFAULT_ROLES)).toBe(true);
    expect(Object.isFrozen(DEFAULT_ROLES.admin)).toBe(true);
  });
});
