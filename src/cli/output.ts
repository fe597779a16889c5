import { type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { stringify } from "yaml";
import { type Token, TokenSchema, TokenState, TokenType } from "../gen/latchkey/v1/token_pb.js";
import { UsageError } from "./errors.js";
import type { Flags } from "./flags.js";
import { relativeTime, renderTable } from "./table.js";

/** How a command prints its answer. */
export type Format = "table" | "json" | "yaml";

/** `--output table|json|yaml`, with `--json` as the short form of `--output json`. */
export function outputFormat(flags: Flags): Format {
  const o = flags.string("output");
  if (flags.bool("json")) {
    if (o !== undefined && o !== "json") throw new UsageError("--json and --output disagree");
    return "json";
  }
  if (o === undefined || o === "table" || o === "json" || o === "yaml") return o ?? "table";
  throw new UsageError("--output: expected one of table, json, yaml");
}

/** Writes one line to stdout; every command's output goes through here or {@link emit}. */
export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * Prints a command's answer: exactly one JSON (or YAML) document for scripts, or the human
 * rendering. Commands build both from the same value, so the formats never disagree.
 */
export function emit(format: Format, value: JsonValue, human: () => string): void {
  if (format === "json") printLine(JSON.stringify(value, null, 2));
  else if (format === "yaml") process.stdout.write(stringify(value));
  else printLine(human());
}

/** A token as protobuf JSON (enum names, RFC 3339 times), the shape every JSON output uses. */
export function tokenJson(t: Token | undefined): JsonValue {
  return t === undefined ? null : toJson(TokenSchema, t);
}

function ms(ts: Timestamp | undefined): number | undefined {
  return ts === undefined ? undefined : timestampMs(ts);
}

/** A lower-case enum word: TOKEN_TYPE_CICD → cicd. */
function word(names: Record<number, string>, value: number): string {
  return (names[value] ?? String(value)).toLowerCase();
}

const TOKEN_COLUMNS = ["ID", "NAME", "TYPE", "STATE", "LAST USED", "EXPIRES", "SLOTS"];

/** Tokens as the default table: ID, NAME, TYPE, STATE, LAST USED, EXPIRES, SLOTS. */
export function tokenTable(tokens: readonly Token[], nowMs = Date.now()): string {
  if (tokens.length === 0) return "no tokens";
  return renderTable(
    TOKEN_COLUMNS,
    tokens.map((t) => [
      t.id,
      t.name,
      word(TokenType, t.type),
      word(TokenState, t.state),
      relativeTime(ms(t.lastUsedTime), nowMs),
      relativeTime(ms(t.expireTime), nowMs),
      t.maxConcurrent > 0 ? `${t.slotsInUse}/${t.maxConcurrent}` : "-",
    ]),
  );
}

/** One token in full, one field a line, for `tokens get`. */
export function tokenDetails(t: Token, nowMs = Date.now()): string {
  const at = (ts: Timestamp | undefined): string => {
    const m = ms(ts);
    return m === undefined ? "never" : `${new Date(m).toISOString()} (${relativeTime(m, nowMs)})`;
  };
  const rows: [string, string][] = [
    ["id", t.id],
    ["name", t.name],
    ["type", word(TokenType, t.type)],
    ["state", word(TokenState, t.state)],
    ["org", t.orgId],
    ["team", t.teamId || "-"],
    ["owner", t.ownerId || "-"],
    ["hint", t.displayHint],
    ["role", t.role || "-"],
    ["permissions", t.permissions.join(" ") || "-"],
    ["allowed cidrs", t.allowedCidrs.join(" ") || "any"],
    [
      "metadata",
      Object.entries(t.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ") || "-",
    ],
    ["created", at(t.createTime)],
    ["expires", at(t.expireTime)],
    [
      "last used",
      t.lastUsedTime === undefined ? "never" : `${at(t.lastUsedTime)} from ${t.lastUsedIp || "?"}`,
    ],
    ["uses", t.maxUses === undefined ? `${t.useCount}` : `${t.useCount} of ${t.maxUses}`],
    ["slots", t.maxConcurrent > 0 ? `${t.slotsInUse}/${t.maxConcurrent}` : "-"],
  ];
  if (t.state === TokenState.REVOKED) {
    rows.push([
      "revoked",
      `${at(t.revokeTime)} by ${t.revokedBy || "?"}: ${t.revokeReason || "-"}`,
    ]);
  }
  if (t.rotatedFrom !== "") rows.push(["rotated from", t.rotatedFrom]);
  if (t.replacedBy !== "") rows.push(["replaced by", t.replacedBy]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join("\n");
}

/** The plain secret is shown exactly once; this line says so, so users store it. */
export function secretLine(secret: string): string {
  return `secret (shown once, store it now): ${secret}`;
}
