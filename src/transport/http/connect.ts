import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import {
  type ConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { CallContext, Caller, ClientCertificate } from "../../services/context.js";
import { verifiedCertificate } from "../client-cert.js";
import { MALFORMED } from "../malformed.js";
import { socketIp } from "../peer.js";
import type { Message, RpcMethod, RpcService } from "../rpc-adapter.js";
import { checkingDecode, kMalformed } from "./decode-check.js";

/** 4 MiB, like the gRPC listener: far above any latchkey request. */
const READ_MAX_BYTES = 4 * 1024 * 1024;

const kPeer = createContextKey<string>("", { description: "latchkey peer address" });
const kSocket = createContextKey<unknown>(undefined, { description: "latchkey request socket" });

/** Adapts connect's HandlerContext to the CallContext the shared handlers expect. */
class ConnectCallContext implements CallContext {
  caller: Caller | undefined = undefined;

  constructor(
    private readonly ctx: HandlerContext,
    readonly method: string,
  ) {}

  header(name: string): string | undefined {
    return this.ctx.requestHeader.get(name) ?? undefined;
  }

  get peerAddress(): string {
    return socketIp(this.ctx.values.get(kPeer));
  }

  get clientCertificate(): ClientCertificate | undefined {
    return verifiedCertificate(this.ctx.values.get(kSocket));
  }

  get signal(): AbortSignal {
    return this.ctx.signal;
  }
}

/** One adapted method as connect-node calls it; a mapped failure is thrown for connect to send. */
function connectMethod(rpc: RpcMethod): unknown {
  if (rpc.kind === "server_streaming") {
    return (request: Message, ctx: HandlerContext) =>
      rpc.stream(
        ctx.values.get(kMalformed) ? MALFORMED : request,
        new ConnectCallContext(ctx, rpc.fullName),
      );
  }
  return (request: Message, ctx: HandlerContext) => {
    const incoming = ctx.values.get(kMalformed) ? MALFORMED : request;
    return new Promise<Message>((resolve, reject) => {
      const context = new ConnectCallContext(ctx, rpc.fullName);
      rpc.call(
        incoming,
        context,
        (error, response) => {
          if (error !== null || response === undefined) reject(error);
          else resolve(response);
        },
        undefined,
      );
    });
  };
}

function connectService(service: RpcService): Partial<ServiceImpl<DescService>> {
  const impl: Record<string, unknown> = {};
  for (const rpc of service.methods) impl[rpc.desc.localName] = connectMethod(rpc);
  return impl as Partial<ServiceImpl<DescService>>;
}

/** A Node request handler for Connect, gRPC-Web and gRPC on any HTTP version. */
export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * Binds the adapted services to connect-node: each method only turns connect's HandlerContext
 * into a CallContext (the peer address comes from the socket) and returns or throws what the
 * adapter produced, so the codes and details are those of the gRPC listener.
 */
export function connectHandler(services: readonly RpcService[]): NodeHandler {
  return connectNodeAdapter({
    routes(router: ConnectRouter) {
      for (const service of services) router.service(service.desc, connectService(service));
      // Undecodable bodies reach the adapter as MALFORMED_REQUEST (see decode-check.ts).
      router.handlers.forEach((h, i) => {
        router.handlers[i] = checkingDecode(h, READ_MAX_BYTES);
      });
    },
    readMaxBytes: READ_MAX_BYTES,
    contextValues: (req) =>
      createContextValues()
        .set(kPeer, req.socket.remoteAddress ?? "")
        .set(kSocket, req.socket),
  });
}
