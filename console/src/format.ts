import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { AuditDecision, TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";

const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const UNITS: readonly (readonly [Intl.RelativeTimeFormatUnit, number])[] = [
  ["year", 365 * 86_400_000],
  ["month", 30 * 86_400_000],
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
  ["second", 1_000],
];

/** "in 3 days", "5 minutes ago": how people read expiry and last use. */
export function relative(date: Date, now = Date.now()): string {
  const diff = date.getTime() - now;
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms || unit === "second") return rtf.format(Math.round(diff / ms), unit);
  }
  return rtf.format(0, "second");
}

/** A protobuf timestamp as a Date; undefined when unset. */
export function dateOf(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined ? undefined : timestampDate(ts);
}

/** An exact, sortable time for titles and detail views. */
export function exact(date: Date | undefined): string {
  return date === undefined
    ? "—"
    : date
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z");
}

export const TYPE_LABELS: Readonly<Record<TokenType, string>> = {
  [TokenType.UNSPECIFIED]: "—",
  [TokenType.PERSONAL]: "personal",
  [TokenType.TEAM]: "team",
  [TokenType.CICD]: "CI/CD",
  [TokenType.EPHEMERAL]: "ephemeral",
};

export const STATE_LABELS: Readonly<Record<TokenState, string>> = {
  [TokenState.UNSPECIFIED]: "—",
  [TokenState.ACTIVE]: "active",
  [TokenState.EXPIRED]: "expired",
  [TokenState.REVOKED]: "revoked",
  [TokenState.EXHAUSTED]: "exhausted",
};

export const DECISION_LABELS: Readonly<Record<AuditDecision, string>> = {
  [AuditDecision.UNSPECIFIED]: "—",
  [AuditDecision.ALLOW]: "allow",
  [AuditDecision.DENY]: "deny",
};

/** "90 days", "24 hours", "1 year": a lifetime cap in words. */
export function lifetime(ms: number | null): string {
  if (ms === null) return "no limit";
  const day = 86_400_000;
  if (ms % (365 * day) === 0) return `${ms / (365 * day)} year${ms === 365 * day ? "" : "s"}`;
  if (ms % day === 0) return `${ms / day} days`;
  return `${Math.round(ms / 3_600_000)} hours`;
}
