import {
  Authorization,
  file_envoy_service_auth_v3_external_auth,
} from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { GatewayCheck } from "../../services/gateway/check.js";
import { createExtAuthzHandlers } from "../../services/gateway/envoy.js";
import type { ErrorLog } from "../error-mapper.js";
import type { RpcMetrics } from "../metrics.js";
import { decodeCheckLean } from "./ext-authz-decode.js";
import type { ExtraGrpcService } from "./server.js";
import { grpcServiceDefinition } from "./service.js";

/**
 * Envoy's `envoy.service.auth.v3.Authorization` as an extra service of the gRPC listener: its
 * handlers adapted by the shared RPC adapter (same error mapping and metrics as the latchkey
 * services), its descriptor files handed to reflection so `buf curl --reflect` lists it. The
 * request is read by a lean decoder (only the fields the check uses, the rest validated).
 */
export function extAuthzService(
  gateway: GatewayCheck,
  log: ErrorLog,
  metrics?: RpcMetrics | undefined,
): ExtraGrpcService {
  return {
    service: grpcServiceDefinition(Authorization, createExtAuthzHandlers(gateway), log, {
      metrics,
      // Check reads a few fields of a large message: decoded leanly, fully only when unsure.
      lean: { Check: decodeCheckLean },
    }),
    files: [file_envoy_service_auth_v3_external_auth],
  };
}
