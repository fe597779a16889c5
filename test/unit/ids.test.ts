import { describe, expect, it } from "vitest";
import {
  isAuditId,
  isLeaseId,
  isTokenId,
  newAuditId,
  newLeaseId,
  newTokenId,
} from "../../src/domain/ids.js";

describe("ids", () => {
  it("have their prefix and a 26-character ULID", () => {
    expect(newTokenId()).toMatch(/^tok_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(newAuditId()).toMatch(/^aud_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(newLeaseId()).toMatch(/^lse_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(isTokenId(newTokenId())).toBe(true);
    expect(isAuditId(newAuditId())).toBe(true);
    expect(isLeaseId(newLeaseId())).toBe(true);
  });

  it("sort in creation order, also within one millisecond", () => {
    const ids = Array.from({ length: 5000 }, () => newTokenId());
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it.each([
    "",
    "tok_",
    "tok_01ARZ3NDEKTSV4RRFFQ69G5FA",
    "tok_01ARZ3NDEKTSV4RRFFQ69G5FAVV",
    "tok_01arz3ndektsv4rrffq69g5fav",
    "tok_01ARZ3NDEKTSV4RRFFQ69G5FAI",
    "tok_01ARZ3NDEKTSV4RRFFQ69G5FAL",
    "tok_01ARZ3NDEKTSV4RRFFQ69G5FAO",
    "tok_01ARZ3NDEKTSV4RRFFQ69G5FAU",
    "tok_81ARZ3NDEKTSV4RRFFQ69G5FAV",
    "aud_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "TOK_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    " tok_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "tok_01ARZ3NDEKTSV4RRFFQ69G5FAV\n",
  ])("isTokenId refuses %j", (s) => {
    expect(isTokenId(s)).toBe(false);
  });

  it("isTokenId accepts a valid id", () => {
    expect(isTokenId("tok_01ARZ3NDEKTSV4RRFFQ69G5FAV")).toBe(true);
    expect(isTokenId("tok_7ZZZZZZZZZZZZZZZZZZZZZZZZZ")).toBe(true);
  });
});
