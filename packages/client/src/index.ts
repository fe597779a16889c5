import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { TokenAdminService } from "./gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "./gen/latchkey/v1/token_verify_service_pb.js";

export * from "./gen/latchkey/v1/token_admin_service_pb.js";
export * from "./gen/latchkey/v1/token_pb.js";
export * from "./gen/latchkey/v1/token_verify_service_pb.js";

/** How {@link createLatchkeyClient} reaches latchkey. */
export interface LatchkeyClientOptions {
  /**
   * The listener's base URL: the gRPC listener (`http://127.0.0.1:50051`) for `grpc`, the
   * HTTP listener (`http://127.0.0.1:8080`) for `connect`.
   */
  readonly baseUrl: string;
  /** The caller token sent as `authorization: Bearer …`; TokenVerifyService needs none. */
  readonly token?: string | undefined;
  /** `grpc` (default: latchkey's fast path, HTTP/2) or `connect` (Connect JSON over HTTP/1.1). */
  readonly protocol?: "grpc" | "connect";
  /** Deadline of every call, in ms (default 10 000). */
  readonly timeoutMs?: number;
  /** More interceptors (tracing, logging), run after the one that adds the token. */
  readonly interceptors?: readonly Interceptor[];
}

/** Both services over one transport. */
export interface LatchkeyClient {
  readonly admin: Client<typeof TokenAdminService>;
  readonly verify: Client<typeof TokenVerifyService>;
}

/**
 * One call instead of a transport, an interceptor and two `createClient`s: what another
 * service needs to administer or verify tokens, with the bearer token attached to every call.
 */
export function createLatchkeyClient(options: LatchkeyClientOptions): LatchkeyClient {
  const bearer: Interceptor = (next) => (req) => {
    if (options.token !== undefined && options.token !== "") {
      req.header.set("authorization", `Bearer ${options.token}`);
    }
    return next(req);
  };
  const common = {
    baseUrl: options.baseUrl,
    interceptors: [bearer, ...(options.interceptors ?? [])],
    defaultTimeoutMs: options.timeoutMs ?? 10_000,
  };
  const transport =
    options.protocol === "connect"
      ? createConnectTransport({ ...common, httpVersion: "1.1" })
      : createGrpcTransport(common);
  return {
    admin: createClient(TokenAdminService, transport),
    verify: createClient(TokenVerifyService, transport),
  };
}
