import type { DescFile } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import type { ErrorLog } from "../error-mapper.js";
import { type ConnectionLimits, DEFAULT_LIMITS } from "../limits.js";
import type { RpcMetrics } from "../metrics.js";
import { type Served, servedServices } from "../rpc-adapter.js";
import type { GrpcHealthReporter } from "./health.js";
import { LATCHKEY_FILES, reflectionPackageDefinition } from "./reflection.js";
import { bindGrpcService, type GrpcService } from "./service.js";

/**
 * A service served on the gRPC listener beside the latchkey ones (e.g. Envoy ext_authz). Its
 * health name goes to createHealthReporter's `extraServiceNames`.
 */
export interface ExtraGrpcService {
  readonly service: GrpcService;
  /** Files describing it, so reflection lists it (dependencies are added automatically). */
  readonly files?: readonly DescFile[];
}

interface GrpcListenerOptions {
  /** From createHealthReporter; its state is served as grpc.health.v1.Health. */
  readonly health: GrpcHealthReporter;
  readonly log: ErrorLog;
  /** Records the calls of handler sets this listener adapts itself (see {@link Served}). */
  readonly metrics?: RpcMetrics | undefined;
  readonly extraServices?: readonly ExtraGrpcService[] | undefined;
  /** Idle and stream limits (default {@link DEFAULT_LIMITS}). */
  readonly limits?: ConnectionLimits | undefined;
  /** Overrides of the channel options below (tests, tuning). */
  readonly channelOptions?: grpc.ServerOptions | undefined;
}

export type GrpcServerOptions = GrpcListenerOptions & Served;

/** 4 MiB: far above any latchkey request, low enough to stop a memory-exhaustion attempt. */
const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/**
 * The gRPC listener (the hot path for sidecars and gateways): both latchkey services as the
 * RPC adapter serves them, reflection v1/v1alpha for grpcurl and `buf curl --reflect`, and
 * health. Not yet bound: call {@link listenGrpc}.
 */
export function createGrpcServer(opts: GrpcServerOptions): grpc.Server {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const server = new grpc.Server({
    // A connection with no call for this long gets GOAWAY (also one that never sent a byte).
    "grpc.max_connection_idle_ms": limits.idleTimeoutMs,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    // Ping idle connections each minute so dead gateways are noticed and NATs keep the flow.
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
    ...opts.channelOptions,
  });
  for (const service of servedServices(opts, { log: opts.log, metrics: opts.metrics })) {
    // grpc-js refuses an empty service; a handler set with no methods simply is not served.
    if (service.methods.length === 0) continue;
    const bound = bindGrpcService(service);
    server.addService(bound.definition, bound.implementation);
  }
  const reflectionFiles: DescFile[] = [...LATCHKEY_FILES];
  for (const extra of opts.extraServices ?? []) {
    server.addService(extra.service.definition, extra.service.implementation);
    reflectionFiles.push(...(extra.files ?? []));
  }
  opts.health.implementation.addToServer(server);
  new ReflectionService(reflectionPackageDefinition(reflectionFiles)).addToServer(server);
  return server;
}

/**
 * Binds the gRPC listener (plaintext, or TLS when a cert and key are given) and resolves with
 * the bound port, which differs from the requested one when it was 0.
 */
export function listenGrpc(
  server: grpc.Server,
  hostPort: string,
  tls?: { readonly cert: Buffer; readonly key: Buffer },
): Promise<number> {
  const credentials =
    tls === undefined
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(
          null,
          [{ cert_chain: tls.cert, private_key: tls.key }],
          false,
        );
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort, credentials, (err, port) =>
      err === null ? resolve(port) : reject(bindError(hostPort, err)),
    );
  });
}

/**
 * grpc-js reports a failed bind as "No address added out of total 1 resolved errors: [listen
 * EADDRINUSE: …]"; the operator gets one plain sentence with the errno as `code` instead.
 */
function bindError(hostPort: string, err: Error): Error {
  const errno = /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(err.message)?.[1];
  const why =
    errno === "EADDRINUSE"
      ? "is already in use by another process"
      : errno === "EACCES"
        ? "may not be bound by this user"
        : errno === "EADDRNOTAVAIL"
          ? "is not an address of this machine"
          : "cannot be bound";
  return Object.assign(new Error(`gRPC listen address ${hostPort} ${why}`, { cause: err }), {
    code: errno ?? "EBIND",
  });
}

/**
 * Sends grpc-js's own log lines (it prints e.g. "E No address added out of total 1 resolved" to
 * stderr by itself) to `log` at debug level, so the operator sees latchkey's lines only.
 */
export function routeGrpcLogs(log: {
  debug(obj: Record<string, unknown>, msg: string): void;
}): void {
  grpc.setLogger({
    error: (...args: unknown[]) => log.debug({ grpc: args.map(String).join(" ") }, "grpc-js"),
    info: (...args: unknown[]) => log.debug({ grpc: args.map(String).join(" ") }, "grpc-js"),
    debug: (...args: unknown[]) => log.debug({ grpc: args.map(String).join(" ") }, "grpc-js"),
  });
}

/**
 * Stops the gRPC listener: graceful for `graceMs` (in-flight calls finish, health already
 * NOT_SERVING), then every remaining call and session is cut so shutdown never hangs on a
 * WatchRevocations stream or an idle gateway connection.
 */
export function closeGrpc(server: grpc.Server, graceMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
