import { isUtf8 } from "node:buffer";
import { type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";

/**
 * The few wire-format reading steps the gRPC listener's lean request decoders share (see
 * ext-authz-decode.ts and {@link stringsDecoder}): a cursor over the request bytes that reads
 * tags, lengths and UTF-8-checked strings without a reader object per nested message.
 */

/** Thrown (and caught above) when only the full decoder can tell. */
export class Unsure extends Error {}

/** A cursor over the request bytes: no reader object per nested message, no tuple per tag. */
export class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(): number {
    const buf = this.buf;
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = buf[this.pos++];
      if (b === undefined) throw new Unsure();
      if (shift < 28) result |= (b & 0x7f) << shift;
      else result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
      if (shift > 63) throw new Unsure();
    }
  }

  /** Reads a length and returns where the delimited value ends (bounds-checked). */
  lengthEnd(): number {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.buf.length) throw new Unsure();
    return end;
  }

  /** A length-delimited string, refused (to the full decoder) unless it is valid UTF-8. */
  text(): string {
    const end = this.lengthEnd();
    const start = this.pos;
    this.pos = end;
    const buf = this.buf;
    for (let i = start; i < end; i++) {
      if ((buf[i] ?? 0) >= 0x80) {
        if (!isUtf8(buf.subarray(start, end))) throw new Unsure();
        return buf.toString("utf8", start, end);
      }
    }
    return buf.toString("latin1", start, end);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WireType.Varint:
        this.varint();
        return;
      case WireType.Bit64:
        this.pos += 8;
        break;
      case WireType.Bit32:
        this.pos += 4;
        break;
      case WireType.LengthDelimited:
        this.pos = this.lengthEnd();
        return;
      default:
        throw new Unsure();
    }
    if (this.pos > this.buf.length) throw new Unsure();
  }
}

/** A message whose every field is a string or a repeated string, with implicit presence. */
function onlyStrings(desc: DescMessage): boolean {
  return (
    desc.fields.length > 0 &&
    desc.fields.every(
      (f) =>
        f.oneof === undefined &&
        ((f.fieldKind === "scalar" &&
          f.scalar === ScalarType.STRING &&
          f.presence === FeatureSet_FieldPresence.IMPLICIT) ||
          (f.fieldKind === "list" && f.listKind === "scalar" && f.scalar === ScalarType.STRING)),
    )
  );
}

/**
 * A decoder for a request made of strings only (VerifyTokenRequest: token, permissions,
 * client IP, org, method, path, request id), or undefined for any other message. It builds
 * the same plain object `fromBinary` builds (same keys, same order, same values), in one pass
 * without reflection; bytes it is unsure of (an unknown field, which fromBinary would keep in
 * `$unknown`, a wire type that does not match, invalid UTF-8, truncation) give undefined so the
 * caller falls back to `fromBinary`, which decides (MALFORMED_REQUEST included).
 */
export function stringsDecoder(
  desc: DescMessage,
): ((bytes: Buffer) => object | undefined) | undefined {
  if (!onlyStrings(desc)) return undefined;
  const fields = [...desc.fields];
  const byTag = new Map<number, { readonly name: string; readonly list: boolean }>();
  for (const f of fields) {
    byTag.set((f.number << 3) | WireType.LengthDelimited, {
      name: f.localName,
      list: f.fieldKind === "list",
    });
  }
  const typeName = desc.typeName;
  return (bytes) => {
    const out: Record<string, unknown> = { $typeName: typeName };
    for (const f of fields) out[f.localName] = f.fieldKind === "list" ? [] : "";
    try {
      const r = new Reader(bytes);
      const end = bytes.length;
      while (r.pos < end) {
        const field = byTag.get(r.varint());
        if (field === undefined) return undefined;
        const value = r.text();
        if (field.list) (out[field.name] as string[]).push(value);
        else out[field.name] = value;
      }
    } catch {
      return undefined;
    }
    return out;
  };
}
