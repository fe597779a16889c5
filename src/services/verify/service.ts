import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { normalizeIp } from "../../domain/cidr.js";
import type { TokenRecord } from "../../domain/token-record.js";
import { invalidArgument } from "../../errors.js";
import {
  type TokenVerifyService,
  VerifyCode,
  type VerifyTokenResponse,
  VerifyTokenResponseSchema,
} from "../../gen/latchkey/v1/token_verify_service_pb.js";
import type { Sql } from "../../store/db.js";
import { createSlotRepo } from "../../store/slot-repo.js";
import { VERIFY_CALLER_PERMISSION, verifyCaller } from "../auth.js";
import type { CallContext, ServiceHandlers } from "../context.js";
import { createSlotHandlers } from "./slots.js";
import type { Verifier, VerifyOutcome } from "./types.js";
import { createWatchHandler } from "./watch.js";

/** Who may call TokenVerifyService: anyone (`off`), or bearers of `tokens:verify` (`token`). */
export type VerifyCallerAuth = "off" | "token";

export interface VerifyServiceDeps {
  readonly verifier: Verifier;
  /** Slot leases and the revocation log (AcquireSlot…, WatchRevocations). */
  readonly sql: Sql;
  /** How often an idle WatchRevocations stream polls the log (default 250 ms). */
  readonly watchPollMs?: number | undefined;
  /** LATCHKEY_VERIFY_AUTH (default `off`). */
  readonly callerAuth?: VerifyCallerAuth | undefined;
}

/** The gateway-facing methods that LATCHKEY_VERIFY_AUTH=token closes to anonymous callers. */
const GUARDED = ["verifyToken", "acquireSlot", "renewSlot", "releaseSlot"] as const;

// Shared answers are frozen: nothing may change them, and the gRPC listener encodes a frozen
// message once and reuses the bytes.
const MALFORMED = Object.freeze(
  create(VerifyTokenResponseSchema, { valid: false, code: VerifyCode.MALFORMED }),
);
const NOT_FOUND = Object.freeze(
  create(VerifyTokenResponseSchema, { valid: false, code: VerifyCode.NOT_FOUND }),
);

/**
 * Responses without per-call fields, built once per (record, code) and reused: the common case
 * (a cached token, VALID, no use limit) then allocates no response at all. A record object is
 * replaced whenever its token changes, so the cache cannot outlive the data it was built from.
 */
const responses = new WeakMap<TokenRecord, VerifyTokenResponse[]>();

function buildResponse(record: TokenRecord, code: VerifyCode): VerifyTokenResponse {
  return create(VerifyTokenResponseSchema, {
    valid: code === VerifyCode.VALID,
    code,
    tokenId: record.id,
    name: record.name,
    type: record.type,
    orgId: record.orgId,
    teamId: record.teamId,
    ownerId: record.ownerId,
    permissions: [...record.permissions],
    metadata: { ...record.metadata },
    expireTime: record.expireTimeMs === null ? undefined : timestampFromMs(record.expireTimeMs),
  });
}

function sharedResponse(record: TokenRecord, code: VerifyCode): VerifyTokenResponse {
  let byCode = responses.get(record);
  if (byCode === undefined) {
    byCode = [];
    responses.set(record, byCode);
  }
  let response = byCode[code];
  if (response === undefined) {
    response = Object.freeze(buildResponse(record, code));
    byCode[code] = response;
  }
  return response;
}

/** The VerifyTokenResponse of an outcome: shared frozen answers unless a field is per call. */
function respond(outcome: VerifyOutcome): VerifyTokenResponse {
  const record = outcome.record;
  if (record === undefined) {
    return outcome.code === VerifyCode.MALFORMED
      ? MALFORMED
      : outcome.code === VerifyCode.NOT_FOUND
        ? NOT_FOUND
        : create(VerifyTokenResponseSchema, { valid: false, code: outcome.code });
  }
  if (outcome.remainingUses === undefined && outcome.retryAfterMs === undefined) {
    return sharedResponse(record, outcome.code);
  }
  const response = buildResponse(record, outcome.code);
  if (outcome.remainingUses !== undefined) response.remainingUses = BigInt(outcome.remainingUses);
  if (outcome.retryAfterMs !== undefined) {
    response.retryAfter = durationFromMs(outcome.retryAfterMs);
  }
  return response;
}

/**
 * TokenVerifyService on both listeners. VerifyToken answers every business denial as data
 * (valid=false and a code; identity fields whenever the token exists) and raises a gRPC error
 * only when latchkey itself cannot decide (UNAVAILABLE from the verifier), or for bad input
 * (a `client_ip` that is not an address: INVALID_ARGUMENT naming it). With `callerAuth`
 * `token` (LATCHKEY_VERIFY_AUTH), VerifyToken and the slot methods first require a bearer token
 * holding `tokens:verify`, authenticated like an admin caller. Slots and the revocation stream
 * live in slots.ts and watch.ts.
 */
export function createVerifyService(
  deps: VerifyServiceDeps,
): ServiceHandlers<typeof TokenVerifyService> {
  const { verifier } = deps;
  const handlers: ServiceHandlers<typeof TokenVerifyService> = {
    verifyToken(request, context: CallContext) {
      if (request.clientIp !== "" && normalizeIp(request.clientIp) === undefined) {
        throw invalidArgument([
          {
            field: "client_ip",
            description: "not an IPv4 or IPv6 address (leave it empty when unknown)",
          },
        ]);
      }
      const outcome = verifier.verifyNow({
        token: request.token,
        requiredPermissions: request.requiredPermissions,
        clientIp: request.clientIp,
        orgId: request.orgId,
        method: request.method,
        path: request.path,
        requestId:
          request.requestId !== "" ? request.requestId : (context.header("x-request-id") ?? ""),
        // Read only if the verification needs the peer (a lookup, a sampled denial).
        peer: context,
        purpose: "verify",
      });
      // The local tier answered: a plain message, replied to without a promise.
      return outcome instanceof Promise ? outcome.then(respond) : respond(outcome);
    },
    ...createSlotHandlers({ verifier, slots: createSlotRepo(deps.sql) }),
    ...createWatchHandler({ verifier, sql: deps.sql, pollMs: deps.watchPollMs }),
  };
  if (deps.callerAuth !== "token") return handlers;
  // Authentication first, so an anonymous caller learns nothing, not even about its input.
  const guarded = { ...handlers };
  for (const name of GUARDED) {
    const inner = handlers[name] as (request: never, context: CallContext) => unknown;
    (guarded as Record<string, unknown>)[name] = async (request: never, context: CallContext) => {
      await verifyCaller(verifier, context, VERIFY_CALLER_PERMISSION);
      return inner(request, context);
    };
  }
  return guarded;
}
