import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { malformedRequest } from "../errors.js";
import { TokenAdminService } from "../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "../gen/latchkey/v1/token_verify_service_pb.js";
import type { Authenticator } from "../services/auth.js";
import type { CallContext, ServiceHandlers } from "../services/context.js";
import { requiringClientCertificate } from "./client-cert.js";
import { type ErrorLog, toConnectError } from "./error-mapper.js";
import { MalformedRequest } from "./malformed.js";
import type { MethodRecorder, RpcMetrics } from "./metrics.js";

/** A decoded request or an encoded-to-be response: some protobuf-es message. */
export type Message = MessageShape<DescMessage>;

/** What a listener hands the adapter: the decoded message, or the marker of undecodable bytes. */
export type IncomingRequest = Message | MalformedRequest;

interface AdaptedMethod {
  readonly desc: DescMethod;
  /** `pkg.Service/Method`: the metrics series, the log field and `CallContext.method`. */
  readonly fullName: string;
}

/** A unary method ready to serve: authentication, handler, metrics and error mapping in one. */
export interface UnaryRpc extends AdaptedMethod {
  readonly kind: "unary";
  /**
   * Runs the call and hands `reply` the response message, or the failure already mapped by the
   * one error mapper (logged where it is a fault, and counted), for the listener to send, with
   * `sink` (the listener's own handle on the call, e.g. grpc-js's callback). A callback rather
   * than a promise, and `sink` rather than a closure: a handler that answers synchronously
   * (VerifyToken from the local tier) is replied to with no promise and no per-call function.
   */
  call<S>(request: IncomingRequest, context: CallContext, reply: UnaryReply<S>, sink: S): void;
}

/** Receives a unary call's outcome: exactly one of a mapped error or the response. */
export type UnaryReply<S = undefined> = (
  error: ConnectError | null,
  response: Message | undefined,
  sink: S,
) => void;

/** A server-streaming method ready to serve. */
export interface ServerStreamingRpc extends AdaptedMethod {
  readonly kind: "server_streaming";
  /** Yields response messages; throws only a mapped ConnectError (CANCELLED if the client left). */
  stream(request: IncomingRequest, context: CallContext): AsyncGenerator<Message, void, undefined>;
  /** Maps a failure of the listener's own sending (not the handler's) through the same mapper. */
  fail(err: unknown): ConnectError;
}

export type RpcMethod = UnaryRpc | ServerStreamingRpc;

/** One service as both listeners serve it: its descriptor and its adapted methods. */
export interface RpcService {
  readonly desc: DescService;
  readonly methods: readonly RpcMethod[];
}

export interface AdaptOptions {
  /** Where the error mapper logs faults (a pino Logger fits). */
  readonly log: ErrorLog;
  /** Counts every call and times every unary one (rpc_requests_total, rpc_duration_seconds). */
  readonly metrics?: RpcMetrics | undefined;
  /**
   * Authenticates each call before its handler runs and puts the caller into the context
   * (`ctx.caller`); given for TokenAdminService.
   */
  readonly authenticate?: Authenticator | undefined;
  /**
   * mTLS (LATCHKEY_TLS_CLIENT_CA): TokenAdminService calls without a verified client
   * certificate are UNAUTHENTICATED / CLIENT_CERTIFICATE_REQUIRED, on both listeners alike.
   */
  readonly requireClientCertificate?: boolean | undefined;
}

/** gRPC status OK (connect's Code enum has no member for it). */
const OK = 0;

type AnyUnary = (request: unknown, context: CallContext) => unknown;
type AnyStreaming = (request: unknown, context: CallContext) => AsyncIterable<unknown>;

function adaptUnary(
  desc: DescMethod,
  fullName: string,
  handler: AnyUnary,
  options: AdaptOptions,
): UnaryRpc {
  const { log, authenticate } = options;
  const output = desc.output;
  const recorder: MethodRecorder | undefined = options.metrics?.method(fullName);
  const run: AnyUnary =
    authenticate === undefined
      ? handler
      : async (request, context) => {
          context.caller = await authenticate(desc.localName, context);
          return await handler(request, context);
        };
  const fail = (err: unknown, start: number): ConnectError => {
    const mapped = toConnectError(err, log, fullName);
    recorder?.record(mapped.code, (performance.now() - start) / 1e3);
    return mapped;
  };
  /** The handler's answer as the response message (created from an init shape if need be). */
  const done = <S>(init: unknown, start: number, reply: UnaryReply<S>, sink: S): void => {
    let response: Message;
    try {
      // A handler may return a message (kept as is, frozen ones included) or an init shape.
      response = create(output, init as MessageInitShape<DescMessage>);
    } catch (err) {
      reply(fail(err, start), undefined, sink);
      return;
    }
    recorder?.record(OK, (performance.now() - start) / 1e3);
    reply(null, response, sink);
  };
  return {
    kind: "unary",
    desc,
    fullName,
    call(request, context, reply, sink) {
      const start = performance.now();
      if (request instanceof MalformedRequest) {
        reply(fail(malformedRequest(), start), undefined, sink);
        return;
      }
      let pending: unknown;
      try {
        pending = run(request, context);
      } catch (err) {
        reply(fail(err, start), undefined, sink);
        return;
      }
      // A handler may answer synchronously (VerifyToken from the local tier): no promise hop.
      if (!(pending instanceof Promise)) {
        done(pending, start, reply, sink);
        return;
      }
      pending.then(
        (init: unknown) => done(init, start, reply, sink),
        (err: unknown) => reply(fail(err, start), undefined, sink),
      );
    },
  };
}

function adaptServerStreaming(
  desc: DescMethod,
  fullName: string,
  handler: AnyStreaming,
  options: AdaptOptions,
): ServerStreamingRpc {
  const { log, authenticate } = options;
  const output = desc.output;
  const recorder = options.metrics?.method(fullName);
  return {
    kind: "server_streaming",
    desc,
    fullName,
    async *stream(request, context) {
      // Stays CANCELLED when the listener abandons the stream because the client went away.
      let code: number = Code.Canceled;
      try {
        if (request instanceof MalformedRequest) throw malformedRequest();
        if (authenticate !== undefined) {
          context.caller = await authenticate(desc.localName, context);
        }
        for await (const init of handler(request, context)) {
          yield create(output, init as MessageInitShape<DescMessage>);
        }
        code = OK;
      } catch (err) {
        // A failure after the client left is nobody's to read: no mapping, no log line.
        if (context.signal.aborted) throw new ConnectError("the client went away", Code.Canceled);
        const mapped = toConnectError(err, log, fullName);
        code = mapped.code;
        throw mapped;
      } finally {
        recorder?.record(code);
      }
    },
    fail: (err) => (err instanceof ConnectError ? err : toConnectError(err, log, fullName)),
  };
}

/**
 * Walks a service's methods once and binds each to its handler with everything both listeners
 * must do alike: authentication (when `options.authenticate` is given), the call itself,
 * metrics, and the one error mapper. The grpc-js and connect-node bindings only translate
 * their call objects into a CallContext and send what comes back, so the two listeners cannot
 * disagree on codes, details or metrics. Unary and server-streaming methods are adapted (the
 * only kinds the contract uses); a method without a handler is left out.
 */
export function adaptService<S extends DescService>(
  desc: S,
  handlers: ServiceHandlers<S>,
  options: AdaptOptions,
): RpcService {
  const table = handlers as unknown as Record<string, AnyUnary | AnyStreaming | undefined>;
  const methods: RpcMethod[] = [];
  for (const method of desc.methods as readonly DescMethod[]) {
    const handler = table[method.localName];
    if (handler === undefined) continue;
    const fullName = `${desc.typeName}/${method.name}`;
    if (method.methodKind === "unary") {
      methods.push(adaptUnary(method, fullName, handler as AnyUnary, options));
    } else if (method.methodKind === "server_streaming") {
      methods.push(adaptServerStreaming(method, fullName, handler as AnyStreaming, options));
    }
  }
  return { desc, methods };
}

/** The two latchkey services, one implementation each. */
export interface LatchkeyHandlers {
  readonly admin: ServiceHandlers<typeof TokenAdminService>;
  readonly verify: ServiceHandlers<typeof TokenVerifyService>;
}

/**
 * Adapts both latchkey services: TokenAdminService with `options.authenticate` (behind the
 * client-certificate check when `requireClientCertificate`), the unauthenticated
 * TokenVerifyService without either. The composition root calls this once and hands
 * the result to both listeners.
 */
export function adaptLatchkey(handlers: LatchkeyHandlers, options: AdaptOptions): RpcService[] {
  const { authenticate } = options;
  const admin =
    options.requireClientCertificate === true && authenticate !== undefined
      ? { ...options, authenticate: requiringClientCertificate(authenticate) }
      : options;
  return [
    adaptService(TokenAdminService, handlers.admin, admin),
    adaptService(TokenVerifyService, handlers.verify, {
      log: options.log,
      metrics: options.metrics,
    }),
  ];
}

/**
 * What a listener serves: the adapted services (the composition root adapts once for both
 * listeners), or the two handler sets, which a listener started on its own adapts itself.
 */
export type Served = { readonly services: readonly RpcService[] } | LatchkeyHandlers;

/** The services of `served`, adapting handler sets with `options` (see {@link Served}). */
export function servedServices(served: Served, options: AdaptOptions): readonly RpcService[] {
  return "services" in served ? served.services : adaptLatchkey(served, options);
}
