import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import type { FieldViolation } from "../errors.js";

// The one place request times are checked. Every google.protobuf.Timestamp and Duration an
// admin request carries goes through here before it becomes a number, a Date or a SQL value.

/** google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
/** The latest instant latchkey stores, in epoch milliseconds (end of year 9999). */
export const MAX_TIMESTAMP_MS = Number(MAX_TIMESTAMP_SECONDS) * 1000 + 999;
/** google.protobuf.Duration's range: ±10,000 years. */
const MAX_DURATION_SECONDS = 315_576_000_000n;

/** The outcome of a time check: violations, and the value in milliseconds when it is valid. */
export interface TimeCheck {
  readonly violations: FieldViolation[];
  readonly ms: number;
}

/**
 * The one check of every google.protobuf.Timestamp a request carries (expire_time,
 * unused_since, start_time, end_time, ...): within the type's documented range (years 1-9999)
 * with valid nanos. An instant outside it cannot be stored or compared reliably (JavaScript
 * dates and Postgres disagree there) and would otherwise fail later as an internal error.
 */
export function checkTimestamp(ts: Pick<Timestamp, "seconds" | "nanos">, field: string): TimeCheck {
  if (
    ts.seconds < MIN_TIMESTAMP_SECONDS ||
    ts.seconds > MAX_TIMESTAMP_SECONDS ||
    !Number.isInteger(ts.nanos) ||
    ts.nanos < 0 ||
    ts.nanos > 999_999_999
  ) {
    return {
      violations: [{ field, description: "must be a valid time between years 1 and 9999 (UTC)" }],
      ms: 0,
    };
  }
  return { violations: [], ms: Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000) };
}

/**
 * The one check of every google.protobuf.Duration a request carries (ttl, grace_period, rate
 * limit windows): within the type's documented range (±10,000 years), nanos of the same sign
 * as seconds. The caller checks its own bounds on the result.
 */
export function checkDuration(d: Pick<Duration, "seconds" | "nanos">, field: string): TimeCheck {
  const signOk = (d.seconds >= 0n && d.nanos >= 0) || (d.seconds <= 0n && d.nanos <= 0);
  if (
    d.seconds < -MAX_DURATION_SECONDS ||
    d.seconds > MAX_DURATION_SECONDS ||
    !Number.isInteger(d.nanos) ||
    Math.abs(d.nanos) > 999_999_999 ||
    !signOk
  ) {
    return {
      violations: [{ field, description: "must be a valid duration (at most 10,000 years)" }],
      ms: 0,
    };
  }
  return { violations: [], ms: Number(d.seconds) * 1000 + Math.trunc(d.nanos / 1_000_000) };
}
