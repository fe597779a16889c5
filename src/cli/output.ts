import { create, toJsonString } from "@bufbuild/protobuf";
import { type Token, TokenSchema, TokenState, TokenType } from "../gen/latchkey/v1/token_pb.js";

/** Writes one line to stdout; every command's output goes through here. */
export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** A timestamp as ISO-8601 for humans; an unset one reads "never". */
export function formatTime(ts: { seconds: bigint } | undefined): string {
  return ts === undefined ? "never" : new Date(Number(ts.seconds) * 1000).toISOString();
}

/** One token as a single human line: id, hint, type, state, expiry, uses, name. */
export function tokenLine(t: Token): string {
  const type = TokenType[t.type].toLowerCase();
  const state = TokenState[t.state].toLowerCase();
  return [
    t.id,
    t.displayHint,
    type,
    state,
    `expires ${formatTime(t.expireTime)}`,
    `used ${t.useCount}×`,
    t.name,
  ].join("  ");
}

/** Prints a token as proto JSON with `--json`, else as its human line. */
export function printToken(json: boolean, token: Token | undefined): void {
  const t = token ?? create(TokenSchema);
  printLine(json ? toJsonString(TokenSchema, t, { prettySpaces: 2 }) : tokenLine(t));
}

/** The plain secret is shown exactly once; this line says so, so users store it. */
export function printSecret(secret: string): void {
  printLine(`secret (shown once, store it now): ${secret}`);
}
