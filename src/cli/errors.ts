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

/** Node's codes for a server certificate that does not chain to a trusted CA. */
const UNTRUSTED_SERVER = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_UNTRUSTED",
]);

/** Node's codes for the server's TLS alert refusing our client certificate, or its absence. */
const CLIENT_REFUSED = new Set([
  "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
  "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN",
  "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
]);

/**
 * What went wrong in the TLS handshake under a failed call, and what to give the CLI about
 * it; undefined when the failure is not about certificates. connect-node keeps Node's error
 * (with its `code`, and OpenSSL's short `reason`) as the ConnectError's cause.
 */
function tlsFailure(err: ConnectError, clientCert: boolean): string | undefined {
  const cause: unknown = err.cause;
  const code: unknown = cause instanceof Error ? Reflect.get(cause, "code") : undefined;
  // Node verifies a client certificate after the TLS 1.3 handshake and drops the connection
  // without an alert: the call ends in RST_STREAM CANCEL (Canceled; the server never answers
  // a live caller so) or a reset socket, depending on timing.
  const dropped = err.code === Code.Canceled || code === "ECONNRESET" || code === "EPIPE";
  if (dropped && clientCert) {
    return `the server dropped the connection (${err.rawMessage}); a server requiring client certificates does so when it does not trust --client-cert (is it signed by the server's client CA?)`;
  }
  if (!(cause instanceof Error)) return undefined;
  const reason: unknown = Reflect.get(cause, "reason");
  const why = typeof reason === "string" ? reason : cause.message;
  if (typeof code !== "string") return undefined;
  if (UNTRUSTED_SERVER.has(code)) {
    return `the server's TLS certificate is not trusted (${why}); give the CA that signed it with --ca-cert FILE or LATCHKEY_CACERT`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID" || code.startsWith("CERT_")) {
    return `the server's TLS certificate was refused (${why})`;
  }
  if (CLIENT_REFUSED.has(code)) {
    return `the server wants a client certificate signed by its client CA (${why}); give --client-cert FILE and --client-key FILE, or LATCHKEY_CLIENT_CERT and LATCHKEY_CLIENT_KEY`;
  }
  return undefined;
}

/**
 * Turns any error into one line on stderr and an exit code, so every command fails the same
 * way and no input ever ends in a stack trace. Unexpected errors say so, without the stack.
 */
export function reportError(err: unknown, server: string | undefined, clientCert = false): number {
  if (err instanceof UsageError) {
    const help = err.command === undefined ? "latchkey help" : `latchkey help ${err.command}`;
    process.stderr.write(`latchkey: ${err.message}\n(see '${help}')\n`);
    return ExitCode.usage;
  }
  if (err instanceof ConnectError) {
    const tls = tlsFailure(err, clientCert);
    if (tls !== undefined) {
      process.stderr.write(`latchkey: cannot reach ${server ?? "the server"}: ${tls}\n`);
      return ExitCode.unreachable;
    }
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
