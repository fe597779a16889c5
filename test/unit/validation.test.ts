import { describe, expect, it } from "vitest";
import { cidrsNarrowed } from "../../src/domain/admin-rules.js";
import { checkRequestId, containsTokenShape, scrubRequestId } from "../../src/domain/request-id.js";
import { checkDuration, checkTimestamp, MAX_TIMESTAMP_MS } from "../../src/domain/time-fields.js";
import { generateToken } from "../../src/domain/token-format.js";
import {
  checkCidrs,
  checkFreeText,
  checkIdentifier,
  checkIds,
  checkMetadata,
  checkName,
  checkPageSize,
  checkPermissions,
} from "../../src/domain/validation.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";

const TOK = "tok_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const TOK2 = "tok_01ARZ3NDEKTSV4RRFFQ69G5FAW";

describe("checkName", () => {
  it.each([
    "a",
    "deploy bot",
    "CI key – prod",
    "日本語の名前",
    "emoji 🔑 ok",
    "x".repeat(100),
    "🔑".repeat(100),
    "tab-free name with  double space",
  ])("accepts %j", (name) => {
    expect(checkName(name, "name")).toEqual([]);
  });

  it.each([
    ["", "required"],
    [" ", "whitespace"],
    ["\u00a0\u3000", "whitespace"],
    [" lead", "whitespace"],
    ["trail ", "whitespace"],
    ["trail\u00a0", "whitespace"],
    ["x".repeat(101), "100"],
    ["🔑".repeat(101), "100"],
    ["a\nb", "printable"],
    ["a\tb", "printable"],
    ["a\u0000b", "printable"],
    ["a\u007fb", "printable"],
    ["a\u0085b", "printable"],
    ["a\u009fb", "printable"],
    ["a\u2028b", "printable"],
    ["evil\u202eexe.txt", "printable"],
    ["a\ud800b", "Unicode"],
    ["a\udc00", "Unicode"],
  ])("refuses %j (%s)", (name, hint) => {
    const v = checkName(name, "token.name");
    expect(v).toHaveLength(1);
    expect(v[0]?.field).toBe("token.name");
    expect(v[0]?.description).toContain(hint);
  });
});

describe("checkIdentifier", () => {
  it.each(["acme", "user@example.com", "team:infra", "a", "A-b_c.d", "1", "x".repeat(128)])(
    "accepts %j",
    (id) => {
      expect(checkIdentifier(id, "org_id", { required: true, max: 128 })).toEqual([]);
    },
  );

  it.each(["-acme", "_a", "a b", "a/b", "é", "a\n", "x".repeat(129), "a,b", "a;b", "a*"])(
    "refuses %j",
    (id) => {
      const v = checkIdentifier(id, "team_id", { required: false });
      expect(v).toHaveLength(1);
      expect(v[0]?.field).toBe("team_id");
      expect(v[0]?.description).not.toContain(id);
    },
  );

  it("empty is fine unless required; max is honoured", () => {
    expect(checkIdentifier("", "team_id", { required: false, max: 128 })).toEqual([]);
    expect(checkIdentifier("", "team_id")).toEqual([]);
    expect(checkIdentifier("", "org_id", { required: true })[0]?.description).toContain("required");
    expect(checkIdentifier("abcdef", "owner_id", { max: 5 })[0]?.description).toContain("5");
  });
});

describe("checkMetadata", () => {
  it("accepts a good map", () => {
    expect(
      checkMetadata({ redaction_tier: "strict", region: "eu-west", "a.b-c": "ü ✓" }, "metadata"),
    ).toEqual([]);
    expect(checkMetadata({}, "metadata")).toEqual([]);
  });

  it("names the key in the path and never echoes a value", () => {
    const secret = "s3cr3t\nvalue";
    const v = checkMetadata({ region: secret }, "metadata");
    expect(v).toEqual([{ field: 'metadata["region"]', description: expect.any(String) }]);
    expect(JSON.stringify(v)).not.toContain("s3cr3t");
  });

  it.each([
    [{ "bad key": "v" }, "metadata"],
    [{ "": "v" }, "metadata"],
    [{ ["k".repeat(65)]: "v" }, "metadata"],
    [{ "k\n": "v" }, "metadata"],
    [{ k: "" }, 'metadata["k"]'],
    [{ k: "x".repeat(513) }, 'metadata["k"]'],
    [{ k: "a\u0001b" }, 'metadata["k"]'],
    [{ k: "\ud800" }, 'metadata["k"]'],
  ] as [Record<string, string>, string][])("refuses %j at %s", (map, field) => {
    const v = checkMetadata(map, "metadata");
    expect(v).toHaveLength(1);
    expect(v[0]?.field).toBe(field);
  });

  it("allows empty values when asked (batch removal)", () => {
    expect(checkMetadata({ k: "" }, "metadata", { allowEmptyValues: true })).toEqual([]);
    expect(checkMetadata({ k: "" }, "metadata", { allowEmptyValues: false })).toHaveLength(1);
  });

  it("limits the number of entries to 32", () => {
    const map = (n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
    expect(checkMetadata(map(32), "metadata")).toEqual([]);
    const v = checkMetadata(map(33), "token.metadata");
    expect(v).toEqual([{ field: "token.metadata", description: expect.stringContaining("32") }]);
  });

  it("accepts 64-char keys and 512-char values", () => {
    expect(checkMetadata({ ["k".repeat(64)]: "v".repeat(512) }, "metadata")).toEqual([]);
  });
});

describe("checkPermissions", () => {
  it("accepts valid, distinct permissions", () => {
    expect(
      checkPermissions(["*", "deploy:*", "tokens:read", "platform:admin"], "permissions"),
    ).toEqual([]);
    expect(checkPermissions([], "permissions")).toEqual([]);
  });

  it("names each bad entry by index", () => {
    const v = checkPermissions(["tokens:read", "Bad", "tokens:read", "x:"], "permissions");
    expect(v.map((x) => x.field)).toEqual(["permissions[1]", "permissions[2]", "permissions[3]"]);
    expect(v[1]?.description).toContain("duplicate");
  });

  it("caps the list at 100", () => {
    const list = Array.from({ length: 101 }, (_, i) => `r${i}:read`);
    expect(checkPermissions(list.slice(0, 100), "permissions")).toEqual([]);
    expect(checkPermissions(list, "permissions")).toEqual([
      { field: "permissions", description: expect.stringContaining("100") },
    ]);
  });
});

describe("checkCidrs", () => {
  it("normalizes and removes duplicates after normalization", () => {
    const r = checkCidrs(
      ["10.1.2.3/8", "10.0.0.0/8", "::ffff:1.2.3.4", "1.2.3.4", "2001:DB8::/32"],
      "allowed_cidrs",
    );
    expect(r.violations).toEqual([]);
    expect(r.normalized).toEqual(["10.0.0.0/8", "1.2.3.4/32", "2001:db8::/32"]);
  });

  it("names bad entries by index", () => {
    const r = checkCidrs(["10.0.0.0/8", "10.0.0.0/33", "abc"], "allowed_cidrs");
    expect(r.violations.map((v) => v.field)).toEqual(["allowed_cidrs[1]", "allowed_cidrs[2]"]);
    expect(r.violations[0]?.description).not.toContain("/33");
  });

  it("caps the list at 100", () => {
    const list = Array.from({ length: 101 }, (_, i) => `10.0.${i}.0/24`);
    expect(checkCidrs(list.slice(0, 100), "allowed_cidrs").normalized).toHaveLength(100);
    expect(checkCidrs(list, "allowed_cidrs").violations).toHaveLength(1);
  });
});

describe("checkPageSize", () => {
  it.each([
    [0, 50],
    [1, 1],
    [50, 50],
    [1000, 1000],
  ])("%i → %i", (n, size) => {
    expect(checkPageSize(n, "page_size")).toEqual({ violations: [], size });
  });

  it.each([-1, -1000, 1001, 2 ** 31 - 1, 1.5, Number.NaN])("refuses %d", (n) => {
    const r = checkPageSize(n, "page_size");
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]?.field).toBe("page_size");
  });

  it("names the limit", () => {
    expect(checkPageSize(1001, "page_size").violations[0]?.description).toContain("1000");
  });
});

describe("checkIds", () => {
  it("accepts distinct token ids", () => {
    expect(checkIds([TOK, TOK2], "ids")).toEqual([]);
  });

  it("refuses an empty list, malformed ids and duplicates", () => {
    expect(checkIds([], "ids")).toHaveLength(1);
    const leaked = "lk_p_0000000000000000000000000000000000000000000abcdef";
    const v = checkIds([TOK, leaked, TOK], "ids");
    expect(v.map((x) => x.field)).toEqual(["ids[1]", "ids[2]"]);
    expect(JSON.stringify(v)).not.toContain(leaked);
  });

  it("honours max (default 1000)", () => {
    const ids = Array.from({ length: 3 }, (_, i) => `tok_01ARZ3NDEKTSV4RRFFQ69G5FA${i}`);
    expect(checkIds(ids, "ids", { max: 2 })).toEqual([
      { field: "ids", description: expect.stringContaining("2") },
    ]);
    const many = Array.from({ length: 1001 }, () => TOK);
    expect(checkIds(many, "ids")[0]?.description).toContain("1000");
  });
});

describe("checkFreeText", () => {
  it.each(["", "rotated after leak", "ticket #123 — see runbook", "x".repeat(500)])(
    "accepts %j",
    (s) => {
      expect(checkFreeText(s, "reason", 500)).toEqual([]);
    },
  );

  it.each(["x".repeat(501), "line1\nline2", "a\rb", "\u001b[31m", "a\u0085", "\udfff"])(
    "refuses %j",
    (s) => {
      const v = checkFreeText(s, "reason", 500);
      expect(v).toHaveLength(1);
      expect(v[0]?.field).toBe("reason");
    },
  );
});

describe("metadata values and free text refuse what names refuse", () => {
  it.each(["a\u2028b", "a\u2029b", "\u202egnirts", "a\u2066b\u2069", "a\u0085b", "a\u001bb"])(
    "refuses %j",
    (value) => {
      expect(checkMetadata({ tier: value }, "metadata")[0]?.field).toBe('metadata["tier"]');
      expect(checkFreeText(value, "reason", 100)).toHaveLength(1);
    },
  );

  it("still accepts ordinary non-ASCII text", () => {
    expect(checkMetadata({ region: "Zürich – 東京 ✓" }, "metadata")).toEqual([]);
  });
});

describe("request ids never hold a token", () => {
  const token = generateToken("lk", TokenType.CICD);
  const other = generateToken("acme", TokenType.PERSONAL);

  it.each([
    ["a bare token", token],
    ["a token of another prefix", other],
    ["a token inside text", `retry-${token}-2`],
    ["a URL-encoded token", `x%5F${token.replaceAll("_", "%5F")}`],
  ])("refuses %s", (_label, value) => {
    expect(containsTokenShape(value)).toBe(true);
    expect(checkRequestId(value, "request_id", 1000)[0]?.field).toBe("request_id");
  });

  it.each(["req-1", "0af7651916cd43dd8448eb211c80319c", "lk_p_short"])("accepts %j", (value) => {
    expect(checkRequestId(value, "request_id", 128)).toEqual([]);
  });

  it("scrubs a header: token parts redacted, unprintables dropped, length capped", () => {
    expect(scrubRequestId(`trace-${token}`, 128)).toBe("trace-[redacted]");
    expect(scrubRequestId(token.replaceAll("_", "%5F"), 128)).toBe("[redacted]");
    expect(scrubRequestId("a\nb\u202ec", 128)).toBe("abc");
    expect(scrubRequestId("x".repeat(300), 128)).toHaveLength(128);
    expect(scrubRequestId(undefined, 128)).toBe("");
  });
});

describe("checkTimestamp and checkDuration", () => {
  it("accepts the Timestamp range and refuses what lies outside it", () => {
    expect(checkTimestamp({ seconds: 0n, nanos: 5_000_000 }, "t")).toEqual({
      violations: [],
      ms: 5,
    });
    expect(checkTimestamp({ seconds: 253_402_300_799n, nanos: 999_999_999 }, "t").ms).toBe(
      MAX_TIMESTAMP_MS,
    );
    for (const bad of [
      { seconds: 253_402_300_800n, nanos: 0 },
      { seconds: 6_249_000_000_000n, nanos: 0 },
      { seconds: -62_135_596_801n, nanos: 0 },
      { seconds: 0n, nanos: -1 },
      { seconds: 0n, nanos: 1_000_000_000 },
    ]) {
      expect(checkTimestamp(bad, "unused_since").violations[0]?.field).toBe("unused_since");
    }
  });

  it("accepts the Duration range and refuses what lies outside it", () => {
    expect(checkDuration({ seconds: 2n, nanos: 500_000_000 }, "d")).toEqual({
      violations: [],
      ms: 2500,
    });
    expect(checkDuration({ seconds: -1n, nanos: 0 }, "d").ms).toBe(-1000);
    for (const bad of [
      { seconds: 315_576_000_001n, nanos: 0 },
      { seconds: 1n, nanos: -1 },
      { seconds: 0n, nanos: 1_000_000_000 },
    ]) {
      expect(checkDuration(bad, "ttl").violations[0]?.field).toBe("ttl");
    }
  });
});

describe("cidrsNarrowed", () => {
  it.each([
    [[], ["10.0.0.0/8"], true],
    [["10.0.0.0/8"], ["10.1.0.0/16", "10.2.3.4/32"], true],
    [["10.0.0.0/8"], ["10.0.0.0/8"], true],
    [["2001:db8::/32"], ["2001:db8:1::/48"], true],
    [[], [], true],
    [["10.0.0.0/8"], [], false],
    [["10.0.0.0/8"], ["0.0.0.0/0"], false],
    [["10.0.0.0/8"], ["10.1.0.0/16", "192.168.0.0/16"], false],
    [["10.0.0.0/16"], ["10.0.0.0/8"], false],
    [["2001:db8::/32"], ["10.0.0.0/8"], false],
    [["0.0.0.0/0"], ["::/0"], false],
  ])("%j → %j narrows: %s", (before, after, narrows) => {
    expect(cidrsNarrowed(before, after)).toBe(narrows);
  });
});
