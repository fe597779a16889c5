import { describe, expect, it } from "vitest";
import { isAuditId, newAuditId } from "../../src/domain/ids.js";
import { decodeCopyText, encodeAuditPrefix } from "../../src/store/audit-writer.js";

describe("audit ids made per millisecond", () => {
  it("stay well formed and strictly increasing, also when the clock stands still or goes back", () => {
    const t = Date.now();
    const times = [t, t, t + 1, t + 1, t - 50, t + 2, t + 2, t - 1];
    let previous = "";
    for (const ms of times) {
      for (let i = 0; i < 500; i++) {
        const id = newAuditId(ms);
        expect(isAuditId(id)).toBe(true);
        expect(id > previous).toBe(true);
        previous = id;
      }
    }
  });
});

describe("COPY text of audit rows", () => {
  it("decodes back to the columns it was encoded from, escapes included", () => {
    const prefix = encodeAuditPrefix({
      orgId: "org\twith tab",
      actorId: "tok_1",
      action: "token.verify",
      tokenId: "tok_1",
      decision: 1,
      code: "VALID",
    });
    const line = `aud_X\t2026-01-01T00:00:00.000Z\t${prefix}1.2.3.4\tGET\t/a\\\\b\\nc\treq\t\\N\n`;
    expect(decodeCopyText(line + line)).toEqual([
      [
        "aud_X",
        "2026-01-01T00:00:00.000Z",
        "org\twith tab",
        "tok_1",
        "token.verify",
        "tok_1",
        "1",
        "VALID",
        "1.2.3.4",
        "GET",
        "/a\\b\nc",
        "req",
        null,
      ],
      expect.any(Array),
    ]);
  });
});
