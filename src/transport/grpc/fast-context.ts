import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { TLSSocket } from "node:tls";
import type { CallContext, Caller, ClientCertificate } from "../../services/context.js";
import { fromPeerCertificate } from "../client-cert.js";
import { socketIp } from "../peer.js";

/** The call context of a lane call: headers and peer straight from the http2 stream. */
export class FastCallContext implements CallContext {
  caller: Caller | undefined = undefined;
  #signal: AbortSignal | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    readonly method: string,
  ) {}

  header(name: string): string | undefined {
    const value = this.headers[name];
    return Array.isArray(value) ? value[0] : value;
  }

  get peerAddress(): string {
    return socketIp(this.stream.session?.socket.remoteAddress ?? "");
  }

  /** As grpc-js's getAuthContext: a certificate only when the TLS layer verified it. */
  get clientCertificate(): ClientCertificate | undefined {
    const socket = this.stream.session?.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
    const cert = socket.getPeerCertificate();
    return fromPeerCertificate(cert.raw === undefined ? undefined : cert);
  }

  get signal(): AbortSignal {
    if (this.#signal === undefined) {
      const controller = new AbortController();
      if (this.stream.closed || this.stream.destroyed) controller.abort();
      else this.stream.once("close", () => controller.abort());
      this.#signal = controller.signal;
    }
    return this.#signal;
  }
}
