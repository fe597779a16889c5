import { hash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { TokenType } from "../gen/latchkey/v1/token_pb.js";

/** The base62 alphabet of the contract, in digit order. */
export const BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** Base62 digits that carry the 32 random bytes (62^43 > 2^256). */
export const SECRET_DIGITS = 43;
/** Base62 digits of the CRC-32 checksum (62^6 > 2^32). */
export const CHECKSUM_DIGITS = 6;
/** Bytes of randomness in every token. */
export const SECRET_BYTES = 32;
/** Anything longer is refused before any other work (the longest valid token is 69 chars). */
export const MAX_TOKEN_LENGTH = 256;

const BODY_DIGITS = SECRET_DIGITS + CHECKSUM_DIGITS;
/** `_` + letter + `_` + body: what follows the prefix. */
const SUFFIX_LENGTH = 3 + BODY_DIGITS;
const UNDERSCORE = 0x5f;
const PREFIX_RE = /^[a-z][a-z0-9]{0,15}$/;

/** char code → base62 digit value, or -1; indexed by code < 128. */
const DIGIT_OF: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < BASE62_ALPHABET.length; i++) table[BASE62_ALPHABET.charCodeAt(i)] = i;
  return table;
})();

/** The largest 43-digit body that still fits in 32 bytes, as a string (same-length compare). */
const MAX_SECRET_TEXT = toBase62(2n ** 256n - 1n, SECRET_DIGITS);
const MAX_SECRET_FIRST = MAX_SECRET_TEXT.charCodeAt(0);

function toBase62(value: bigint, width: number): string {
  let out = "";
  let v = value;
  while (v > 0n) {
    out = BASE62_ALPHABET.charAt(Number(v % 62n)) + out;
    v /= 62n;
  }
  if (out.length > width) throw new RangeError(`value needs more than ${width} base62 digits`);
  return out.padStart(width, "0");
}

function checksumText(crc: number): string {
  let out = "";
  let v = crc >>> 0;
  for (let i = 0; i < CHECKSUM_DIGITS; i++) {
    out = BASE62_ALPHABET.charAt(v % 62) + out;
    v = Math.floor(v / 62);
  }
  return out;
}

/**
 * The one letter that names a token's type inside the token, so that scanners and humans can
 * tell a CI/CD key from a personal one without a lookup. UNSPECIFIED has no letter: asking for
 * one is a programming error.
 */
export function typeLetter(type: TokenType): "p" | "t" | "c" | "e" {
  switch (type) {
    case TokenType.PERSONAL:
      return "p";
    case TokenType.TEAM:
      return "t";
    case TokenType.CICD:
      return "c";
    case TokenType.EPHEMERAL:
      return "e";
    case TokenType.UNSPECIFIED:
      throw new RangeError("TOKEN_TYPE_UNSPECIFIED has no token letter");
  }
}

/** Reverse of {@link typeLetter}, for parsing: undefined for any other string. */
export function typeFromLetter(letter: string): TokenType | undefined {
  switch (letter) {
    case "p":
      return TokenType.PERSONAL;
    case "t":
      return TokenType.TEAM;
    case "c":
      return TokenType.CICD;
    case "e":
      return TokenType.EPHEMERAL;
    default:
      return undefined;
  }
}

/** True for a prefix the format allows; checked once at configuration time, not per token. */
export function isValidPrefix(prefix: string): boolean {
  return PREFIX_RE.test(prefix);
}

/**
 * Builds a token from given random bytes. Exposed so that tests can use fixed vectors; the
 * service always goes through {@link generateToken}, which draws the bytes from the CSPRNG.
 */
export function formatToken(prefix: string, type: TokenType, secret: Uint8Array): string {
  if (!isValidPrefix(prefix)) throw new RangeError("invalid token prefix");
  if (secret.length !== SECRET_BYTES) throw new RangeError(`secret must be ${SECRET_BYTES} bytes`);
  const value = BigInt(
    `0x${Buffer.from(secret.buffer, secret.byteOffset, secret.length).toString("hex")}`,
  );
  const head = `${prefix}_${typeLetter(type)}_${toBase62(value, SECRET_DIGITS)}`;
  return head + checksumText(crc32(head));
}

/**
 * A new secret token: 32 bytes from the operating system's CSPRNG in the contract's format.
 * It is the only place a secret is born; callers hash it at once and return it exactly once.
 */
export function generateToken(prefix: string, type: TokenType): string {
  return formatToken(prefix, type, randomBytes(SECRET_BYTES));
}

/** What can be known about a token without any lookup. */
export interface ParsedToken {
  readonly prefix: string;
  readonly type: TokenType;
}

/**
 * Rejects a mistyped, truncated or forged string before it costs a hash, a cache probe or a
 * database query (VERIFY_CODE_MALFORMED). Built for the verification hot path: a length check
 * first, a table-driven character loop, one CRC-32 over the string, no big allocation.
 */
export function parseToken(raw: string, prefix: string): ParsedToken | undefined {
  const len = raw.length;
  const p = prefix.length;
  if (len > MAX_TOKEN_LENGTH || len !== p + SUFFIX_LENGTH) return undefined;
  if (!raw.startsWith(prefix)) return undefined;
  if (raw.charCodeAt(p) !== UNDERSCORE || raw.charCodeAt(p + 2) !== UNDERSCORE) return undefined;
  const type = typeFromLetter(raw.charAt(p + 1));
  if (type === undefined) return undefined;
  const bodyStart = p + 3;
  for (let i = bodyStart; i < len; i++) {
    const c = raw.charCodeAt(i);
    if (c >= 128 || (DIGIT_OF[c] ?? -1) < 0) return undefined;
  }
  // 62^43 slightly exceeds 2^256: a body that starts at or above the maximum's first digit may
  // encode more than 32 bytes; only then compare (same length, and ASCII order is digit order).
  if (raw.charCodeAt(bodyStart) >= MAX_SECRET_FIRST) {
    if (raw.slice(bodyStart, bodyStart + SECRET_DIGITS) > MAX_SECRET_TEXT) return undefined;
  }
  const checkStart = len - CHECKSUM_DIGITS;
  let given = 0;
  for (let i = checkStart; i < len; i++) given = given * 62 + (DIGIT_OF[raw.charCodeAt(i)] ?? 0);
  if (given !== crc32(raw.slice(0, checkStart))) return undefined;
  return { prefix, type };
}

/**
 * SHA-256 of the whole token: what storage keeps and looks tokens up by. A fast hash is right
 * here because the input has 256 bits of entropy; there is nothing to brute-force.
 */
export function hashToken(raw: string): Buffer {
  // One-shot crypto.hash (Node ≥ 20.12) skips the Hash object: about 3x cheaper per call.
  return hash("sha256", raw, "buffer");
}

/**
 * {@link hashToken} as lower-case hex, the key of every cache tier: straight to the string, so
 * a cache hit allocates no Buffer and pays no hex conversion (the Buffer is made on a miss).
 */
export function hashTokenHex(raw: string): string {
  return hash("sha256", raw, "hex");
}

/**
 * The length of every well-formed token with `prefix`: the verifier hashes a string of this
 * length before parsing it (a cache hit proves it well formed), and parses anything else first.
 */
export function tokenLength(prefix: string): number {
  return prefix.length + SUFFIX_LENGTH;
}

/**
 * What a human may see of a token after creation (`lk_p_…x9Qz`): enough to recognise it in a
 * list, never enough to use it. Only the type marker and the last 4 characters survive.
 */
export function displayHint(raw: string): string {
  const tail = raw.length >= 12 ? raw.slice(-4) : "";
  const first = raw.indexOf("_");
  const second = first < 0 ? -1 : raw.indexOf("_", first + 1);
  if (first > 0 && first <= 16 && second === first + 2 && raw.length >= second + 1 + 8) {
    return `${raw.slice(0, second + 1)}…${tail}`;
  }
  return `…${tail}`;
}

/**
 * The regular expression published for secret scanners (GitHub secret scanning, gitleaks,
 * trufflehog) so that a leaked token is found in code and logs. It matches the shape only;
 * scanners may confirm a hit with the checksum. Not global: safe to reuse with `test`.
 */
export function tokenPattern(prefix: string): RegExp {
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
  return new RegExp(`\\b${escaped}_[ptce]_[0-9A-Za-z]{${BODY_DIGITS}}\\b`);
}
