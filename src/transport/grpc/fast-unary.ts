import type * as http2 from "node:http2";
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { toGrpcError } from "../error-mapper.js";
import { MALFORMED } from "../malformed.js";
import type { IncomingRequest, Message, UnaryRpc } from "../rpc-adapter.js";
import { FastCallContext } from "./fast-context.js";

/**
 * The lean unary lane of the gRPC listener. grpc-js spends ~15 µs of CPU per unary call above
 * what node:http2 needs for the same exchange (an interceptor chain, a metadata object, a
 * stream decoder and their garbage; docs/perf.md: 47 vs 33 µs for an echo). Latchkey's unary
 * methods — VerifyToken and Envoy's Check on every gateway request among them — are served
 * here instead, straight from the http2 stream: one framed message in, the one RPC adapter
 * (authentication, handler, metrics, error mapping: the same as on every listener), one framed
 * message or a status out, with grpc-js's response headers and trailers.
 *
 * grpc-js keeps everything else on the same port: health, reflection, server streaming, and
 * any call this lane does not take (a compressed request, an unknown content type). It also
 * keeps the connections: settings, keepalive, idle and age limits (each call here is
 * registered with its idle tracking), GOAWAY on shutdown.
 *
 * The lane takes the http2 server's `stream` event from grpc-js after bind; grpc-js has no
 * public hook for that, so the two internals it relies on are checked at install and their
 * absence is an error at startup (never a silent fallback): `http2Servers` and
 * `onStreamOpened` (grpc-js 1.14, pinned).
 */

/** One unary method the lane serves. */
export interface FastUnary {
  /** `/pkg.Service/Method`. */
  readonly path: string;
  readonly rpc: UnaryRpc;
  /** The request bytes (unframed) as the adapter takes them; never throws (MALFORMED instead). */
  readonly decode: (bytes: Buffer) => IncomingRequest;
  /** The response message's bytes (frames of frozen messages are cached by the lane). */
  readonly encode: (message: Message) => Buffer;
}

/** The grpc-js internals the lane needs (see the module comment). */
interface GrpcServerInternals {
  readonly http2Servers?: Map<http2.Http2Server | http2.Http2SecureServer, unknown>;
  onStreamOpened?(stream: ServerHttp2Stream): void;
}

type StreamListener = (
  this: unknown,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  flags: number,
  rawHeaders: string[],
) => void;

/** gRPC status codes the lane sends itself. */
const DEADLINE_EXCEEDED = 4;
const RESOURCE_EXHAUSTED = 8;
const INTERNAL = 13;

/** What grpc-js sends (server-interceptors.js: defaultResponseHeaders and compression headers). */
const RESPONSE_HEADERS = Object.freeze({
  ":status": 200,
  "content-type": "application/grpc+proto",
  "grpc-accept-encoding": "identity,deflate,gzip",
  "grpc-encoding": "identity",
});
const WAIT_FOR_TRAILERS = Object.freeze({ waitForTrailers: true });
const END_STREAM = Object.freeze({ endStream: true });
const OK_TRAILERS = Object.freeze({ "grpc-status": "0", "grpc-message": "OK" });

/** grpc-js's reading of `grpc-timeout` (server-interceptors.js). */
const DEADLINE = /(\d{1,8})\s*([HMSmun])/;
const UNIT_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

const installed = new WeakSet<object>();

/**
 * Puts the lane in front of grpc-js on every http2 server `server` has bound so far (call it
 * after `bindAsync` resolved). Idempotent per http2 server.
 */
export function installFastUnary(
  server: grpc.Server,
  methods: readonly FastUnary[],
  maxReceiveBytes: number,
): void {
  if (methods.length === 0) return;
  const internals = server as unknown as GrpcServerInternals;
  const servers = internals.http2Servers;
  const opened = internals.onStreamOpened;
  if (!(servers instanceof Map) || typeof opened !== "function") {
    throw new Error(
      "the gRPC listener's unary lane needs grpc-js 1.14 internals (http2Servers, onStreamOpened) that this grpc-js lacks",
    );
  }
  const byPath = new Map<string, (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void>(
    methods.map((m) => [m.path, lane(m, maxReceiveBytes)]),
  );
  for (const h2 of servers.keys()) {
    if (installed.has(h2)) continue;
    installed.add(h2);
    const grpcJs = h2.listeners("stream") as StreamListener[];
    h2.removeAllListeners("stream");
    h2.on("stream", function dispatch(this: unknown, stream, headers, flags, rawHeaders) {
      const path = headers[":path"];
      const serve = path === undefined ? undefined : byPath.get(path);
      if (serve === undefined || !plainGrpc(headers)) {
        for (const listener of grpcJs) listener.call(this, stream, headers, flags, rawHeaders);
        return;
      }
      opened.call(server, stream);
      serve(stream, headers);
    } as StreamListener);
  }
}

/** A gRPC request this lane can read: protobuf, uncompressed. */
function plainGrpc(headers: IncomingHttpHeaders): boolean {
  const type = headers["content-type"];
  if (type !== "application/grpc" && type !== "application/grpc+proto") return false;
  const encoding = headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

/** The per-method stream handler: read one framed message, run the adapter, answer. */
function lane(
  method: FastUnary,
  maxReceiveBytes: number,
): (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void {
  const { rpc, decode } = method;
  const reply = replier(method.encode);
  const limit = maxReceiveBytes + 5;
  return (stream, headers) => {
    stream.on("error", ignore);
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    let size = 0;
    stream.on("data", (chunk: Buffer) => {
      if (size > limit) return;
      size += chunk.length;
      if (size > limit) {
        // grpc-js names the length the frame declares (read here when it is known).
        const head = first ?? chunk;
        const declared = head.length >= 5 ? head.readUInt32BE(1) : size - 5;
        sendStatus(
          stream,
          RESOURCE_EXHAUSTED,
          `Received message larger than max (${declared} vs ${maxReceiveBytes})`,
        );
        return;
      }
      if (first === undefined) first = chunk;
      else if (more === undefined) more = [chunk];
      else more.push(chunk);
    });
    stream.on("end", () => {
      if (size > limit || stream.headersSent) return;
      const body =
        more === undefined || first === undefined ? first : Buffer.concat([first, ...more]);
      const timeout = headers["grpc-timeout"];
      if (timeout !== undefined) deadline(stream, timeout);
      rpc.call(
        unframe(body, decode),
        new FastCallContext(stream, headers, rpc.fullName),
        reply,
        stream,
      );
    });
  };
}

/**
 * Exactly one message, decoded; anything else is a malformed request. A compressed flag of 1
 * without a `grpc-encoding` is read as plain bytes, as grpc-js's identity decoder does.
 */
function unframe(
  body: Buffer | undefined,
  decode: (bytes: Buffer) => IncomingRequest,
): IncomingRequest {
  if (body === undefined || body.length < 5 || (body[0] !== 0 && body[0] !== 1)) return MALFORMED;
  if (body.readUInt32BE(1) !== body.length - 5) return MALFORMED;
  return decode(body.subarray(5));
}

/** The adapter's reply for one method: one function per method, the stream as the sink. */
function replier(
  encode: (message: Message) => Buffer,
): (error: ConnectError | null, response: Message | undefined, stream: ServerHttp2Stream) => void {
  /** Frames of frozen (shared, immutable) responses, e.g. VerifyToken's per-token answers. */
  const frames = new WeakMap<object, Buffer>();
  const frameOf = (message: Message): Buffer => {
    const frozen = Object.isFrozen(message);
    let frame = frozen ? frames.get(message) : undefined;
    if (frame === undefined) {
      const bytes = encode(message);
      frame = Buffer.allocUnsafe(bytes.length + 5);
      frame[0] = 0;
      frame.writeUInt32BE(bytes.length, 1);
      bytes.copy(frame, 5);
      if (frozen) frames.set(message, frame);
    }
    return frame;
  };
  return (error, response, stream) => {
    if (stream.headersSent || stream.destroyed) return; // answered (deadline) or gone
    if (error !== null) {
      const e = toGrpcError(error);
      sendStatus(stream, e.code ?? INTERNAL, e.details ?? "", e.metadata?.toHttp2Headers());
      return;
    }
    let frame: Buffer;
    try {
      if (response === undefined) throw new TypeError("no response");
      frame = frameOf(response);
    } catch {
      // The adapter has already made the message with create(); encoding it cannot fail short
      // of a bug, which must not take the process down.
      sendStatus(stream, INTERNAL, "internal error");
      return;
    }
    stream.respond(RESPONSE_HEADERS, WAIT_FOR_TRAILERS);
    stream.once("wantTrailers", sendOkTrailers);
    stream.end(frame);
  };
}

function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/** A trailers-only answer, as grpc-js sends one. */
function sendStatus(
  stream: ServerHttp2Stream,
  code: number,
  details: string,
  extra?: OutgoingHttpHeaders,
): void {
  if (stream.headersSent || stream.destroyed) return;
  stream.respond(
    {
      "grpc-status": String(code),
      "grpc-message": encodeURI(details),
      ":status": 200,
      "content-type": "application/grpc+proto",
      ...extra,
    },
    END_STREAM,
  );
}

/** grpc-js answers DEADLINE_EXCEEDED when a call outlives its `grpc-timeout`; so does the lane. */
function deadline(stream: ServerHttp2Stream, header: string | string[]): void {
  const match = DEADLINE.exec(Array.isArray(header) ? (header[0] ?? "") : header);
  if (match === null) return;
  const ms = Number(match[1]) * (UNIT_MS[match[2] ?? "m"] ?? 1);
  const timer = setTimeout(() => sendStatus(stream, DEADLINE_EXCEEDED, "Deadline exceeded"), ms);
  timer.unref();
  stream.once("close", () => clearTimeout(timer));
}

function ignore(): void {}
