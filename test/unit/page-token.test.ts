import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodePageToken, encodePageToken, filterBinding } from "../../src/domain/page-token.js";

const key = randomBytes(32);
const binding = filterBinding({ caller: "tok_01", org: "acme", type: 1 });

describe("page tokens", () => {
  it("round-trip", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (b, cursor) => {
        expect(decodePageToken(key, b, encodePageToken(key, b, cursor))).toBe(cursor);
      }),
    );
    const t = encodePageToken(key, binding, "tok_01J0000000000000000000000");
    expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodePageToken(key, binding, t)).toBe("tok_01J0000000000000000000000");
  });

  it("refuses any single changed character", () => {
    const t = encodePageToken(key, binding, "tok_01J0000000000000000000000");
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (let i = 0; i < t.length; i++) {
      for (const c of alphabet) {
        if (c === t[i]) continue;
        expect(decodePageToken(key, binding, t.slice(0, i) + c + t.slice(i + 1))).toBeUndefined();
      }
    }
  });

  it("refuses another binding, another key, truncation and garbage", () => {
    const t = encodePageToken(key, binding, "cursor-1");
    expect(decodePageToken(key, filterBinding({ caller: "tok_02", org: "acme", type: 1 }), t)).toBe(
      undefined,
    );
    expect(decodePageToken(randomBytes(32), binding, t)).toBeUndefined();
    expect(decodePageToken(key, binding, t.slice(0, -1))).toBeUndefined();
    expect(decodePageToken(key, binding, t.slice(1))).toBeUndefined();
    expect(decodePageToken(key, binding, `${t}A`)).toBeUndefined();
    expect(decodePageToken(key, binding, `${t}=`)).toBeUndefined();
    for (const g of ["", "=", "!!!!", "AAAA", "a".repeat(5000), "tok_01", " ", `${t} `]) {
      expect(decodePageToken(key, binding, g)).toBeUndefined();
    }
  });

  it("binding and cursor cannot be shifted into each other", () => {
    const t = encodePageToken(key, "ab", "c");
    expect(decodePageToken(key, "a", t)).toBeUndefined();
  });

  it("refuses an empty key", () => {
    expect(() => encodePageToken(new Uint8Array(0), binding, "x")).toThrow();
  });
});

describe("filterBinding", () => {
  it("is independent of key order and drops undefined members", () => {
    expect(filterBinding({ b: 1, a: "x", c: undefined })).toBe(filterBinding({ a: "x", b: 1 }));
    expect(filterBinding({ a: { y: 1, x: 2 } })).toBe('{"a":{"x":2,"y":1}}');
  });

  it("distinguishes different filters and types", () => {
    const seen = new Set([
      filterBinding({ a: "1" }),
      filterBinding({ a: 1 }),
      filterBinding({ a: 1n }),
      filterBinding({ a: null }),
      filterBinding({ a: "" }),
      filterBinding({ a: true }),
      filterBinding({ a: [1, 2] }),
      filterBinding({ a: [2, 1] }),
      filterBinding({ b: "1" }),
    ]);
    expect(seen.size).toBe(9);
  });

  it("accepts a list of parts and keeps its order", () => {
    expect(filterBinding(["tok_1", "acme", "1"])).toBe('["tok_1","acme","1"]');
    expect(filterBinding(["a", "b"])).not.toBe(filterBinding(["b", "a"]));
  });

  it("renders dates canonically", () => {
    expect(filterBinding({ since: new Date(0) })).toBe('{"since":"1970-01-01T00:00:00.000Z"}');
  });
});
