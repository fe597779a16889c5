import { createHmac, timingSafeEqual } from "node:crypto";

const VERSION = 1;
const MAC_BYTES = 32;
/** Keeps a hostile page_token from costing more than a small decode. */
const MAX_TOKEN_CHARS = 2048;
const BASE64URL_RE = /^[A-Za-z0-9_-]+$/;
const DOMAIN = "latchkey.page-token.v1";

function mac(key: Uint8Array, binding: string, cursor: Uint8Array): Buffer {
  if (key.length === 0) throw new RangeError("page token key must not be empty");
  const bindingBytes = Buffer.from(binding, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bindingBytes.length);
  // Length-prefixed binding: no (binding, cursor) pair can collide with another.
  return createHmac("sha256", key)
    .update(DOMAIN)
    .update(len)
    .update(bindingBytes)
    .update(cursor)
    .digest();
}

/**
 * A page token that grants nothing: the cursor travels with an HMAC over the cursor and the
 * binding (caller + filter), so a client cannot forge a position, and a token taken from one
 * filter or one caller is refused by another (AIP-158). Opaque to clients by convention.
 */
export function encodePageToken(key: Uint8Array, binding: string, cursor: string): string {
  const cursorBytes = Buffer.from(cursor, "utf8");
  const out = Buffer.allocUnsafe(1 + cursorBytes.length + MAC_BYTES);
  out[0] = VERSION;
  cursorBytes.copy(out, 1);
  mac(key, binding, cursorBytes).copy(out, 1 + cursorBytes.length);
  return out.toString("base64url");
}

/**
 * The cursor inside a page token made by {@link encodePageToken} with the same key and binding,
 * or undefined for anything else (forged, truncated, another filter or caller, garbage), which
 * the service reports as INVALID_ARGUMENT on `page_token`.
 */
export function decodePageToken(
  key: Uint8Array,
  binding: string,
  token: string,
): string | undefined {
  if (token.length === 0 || token.length > MAX_TOKEN_CHARS || !BASE64URL_RE.test(token)) {
    return undefined;
  }
  const bytes = Buffer.from(token, "base64url");
  // Node's decoder ignores stray trailing bits; only the canonical spelling is accepted.
  if (bytes.toString("base64url") !== token) return undefined;
  if (bytes.length < 1 + MAC_BYTES || bytes[0] !== VERSION) return undefined;
  const cursor = bytes.subarray(1, bytes.length - MAC_BYTES);
  const given = bytes.subarray(bytes.length - MAC_BYTES);
  if (!timingSafeEqual(given, mac(key, binding, cursor))) return undefined;
  return cursor.toString("utf8");
}

function canonical(value: unknown): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : canonical(v)));
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v: unknown = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = canonical(v);
    }
    return out;
  }
  return null;
}

/**
 * One canonical string for a filter (JSON with keys sorted at every level, undefined members
 * left out), so the same filter always binds the same way whatever order it was built in.
 * Arrays keep their order. Callers put the caller's id in `parts` too.
 */
export function filterBinding(
  parts: Readonly<Record<string, unknown>> | readonly unknown[],
): string {
  return JSON.stringify(canonical(parts));
}
