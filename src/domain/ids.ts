import { randomFillSync } from "node:crypto";
import { monotonicFactory, ulid } from "ulid";

/**
 * One monotonic ULID source for the process: ids made in the same millisecond still sort in
 * creation order, so keyset pagination by id is stable and audit rows list in order.
 */
const nextUlid = monotonicFactory();

/** Crockford base32 ULID: 26 characters, the first at most 7 (48-bit time). */
const ULID_BODY = "[0-7][0-9A-HJKMNP-TV-Z]{25}";
const TOKEN_ID_RE = new RegExp(`^tok_${ULID_BODY}$`);
const AUDIT_ID_RE = new RegExp(`^aud_${ULID_BODY}$`);
const LEASE_ID_RE = new RegExp(`^lse_${ULID_BODY}$`);

/** A token's public id (`tok_…`): not secret, sortable by creation time. */
export function newTokenId(): string {
  return `tok_${nextUlid()}`;
}

/** Crockford base32, the ULID alphabet. */
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TWO_40 = 2 ** 40;

/** Every 10-bit value as its two Crockford characters. */
const PAIRS: readonly string[] = Array.from(
  { length: 1024 },
  (_, i) => CROCKFORD.charAt(i >> 5) + CROCKFORD.charAt(i & 31),
);

/** A number below 2^40 as 8 Crockford characters: four table lookups. */
function base32x8(n: number): string {
  const high = Math.floor(n / 2 ** 20);
  const low = n - high * 2 ** 20;
  return (
    (PAIRS[high >> 10] ?? "") +
    (PAIRS[high & 1023] ?? "") +
    (PAIRS[low >> 10] ?? "") +
    (PAIRS[low & 1023] ?? "")
  );
}

function base32(n: number, width: number): string {
  let out = "";
  let v = n;
  for (let i = 0; i < width; i++) {
    out = CROCKFORD.charAt(v % 32) + out;
    v = Math.floor(v / 32);
  }
  return out;
}

/**
 * Monotonic ULIDs for audit rows, one per verification: the 10 characters of time are encoded
 * once per millisecond and the 80 random bits drawn once per millisecond (then incremented, as
 * the ulid package's monotonic factory does), so an id costs one short encoding instead of a
 * full ULID. Same format and ordering guarantees as {@link newTokenId}'s source.
 */
class AuditIds {
  private lastMs = -1;
  private timePart = "";
  private hi = 0;
  private hiPart = "";
  private lo = 0;
  private readonly random = new Uint8Array(10);

  next(nowMs: number): string {
    if (nowMs > this.lastMs) {
      this.lastMs = nowMs;
      this.timePart = base32(nowMs, 10);
      randomFillSync(this.random);
      const r = this.random;
      this.hi = ((r[0] ?? 0) * 2 ** 32 + readU32(r, 1)) % TWO_40;
      this.lo = ((r[5] ?? 0) * 2 ** 32 + readU32(r, 6)) % TWO_40;
      this.hiPart = base32x8(this.hi);
    } else if (++this.lo === TWO_40) {
      // The clock stood still or went back: keep the last time and count up (carry into hi).
      this.lo = 0;
      if (++this.hi === TWO_40) {
        this.hi = 0;
        this.lastMs++;
        this.timePart = base32(this.lastMs, 10);
      }
      this.hiPart = base32x8(this.hi);
    }
    return `aud_${this.timePart}${this.hiPart}${base32x8(this.lo)}`;
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at] ?? 0) * 2 ** 24 +
    (bytes[at + 1] ?? 0) * 2 ** 16 +
    (bytes[at + 2] ?? 0) * 2 ** 8 +
    (bytes[at + 3] ?? 0)
  );
}

const auditIds = new AuditIds();

/**
 * An audit event id (`aud_…`), sortable so audit pages are ordered by time without a tiebreak.
 * `nowMs` (default the clock) is the id's time; ids stay increasing even if it goes back.
 */
export function newAuditId(nowMs: number = Date.now()): string {
  return auditIds.next(nowMs);
}

/**
 * A concurrency-slot lease id: `lse_` + a non-monotonic ULID (80 fresh random bits), so that
 * holding one lease id tells nothing about the next — the lease id is the only credential
 * RenewSlot and ReleaseSlot take.
 */
export function newLeaseId(): string {
  return `lse_${ulid()}`;
}

/**
 * Strict shape check for token ids from requests, so that a malformed id is INVALID_ARGUMENT
 * rather than a pointless query (and a pasted secret is never sent to the database).
 */
export function isTokenId(s: string): boolean {
  return s.length === 30 && TOKEN_ID_RE.test(s);
}

/** Strict shape check for audit event ids. */
export function isAuditId(s: string): boolean {
  return s.length === 30 && AUDIT_ID_RE.test(s);
}

/** Strict shape check for lease ids. */
export function isLeaseId(s: string): boolean {
  return s.length === 30 && LEASE_ID_RE.test(s);
}
