import * as http from "node:http";
import * as http2 from "node:http2";
import type * as net from "node:net";
import type * as tls from "node:tls";
import { clientCertificateOptions, type TlsOptions } from "../client-cert.js";
import type { ErrorLog } from "../error-mapper.js";
import { type ConnectionLimits, DEFAULT_LIMITS } from "../limits.js";
import type { RpcMetrics } from "../metrics.js";
import { type Served, servedServices } from "../rpc-adapter.js";
import { connectHandler, type NodeHandler } from "./connect.js";
import { isConsolePath, loadConsoleAssets, serveConsole } from "./console.js";
import { applyCors } from "./cors.js";
import type { HttpRoute } from "./gateway-http.js";
import { sniffingServer } from "./h2c.js";
import { isProbePath, type ProbeOptions, serveProbe } from "./probes.js";

/** The logger the HTTP listener writes request lines and handler failures to (pino fits). */
export interface HttpLog extends ErrorLog {
  info(obj: Record<string, unknown>, msg: string): void;
  debug(obj: Record<string, unknown>, msg: string): void;
}

interface HttpListenerOptions extends ProbeOptions {
  readonly log: HttpLog;
  /** Records the calls of handler sets this listener adapts itself (see {@link Served}). */
  readonly rpcMetrics?: RpcMetrics | undefined;
  /**
   * With TLS, HTTP/1.1 and HTTP/2 are negotiated by ALPN on one port; with a client CA, client
   * certificates are requested (and, under `all`, required) in the handshake.
   */
  readonly tls?: TlsOptions | undefined;
  /** First-byte, header and idle timeouts and the stream cap (default {@link DEFAULT_LIMITS}). */
  readonly limits?: ConnectionLimits | undefined;
  /** How long close() lets in-flight requests finish before cutting connections (ms). */
  readonly closeGraceMs?: number | undefined;
  /** Origins allowed to call the API from a browser (LATCHKEY_CORS_ORIGINS); empty: CORS off. */
  readonly corsOrigins?: readonly string[] | undefined;
  /** Plain endpoints beside the RPCs, by exact path, any method (/v1/check, /oauth2/introspect). */
  readonly routes?: readonly HttpRoute[] | undefined;
}

export type HttpServerOptions = HttpListenerOptions & Served;

/** The HTTP listener: bind it, and close it promptly even with clients still connected. */
export interface HttpListener {
  readonly server: net.Server | tls.Server;
  /** Binds `host:port` (port 0 picks one) and resolves with the bound port. */
  listen(hostPort: string): Promise<number>;
  close(): Promise<void>;
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

/**
 * GOAWAY for an HTTP/2 connection that has had no open stream for `idleMs` (what grpc-js does
 * with `grpc.max_connection_idle_ms`); a connection with a stream open (a long watch) stays.
 */
function closeWhenIdle(session: http2.Http2Session, idleMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    timer = setTimeout(() => {
      if (open === 0 && !session.closed && !session.destroyed) session.close();
    }, idleMs);
    timer.unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      open--;
      if (open === 0) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}

/** Routes a request to the probes or to connect-node, and logs one line for it once answered. */
function requestHandler(opts: HttpServerOptions, connect: NodeHandler): NodeHandler {
  const { log } = opts;
  const consoleAssets = loadConsoleAssets();
  const corsOrigins = opts.corsOrigins ?? [];
  const routes = new Map((opts.routes ?? []).map((r) => [r.path, r]));
  return (req, res) => {
    const start = performance.now();
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const probe = isProbePath(path);
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
    const route = routes.get(path);
    if (probe && req.method === "GET") serveProbe(path, res, opts);
    else if (route !== undefined) route.handle(req, res);
    else if (isConsolePath(path)) serveConsole(path, req, res, consoleAssets);
    else if (!applyCors(corsOrigins, req, res)) connect(req, res);
  };
}

/**
 * The HTTP listener: Connect (JSON and binary), gRPC-Web and gRPC via connect-node for
 * browsers, curl and generated clients, plus /healthz, /readyz and /metrics. Plaintext serves
 * HTTP/1.1 and h2c on one port by sniffing the HTTP/2 preface; TLS negotiates by ALPN.
 */
export function createHttpServer(opts: HttpServerOptions): HttpListener {
  const { log } = opts;
  const graceMs = opts.closeGraceMs ?? 500;
  const services = servedServices(opts, { log, metrics: opts.rpcMetrics });
  const handle = requestHandler(opts, connectHandler(services));

  const sockets = new Set<net.Socket>();
  const trackSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const sessions = new Set<http2.Http2Session>();
  const trackSession = (session: http2.Http2Session): void => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    closeWhenIdle(session, limits.idleTimeoutMs);
  };
  const settings = { maxConcurrentStreams: limits.maxConcurrentStreams };

  let server: net.Server | tls.Server;
  let h1: http.Server | undefined;
  if (opts.tls === undefined) {
    h1 = http.createServer(
      {
        // Headers within the limit (checked this often); an idle keep-alive connection closes
        // after Node's keepAliveTimeout (5 s).
        headersTimeout: limits.headerTimeoutMs,
        requestTimeout: Math.max(limits.headerTimeoutMs, 300_000),
        connectionsCheckingInterval: Math.min(1_000, limits.headerTimeoutMs),
      },
      handle,
    );
    const h2 = http2.createServer({ settings }, handle);
    h2.on("session", trackSession);
    server = sniffingServer(h1, h2, trackSocket, limits.headerTimeoutMs);
  } else {
    const secure = http2.createSecureServer(
      {
        cert: opts.tls.cert,
        key: opts.tls.key,
        ...clientCertificateOptions(opts.tls),
        allowHTTP1: true,
        settings,
        handshakeTimeout: limits.headerTimeoutMs,
      },
      handle,
    );
    secure.on("session", trackSession);
    secure.on("secureConnection", trackSocket);
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
