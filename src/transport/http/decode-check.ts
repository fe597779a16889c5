import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { type DescMessage, fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { createContextKey } from "@connectrpc/connect";
import {
  createAsyncIterable,
  type UniversalHandler,
  type UniversalServerRequest,
} from "@connectrpc/connect/protocol";

/**
 * Set on a request's context values when its body could not be decoded; the binding then hands
 * the adapter the MalformedRequest marker instead of the (replaced, empty) message.
 */
export const kMalformed = createContextKey<boolean>(false, {
  description: "latchkey: request body could not be decoded",
});

/** How a content type frames and encodes its messages. */
interface Framing {
  readonly enveloped: boolean;
  readonly json: boolean;
  /** The header naming the message compression. */
  readonly encodingHeader: string;
}

function framingOf(contentType: string): Framing | undefined {
  const type = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  switch (type) {
    case "application/proto":
      return { enveloped: false, json: false, encodingHeader: "content-encoding" };
    case "application/json":
      return { enveloped: false, json: true, encodingHeader: "content-encoding" };
    case "application/connect+proto":
      return { enveloped: true, json: false, encodingHeader: "connect-content-encoding" };
    case "application/connect+json":
      return { enveloped: true, json: true, encodingHeader: "connect-content-encoding" };
    case "application/grpc":
    case "application/grpc+proto":
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return { enveloped: true, json: false, encodingHeader: "grpc-encoding" };
    case "application/grpc+json":
    case "application/grpc-web+json":
      return { enveloped: true, json: true, encodingHeader: "grpc-encoding" };
    default:
      // grpc-web-text (base64) and anything unknown: connect decides on its own.
      return undefined;
  }
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decompress(bytes: Uint8Array, encoding: string, maxBytes: number): Uint8Array {
  if (encoding === "" || encoding === "identity") return bytes;
  if (encoding === "gzip") return gunzipSync(bytes, { maxOutputLength: maxBytes });
  if (encoding === "br") return brotliDecompressSync(bytes, { maxOutputLength: maxBytes });
  throw new Error(`unsupported encoding ${encoding}`);
}

/** Decodes one message exactly as connect will; throws when it cannot. */
function checkMessage(desc: DescMessage, bytes: Uint8Array, json: boolean): void {
  if (json) fromJsonString(desc, fatalUtf8.decode(bytes), { ignoreUnknownFields: true });
  else fromBinary(desc, bytes);
}

/** Every data envelope of an enveloped body (end-stream envelopes are skipped). */
function checkEnvelopes(
  desc: DescMessage,
  body: Uint8Array,
  framing: Framing,
  encoding: string,
  maxBytes: number,
): void {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  while (at < body.byteLength) {
    if (body.byteLength - at < 5) throw new Error("truncated envelope");
    const flags = view.getUint8(at);
    const length = view.getUint32(at + 1);
    const start = at + 5;
    if (start + length > body.byteLength) throw new Error("truncated envelope");
    at = start + length;
    if ((flags & 0b10) !== 0) continue;
    let payload = body.subarray(start, start + length);
    if ((flags & 0b1) !== 0) payload = decompress(payload, encoding, maxBytes);
    checkMessage(desc, payload, framing.json);
  }
}

/** The smallest valid body of the same framing: one empty message (the handler never reads it). */
function emptyBody(framing: Framing): Uint8Array {
  const message = framing.json ? new TextEncoder().encode("{}") : new Uint8Array(0);
  if (!framing.enveloped) return message;
  const out = new Uint8Array(5 + message.byteLength);
  new DataView(out.buffer).setUint32(1, message.byteLength);
  out.set(message, 5);
  return out;
}

/** Reads the body up to `maxBytes`; undefined when it is larger (connect then refuses it). */
async function readUpTo(
  body: AsyncIterable<Uint8Array>,
  maxBytes: number,
): Promise<{ bytes: Uint8Array; rest: AsyncIterator<Uint8Array> | undefined }> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const it = body[Symbol.asyncIterator]();
  for (;;) {
    const next = await it.next();
    if (next.done === true) break;
    chunks.push(next.value);
    total += next.value.byteLength;
    if (total > maxBytes) return { bytes: Buffer.concat(chunks), rest: it };
  }
  return { bytes: Buffer.concat(chunks), rest: undefined };
}

async function* prepend(first: Uint8Array, rest: AsyncIterator<Uint8Array>) {
  yield first;
  for (;;) {
    const next = await rest.next();
    if (next.done === true) return;
    yield next.value;
  }
}

/**
 * connect-node answers undecodable bodies by itself, before any handler runs: INTERNAL ("parse
 * binary") for bad protobuf, and a Connect JSON body with invalid UTF-8 is silently decoded to
 * U+FFFD. This wrapper decodes the body first, the same way connect will; when that fails it
 * marks the call (context value {@link kMalformed}) and hands connect one empty message instead,
 * so the call reaches the adapter, which answers INVALID_ARGUMENT / MALFORMED_REQUEST through the
 * one error mapper and counts it — exactly as on the gRPC listener. Decoding twice costs the
 * HTTP listener only; the gRPC hot path decodes once.
 */
export function checkingDecode(handler: UniversalHandler, maxBytes: number): UniversalHandler {
  const desc = handler.method.input;
  const wrapped = async (req: UniversalServerRequest) => {
    const framing = framingOf(req.header.get("content-type") ?? "");
    const body = req.body;
    if (
      framing === undefined ||
      req.method !== "POST" ||
      typeof body !== "object" ||
      body === null ||
      !(Symbol.asyncIterator in body)
    ) {
      return handler(req);
    }
    const { bytes, rest } = await readUpTo(body as AsyncIterable<Uint8Array>, maxBytes);
    if (rest !== undefined) return handler({ ...req, body: prepend(bytes, rest) });
    const encoding = (req.header.get(framing.encodingHeader) ?? "").trim().toLowerCase();
    try {
      if (framing.enveloped) checkEnvelopes(desc, bytes, framing, encoding, maxBytes);
      else checkMessage(desc, decompress(bytes, encoding, maxBytes), framing.json);
    } catch {
      req.contextValues?.set(kMalformed, true);
      if (!framing.enveloped) req.header.delete(framing.encodingHeader);
      req.header.delete("content-length");
      return handler({ ...req, body: createAsyncIterable([emptyBody(framing)]) });
    }
    return handler({ ...req, body: createAsyncIterable([bytes]) });
  };
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}
