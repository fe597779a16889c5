import { monotonicFactory } from "ulid";

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

/** An audit event id (`aud_…`), sortable so audit pages are ordered by time without a tiebreak. */
export function newAuditId(): string {
  return `aud_${nextUlid()}`;
}

/** A concurrency-slot lease id (`lse_…`). */
export function newLeaseId(): string {
  return `lse_${nextUlid()}`;
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
