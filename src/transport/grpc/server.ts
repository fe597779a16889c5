import type { DescFile } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { clientCertificateOptions, type TlsOptions } from "../client-cert.js";
import type { ErrorLog } from "../error-mapper.js";
import { type ConnectionLimits, DEFAULT_LIMITS } from "../limits.js";
import type { RpcMetrics } from "../metrics.js";
import { type Served, servedServices } from "../rpc-adapter.js";
import { type FastUnary, installFastUnary } from "./fast-unary.js";
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
  /**
   * Serve the unary methods through the lean unary lane (default) or through grpc-js like the
   * rest (`false`: for A/B measurements and comparison tests).
   */
  readonly fastUnary?: boolean | undefined;
}

export type GrpcServerOptions = GrpcListenerOptions & Served;

/** 4 MiB: far above any latchkey request, low enough to stop a memory-exhaustion attempt. */
const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/** The unary methods each server's lean lane takes, installed once the server is bound. */
const fastMethods = new WeakMap<grpc.Server, readonly FastUnary[]>();

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
  const fast: FastUnary[] = [];
  for (const service of servedServices(opts, { log: opts.log, metrics: opts.metrics })) {
    // grpc-js refuses an empty service; a handler set with no methods simply is not served.
    if (service.methods.length === 0) continue;
    const bound = bindGrpcService(service);
    server.addService(bound.definition, bound.implementation);
    fast.push(...(bound.fast ?? []));
  }
  const reflectionFiles: DescFile[] = [...LATCHKEY_FILES];
  for (const extra of opts.extraServices ?? []) {
    server.addService(extra.service.definition, extra.service.implementation);
    fast.push(...(extra.service.fast ?? []));
    reflectionFiles.push(...(extra.files ?? []));
  }
  if (opts.fastUnary !== false) fastMethods.set(server, fast);
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
  tls?: TlsOptions | undefined,
): Promise<number> {
  const credentials =
    tls === undefined ? grpc.ServerCredentials.createInsecure() : serverCredentials(tls);
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort, credentials, (err, port) => {
      if (err !== null) {
        reject(bindError(hostPort, err));
        return;
      }
      try {
        installFastUnary(server, fastMethods.get(server) ?? [], MAX_RECEIVE_BYTES);
        resolve(port);
      } catch (e) {
        reject(e);
      }
    });
  });
}

/**
 * TLS credentials of the gRPC listener. With a client CA under `all`, grpc-js's own
 * `createSsl(ca, …, true)` refuses clients without a certificate from that CA in the handshake.
 * Under `admin` the handshake must ask for a certificate without insisting (node's
 * `rejectUnauthorized: false`), which createSsl cannot express; grpc-js's certificate-provider
 * credentials can (`requireClientCertificate = false`), and the RPC adapter then refuses admin
 * calls whose certificate did not verify.
 */
function serverCredentials(tls: TlsOptions): grpc.ServerCredentials {
  const pair = { cert_chain: tls.cert, private_key: tls.key };
  const client = clientCertificateOptions(tls);
  if (client.ca === undefined || client.rejectUnauthorized) {
    return grpc.ServerCredentials.createSsl(client.ca ?? null, [pair], client.requestCert);
  }
  const ca = client.ca;
  // One static provider serves both the identity and the CA, so the provider arguments'
  // order (which grpc-js's declaration and implementation name differently) cannot matter.
  // Updates are delivered on the next tick, as grpc-js's own file-watcher provider does: the
  // credentials register the server's watcher only after subscribing to the provider, so a
  // synchronous update would be lost. No connection can be accepted before the next tick.
  const identity = { certificate: tls.cert, privateKey: tls.key };
  const provider: grpc.experimental.CertificateProvider = {
    addCaCertificateListener: (listener) => process.nextTick(listener, { caCertificate: ca }),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (listener) => process.nextTick(listener, identity),
    removeIdentityCertificateListener: () => {},
  };
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
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
