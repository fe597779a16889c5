import { once } from "node:events";
import type { PeerCertificate } from "node:tls";
import { type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import type {
  CallContext,
  Caller,
  ClientCertificate,
  ServiceHandlers,
} from "../../services/context.js";
import { fromPeerCertificate } from "../client-cert.js";
import { type ErrorLog, toGrpcError } from "../error-mapper.js";
import { MALFORMED, MalformedRequest } from "../malformed.js";
import type { RpcMetrics } from "../metrics.js";
import { peerIp } from "../peer.js";
import {
  adaptService,
  type IncomingRequest,
  type Message,
  type RpcService,
  type ServerStreamingRpc,
  type UnaryRpc,
} from "../rpc-adapter.js";
import type { FastUnary } from "./fast-unary.js";
import { stringsDecoder } from "./lean-reader.js";

/** The part of a grpc-js server call the context reads (grpc-js does not export the type). */
interface SurfaceCall {
  readonly metadata: grpc.Metadata;
  readonly cancelled: boolean;
  getPeer(): string;
  /** grpc-js ≥ 1.12 (its AuthContext type is not exported). */
  getAuthContext(): { readonly sslPeerCertificate?: PeerCertificate | undefined };
  once(event: "cancelled", listener: () => void): unknown;
}

/**
 * Per-call context on the hot path: a plain object with two lazy fields. No Headers, no
 * AbortController and no peer parsing unless the handler asks for them.
 */
class GrpcCallContext implements CallContext {
  caller: Caller | undefined = undefined;
  #peer: string | undefined;
  #signal: AbortSignal | undefined;

  constructor(
    private readonly call: SurfaceCall,
    readonly method: string,
  ) {}

  header(name: string): string | undefined {
    const value = this.call.metadata.get(name)[0];
    return typeof value === "string" ? value : undefined;
  }

  get peerAddress(): string {
    if (this.#peer === undefined) this.#peer = peerIp(this.call.getPeer());
    return this.#peer;
  }

  /** grpc-js reports `sslPeerCertificate` only for a certificate that verified (`authorized`). */
  get clientCertificate(): ClientCertificate | undefined {
    return fromPeerCertificate(this.call.getAuthContext().sslPeerCertificate);
  }

  get signal(): AbortSignal {
    if (this.#signal === undefined) {
      const controller = new AbortController();
      if (this.call.cancelled) controller.abort();
      else this.call.once("cancelled", () => controller.abort());
      this.#signal = controller.signal;
    }
    return this.#signal;
  }
}

/** What {@link grpcServiceDefinition} returns: the two halves `server.addService` takes. */
export interface GrpcService {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
  /** The unary methods, for the listener's lean unary lane (see fast-unary.ts). */
  readonly fast?: readonly FastUnary[] | undefined;
}

function bytesToBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodings of frozen (immutable, shared) response messages. */
const encodedOnce = new WeakMap<object, Buffer>();

/**
 * A faster reader of one method's request for the gRPC listener: returns what the handler
 * accepts instead of the full message, or undefined to leave the bytes to `fromBinary`. It
 * must accept only bytes that `fromBinary` accepts (see ext-authz-decode.ts).
 */
export type LeanDecoder = (bytes: Buffer) => object | undefined;

function methodDefinition(
  service: DescService,
  method: DescMethod,
  given: LeanDecoder | undefined,
): grpc.MethodDefinition<IncomingRequest, Message> {
  const input = method.input;
  // Requests made of strings only (VerifyTokenRequest) get the generic lean decoder.
  const lean = given ?? stringsDecoder(input);
  const output = method.output;
  return {
    path: `/${service.typeName}/${method.name}`,
    requestStream:
      method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream:
      method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (value) => {
      if (value instanceof MalformedRequest) throw new TypeError("cannot send a malformed request");
      return bytesToBuffer(toBinary(input, value));
    },
    // Never throws into grpc-js (which would answer INTERNAL "Error deserializing request"):
    // bytes that are not this message (bad wire format, invalid UTF-8 in a string) become the
    // marker, and the adapter answers INVALID_ARGUMENT / MALFORMED_REQUEST and counts the call.
    requestDeserialize: (bytes) => {
      // The handler of a method with a lean decoder accepts what that decoder makes; the
      // adapter passes requests through untouched, so the cast names no new behaviour.
      const quick = lean?.(bytes);
      if (quick !== undefined) return quick as IncomingRequest;
      try {
        return fromBinary(input, bytes);
      } catch {
        return MALFORMED;
      }
    },
    responseSerialize: (value) => {
      // A frozen response is immutable and shared (e.g. VerifyToken's per-token answers):
      // encode it once. grpc-js copies the bytes into its own frame, so sharing them is safe.
      if (!Object.isFrozen(value)) return bytesToBuffer(toBinary(output, value));
      let bytes = encodedOnce.get(value);
      if (bytes === undefined) {
        bytes = bytesToBuffer(toBinary(output, value));
        encodedOnce.set(value, bytes);
      }
      return bytes;
    },
    responseDeserialize: (bytes) => fromBinary(output, bytes),
    originalName: method.localName,
  };
}

/** Sends the adapter's answer through grpc-js's callback (one function for every call). */
function sendUnary(
  error: ConnectError | null,
  response: Message | undefined,
  callback: grpc.sendUnaryData<Message>,
): void {
  if (error !== null) callback(toGrpcError(error));
  else callback(null, response);
}

function unaryImplementation(rpc: UnaryRpc): grpc.handleUnaryCall<IncomingRequest, Message> {
  const method = rpc.fullName;
  return (call, callback) => {
    rpc.call(call.request, new GrpcCallContext(call, method), sendUnary, callback);
  };
}

function streamingImplementation(
  rpc: ServerStreamingRpc,
): grpc.handleServerStreamingCall<IncomingRequest, Message> {
  return (call) => {
    const context = new GrpcCallContext(call, rpc.fullName);
    const run = async (): Promise<void> => {
      for await (const message of rpc.stream(call.request, context)) {
        if (call.cancelled) return;
        if (!call.write(message)) await once(call, "drain", { signal: context.signal });
      }
      if (!call.cancelled) call.end();
    };
    run().catch((err: unknown) => {
      if (!call.cancelled) call.emit("error", toGrpcError(rpc.fail(err)));
    });
  };
}

/**
 * Binds an adapted service to grpc-js: method definitions from the protobuf-es descriptor (so
 * the gRPC listener needs no .proto loading) and implementations that only turn the grpc-js
 * call into a CallContext and send the adapter's answer. Client and bidi streaming are not in
 * the contract; such a method stays unregistered and grpc-js answers UNIMPLEMENTED.
 */
export function bindGrpcService(
  service: RpcService,
  lean: Readonly<Record<string, LeanDecoder>> = {},
): GrpcService {
  const definition: Record<string, grpc.MethodDefinition<IncomingRequest, Message>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  const fast: FastUnary[] = [];
  for (const rpc of service.methods) {
    const def = methodDefinition(service.desc, rpc.desc, lean[rpc.desc.name]);
    definition[rpc.desc.name] = def;
    if (rpc.kind === "unary") {
      implementation[rpc.desc.name] = unaryImplementation(rpc);
      fast.push({
        path: def.path,
        rpc,
        decode: def.requestDeserialize,
        // The lane keeps the whole frame of a frozen response itself: a plain encode here, so
        // the bytes are not cached a second time.
        encode: (message) => bytesToBuffer(toBinary(rpc.desc.output, message)),
      });
    } else implementation[rpc.desc.name] = streamingImplementation(rpc);
  }
  return { definition: definition as grpc.ServiceDefinition, implementation, fast };
}

/**
 * A grpc-js service straight from a descriptor and a handler set, for a service served on the
 * gRPC listener only (an extra service) and for grpc-js clients built from the same definition.
 */
export function grpcServiceDefinition<S extends DescService>(
  desc: S,
  handlers: ServiceHandlers<S>,
  log: ErrorLog,
  options: {
    readonly metrics?: RpcMetrics | undefined;
    /** Lean request decoders by method name (see {@link LeanDecoder}). */
    readonly lean?: Readonly<Record<string, LeanDecoder>> | undefined;
  } = {},
): GrpcService {
  return bindGrpcService(
    adaptService(desc, handlers, { log, metrics: options.metrics }),
    options.lean,
  );
}
