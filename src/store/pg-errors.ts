/**
 * Which database failures are worth retrying. A batch writer that retries everything blocks
 * forever behind one bad row; one that retries nothing loses every batch in flight when
 * Postgres restarts (an `admin_shutdown` arrives as an ordinary server error). This decides.
 */

/** SQLSTATEs of a server that is going away or not there yet: the data itself was fine. */
const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set([
  "57P01", // admin_shutdown (pg_ctl stop -m fast)
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, shutting down, recovering)
  "57P05", // idle_session_timeout
  "53300", // too_many_connections
  "40001", // serialization_failure
  "40P01", // deadlock_detected
]);

/** Driver and socket codes of a connection that failed, closed or never opened. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

function field(err: unknown, name: string): unknown {
  return typeof err === "object" && err !== null && name in err
    ? (err as Record<string, unknown>)[name]
    : undefined;
}

/**
 * True when `err` says the connection to Postgres failed (or the server is restarting) rather
 * than that Postgres refused the data: SQLSTATE class 08 and 57P01/57P02/57P03, postgres.js's
 * CONNECTION_CLOSED / CONNECTION_DESTROYED / CONNECT_TIMEOUT, socket errors such as
 * ECONNRESET / ECONNREFUSED, and {@link RetryableError}. Anything else that carries a SQLSTATE
 * is the server refusing the statement.
 */
export function isRetryableDbError(err: unknown): boolean {
  if (err instanceof RetryableError) return true;
  const code = field(err, "code");
  if (typeof code === "string") {
    if (RETRYABLE_CODES.has(code) || RETRYABLE_SQLSTATES.has(code)) return true;
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  const errno = field(err, "errno");
  if (typeof errno === "string" && RETRYABLE_CODES.has(errno)) return true;
  // A server error carries a severity; an error without one never reached a server.
  return field(err, "severity") === undefined && code === undefined;
}

/** A failure the caller knows to be transient (e.g. a COPY whose completion never came). */
export class RetryableError extends Error {
  override readonly name = "RetryableError";
}
