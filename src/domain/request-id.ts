import type { FieldViolation } from "../errors.js";
import { CHECKSUM_DIGITS, SECRET_DIGITS } from "./token-format.js";
import { checkFreeText, stripUnprintable } from "./validation.js";

// Request ids are stored in audit rows and on tokens and shown to every reader of the trail:
// nothing shaped like a token may reach them, whether given as a field or as a header.

/**
 * The body of a latchkey token of any prefix (`_<type>_` and 49 base62 characters): what a
 * secret scanner looks for (see tokenPattern), without the word boundaries, so a token glued to
 * other text still counts.
 */
const TOKEN_SHAPE_RE = new RegExp(`_[ptce]_[0-9A-Za-z]{${SECRET_DIGITS + CHECKSUM_DIGITS}}`);
const TOKEN_SHAPE_GLOBAL_RE = new RegExp(
  `[0-9A-Za-z]*_[ptce]_[0-9A-Za-z]{${SECRET_DIGITS + CHECKSUM_DIGITS},}`,
  "g",
);

/** The text as given and, when it is percent-encoded, decoded (a URL-encoded token counts). */
function spellings(value: string): string[] {
  if (!value.includes("%")) return [value];
  try {
    return [value, decodeURIComponent(value)];
  } catch {
    return [value];
  }
}

/** Whether `value` holds something shaped like a latchkey token (of any deployment's prefix). */
export function containsTokenShape(value: string): boolean {
  return spellings(value).some((s) => TOKEN_SHAPE_RE.test(s));
}

/**
 * A correlation / idempotency id given in a request (`request_id`): free text of at most
 * `max` characters that must not hold a token. Request ids are stored in audit rows and on
 * tokens and shown to every reader of the trail, so a secret pasted into one would leak.
 */
export function checkRequestId(value: string, field: string, max: number): FieldViolation[] {
  const text = checkFreeText(value, field, max);
  if (text.length > 0) return text;
  if (containsTokenShape(value)) {
    return [{ field, description: "must not contain a token (or anything shaped like one)" }];
  }
  return [];
}

/**
 * A request id taken from a header (`x-request-id`), made safe to store: cut to `max`
 * characters, token-shaped parts replaced by `[redacted]` (all of it when only its decoded
 * form holds one), control and bidi characters dropped. Headers are not refused, only scrubbed:
 * a proxy may add them, and the call itself is fine.
 */
export function scrubRequestId(value: string | undefined, max: number): string {
  if (value === undefined || value === "") return "";
  let out = value.replace(TOKEN_SHAPE_GLOBAL_RE, "[redacted]");
  if (containsTokenShape(out)) out = "[redacted]";
  return [...stripUnprintable(out)].slice(0, max).join("");
}
