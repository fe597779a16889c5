import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Process exit codes, documented in the README so scripts can branch on them: 0 done, 1 the
 * server answered and refused (or a verification was denied), 2 a command line we cannot run,
 * 3 the server (or its storage) could not be reached.
 */
export const ExitCode = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

/** A command line we cannot run; reported with a pointer to the help and exit code 2. */
export class UsageError extends Error {
  /** The command whose help the message points at (`tokens create`), if known. */
  command: string | undefined;
}

/** Anything that cannot reach the server: connection refused, DNS, timeouts. */
function unreachable(err: ConnectError): boolean {
  return err.code === Code.Unavailable || err.code === Code.DeadlineExceeded;
}

/**
 * Turns any error into one line on stderr and an exit code, so every command fails the same
 * way and no input ever ends in a stack trace. Unexpected errors say so, without the stack.
 */
export function reportError(err: unknown, server: string | undefined): number {
  if (err instanceof UsageError) {
    const help = err.command === undefined ? "latchkey help" : `latchkey help ${err.command}`;
    process.stderr.write(`latchkey: ${err.message}\n(see '${help}')\n`);
    return ExitCode.usage;
  }
  if (err instanceof ConnectError) {
    if (unreachable(err)) {
      process.stderr.write(
        `latchkey: ${Code[err.code]}: cannot reach ${server ?? "the server"}: ${err.rawMessage}\n`,
      );
      return ExitCode.unreachable;
    }
    process.stderr.write(`latchkey: ${Code[err.code]}: ${err.rawMessage}\n`);
    return ExitCode.refused;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`latchkey: unexpected error: ${message}\n`);
  return ExitCode.refused;
}
