import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BASE62_ALPHABET,
  displayHint,
  formatToken,
  generateToken,
  hashToken,
  isValidPrefix,
  parseToken,
  tokenPattern,
  typeFromLetter,
  typeLetter,
} from "../../src/domain/token-format.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TYPES = [TokenType.PERSONAL, TokenType.TEAM, TokenType.CICD, TokenType.EPHEMERAL] as const;

/** Independent reference encoder: repeated division on a bigint. */
function base62(value: bigint, width: number): string {
  let s = "";
  let v = value;
  while (v > 0n) {
    s = ALPHABET.charAt(Number(v % 62n)) + s;
    v /= 62n;
  }
  return s.padStart(width, "0");
}

/** Reference token builder for cross-checking the module. */
function referenceToken(prefix: string, letter: string, bytes: Uint8Array): string {
  const head = `${prefix}_${letter}_${base62(BigInt(`0x${Buffer.from(bytes).toString("hex")}`), 43)}`;
  return head + base62(BigInt(crc32(head)), 6);
}

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const tokenType = fc.constantFrom(...TYPES);

describe("alphabet and letters", () => {
  it("uses 0-9A-Za-z in that order", () => {
    expect(BASE62_ALPHABET).toBe(ALPHABET);
  });

  it.each([
    [TokenType.PERSONAL, "p"],
    [TokenType.TEAM, "t"],
    [TokenType.CICD, "c"],
    [TokenType.EPHEMERAL, "e"],
  ] as const)("type %i ↔ letter %s", (type, letter) => {
    expect(typeLetter(type)).toBe(letter);
    expect(typeFromLetter(letter)).toBe(type);
  });

  it("has no letter for UNSPECIFIED and no type for other letters", () => {
    expect(() => typeLetter(TokenType.UNSPECIFIED)).toThrow();
    for (const l of ["", "P", "x", "pp", "_"]) expect(typeFromLetter(l)).toBeUndefined();
  });

  it.each([
    ["lk", true],
    ["a", true],
    ["acme2", true],
    ["abcdefghijklmnop", true],
    ["abcdefghijklmnopq", false],
    ["", false],
    ["2lk", false],
    ["Lk", false],
    ["l_k", false],
    ["l-k", false],
  ])("prefix %j valid=%s", (prefix, ok) => {
    expect(isValidPrefix(prefix)).toBe(ok);
  });
});

describe("fixed vectors", () => {
  it("all-zero secret", () => {
    const t = formatToken("lk", TokenType.PERSONAL, new Uint8Array(32));
    const head = `lk_p_${"0".repeat(43)}`;
    expect(t).toBe(head + base62(BigInt(crc32(head)), 6));
    expect(t).toHaveLength(54);
    expect(parseToken(t, "lk")).toEqual({ prefix: "lk", type: TokenType.PERSONAL });
  });

  it("all-0xff secret is the largest 43-digit body allowed", () => {
    const t = formatToken("lk", TokenType.CICD, new Uint8Array(32).fill(255));
    const body = base62(2n ** 256n - 1n, 43);
    expect(body).toHaveLength(43);
    expect(t.slice(5, 48)).toBe(body);
    expect(t.slice(48)).toBe(base62(BigInt(crc32(`lk_c_${body}`)), 6));
    expect(parseToken(t, "lk")?.type).toBe(TokenType.CICD);
  });

  it("secret 0x00..01 ends its body in 1", () => {
    const b = new Uint8Array(32);
    b[31] = 1;
    const t = formatToken("acme", TokenType.TEAM, b);
    expect(t.startsWith(`acme_t_${"0".repeat(42)}1`)).toBe(true);
  });

  it("checksum of a known string matches zlib's CRC-32 written in base62", () => {
    // crc32("lk_e_" + "0"*43) computed independently and left-padded to 6 digits.
    const head = `lk_e_${"0".repeat(43)}`;
    const crc = crc32(head);
    let n = crc;
    let digits = "";
    for (let i = 0; i < 6; i++) {
      digits = ALPHABET.charAt(n % 62) + digits;
      n = Math.floor(n / 62);
    }
    expect(formatToken("lk", TokenType.EPHEMERAL, new Uint8Array(32))).toBe(head + digits);
  });

  it("refuses a body above 2^256-1 even with a correct checksum", () => {
    const head = `lk_p_${"z".repeat(43)}`;
    expect(parseToken(head + base62(BigInt(crc32(head)), 6), "lk")).toBeUndefined();
  });

  it("refuses bad inputs to formatToken", () => {
    expect(() => formatToken("LK", TokenType.PERSONAL, new Uint8Array(32))).toThrow();
    expect(() => formatToken("lk", TokenType.PERSONAL, new Uint8Array(31))).toThrow();
    expect(() => formatToken("lk", TokenType.UNSPECIFIED, new Uint8Array(32))).toThrow();
  });
});

describe("generateToken / parseToken", () => {
  it("matches the reference encoder for random secrets", () => {
    fc.assert(
      fc.property(bytes32, tokenType, (b, type) => {
        expect(formatToken("lk", type, b)).toBe(referenceToken("lk", typeLetter(type), b));
      }),
    );
  });

  it("every generated token parses with its type", () => {
    fc.assert(
      fc.property(
        tokenType,
        fc.constantFrom("lk", "a", "acme", "abcdefghijklmnop"),
        (type, prefix) => {
          const t = generateToken(prefix, type);
          expect(t).toHaveLength(prefix.length + 52);
          expect(parseToken(t, prefix)).toEqual({ prefix, type });
        },
      ),
      { numRuns: 500 },
    );
  });

  it("generated tokens differ", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(generateToken("lk", TokenType.PERSONAL));
    expect(seen.size).toBe(1000);
  });

  it("any single-character substitution is rejected", () => {
    const replacements = `${ALPHABET}_-`;
    fc.assert(
      fc.property(bytes32, tokenType, fc.nat(), (b, type, pos) => {
        const t = formatToken("lk", type, b);
        const i = pos % t.length;
        for (const c of replacements) {
          if (c === t[i]) continue;
          const mutated = t.slice(0, i) + c + t.slice(i + 1);
          expect(parseToken(mutated, "lk")).toBeUndefined();
        }
      }),
      { numRuns: 300 },
    );
  });

  it("truncation and extension are rejected", () => {
    fc.assert(
      fc.property(bytes32, tokenType, fc.integer({ min: 1, max: 53 }), (b, type, cut) => {
        const t = formatToken("lk", type, b);
        expect(parseToken(t.slice(0, t.length - cut), "lk")).toBeUndefined();
        expect(parseToken(t.slice(cut), "lk")).toBeUndefined();
        expect(parseToken(`${t}${"0".repeat(cut)}`, "lk")).toBeUndefined();
        expect(parseToken(`x${t}`, "lk")).toBeUndefined();
      }),
    );
  });

  it("rejects garbage, the wrong prefix and oversized input", () => {
    const t = generateToken("lk", TokenType.PERSONAL);
    for (const bad of [
      "",
      "lk",
      "lk_p_",
      `Bearer ${t}`,
      `${t} `,
      ` ${t}`,
      t.toUpperCase(),
      "a".repeat(257),
      "a".repeat(100_000),
      t.replace("lk_", "lk-"),
      `${t.slice(0, 10)}é${t.slice(11)}`,
    ]) {
      expect(parseToken(bad, "lk")).toBeUndefined();
    }
    expect(parseToken(t, "acme")).toBeUndefined();
    expect(parseToken(t, "l")).toBeUndefined();
  });
});

describe("hashToken", () => {
  it("is SHA-256 of the whole string, 32 bytes, deterministic", () => {
    fc.assert(
      fc.property(bytes32, tokenType, (b, type) => {
        const t = formatToken("lk", type, b);
        const h = hashToken(t);
        expect(h).toHaveLength(32);
        expect(h.equals(hashToken(t))).toBe(true);
        expect(h.equals(createHash("sha256").update(t).digest())).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it("differs for different tokens", () => {
    const a = hashToken(generateToken("lk", TokenType.PERSONAL));
    const b = hashToken(generateToken("lk", TokenType.PERSONAL));
    expect(a.equals(b)).toBe(false);
  });
});

describe("displayHint", () => {
  it("keeps prefix, letter and the last 4 characters", () => {
    const t = formatToken("lk", TokenType.PERSONAL, randomBytes(32));
    expect(displayHint(t)).toBe(`lk_p_…${t.slice(-4)}`);
  });

  it("never shows more than the last 4 secret characters", () => {
    fc.assert(
      fc.property(bytes32, tokenType, (b, type) => {
        const t = formatToken("acme", type, b);
        const hint = displayHint(t);
        const [head, tail] = hint.split("…");
        expect(head).toBe(`acme_${typeLetter(type)}_`);
        expect(tail).toBe(t.slice(-4));
        expect(hint.length).toBe("acme_p_…".length + 4);
      }),
    );
  });

  it("reveals little of malformed input", () => {
    expect(displayHint("")).toBe("…");
    expect(displayHint("short")).toBe("…");
    const secretish = "s".repeat(40);
    expect(displayHint(secretish)).toBe("…ssss");
    expect(displayHint(`${"x".repeat(30)}_p_${"y".repeat(40)}`)).toBe("…yyyy");
  });
});

describe("tokenPattern", () => {
  it("matches generated tokens, also inside text", () => {
    fc.assert(
      fc.property(tokenType, (type) => {
        const t = generateToken("lk", type);
        const re = tokenPattern("lk");
        expect(re.test(t)).toBe(true);
        expect(re.test(`export TOKEN="${t}"\n`)).toBe(true);
        expect(re.exec(`x ${t} y`)?.[0]).toBe(t);
      }),
      { numRuns: 100 },
    );
  });

  it("rejects mutations of the prefix and the letter", () => {
    const t = generateToken("lk", TokenType.PERSONAL);
    const body = t.slice(5);
    const re = tokenPattern("lk");
    for (const bad of [
      `lx_p_${body}`,
      `kk_p_${body}`,
      `alk_p_${body}`,
      `LK_p_${body}`,
      `lk_x_${body}`,
      `lk_P_${body}`,
      `lk-p-${body}`,
      `lk_p_${body.slice(1)}`,
      `lk_p_${body}Z`,
    ]) {
      expect(re.test(bad)).toBe(false);
    }
  });

  it("escapes the prefix and is reusable (not global)", () => {
    const re = tokenPattern("lk");
    expect(re.flags).not.toContain("g");
    expect(tokenPattern("a.b").source.startsWith("\\ba\\.b_")).toBe(true);
  });
});
