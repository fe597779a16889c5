import type { MessageInitShape } from "@bufbuild/protobuf";
import { normalizeIp } from "../../domain/cidr.js";
import { checkPermissions } from "../../domain/validation.js";
import { throwIfInvalid } from "../../errors.js";
import { HeaderValueOption_HeaderAppendAction } from "../../gen/envoy/config/core/v3/base_pb.js";
import type { AttributeContext } from "../../gen/envoy/service/auth/v3/attribute_context_pb.js";
import type {
  Authorization,
  CheckResponseSchema,
} from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { ServiceHandlers } from "../context.js";
import { type GatewayAnswer, type Header, IDENTITY_PREFIX } from "./answer.js";
import type { GatewayCheck } from "./check.js";

/** Documented context_extensions keys (set per route in Envoy's ext_authz filter config). */
export const EXT_PERMISSIONS = "latchkey.permissions";
export const EXT_ORG = "latchkey.org";

type CheckResponseInit = MessageInitShape<typeof CheckResponseSchema>;

/** google.rpc.Code numbers Envoy reads from CheckResponse.status. */
const RPC_OK = 0;
const RPC_CODE_OF_STATUS: Readonly<Record<number, number>> = {
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  429: 8, // RESOURCE_EXHAUSTED
};

/** Request headers by lower-case name, from `headers` or (raw-header mode) `header_map`. */
function headersOf(attributes: AttributeContext | undefined): Map<string, string> {
  const http = attributes?.request?.http;
  const out = new Map<string, string>();
  if (http === undefined) return out;
  for (const [k, v] of Object.entries(http.headers)) out.set(k.toLowerCase(), v);
  for (const h of http.headerMap?.headers ?? []) {
    const key = h.key.toLowerCase();
    if (!out.has(key)) out.set(key, h.value !== "" ? h.value : Buffer.from(h.rawValue).toString());
  }
  return out;
}

function sourceIp(attributes: AttributeContext | undefined): string {
  const address = attributes?.source?.address?.address;
  if (address?.case !== "socketAddress") return "";
  return normalizeIp(address.value.address) ?? "";
}

function headerOption(header: Header) {
  return {
    header: { key: header[0], value: header[1] },
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    keepEmptyValue: true,
  };
}

/**
 * The CheckResponse for an answer. Allowed: the identity headers overwrite any the client
 * sent, every other client-sent `x-latchkey-*` header and the token header are removed.
 * Denied: the status, its google.rpc code and the small JSON body.
 */
function checkResponse(
  answer: GatewayAnswer,
  incoming: ReadonlyMap<string, string>,
  tokenHeader: string,
): CheckResponseInit {
  if (answer.allowed) {
    const set = new Set(answer.headers.map(([name]) => name));
    const remove = [tokenHeader];
    for (const name of incoming.keys()) {
      if (name.startsWith(IDENTITY_PREFIX) && !set.has(name)) remove.push(name);
    }
    return {
      status: { code: RPC_OK },
      httpResponse: {
        case: "okResponse",
        value: { headers: answer.headers.map(headerOption), headersToRemove: remove },
      },
    };
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
    async check(req) {
      const attributes = req.attributes;
      const extensions = attributes?.contextExtensions ?? {};
      const permissions = (extensions[EXT_PERMISSIONS] ?? "")
        .split(",")
        .map((p) => p.trim())
        .filter((p) => p !== "");
      throwIfInvalid(
        checkPermissions(permissions, `attributes.context_extensions["${EXT_PERMISSIONS}"]`),
      );
      const headers = headersOf(attributes);
      const http = attributes?.request?.http;
      const answer = await gateway.check({
        credential: headers.get(gateway.tokenHeader),
        peer: sourceIp(attributes),
        forwardedFor: headers.get("x-forwarded-for"),
        method: http?.method ?? "",
        path: http?.path ?? "",
        permissions,
        orgId: (extensions[EXT_ORG] ?? "").trim(),
        requestId: http?.id || headers.get("x-request-id") || "",
      });
      return checkResponse(answer, headers, gateway.tokenHeader);
    },
  };
}
