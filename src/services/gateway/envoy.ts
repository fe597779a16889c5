import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { normalizeIp } from "../../domain/cidr.js";
import { checkPermissions } from "../../domain/validation.js";
import { throwIfInvalid } from "../../errors.js";
import { HeaderValueOption_HeaderAppendAction } from "../../gen/envoy/config/core/v3/base_pb.js";
import type { AttributeContext } from "../../gen/envoy/service/auth/v3/attribute_context_pb.js";
import {
  type Authorization,
  type CheckRequest,
  type CheckResponse,
  CheckResponseSchema,
} from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { ServiceHandlers } from "../context.js";
import { type GatewayAllow, type GatewayAnswer, type Header, IDENTITY_PREFIX } from "./answer.js";
import type { GatewayCheck } from "./check.js";

/** Documented context_extensions keys (set per route in Envoy's ext_authz filter config). */
export const EXT_PERMISSIONS = "latchkey.permissions";
export const EXT_ORG = "latchkey.org";

type CheckResponseInit = MessageInitShape<typeof CheckResponseSchema>;

/**
 * The common allow (no client-sent x-latchkey-* header to strip) as one frozen message per
 * answer: the gRPC listener then encodes it once and reuses the bytes.
 */
const sharedAllows = new WeakMap<GatewayAllow, CheckResponse>();

/** Parsed `latchkey.permissions` values: a route sends the same string on every request. */
const parsedPermissions = new Map<string, readonly string[]>();
const MAX_PARSED = 1_000;

function permissionsOf(extension: string | undefined): readonly string[] {
  if (extension === undefined || extension === "") return [];
  const known = parsedPermissions.get(extension);
  if (known !== undefined) return known;
  const list = extension
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  throwIfInvalid(checkPermissions(list, `attributes.context_extensions["${EXT_PERMISSIONS}"]`));
  if (parsedPermissions.size >= MAX_PARSED) parsedPermissions.clear();
  parsedPermissions.set(extension, Object.freeze(list));
  return list;
}

/** google.rpc.Code numbers Envoy reads from CheckResponse.status. */
const RPC_OK = 0;
const RPC_CODE_OF_STATUS: Readonly<Record<number, number>> = {
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  429: 8, // RESOURCE_EXHAUSTED
};

/**
 * What the check reads of a CheckRequest, flat: made from a decoded CheckRequest by
 * {@link checkInputOf}, or straight from the bytes by the gRPC listener's lean decoder
 * (transport/grpc/ext-authz-decode.ts), which skips materialising the rest of the message.
 */
export interface CheckInput {
  /** attributes.source.address.socket_address.address, as sent ("" when absent). */
  readonly sourceAddress: string;
  /** attributes.request.http.{id, method, path}. */
  readonly id: string;
  readonly method: string;
  readonly path: string;
  /** Request headers by lower-case name (raw `header_map` entries merged in). */
  readonly headers: Readonly<Record<string, string>>;
  readonly contextExtensions: Readonly<Record<string, string>>;
}

/** The CheckInput of a fully decoded CheckRequest. */
export function checkInputOf(req: CheckRequest): CheckInput {
  const attributes = req.attributes;
  const http = attributes?.request?.http;
  const address = attributes?.source?.address?.address;
  return {
    sourceAddress: address?.case === "socketAddress" ? address.value.address : "",
    id: http?.id ?? "",
    method: http?.method ?? "",
    path: http?.path ?? "",
    headers: headersOf(attributes),
    contextExtensions: attributes?.contextExtensions ?? {},
  };
}

/**
 * Request headers by lower-case name. Envoy sends `headers` with lower-case keys (read in
 * place: no copy on the hot path); in raw-header mode (`header_map`) they are collected once.
 */
function headersOf(attributes: AttributeContext | undefined): Readonly<Record<string, string>> {
  const http = attributes?.request?.http;
  if (http === undefined) return {};
  const raw = http.headerMap?.headers;
  if (raw === undefined || raw.length === 0) return http.headers;
  const out: Record<string, string> = { ...http.headers };
  for (const h of raw) {
    const key = h.key.toLowerCase();
    out[key] ??= h.value !== "" ? h.value : Buffer.from(h.rawValue).toString();
  }
  return out;
}

function headerOption(header: Header) {
  return {
    header: { key: header[0], value: header[1] },
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    keepEmptyValue: true,
  };
}

function allowResponse(answer: GatewayAllow, remove: string[]): CheckResponseInit {
  return {
    status: { code: RPC_OK },
    httpResponse: {
      case: "okResponse",
      value: { headers: answer.headers.map(headerOption), headersToRemove: remove },
    },
  };
}

/**
 * The CheckResponse for an answer. Allowed: the identity headers overwrite any the client
 * sent, every other client-sent `x-latchkey-*` header and the token header are removed.
 * Denied: the status, its google.rpc code and the small JSON body.
 */
function checkResponse(
  answer: GatewayAnswer,
  incoming: Readonly<Record<string, string>>,
  tokenHeader: string,
): CheckResponse | CheckResponseInit {
  if (answer.allowed) {
    const spoofed: string[] = [];
    for (const name in incoming) {
      if (name.startsWith(IDENTITY_PREFIX) && !answer.headers.some(([n]) => n === name)) {
        spoofed.push(name);
      }
    }
    if (spoofed.length === 0) {
      let shared = sharedAllows.get(answer);
      if (shared === undefined) {
        shared = Object.freeze(create(CheckResponseSchema, allowResponse(answer, [tokenHeader])));
        sharedAllows.set(answer, shared);
      }
      return shared;
    }
    return allowResponse(answer, [tokenHeader, ...spoofed]);
  }
  return {
    status: { code: RPC_CODE_OF_STATUS[answer.status] ?? 7, message: answer.code },
    httpResponse: {
      case: "deniedResponse",
      value: {
        status: { code: answer.status },
        headers: [["content-type", "application/json"] as const, ...answer.headers].map(
          headerOption,
        ),
        body: answer.body,
      },
    },
  };
}

/**
 * envoy.service.auth.v3.Authorization on the gRPC listener: the ext_authz HTTP filter's
 * CheckRequest turned into a gateway check (token from the configured header, client from
 * attributes.source.address or x-forwarded-for behind a trusted proxy, permissions and org
 * from context_extensions). Denials are normal answers; only a failure to decide (storage
 * down: UNAVAILABLE; bad filter configuration: INVALID_ARGUMENT) is a gRPC error, which
 * Envoy with `failure_mode_allow: false` turns into a denial.
 */
export function createExtAuthzHandlers(
  gateway: GatewayCheck,
): ServiceHandlers<typeof Authorization> {
  return {
    // The gRPC listener hands a CheckInput (its lean decoder), anything else a CheckRequest.
    check(req: CheckRequest | CheckInput) {
      const input = "$typeName" in req ? checkInputOf(req) : req;
      const extensions = input.contextExtensions;
      const permissions = permissionsOf(extensions[EXT_PERMISSIONS]);
      const headers = input.headers;
      const answer = gateway.checkNow({
        credential: headers[gateway.tokenHeader],
        peer: normalizeIp(input.sourceAddress) ?? "",
        forwardedFor: headers["x-forwarded-for"],
        method: input.method,
        path: input.path,
        permissions,
        orgId: (extensions[EXT_ORG] ?? "").trim(),
        requestId: input.id || headers["x-request-id"] || "",
      });
      const tokenHeader = gateway.tokenHeader;
      // The local tier answered: the response without a promise hop.
      return answer instanceof Promise
        ? answer.then((a) => checkResponse(a, headers, tokenHeader))
        : checkResponse(answer, headers, tokenHeader);
    },
  };
}
