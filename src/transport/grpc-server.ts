import { once } from "node:events";
import { isIP } from "node:net";
import {
  create,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import type * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import {
  file_latchkey_v1_token_admin_service,
  TokenAdminService,
} from "../gen/latchkey/v1/token_admin_service_pb.js";
import {
  file_latchkey_v1_token_verify_service,
  TokenVerifyService,
} from "../gen/latchkey/v1/token_verify_service_pb.js";
import type { CallContext, Caller, ServiceHandlers } from "../services/context.js";
import { type ErrorLog, toGrpcError } from "./error-mapper.js";
import type { RpcRecorder } from "./metrics.js";

/** Lets the composition root say whether this instance should receive traffic. */
export interface HealthReporter {
  /** SERVING or NOT_SERVING for "" and every latchkey service, pushed to Watch streams. */
  setServing(serving: boolean): void;
}

/** The HealthReporter the gRPC listener serves as grpc.health.v1.Health. */
export interface GrpcHealthReporter extends HealthReporter {
  readonly serving: boolean;
  /** grpc-health-check's implementation, added to the server by {@link createGrpcServer}. */
  readonly implementation: HealthImplementation;
}

/** Service names reported by health: the whole server ("") and each latchkey service. */
export const HEALTH_SERVICE_NAMES: readonly string[] = [
  "",
  TokenAdminService.typeName,
  TokenVerifyService.typeName,
];

/**
 * Creates the health state before the server exists, so whoever watches Postgres and the
 * shutdown signal can flip it without holding the server. Starts SERVING unless told otherwise
 * (main.ts starts listeners only once storage answered).
 */
export function createHealthReporter(
  options: { serving?: boolean; extraServiceNames?: readonly string[] } = {},
): GrpcHealthReporter {
  const names = [...HEALTH_SERVICE_NAMES, ...(options.extraServiceNames ?? [])];
  let serving = options.serving ?? true;
  const implementation = new HealthImplementation(
    Object.fromEntries(names.map((n) => [n, serving ? "SERVING" : "NOT_SERVING"])),
  );
  return {
    implementation,
    get serving() {
      return serving;
    },
    setServing(next) {
      serving = next;
      for (const n of names) implementation.setStatus(n, next ? "SERVING" : "NOT_SERVING");
    },
  };
}

/**
 * A bare IP as audit rows and CIDR rules want it: IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a
 * dual-stack listener sees) becomes plain IPv4; anything that is not an IP becomes "".
 */
export function normalizeIp(address: string): string {
  const ip =
    address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return isIP(ip) === 0 ? "" : ip;
}

/**
 * Turns a gRPC peer string into a bare IP. grpc-js writes `1.2.3.4:5678` or `::1:5678` (IPv6
 * without brackets, so the port is always cut at the last colon first), other stacks
 * `ipv4:1.2.3.4:5678` or `ipv6:[::1]:5678`.
 */
export function peerIp(peer: string): string {
  let s = peer;
  if (s.startsWith("ipv4:") || s.startsWith("ipv6:")) s = s.slice(5);
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    return normalizeIp(end < 0 ? s.slice(1) : s.slice(1, end));
  }
  const colon = s.lastIndexOf(":");
  const host = colon < 0 ? "" : s.slice(0, colon);
  return normalizeIp(isIP(host) !== 0 ? host : s);
}

/** The part of a grpc-js server call the context reads (grpc-js does not export the type). */
interface SurfaceCall {
  readonly metadata: grpc.Metadata;
  readonly cancelled: boolean;
  getPeer(): string;
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

type AnyUnary = (request: unknown, context: CallContext) => Promise<unknown>;
type AnyStreaming = (request: unknown, context: CallContext) => AsyncIterable<unknown>;

/** What {@link grpcServiceDefinition} returns: the two halves `server.addService` takes. */
export interface GrpcService {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

export interface GrpcServiceOptions {
  /** Counts every call (and times it, except for the methods in `untimed`). */
  readonly metrics?: RpcRecorder | undefined;
  /** Methods (`pkg.Service/Method`) not timed: VerifyToken by default, the hot path. */
  readonly untimed?: ReadonlySet<string> | undefined;
}

function bytesToBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodings of frozen (immutable, shared) response messages. */
const encodedOnce = new WeakMap<object, Buffer>();

function methodDefinition(
  desc: DescService,
  method: DescMethod,
): grpc.MethodDefinition<MessageShape<DescMessage>, MessageShape<DescMessage>> {
  const input = method.input;
  const output = method.output;
  return {
    path: `/${desc.typeName}/${method.name}`,
    requestStream:
      method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream:
      method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (value) => bytesToBuffer(toBinary(input, value)),
    requestDeserialize: (bytes) => fromBinary(input, bytes),
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

/**
 * Builds a grpc-js service from a protobuf-es descriptor and the shared handler set, so the
 * gRPC listener needs no .proto loading and calls exactly the code connect-node calls. Unary
 * and server-streaming methods are supported (the only kinds the contract uses); every
 * failure leaves through the one error mapper.
 */
export function grpcServiceDefinition<S extends DescService>(
  desc: S,
  handlers: ServiceHandlers<S>,
  log: ErrorLog,
  options: GrpcServiceOptions = {},
): GrpcService {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  const table = handlers as unknown as Record<string, AnyUnary | AnyStreaming | undefined>;
  const metrics = options.metrics;
  const untimed = options.untimed ?? new Set([`${TokenVerifyService.typeName}/VerifyToken`]);

  for (const method of desc.methods) {
    const handler = table[method.localName];
    if (handler === undefined) continue;
    const fullName = `${desc.typeName}/${method.name}`;
    const output = method.output;
    const timed = metrics !== undefined && !untimed.has(fullName);
    definition[method.name] = methodDefinition(desc, method) as grpc.MethodDefinition<
      unknown,
      unknown
    >;

    if (method.methodKind === "unary") {
      const unary = handler as AnyUnary;
      const impl: grpc.handleUnaryCall<MessageShape<DescMessage>, MessageShape<DescMessage>> = (
        call,
        callback,
      ) => {
        const start = timed ? performance.now() : 0;
        const fail = (err: unknown): void => {
          const status = toGrpcError(err, log, fullName);
          metrics?.record(
            fullName,
            status.code ?? 2,
            timed ? (performance.now() - start) / 1e3 : undefined,
          );
          callback(status);
        };
        let pending: Promise<unknown>;
        try {
          pending = unary(call.request, new GrpcCallContext(call, fullName));
        } catch (err) {
          fail(err);
          return;
        }
        pending.then((init) => {
          let response: MessageShape<DescMessage>;
          try {
            response = create(output, init as MessageInitShape<DescMessage>);
          } catch (err) {
            fail(err);
            return;
          }
          metrics?.record(fullName, 0, timed ? (performance.now() - start) / 1e3 : undefined);
          callback(null, response);
        }, fail);
      };
      implementation[method.name] = impl;
    } else if (method.methodKind === "server_streaming") {
      const streaming = handler as AnyStreaming;
      const impl: grpc.handleServerStreamingCall<
        MessageShape<DescMessage>,
        MessageShape<DescMessage>
      > = (call) => {
        const context = new GrpcCallContext(call, fullName);
        const run = async (): Promise<void> => {
          for await (const init of streaming(call.request, context)) {
            if (call.cancelled) return;
            if (!call.write(create(output, init as MessageInitShape<DescMessage>))) {
              await once(call, "drain", { signal: context.signal });
            }
          }
          if (!call.cancelled) call.end();
          metrics?.record(fullName, 0);
        };
        run().catch((err: unknown) => {
          if (call.cancelled) {
            metrics?.record(fullName, 1);
            return;
          }
          const status = toGrpcError(err, log, fullName);
          metrics?.record(fullName, status.code ?? 2);
          call.emit("error", status);
        });
      };
      implementation[method.name] = impl;
    }
    // Client and bidi streaming are not in the contract; such a method stays unregistered
    // and grpc-js answers UNIMPLEMENTED.
  }
  return { definition, implementation };
}

/**
 * A service served on the gRPC listener beside the latchkey ones (e.g. Envoy ext_authz). Its
 * health name goes to {@link createHealthReporter}'s `extraServiceNames`.
 */
export interface ExtraGrpcService {
  readonly service: GrpcService;
  /** Files describing it, so reflection lists it (dependencies are added automatically). */
  readonly files?: readonly DescFile[];
}

/** Every file `roots` needs, dependencies before dependents, each once (FileDescriptorSet order). */
function topologicalFiles(roots: readonly DescFile[]): DescFile[] {
  const seen = new Set<string>();
  const out: DescFile[] = [];
  const visit = (file: DescFile): void => {
    if (seen.has(file.name)) return;
    seen.add(file.name);
    for (const dep of file.dependencies) visit(dep);
    out.push(file);
  };
  for (const root of roots) visit(root);
  return out;
}

/**
 * grpc/health/v1/health.proto as a descriptor, for reflection. Written out because
 * grpc-health-check ships only the .proto, and proto-loader's regenerated descriptor of it is
 * invalid for protobuf-go (map entry named `Statuses`, relative type names), which makes
 * `buf curl` fail to resolve grpc.health.v1.Health.
 */
const HEALTH_FILE = create(FileDescriptorProtoSchema, {
  name: "grpc/health/v1/health.proto",
  package: "grpc.health.v1",
  syntax: "proto3",
  messageType: [
    {
      name: "HealthCheckRequest",
      field: [
        {
          name: "service",
          number: 1,
          label: Label.OPTIONAL,
          type: Type.STRING,
          jsonName: "service",
        },
      ],
    },
    {
      name: "HealthCheckResponse",
      field: [
        {
          name: "status",
          number: 1,
          label: Label.OPTIONAL,
          type: Type.ENUM,
          typeName: ".grpc.health.v1.HealthCheckResponse.ServingStatus",
          jsonName: "status",
        },
      ],
      enumType: [
        {
          name: "ServingStatus",
          value: [
            { name: "UNKNOWN", number: 0 },
            { name: "SERVING", number: 1 },
            { name: "NOT_SERVING", number: 2 },
            { name: "SERVICE_UNKNOWN", number: 3 },
          ],
        },
      ],
    },
    { name: "HealthListRequest" },
    {
      name: "HealthListResponse",
      field: [
        {
          name: "statuses",
          number: 1,
          label: Label.REPEATED,
          type: Type.MESSAGE,
          typeName: ".grpc.health.v1.HealthListResponse.StatusesEntry",
          jsonName: "statuses",
        },
      ],
      nestedType: [
        {
          name: "StatusesEntry",
          options: { mapEntry: true },
          field: [
            { name: "key", number: 1, label: Label.OPTIONAL, type: Type.STRING, jsonName: "key" },
            {
              name: "value",
              number: 2,
              label: Label.OPTIONAL,
              type: Type.MESSAGE,
              typeName: ".grpc.health.v1.HealthCheckResponse",
              jsonName: "value",
            },
          ],
        },
      ],
    },
  ],
  service: [
    {
      name: "Health",
      method: [
        {
          name: "Check",
          inputType: ".grpc.health.v1.HealthCheckRequest",
          outputType: ".grpc.health.v1.HealthCheckResponse",
        },
        {
          name: "List",
          inputType: ".grpc.health.v1.HealthListRequest",
          outputType: ".grpc.health.v1.HealthListResponse",
        },
        {
          name: "Watch",
          inputType: ".grpc.health.v1.HealthCheckRequest",
          outputType: ".grpc.health.v1.HealthCheckResponse",
          serverStreaming: true,
        },
      ],
    },
  ],
});

function reflectionOnly(): never {
  throw new Error("this package definition entry only carries descriptors for reflection");
}

/**
 * The reflection schema: the FileDescriptorProtos protoc-gen-es embeds in the generated code
 * (so it can never drift from what is served), dependencies first, plus the health proto.
 *
 * `protoLoader.loadFileDescriptorSetFromBuffer` is not used on purpose: it rebuilds
 * descriptors from a protobufjs Root, which merges every file of a package into one (both
 * latchkey services end up in token_verify_service.proto) and drops the imports, so
 * `buf curl --reflect` cannot resolve any method. @grpc/reflection only reads each entry's
 * `fileDescriptorProtos`, so one entry carrying the exact files is all it needs.
 */
export function reflectionPackageDefinition(
  files: readonly DescFile[] = [
    file_latchkey_v1_token_admin_service,
    file_latchkey_v1_token_verify_service,
  ],
): protoLoader.PackageDefinition {
  const fileDescriptorProtos = [HEALTH_FILE, ...topologicalFiles(files).map((f) => f.proto)].map(
    (proto) => bytesToBuffer(toBinary(FileDescriptorProtoSchema, proto)),
  );
  const entry: protoLoader.MessageTypeDefinition<object, object> = {
    format: "Protocol Buffer 3 DescriptorProto",
    // Never read by @grpc/reflection; a placeholder for the protobufjs type it would hold.
    type: {} as protoLoader.MessageTypeDefinition<object, object>["type"],
    fileDescriptorProtos,
    serialize: reflectionOnly,
    deserialize: reflectionOnly,
  };
  return { "latchkey.reflection": entry };
}

export interface GrpcServerOptions {
  readonly admin: ServiceHandlers<typeof TokenAdminService>;
  readonly verify: ServiceHandlers<typeof TokenVerifyService>;
  /** From {@link createHealthReporter}; its state is served as grpc.health.v1.Health. */
  readonly health: GrpcHealthReporter;
  readonly log: ErrorLog;
  readonly metrics?: RpcRecorder | undefined;
  readonly extraServices?: readonly ExtraGrpcService[] | undefined;
  /** Overrides of the channel options below (tests, tuning). */
  readonly channelOptions?: grpc.ServerOptions | undefined;
}

/** 4 MiB: far above any latchkey request, low enough to stop a memory-exhaustion attempt. */
const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/**
 * The gRPC listener (the hot path for sidecars and gateways): both latchkey services on the
 * shared handlers, reflection v1/v1alpha for grpcurl and `buf curl --reflect`, and health.
 * Not yet bound: call {@link listenGrpc}.
 */
export function createGrpcServer(opts: GrpcServerOptions): grpc.Server {
  const server = new grpc.Server({
    // Ping idle connections each minute so dead gateways are noticed and NATs keep the flow.
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
    ...opts.channelOptions,
  });
  const serviceOptions = { metrics: opts.metrics };
  const admin = grpcServiceDefinition(TokenAdminService, opts.admin, opts.log, serviceOptions);
  const verify = grpcServiceDefinition(TokenVerifyService, opts.verify, opts.log, serviceOptions);
  for (const service of [admin, verify]) {
    // grpc-js refuses an empty service; a handler set with no methods simply is not served.
    if (Object.keys(service.definition).length > 0) {
      server.addService(service.definition, service.implementation);
    }
  }
  const reflectionFiles: DescFile[] = [
    file_latchkey_v1_token_admin_service,
    file_latchkey_v1_token_verify_service,
  ];
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
      err === null ? resolve(port) : reject(err),
    );
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
