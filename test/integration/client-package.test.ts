import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminHarness, startAdminHarness } from "../helpers/admin-harness.js";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

/** The ```ts block of the README's "From code" section, exactly as written there. */
function fromCodeSnippet(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## From code"));
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error("README has no ```ts block under '## From code'");
  return block;
}

const PACKAGE = "@latchkey/client";

/** The part of the package's API this file calls. */
interface ClientModule {
  createLatchkeyClient(options: { baseUrl: string; token: string; protocol: "connect" }): {
    admin: { listTokens(req: object): Promise<{ tokens: unknown[] }> };
    verify: { verifyToken(req: { token: string }): Promise<{ code: number }> };
  };
  VerifyCode: Record<string, number>;
}

let h: AdminHarness;
let dir: string;

beforeAll(async () => {
  h = await startAdminHarness();
  // A project of its own that sees the repository's node_modules (where npm's workspace link
  // puts @latchkey/client), as a service that installed the package would.
  dir = mkdtempSync(join(tmpdir(), "latchkey-client-"));
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
});

afterAll(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("@latchkey/client and the README's From code snippet", () => {
  it("type-checks under strict settings and runs against a real server", async () => {
    writeFileSync(join(dir, "snippet.ts"), fromCodeSnippet());
    const compiled = await run(
      process.execPath,
      [
        TSC,
        "--strict",
        "--exactOptionalPropertyTypes",
        "--noUncheckedIndexedAccess",
        "--module",
        "nodenext",
        "--target",
        "es2022",
        "--types",
        "node",
        "--skipLibCheck",
        "snippet.ts",
      ],
      { cwd: dir },
    ).catch((err: { stdout?: string }) => ({ stdout: `tsc failed: ${err.stdout ?? ""}` }));
    expect(compiled.stdout).toBe("");

    const { stdout } = await run(process.execPath, ["snippet.js"], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        LK_TOKEN: h.bootstrapSecret,
        LATCHKEY_SERVER: `http://${h.address}`,
      },
    });
    const [id, code] = stdout.trim().split(" ");
    expect(code).toBe("VALID");
    const stored = await h.client(h.bootstrapSecret).getToken({ id: id ?? "" });
    expect(stored.token?.name).toBe("deploy bot");
  });

  it("talks Connect to the HTTP listener with protocol: connect", async () => {
    // Through a variable, so `tsc -p .` (npm run check) does not need the package built.
    const { createLatchkeyClient, VerifyCode } = (await import(PACKAGE)) as ClientModule;
    const latchkey = createLatchkeyClient({
      baseUrl: h.httpUrl,
      token: h.bootstrapSecret,
      protocol: "connect",
    });
    const { tokens } = await latchkey.admin.listTokens({});
    expect(tokens.length).toBeGreaterThan(0);
    const check = await latchkey.verify.verifyToken({ token: "lk_p_x" });
    expect(check.code).toBe(VerifyCode.MALFORMED);
    expect(VerifyCode.MALFORMED).toBeGreaterThan(0);
  });
});
