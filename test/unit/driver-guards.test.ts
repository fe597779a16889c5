import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { unguardedDriverFiles } from "../../src/store/driver-guards.js";

describe("postgres.js guards (scripts/patch-postgres.mjs)", () => {
  it("are in the installed driver (npm ci ran the postinstall)", () => {
    expect(unguardedDriverFiles()).toEqual([]);
  });

  it("are reported missing, file by file, from a driver installed without them", () => {
    const root = mkdtempSync(join(tmpdir(), "latchkey-pg-"));
    for (const dir of ["src", "cjs/src"]) mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(join(root, "src/connection.js"), "function nextWrite(fn) {}\n");
    writeFileSync(join(root, "cjs/src/connection.js"), "// (scripts/patch-postgres.mjs)\n");
    expect(unguardedDriverFiles(join(root, "cjs/src/index.js"))).toEqual([
      join(root, "src/connection.js"),
    ]);
  });
});
