import { spawn } from "node:child_process";
import { resolve } from "node:path";

/** The built CLI, as `npx latchkey` runs it. */
export const CLI = resolve(import.meta.dirname, "../../dist/src/cli/main.js");

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliRun {
  /** Environment on top of PATH (nothing else leaks in from the test process). */
  readonly env?: Record<string, string>;
  /** Written to stdin, which is then closed (default: closed at once). */
  readonly input?: string;
  /** A shell pipeline the CLI's stdout goes through (`head -2`); runs under bash. */
  readonly pipeTo?: string;
  /** Run inside a pseudo-terminal (util-linux `script`), so stdin and stderr are TTYs. */
  readonly tty?: boolean;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Runs the built `latchkey` CLI as a user would, with a clean environment. A pipe or a terminal
 * can be put around it to test EPIPE and the interactive confirmation.
 */
export function runCli(args: readonly string[], opts: CliRun = {}): Promise<CliResult> {
  const env = { PATH: process.env.PATH ?? "", ...opts.env };
  const command = [process.execPath, CLI, ...args].map(shellQuote).join(" ");
  let file = process.execPath;
  let argv: string[] = [CLI, ...args];
  if (opts.tty === true) {
    // script(1) gives the command a pseudo-terminal; stdin of `script` feeds the terminal.
    file = "script";
    argv = ["-qefc", command, "/dev/null"];
  } else if (opts.pipeTo !== undefined) {
    file = "bash";
    argv = ["-o", "pipefail", "-c", `${command} | ${opts.pipeTo}`];
  }
  return new Promise((done, fail) => {
    const child = spawn(file, argv, { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}
