import { type DescField, type DescMessage, fromBinary, ScalarType } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { AddressSchema, SocketAddressSchema } from "../../gen/envoy/config/core/v3/address_pb.js";
import {
  AttributeContext_HttpRequestSchema,
  AttributeContext_PeerSchema,
  AttributeContext_RequestSchema,
  AttributeContextSchema,
} from "../../gen/envoy/service/auth/v3/attribute_context_pb.js";
import { CheckRequestSchema } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { CheckInput } from "../../services/gateway/envoy.js";
import { Reader, Unsure } from "./lean-reader.js";

/**
 * A lean reader of Envoy's CheckRequest for the gRPC listener: it reads only what the check
 * uses (source address, request id, method, path, headers, context extensions) into a flat
 * CheckInput, instead of materialising every nested message of the AttributeContext
 * (profiled: the full decode was the largest part of a Check). Every other field is still
 * validated as the full decoder would (strings must be UTF-8, messages must decode), so a
 * request is accepted here only if the full decoder accepts it; whenever in doubt (a wire type
 * that does not match, `header_map`, groups, any error) it returns undefined and the caller
 * decodes the whole message with `fromBinary`, which decides (MALFORMED_REQUEST included).
 */
export function decodeCheckLean(bytes: Buffer): CheckInput | undefined {
  const input: MutableCheckInput = {
    sourceAddress: "",
    id: "",
    method: "",
    path: "",
    headers: {},
    contextExtensions: {},
  };
  try {
    const r = new Reader(bytes);
    const end = bytes.length;
    while (r.pos < end) {
      const tag = r.varint();
      if (tag === tagOf(CHECK_ATTRIBUTES)) attributes(r, r.lengthEnd(), input);
      else skipField(CheckRequestSchema, tag, r);
    }
  } catch {
    return undefined;
  }
  return input;
}

type MutableCheckInput = { -readonly [K in keyof CheckInput]: CheckInput[K] };

const field = (desc: DescMessage, name: string): DescField => {
  const f = desc.fields.find((x) => x.localName === name);
  if (f === undefined) throw new Error(`${desc.typeName} has no field ${name}`);
  return f;
};
/** The tag of a length-delimited field (number << 3 | 2). */
const tagOf = (f: DescField): number => (f.number << 3) | WireType.LengthDelimited;
const CHECK_ATTRIBUTES = field(CheckRequestSchema, "attributes");
const ATTR_SOURCE = tagOf(field(AttributeContextSchema, "source"));
const ATTR_REQUEST = tagOf(field(AttributeContextSchema, "request"));
const ATTR_EXTENSIONS = tagOf(field(AttributeContextSchema, "contextExtensions"));
const PEER_ADDRESS = tagOf(field(AttributeContext_PeerSchema, "address"));
const ADDRESS_SOCKET = field(AddressSchema, "socketAddress");
const SOCKET_ADDRESS = tagOf(field(SocketAddressSchema, "address"));
const REQUEST_HTTP = tagOf(field(AttributeContext_RequestSchema, "http"));
const HTTP_ID = tagOf(field(AttributeContext_HttpRequestSchema, "id"));
const HTTP_METHOD = tagOf(field(AttributeContext_HttpRequestSchema, "method"));
const HTTP_PATH = tagOf(field(AttributeContext_HttpRequestSchema, "path"));
const HTTP_HEADERS = tagOf(field(AttributeContext_HttpRequestSchema, "headers"));
const HTTP_HEADER_MAP = field(AttributeContext_HttpRequestSchema, "headerMap").number;

function attributes(r: Reader, end: number, input: MutableCheckInput): void {
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === ATTR_SOURCE) peer(r, r.lengthEnd(), input);
    else if (tag === ATTR_REQUEST) request(r, r.lengthEnd(), input);
    else if (tag === ATTR_EXTENSIONS) mapEntry(r, input.contextExtensions);
    else skipField(AttributeContextSchema, tag, r);
  }
  if (r.pos !== end) throw new Unsure();
}

function peer(r: Reader, end: number, input: MutableCheckInput): void {
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === PEER_ADDRESS) address(r, r.lengthEnd(), input);
    else skipField(AttributeContext_PeerSchema, tag, r);
  }
  if (r.pos !== end) throw new Unsure();
}

function address(r: Reader, end: number, input: MutableCheckInput): void {
  while (r.pos < end) {
    const tag = r.varint();
    // Another member of the address oneof (or a second socket address, which merges) would
    // change what the full decoder reports: leave those to it.
    if (tag >>> 3 !== ADDRESS_SOCKET.number) {
      if (AddressSchema.fields.some((x) => x.number === tag >>> 3)) throw new Unsure();
      r.skip(tag & 7);
      continue;
    }
    if (tag !== tagOf(ADDRESS_SOCKET) || input.sourceAddress !== "") throw new Unsure();
    const socketEnd = r.lengthEnd();
    while (r.pos < socketEnd) {
      const t = r.varint();
      if (t === SOCKET_ADDRESS) input.sourceAddress = r.text();
      else skipField(SocketAddressSchema, t, r);
    }
    if (r.pos !== socketEnd) throw new Unsure();
  }
  if (r.pos !== end) throw new Unsure();
}

function request(r: Reader, end: number, input: MutableCheckInput): void {
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === REQUEST_HTTP) http(r, r.lengthEnd(), input);
    else skipField(AttributeContext_RequestSchema, tag, r);
  }
  if (r.pos !== end) throw new Unsure();
}

function http(r: Reader, end: number, input: MutableCheckInput): void {
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === HTTP_HEADERS) mapEntry(r, input.headers);
    else if (tag === HTTP_ID) input.id = r.text();
    else if (tag === HTTP_METHOD) input.method = r.text();
    else if (tag === HTTP_PATH) input.path = r.text();
    else if (tag >>> 3 === HTTP_HEADER_MAP)
      throw new Unsure(); // raw header mode: full decode
    else skipField(AttributeContext_HttpRequestSchema, tag, r);
  }
  if (r.pos !== end) throw new Unsure();
}

/** One map<string, string> entry; a later entry with the same key wins, as in fromBinary. */
function mapEntry(r: Reader, into: Record<string, string>): void {
  const end = r.lengthEnd();
  let key = "";
  let value = "";
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === ((1 << 3) | WireType.LengthDelimited)) key = r.text();
    else if (tag === ((2 << 3) | WireType.LengthDelimited)) value = r.text();
    else throw new Unsure();
  }
  if (r.pos !== end) throw new Unsure();
  into[key] = value;
}

/**
 * Skips a field the check does not use, validating it as the full decoder would: strings must
 * be UTF-8 and messages must decode; an unknown field number is skipped (kept as unknown by
 * the full decoder). A wire type other than the field's, a group, a list or a map is left to
 * fromBinary.
 */
function skipField(desc: DescMessage, tag: number, r: Reader): void {
  const no = tag >>> 3;
  const wt = tag & 7;
  if (no === 0) throw new Unsure();
  const f = desc.fields.find((x) => x.number === no);
  if (f === undefined) {
    r.skip(wt);
    return;
  }
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      const scalar = f.fieldKind === "enum" ? ScalarType.INT32 : f.scalar;
      if (wt !== wireTypeOf(scalar)) throw new Unsure();
      if (scalar === ScalarType.STRING) r.text();
      else r.skip(wt);
      return;
    }
    case "message": {
      if (wt !== WireType.LengthDelimited || f.delimitedEncoding) throw new Unsure();
      const end = r.lengthEnd();
      fromBinary(f.message, r.buf.subarray(r.pos, end));
      r.pos = end;
      return;
    }
    case "list":
    case "map":
      throw new Unsure();
  }
}

function wireTypeOf(scalar: ScalarType): WireType {
  switch (scalar) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    default:
      return WireType.Varint;
  }
}
