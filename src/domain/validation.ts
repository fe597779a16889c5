import type { FieldViolation } from "../errors.js";
import { normalizeCidr } from "./cidr.js";
import { isTokenId } from "./ids.js";
import { isValidPermission } from "./permissions.js";

/** Longest token name, in characters (code points). */
export const MAX_NAME = 100;
/** Longest org / team / owner id. */
export const MAX_IDENTIFIER = 128;
export const MAX_METADATA_ENTRIES = 32;
export const MAX_METADATA_KEY = 64;
export const MAX_METADATA_VALUE = 512;
export const MAX_PERMISSIONS = 100;
export const MAX_CIDRS = 100;
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;
export const MAX_IDS = 1000;

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
/** Line/paragraph separators and bidi overrides/isolates: invisible, and they reorder text. */
const INVISIBLE_FORMAT_RE = /[\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
/** With the `u` flag a surrogate pair is one code point, so this finds only lone halves. */
const LONE_SURROGATE_RE = /\p{Surrogate}/u;
const EDGE_SPACE_RE = /^\s|\s$/u;
const ONLY_SPACE_RE = /^\s+$/u;
const IDENTIFIER_RE = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;
const METADATA_KEY_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const PRINTABLE = "must be printable (no control, line-separator or bidi characters)";

/** Length as people count it (code points), which is also what Postgres `text` counts. */
function charCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * A display name: 1–100 printable characters, trimmed, valid UTF-16 (a lone surrogate cannot be
 * stored as UTF-8 and would fail later as an internal error). Returns at most one violation.
 */
export function checkName(value: string, field: string): FieldViolation[] {
  if (value.length === 0) return [{ field, description: "is required" }];
  if (ONLY_SPACE_RE.test(value)) return [{ field, description: "must not be only whitespace" }];
  if (LONE_SURROGATE_RE.test(value)) {
    return [{ field, description: "must be valid Unicode (it holds an unpaired surrogate)" }];
  }
  if (charCount(value) > MAX_NAME) {
    return [{ field, description: `must be at most ${MAX_NAME} characters` }];
  }
  if (CONTROL_RE.test(value) || INVISIBLE_FORMAT_RE.test(value)) {
    return [{ field, description: PRINTABLE }];
  }
  if (EDGE_SPACE_RE.test(value)) {
    return [{ field, description: "must not start or end with whitespace" }];
  }
  return [];
}

export interface IdentifierOptions {
  /** Empty is a violation (default false: empty means "unset"). */
  readonly required?: boolean;
  /** Longest allowed, at most 128 (the pattern's own cap); default 128. */
  readonly max?: number;
}

/**
 * Org, team and owner ids: opaque ids from the caller's identity system (user ids, emails,
 * `team:infra`), restricted to a safe ASCII set because they end up in SQL filters, audit rows
 * and `x-latchkey-*-id` headers.
 */
export function checkIdentifier(
  value: string,
  field: string,
  options: IdentifierOptions = {},
): FieldViolation[] {
  const max = Math.min(options.max ?? MAX_IDENTIFIER, MAX_IDENTIFIER);
  if (value.length === 0) {
    return options.required === true ? [{ field, description: "is required" }] : [];
  }
  if (value.length > max) return [{ field, description: `must be at most ${max} characters` }];
  if (!IDENTIFIER_RE.test(value)) {
    return [
      {
        field,
        description:
          "must start with a letter or digit and contain only letters, digits and _ . : @ -",
      },
    ];
  }
  return [];
}

export interface MetadataOptions {
  /** BatchUpdateTokens: an empty value means "remove the key". */
  readonly allowEmptyValues?: boolean;
}

function keyPath(field: string, key: string): string {
  return `${field}[${JSON.stringify(key)}]`;
}

/**
 * Token metadata: at most 32 entries, keys of `[A-Za-z0-9_.-]{1,64}` (they become
 * `x-latchkey-meta-<key>` headers), values of at most 512 printable characters (they become
 * header values). Violations name the key (`metadata["region"]`) but never echo a value.
 */
export function checkMetadata(
  map: Readonly<Record<string, string>>,
  field: string,
  options: MetadataOptions = {},
): FieldViolation[] {
  const out: FieldViolation[] = [];
  const entries = Object.entries(map);
  if (entries.length > MAX_METADATA_ENTRIES) {
    out.push({ field, description: `must have at most ${MAX_METADATA_ENTRIES} entries` });
    return out;
  }
  for (const [key, value] of entries) {
    if (!METADATA_KEY_RE.test(key)) {
      // An invalid key may be long or unprintable: name the map, not the key.
      out.push({
        field,
        description: `keys must be 1-${MAX_METADATA_KEY} characters of letters, digits and _ . -`,
      });
      continue;
    }
    const path = keyPath(field, key);
    if (value.length === 0) {
      if (options.allowEmptyValues !== true)
        out.push({ field: path, description: "must not be empty" });
    } else if (LONE_SURROGATE_RE.test(value)) {
      out.push({
        field: path,
        description: "must be valid Unicode (it holds an unpaired surrogate)",
      });
    } else if (charCount(value) > MAX_METADATA_VALUE) {
      out.push({ field: path, description: `must be at most ${MAX_METADATA_VALUE} characters` });
    } else if (CONTROL_RE.test(value) || INVISIBLE_FORMAT_RE.test(value)) {
      out.push({ field: path, description: PRINTABLE });
    }
  }
  return out;
}

/** Requested permissions: at most 100, each well formed, none repeated (`permissions[3]`). */
export function checkPermissions(list: readonly string[], field: string): FieldViolation[] {
  if (list.length > MAX_PERMISSIONS) {
    return [{ field, description: `must have at most ${MAX_PERMISSIONS} entries` }];
  }
  const out: FieldViolation[] = [];
  const seen = new Set<string>();
  list.forEach((p, i) => {
    const path = `${field}[${i}]`;
    if (!isValidPermission(p)) {
      out.push({
        field: path,
        description:
          "must be *, platform:admin, resource:action or resource:* (lower case, each part 1-64 characters of a-z 0-9 _ . -, starting with a letter)",
      });
    } else if (seen.has(p)) {
      out.push({ field: path, description: "is a duplicate" });
    }
    seen.add(p);
  });
  return out;
}

/** The outcome of {@link checkCidrs}: violations, and the canonical list to store. */
export interface CidrCheck {
  readonly violations: FieldViolation[];
  readonly normalized: string[];
}

/**
 * Allowed client IPs: at most 100 addresses or CIDRs, each normalized as Postgres `cidr` will
 * store it; entries equal after normalization are kept once (in first-seen order), since they
 * mean the same thing.
 */
export function checkCidrs(list: readonly string[], field: string): CidrCheck {
  if (list.length > MAX_CIDRS) {
    return {
      violations: [{ field, description: `must have at most ${MAX_CIDRS} entries` }],
      normalized: [],
    };
  }
  const violations: FieldViolation[] = [];
  const normalized: string[] = [];
  const seen = new Set<string>();
  list.forEach((entry, i) => {
    const canonical = normalizeCidr(entry);
    if (canonical === undefined) {
      violations.push({
        field: `${field}[${i}]`,
        description:
          "must be an IPv4 or IPv6 address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32; prefix up to 32 or 128, no leading zeros)",
      });
    } else if (!seen.has(canonical)) {
      seen.add(canonical);
      normalized.push(canonical);
    }
  });
  return { violations, normalized };
}

/** The outcome of {@link checkPageSize}: violations, and the page size to use. */
export interface PageSizeCheck {
  readonly violations: FieldViolation[];
  readonly size: number;
}

/**
 * A List page size (AIP-158): 0 means the default of 50; negatives and sizes above 1000 are
 * refused rather than silently capped, so a client learns its loop is wrong.
 */
export function checkPageSize(n: number, field: string): PageSizeCheck {
  if (!Number.isInteger(n))
    return { violations: [{ field, description: "must be an integer" }], size: 0 };
  if (n < 0) return { violations: [{ field, description: "must not be negative" }], size: 0 };
  if (n > MAX_PAGE_SIZE) {
    return { violations: [{ field, description: `must be at most ${MAX_PAGE_SIZE}` }], size: 0 };
  }
  return { violations: [], size: n === 0 ? DEFAULT_PAGE_SIZE : n };
}

export interface IdsOptions {
  /** Most ids in one call; default 1000. */
  readonly max?: number;
}

/**
 * Token ids of a batch call: at least one, at most `max`, each a well-formed `tok_` id, none
 * repeated. A malformed id is never echoed: it might be a secret pasted by mistake.
 */
export function checkIds(
  ids: readonly string[],
  field: string,
  options: IdsOptions = {},
): FieldViolation[] {
  const max = options.max ?? MAX_IDS;
  if (ids.length === 0) return [{ field, description: "must name at least one token id" }];
  if (ids.length > max) return [{ field, description: `must have at most ${max} entries` }];
  const out: FieldViolation[] = [];
  const seen = new Set<string>();
  ids.forEach((id, i) => {
    const path = `${field}[${i}]`;
    if (!isTokenId(id)) {
      out.push({ field: path, description: "must be a token id (tok_ followed by 26 characters)" });
    } else if (seen.has(id)) {
      out.push({ field: path, description: "is a duplicate" });
    }
    seen.add(id);
  });
  return out;
}

/**
 * Optional free text that is stored and shown again (revoke reason, request_id, slot holder):
 * empty allowed, at most `max` characters, no control characters (they would forge lines in
 * logs and headers), valid Unicode. The text itself is never echoed.
 */
export function checkFreeText(value: string, field: string, max: number): FieldViolation[] {
  if (value.length === 0) return [];
  if (LONE_SURROGATE_RE.test(value)) {
    return [{ field, description: "must be valid Unicode (it holds an unpaired surrogate)" }];
  }
  if (charCount(value) > max) return [{ field, description: `must be at most ${max} characters` }];
  if (CONTROL_RE.test(value) || INVISIBLE_FORMAT_RE.test(value)) {
    return [{ field, description: PRINTABLE }];
  }
  return [];
}

const UNPRINTABLE_RE = new RegExp(
  `${CONTROL_RE.source}|${INVISIBLE_FORMAT_RE.source}|${LONE_SURROGATE_RE.source}`,
  "gu",
);

/** `value` without the characters {@link checkFreeText} refuses (for text that is scrubbed, not refused). */
export function stripUnprintable(value: string): string {
  return value.replace(UNPRINTABLE_RE, "");
}
