import type { TokenRecord } from "../../domain/token-record.js";
import { VerifyCode } from "../../gen/latchkey/v1/token_verify_service_pb.js";
import type { VerifyOutcome } from "../verify/types.js";

/**
 * The one mapping from a verification outcome to what a gateway acts on, shared by Envoy
 * ext_authz and the HTTP forward-auth endpoint so that the two can never disagree:
 * 401 missing, malformed, not found, expired, revoked; 403 IP, org, permissions; 429 (with
 * retry-after when it is known) rate limited and uses exhausted; identity headers on success.
 */

/** A header to set: lower-case name, value. */
export type Header = readonly [name: string, value: string];

export interface GatewayAllow {
  readonly allowed: true;
  readonly status: 200;
  /** The token's record: the same object while it is cached, so answers can be reused. */
  readonly record: TokenRecord;
  /** Identity headers for the upstream. */
  readonly headers: readonly Header[];
}

export interface GatewayDeny {
  readonly allowed: false;
  readonly status: 401 | 403 | 429;
  /** Machine-readable reason: a VerifyCode name (`REVOKED`, …) or `MISSING`. */
  readonly code: string;
  /**
   * Headers for the client: x-latchkey-code always, www-authenticate on 401, retry-after on
   * 429 when known.
   */
  readonly headers: readonly Header[];
  /** Small JSON body: `{"code":"REVOKED"}`. */
  readonly body: string;
}

export type GatewayAnswer = GatewayAllow | GatewayDeny;

export const HEADER_TOKEN_ID = "x-latchkey-token-id";
export const HEADER_ORG_ID = "x-latchkey-org-id";
export const HEADER_OWNER_ID = "x-latchkey-owner-id";
export const HEADER_TEAM_ID = "x-latchkey-team-id";
export const HEADER_META_PREFIX = "x-latchkey-meta-";
/** The denial code, on denials only. */
export const HEADER_CODE = "x-latchkey-code";
/** Every identity header starts with this; gateways drop client-sent ones. */
export const IDENTITY_PREFIX = "x-latchkey-";

/**
 * Metadata keys are `[A-Za-z0-9_.-]`; header names are lower-cased and `_` and `.` become `-`
 * (nginx drops headers with underscores by default, and `.` reads badly in variable names).
 */
export function metaHeaderName(key: string): string {
  return `${HEADER_META_PREFIX}${key.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`;
}

/**
 * A metadata value as a header value: printable ASCII as is, anything else (non-ASCII text)
 * percent-encoded as by encodeURIComponent, since header values are bytes, not Unicode.
 */
export function headerValue(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value);
}

/**
 * The identity headers of an allowed request. Team and owner are always present (empty when
 * the token has none), so a gateway that overwrites them also erases client-sent values.
 */
export function identityHeaders(record: TokenRecord): Header[] {
  const headers: Header[] = [
    [HEADER_TOKEN_ID, record.id],
    [HEADER_ORG_ID, record.orgId],
    [HEADER_OWNER_ID, record.ownerId],
    [HEADER_TEAM_ID, record.teamId],
  ];
  for (const [key, value] of Object.entries(record.metadata)) {
    headers.push([metaHeaderName(key), headerValue(value)]);
  }
  return headers;
}

/** A denial as every gateway receives it. */
export function deny(status: 401 | 403 | 429, code: string, headers: Header[] = []): GatewayDeny {
  // The code as a header too: nginx can read headers of an auth subrequest, not its body.
  headers.push([HEADER_CODE, code]);
  if (status === 401) headers.push(["www-authenticate", 'Bearer realm="latchkey"']);
  return { allowed: false, status, code, headers, body: JSON.stringify({ code }) };
}

/** Status and code name of a denying VerifyCode. */
function denialOf(code: VerifyCode): readonly [401 | 403 | 429, string] {
  switch (code) {
    case VerifyCode.MALFORMED:
      return [401, "MALFORMED"];
    case VerifyCode.NOT_FOUND:
      return [401, "NOT_FOUND"];
    case VerifyCode.EXPIRED:
      return [401, "EXPIRED"];
    case VerifyCode.REVOKED:
      return [401, "REVOKED"];
    case VerifyCode.IP_NOT_ALLOWED:
      return [403, "IP_NOT_ALLOWED"];
    case VerifyCode.WRONG_ORG:
      return [403, "WRONG_ORG"];
    case VerifyCode.INSUFFICIENT_PERMISSIONS:
      return [403, "INSUFFICIENT_PERMISSIONS"];
    case VerifyCode.RATE_LIMITED:
      return [429, "RATE_LIMITED"];
    case VerifyCode.USAGE_EXCEEDED:
      return [429, "USAGE_EXCEEDED"];
    case VerifyCode.VALID:
    case VerifyCode.UNSPECIFIED:
      // Never reached for VALID (see gatewayAnswer); UNSPECIFIED is not a decision: refuse.
      return [401, "NOT_FOUND"];
  }
}

/**
 * Allow answers per record, built once: a record object is replaced whenever its token
 * changes, so an answer cannot outlive the data it was built from.
 */
const allowed = new WeakMap<TokenRecord, GatewayAllow>();

/** What a gateway does with one verification outcome. */
export function gatewayAnswer(outcome: VerifyOutcome): GatewayAnswer {
  const record = outcome.record;
  if (outcome.code === VerifyCode.VALID && record !== undefined) {
    let answer = allowed.get(record);
    if (answer === undefined) {
      answer = Object.freeze({
        allowed: true,
        status: 200,
        record,
        headers: Object.freeze(identityHeaders(record)),
      });
      allowed.set(record, answer);
    }
    return answer;
  }
  const [status, code] = denialOf(outcome.code);
  const headers: Header[] = [];
  if (outcome.retryAfterMs !== undefined) {
    headers.push(["retry-after", String(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)))]);
  }
  return deny(status, code, headers);
}
