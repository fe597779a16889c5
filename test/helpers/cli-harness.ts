import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { type AdminHarness, startAdminHarness } from "./admin-harness.js";
import { type CliResult, type CliRun, runCli } from "./cli-runner.js";

/** A real server and a private HOME for the CLI tests of one file. */
export interface CliHarness {
  /** The admin harness (valid inside tests and hooks). */
  readonly h: AdminHarness;
  /** The HOME the CLI runs with (its config file lives below it). */
  readonly home: string;
  /** Runs the built CLI with HOME and the environment the harness was asked for. */
  cli(args: readonly string[], opts?: CliRun): Promise<CliResult>;
}

/**
 * Starts a server before the file's tests and stops it after, and runs the built CLI against
 * it. `server` sets LATCHKEY_SERVER and `bootstrap` LATCHKEY_TOKEN (the platform token), so a
 * test only passes what it is about.
 */
export function useCliHarness(env: { server: boolean; bootstrap: boolean }): CliHarness {
  let h: AdminHarness | undefined;
  let home: string | undefined;
  beforeAll(async () => {
    h = await startAdminHarness();
    home = mkdtempSync(join(tmpdir(), "latchkey-cli-"));
  });
  afterAll(async () => {
    await h?.close();
    if (home !== undefined) rmSync(home, { recursive: true, force: true });
  });
  const need = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error("the CLI harness is used outside its tests");
    return v;
  };
  return {
    get h() {
      return need(h);
    },
    get home() {
      return need(home);
    },
    cli(args, opts = {}) {
      const server = need(h);
      return runCli(args, {
        ...opts,
        env: {
          HOME: need(home),
          ...(env.server ? { LATCHKEY_SERVER: `http://${server.address}` } : {}),
          ...(env.bootstrap ? { LATCHKEY_TOKEN: server.bootstrapSecret } : {}),
          ...opts.env,
        },
      });
    },
  };
}
