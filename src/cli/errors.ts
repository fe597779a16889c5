import { Code, ConnectError } from "@connectrpc/connect";
import { USAGE } from "./usage.js";

/** Process exit codes: 1 for a failed or denied call, 2 for a command line we cannot run. */
export const ExitCode = { failure: 1, usage: 2 } as const;

/** A command line we cannot run; reported with the help text and exit code 2. */
export class UsageError extends Error {}

/**
 * Turns an error from a command into a one-line message and an exit code, so every command
 * fails the same way. Anything unexpected is rethrown: a bug should show its stack.
 */
export function reportError(err: unknown): void {
  if (err instanceof UsageError) {
    process.stderr.write(`latchkey: ${err.message}\n\n${USAGE}\n`);
    process.exitCode = ExitCode.usage;
  } else if (err instanceof ConnectError) {
    process.stderr.write(`latchkey: ${Code[err.code]}: ${err.rawMessage}\n`);
    process.exitCode = ExitCode.failure;
  } else if (
    err instanceof Error &&
    "code" in err &&
    err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
  ) {
    process.stderr.write(`latchkey: ${err.message}\n`);
    process.exitCode = ExitCode.usage;
  } else {
    throw err;
  }
}
