import { type DestinationStream, type Logger as PinoLogger, pino } from "pino";

/** The logger every part of latchkey receives (pino's, so child loggers and levels work). */
export type Logger = PinoLogger;

/** Log levels accepted by {@link createLogger}; the same set config.ts validates. */
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/**
 * Paths pino blanks out before a line is written. Secrets exist once in memory and must never
 * reach a log line, even when a careless call logs a whole request, header map or error with
 * the token attached, so the common shapes are covered one and two levels deep.
 */
export const REDACT_PATHS: readonly string[] = [
  "authorization",
  "secret",
  "token",
  "*.authorization",
  "*.secret",
  "*.token",
  "headers.authorization",
  "req.headers.authorization",
  'req.headers["authorization"]',
];

/**
 * Builds the process logger: JSON lines on stderr (stdout stays free for CLI output such as
 * the bootstrap token), with secret-bearing fields redacted. `destination` is for tests.
 */
export function createLogger(
  level: LogLevel = "info",
  destination: DestinationStream = pino.destination({ fd: 2, sync: false }),
): Logger {
  return pino(
    {
      level,
      base: { service: "latchkey" },
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
    },
    destination,
  );
}
