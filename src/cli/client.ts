import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TokenAdminService } from "../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "../gen/latchkey/v1/token_verify_service_pb.js";
import { callerToken } from "./config-file.js";
import type { CliEnvironment } from "./environment.js";
import type { Flags } from "./flags.js";

/** The clients a command may call, all over one transport that carries the caller token. */
export interface CliClients {
  readonly admin: Client<typeof TokenAdminService>;
  readonly verifier: Client<typeof TokenVerifyService>;
}

/**
 * Connects to the gRPC listener named by `--server`, else LATCHKEY_SERVER, else the default
 * address, and sends the caller token (see `callerToken`) as a bearer on every call.
 */
export function createClients(flags: Flags, env: CliEnvironment): CliClients {
  const token = callerToken(flags.token, env);
  const auth: Interceptor = (next) => async (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: flags.server ?? env.server ?? "http://127.0.0.1:50051",
    interceptors: [auth],
  });
  return {
    admin: createClient(TokenAdminService, transport),
    verifier: createClient(TokenVerifyService, transport),
  };
}
