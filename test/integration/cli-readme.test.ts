import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminHarness, startAdminHarness } from "../helpers/admin-harness.js";

const ROOT = resolve(import.meta.dirname, "../..");

/** The first ```sh block of the README's CLI section (between its markers). */
function cliBlock(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(
    readme.indexOf("<!-- cli:start -->"),
    readme.indexOf("<!-- cli:end -->"),
  );
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error("no ```sh block in the README's CLI section");
  return block;
}

const hasJq = spawnSync("jq", ["--version"]).status === 0;
let h: AdminHarness;
let home: string;

beforeAll(async () => {
  h = await startAdminHarness();
  home = mkdtempSync(join(tmpdir(), "latchkey-cli-readme-"));
});

afterAll(async () => {
  await h.close();
  rmSync(home, { recursive: true, force: true });
});

describe.skipIf(!hasJq)("the README's CLI walk-through", () => {
  it("pastes line by line into bash and every line succeeds", async () => {
    if (!hasJq) console.log("jq not installed: skipping the README CLI walk-through");
    const script = `set -euo pipefail\n${cliBlock()}`;
    // Asynchronously: the server runs in this process and must keep answering.
    const { stdout: out } = await promisify(execFile)("bash", ["-c", script], {
      cwd: ROOT,
      encoding: "utf8",
      env: {
        PATH: process.env.PATH ?? "",
        HOME: home,
        LK_TOKEN: h.bootstrapSecret,
        // As if `npm start` listened here; login saves it and later lines need nothing else.
        LATCHKEY_SERVER: h.address,
        NO_UPDATE_NOTIFIER: "1",
        npm_config_update_notifier: "false",
      },
    });
    expect(out).toMatch(/^logged in to http:\/\/127\.0\.0\.1:\d+ as tok_/m);
    expect(out).toMatch(/^tok_\S+ GitHub Actions - Production \d{4}-\d\d-\d\dT/m);
    expect(out).toMatch(/^valid: VALID \(tok_/m);
    expect(out).toMatch(/^would revoke \d+ token\(s\)$/m);
    expect(out).toMatch(/^\d+$/m);
    // Fourteen `npx latchkey` runs, each starting npm and node: ~25 s on a loaded 2-core
    // machine, past the default 30 s test timeout now and then.
  }, 120_000);
});
