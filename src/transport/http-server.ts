import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type * as tls from "node:tls";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  type ConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";
import { TokenAdminService } from "../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "../gen/latchkey/v1/token_verify_service_pb.js";
import type { CallContext, Caller, ServiceHandlers } from "../services/context.js";
import { type ErrorLog, toConnectError } from "./error-mapper.js";
import { normalizeIp } from "./grpc-server.js";
import type { RpcRecorder } from "./metrics.js";

/** The logger the HTTP listener writes request lines and handler failures to (pino fits). */
export interface HttpLog extends ErrorLog {
  info(obj: Record<string, unknown>, msg: string): void;
  debug(obj: Record<string, unknown>, msg: string): void;
}

/** What /readyz reports: `ok` decides 200 or 503, `checks` names each dependency's state. */
export interface Readiness {
  readonly ok: boolean;
  readonly checks: Record<string, string>;
}

export interface HttpServerOptions {
  readonly admin: ServiceHandlers<typeof TokenAdminService>;
  readonly verify: ServiceHandlers<typeof TokenVerifyService>;
  readonly log: HttpLog;
  /** Asked on every GET /readyz; should answer fast (it is polled by orchestrators). */
  readonly ready: () => Promise<Readiness>;
  /** Served as GET /metrics. */
  readonly metrics: Registry;
  /** Counts RPCs served here (rpc_requests_total). */
  readonly rpcMetrics?: RpcRecorder | undefined;
  /** With TLS, HTTP/1.1 and HTTP/2 are negotiated by ALPN on one port. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** How long close() lets in-flight requests finish before cutting connections (ms). */
  readonly closeGraceMs?: number | undefined;
}

/** The HTTP listener: bind it, and close it promptly even with clients still connected. */
export interface HttpListener {
  readonly server: net.Server | tls.Server;
  /** Binds `host:port` (port 0 picks one) and resolves with the bound port. */
  listen(hostPort: string): Promise<number>;
  close(): Promise<void>;
}

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

const kPeer = createContextKey<string>("", { description: "latchkey peer address" });

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
    return normalizeIp(this.ctx.values.get(kPeer));
  }

  get signal(): AbortSignal {
    return this.ctx.signal;
  }
}

type AnyUnary = (request: unknown, context: CallContext) => Promise<unknown>;
type AnyStreaming = (request: unknown, context: CallContext) => AsyncIterable<unknown>;

/**
 * Wraps every handler of a service for connect-node: same handler objects as the gRPC
 * listener, same error mapper, so a client sees the same codes and details on both ports.
 */
function connectServiceImpl<S extends DescService>(
  desc: S,
  handlers: ServiceHandlers<S>,
  log: ErrorLog,
  metrics: RpcRecorder | undefined,
): Partial<ServiceImpl<S>> {
  const table = handlers as unknown as Record<string, AnyUnary | AnyStreaming | undefined>;
  const impl: Record<string, unknown> = {};
  const fail = (err: unknown, fullName: string): never => {
    const mapped = toConnectError(err, log, fullName);
    metrics?.record(fullName, mapped.code);
    throw mapped;
  };
  for (const method of desc.methods as readonly DescMethod[]) {
    const handler = table[method.localName];
    if (handler === undefined) continue;
    const fullName = `${desc.typeName}/${method.name}`;
    if (method.methodKind === "unary") {
      const unary = handler as AnyUnary;
      impl[method.localName] = async (request: unknown, ctx: HandlerContext) => {
        try {
          const response = await unary(request, new ConnectCallContext(ctx, fullName));
          metrics?.record(fullName, 0);
          return response;
        } catch (err) {
          return fail(err, fullName);
        }
      };
    } else if (method.methodKind === "server_streaming") {
      const streaming = handler as AnyStreaming;
      impl[method.localName] = async function* (request: unknown, ctx: HandlerContext) {
        try {
          yield* streaming(request, new ConnectCallContext(ctx, fullName));
          metrics?.record(fullName, 0);
        } catch (err) {
          fail(err, fullName);
        }
      };
    }
  }
  return impl as Partial<ServiceImpl<S>>;
}

function hostAndPort(hostPort: string): { host: string; port: number } {
  const colon = hostPort.lastIndexOf(":");
  if (colon < 0) throw new Error(`listen address ${hostPort} has no port`);
  let host = hostPort.slice(0, colon);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const port = Number(hostPort.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`listen address ${hostPort} has a bad port`);
  }
  return { host, port };
}

function send(res: NodeResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

/** The HTTP/2 connection preface begins with these bytes; HTTP/1.1 never does. */
const H2_PREFACE_START = Buffer.from("PRI");

/**
 * The HTTP listener: Connect (JSON and binary), gRPC-Web and gRPC via connect-node for
 * browsers, curl and generated clients, plus /healthz, /readyz and /metrics. Plaintext serves
 * HTTP/1.1 and h2c on one port by sniffing the HTTP/2 preface; TLS negotiates by ALPN.
 */
export function createHttpServer(opts: HttpServerOptions): HttpListener {
  const { log, rpcMetrics } = opts;
  const graceMs = opts.closeGraceMs ?? 500;
  const connect = connectNodeAdapter({
    routes(router: ConnectRouter) {
      router.service(
        TokenAdminService,
        connectServiceImpl(TokenAdminService, opts.admin, log, rpcMetrics),
      );
      router.service(
        TokenVerifyService,
        connectServiceImpl(TokenVerifyService, opts.verify, log, rpcMetrics),
      );
    },
    readMaxBytes: 4 * 1024 * 1024,
    contextValues: (req) => createContextValues().set(kPeer, req.socket.remoteAddress ?? ""),
  });

  const plain = async (path: string, res: NodeResponse): Promise<void> => {
    if (path === "/healthz") {
      send(res, 200, "text/plain; charset=utf-8", "ok\n");
    } else if (path === "/readyz") {
      let readiness: Readiness;
      try {
        readiness = await opts.ready();
      } catch (err) {
        log.error({ err }, "readiness check failed");
        readiness = { ok: false, checks: { ready: "error" } };
      }
      send(res, readiness.ok ? 200 : 503, "application/json", JSON.stringify(readiness));
    } else {
      send(res, 200, opts.metrics.contentType, await opts.metrics.metrics());
    }
  };

  const handle = (req: NodeRequest, res: NodeResponse): void => {
    const start = performance.now();
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const probe = path === "/healthz" || path === "/readyz" || path === "/metrics";
    res.once("finish", () => {
      // Only these fields: headers (authorization!) and bodies (secrets!) are never logged.
      const line = {
        method: req.method,
        path,
        status: res.statusCode,
        ms: Math.round((performance.now() - start) * 100) / 100,
        http: req.httpVersion,
      };
      if (probe) log.debug(line, "http request");
      else log.info(line, "http request");
    });
    if (probe && req.method === "GET") {
      plain(path, res).catch((err: unknown) => {
        log.error({ err, path }, "plain route failed");
        if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
        else res.end();
      });
      return;
    }
    connect(req, res);
  };

  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const trackSession = (session: http2.Http2Session): void => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  };

  let server: net.Server | tls.Server;
  let h1: http.Server | undefined;
  if (opts.tls === undefined) {
    h1 = http.createServer(handle);
    const h2 = http2.createServer(handle);
    h2.on("session", trackSession);
    const h1Server = h1;
    server = net.createServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      let head: Buffer = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const n = Math.min(head.length, H2_PREFACE_START.length);
        const maybeH2 = head.subarray(0, n).equals(H2_PREFACE_START.subarray(0, n));
        // A first segment shorter than "PRI" that could still be the preface: wait for more.
        if (maybeH2 && head.length < H2_PREFACE_START.length) return;
        socket.off("data", onData);
        socket.pause();
        socket.unshift(head);
        if (maybeH2) {
          // The HTTP/2 session reads the socket itself, unshifted bytes first; resuming the
          // stream here would hand the preface to nobody.
          h2.emit("connection", socket);
        } else {
          // The HTTP/1.1 parser takes the peeked bytes through "data" events, so the stream
          // has to flow again.
          h1Server.emit("connection", socket);
          socket.resume();
        }
      };
      socket.on("data", onData);
      socket.on("error", () => socket.destroy());
    });
  } else {
    const secure = http2.createSecureServer(
      { cert: opts.tls.cert, key: opts.tls.key, allowHTTP1: true },
      handle,
    );
    secure.on("session", trackSession);
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
    server = secure;
  }
  server.on("error", (err) => log.error({ err }, "http listener error"));

  return {
    server,
    listen(hostPort) {
      const { host, port } = hostAndPort(hostPort);
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.once("error", onError);
        server.listen(port, host, () => {
          server.off("error", onError);
          const address = server.address();
          resolve(typeof address === "object" && address !== null ? address.port : port);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
        // Ask politely first: GOAWAY on HTTP/2, close idle keep-alive HTTP/1.1 connections.
        for (const session of sessions) session.close();
        h1?.closeIdleConnections();
        const timer = setTimeout(() => {
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
        }, graceMs);
        timer.unref();
      });
    },
  };
}
