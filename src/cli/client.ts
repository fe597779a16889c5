import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TokenAdminService } from "../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "../gen/latchkey/v1/token_verify_service_pb.js";
import type { CliTls } from "./tls.js";

/** The clients a command may call, all over one transport that carries the caller token. */
export interface CliClients {
  readonly admin: Client<typeof TokenAdminService>;
  readonly verifier: Client<typeof TokenVerifyService>;
}

/** No call of the CLI should hang a script forever on a black-holed address. */
const CALL_TIMEOUT_MS = 30_000;

/**
 * Connects to the gRPC listener at `server` (a normalised base URL) and sends `token`, when
 * there is one, as a bearer on every call; `tls` adds a private CA and a client certificate.
 */
export function createClients(
  server: string,
  token: string | undefined,
  tls: CliTls["nodeOptions"],
): CliClients {
  const auth: Interceptor = (next) => async (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: server,
    interceptors: [auth],
    defaultTimeoutMs: CALL_TIMEOUT_MS,
    nodeOptions: tls,
  });
  return {
    admin: createClient(TokenAdminService, transport),
    verifier: createClient(TokenVerifyService, transport),
  };
}
