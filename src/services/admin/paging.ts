import { decodePageToken, encodePageToken, filterBinding } from "../../domain/page-token.js";
import { checkIdentifier, checkPageSize } from "../../domain/validation.js";
import { type FieldViolation, invalidArgument } from "../../errors.js";
import type { Caller } from "../context.js";
import { targetOrg } from "./scope.js";

/**
 * The org a listing reads (see targetOrg) and what its page tokens are bound to: the listing,
 * the caller, the org and every filter field, so a token from one caller or filter is refused
 * by another (AIP-158).
 */
export function listingOf(
  caller: Caller,
  requestedOrg: string,
  listing: "tokens" | "audit",
  filter: readonly (string | number | boolean)[],
): { readonly org: string; readonly binding: string } {
  const org = targetOrg(caller, requestedOrg);
  const parts = [listing, caller.tokenId, org, ...filter];
  return { org, binding: filterBinding(parts.map((p) => String(p))) };
}

/**
 * The position a request's page token holds, or undefined on a first page. A token that is not
 * this listing's (forged, another caller or filter, an unparsable cursor) is INVALID_ARGUMENT.
 */
export function readPageToken<T>(
  key: Uint8Array,
  binding: string,
  pageToken: string,
  parse: (cursor: string) => T | undefined,
): T | undefined {
  if (pageToken === "") return undefined;
  const cursor = decodePageToken(key, binding, pageToken);
  const position = cursor === undefined ? undefined : parse(cursor);
  if (position === undefined) {
    throw invalidArgument([
      {
        field: "page_token",
        description: "not a page token of this listing (caller and filter must not change)",
      },
    ]);
  }
  return position;
}

/**
 * Cuts the rows of a query that asked for `size + 1` into the page and the token of the next
 * one ("" when this is the last page).
 */
export function pageOf<R>(
  key: Uint8Array,
  binding: string,
  rows: readonly R[],
  size: number,
  cursorOf: (last: R) => string,
): { readonly page: R[]; readonly nextPageToken: string } {
  const page = rows.slice(0, size);
  const last = page[page.length - 1];
  return {
    page,
    nextPageToken:
      rows.length > size && last !== undefined ? encodePageToken(key, binding, cursorOf(last)) : "",
  };
}

/** The page_size and org_id checks every listing starts with; returns the page size to use. */
export function readListing(
  req: { readonly pageSize: number; readonly orgId: string },
  v: FieldViolation[],
): number {
  const size = checkPageSize(req.pageSize, "page_size");
  v.push(...size.violations);
  v.push(...checkIdentifier(req.orgId, "org_id", { required: false, max: 128 }));
  return size.size;
}
