import * as http2 from "node:http2";
import { Writable } from "node:stream";
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  fromJsonString,
  toBinary,
} from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Instance, startInstance } from "../../src/app.js";
import { ERROR_DOMAIN, MALFORMED_REQUEST } from "../../src/errors.js";
import { type ErrorInfo, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { decodeGrpcErrorDetails } from "../../src/transport/error-mapper.js";
import { createLogger } from "../../src/transport/logger.js";
import { grpcFrame, h2request } from "../helpers/h2.js";
import { PREFIX } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";

// Seeded hostile input, built byte by byte on the wire (a well-behaved client library refuses
// to encode invalid UTF-8): strings with lone surrogates and other invalid UTF-8 in every string
// field of every request, truncated and garbage protobuf, and broken JSON, sent to every method
// of both services on both listeners and every protocol. Each must answer INVALID_ARGUMENT with
// ErrorInfo MALFORMED_REQUEST — never INTERNAL/UNKNOWN — write nothing, be counted, and leave
// no stack trace in the log.

const SEED = 0x1a7c4e;
const CASES_PER_METHOD = 40;
const SERVICES: readonly DescService[] = [TokenAdminService, TokenVerifyService];

/** mulberry32: small, seeded, good enough to pick cases reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INVALID_UTF8: readonly number[][] = [
  [0xed, 0xa0, 0x80], // lone high surrogate U+D800 as CESU/WTF-8
  [0xed, 0xbf, 0xbf], // lone low surrogate U+DFFF
  [0xff],
  [0xc3], // truncated 2-byte sequence
  [0xe2, 0x82], // truncated 3-byte sequence
  [0xc0, 0xaf], // overlong "/"
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0x80], // lone continuation byte
];

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

function lengthDelimited(fieldNo: number, payload: readonly number[]): number[] {
  return [...varint((fieldNo << 3) | 2), ...varint(payload.length), ...payload];
}

/** A string value: some ASCII around one invalid UTF-8 sequence. */
function badString(next: () => number): number[] {
  const bad = INVALID_UTF8[Math.floor(next() * INVALID_UTF8.length)] ?? [0xff];
  const ascii = (n: number) => Array.from({ length: n }, () => 0x61 + Math.floor(next() * 26));
  return [...ascii(Math.floor(next() * 4)), ...bad, ...ascii(Math.floor(next() * 4))];
}

/** Encodes field `f` of some message holding an invalid UTF-8 string somewhere inside it. */
function badField(f: DescField, next: () => number, depth: number): number[] | undefined {
  if (f.fieldKind === "scalar" || f.fieldKind === "list") {
    if (f.scalar === undefined || f.scalar !== 9 /* STRING */) {
      if (f.fieldKind === "list" && f.listKind === "message" && depth < 2) {
        const inner = badMessage(f.message, next, depth + 1);
        return inner === undefined ? undefined : lengthDelimited(f.number, inner);
      }
      return undefined;
    }
    return lengthDelimited(f.number, badString(next));
  }
  if (f.fieldKind === "map") {
    const keyBad = f.mapKey === 9 && (f.mapKind !== "scalar" || f.scalar !== 9 || next() < 0.5);
    if (keyBad) return lengthDelimited(f.number, lengthDelimited(1, badString(next)));
    if (f.mapKind === "scalar" && f.scalar === 9) {
      return lengthDelimited(f.number, [
        ...lengthDelimited(1, [0x6b]),
        ...lengthDelimited(2, badString(next)),
      ]);
    }
    return undefined;
  }
  if (f.fieldKind === "message" && depth < 2) {
    const inner = badMessage(f.message, next, depth + 1);
    return inner === undefined ? undefined : lengthDelimited(f.number, inner);
  }
  return undefined;
}

/** One field of `desc` (picked at random among those that can carry a string) made invalid. */
function badMessage(desc: DescMessage, next: () => number, depth = 0): number[] | undefined {
  const options = desc.fields
    .map((f) => badField(f, next, depth))
    .filter((b): b is number[] => b !== undefined);
  if (options.length === 0) return undefined;
  return options[Math.floor(next() * options.length)];
}

/** Bytes that are not a valid encoding of `desc` (checked with the same decoder). */
function garbage(desc: DescMessage, next: () => number): Uint8Array {
  for (;;) {
    const kind = next();
    let bytes: Uint8Array;
    if (kind < 0.4) {
      bytes = Uint8Array.from({ length: 1 + Math.floor(next() * 40) }, () =>
        Math.floor(next() * 256),
      );
    } else if (kind < 0.7) {
      // A length-delimited field claiming more bytes than follow.
      bytes = Uint8Array.from([...varint((1 << 3) | 2), 0x7f, 0x61, 0x62]);
    } else {
      // A varint that never ends, or an invalid wire type (6, 7).
      bytes =
        next() < 0.5
          ? Uint8Array.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
          : Uint8Array.from([(3 << 3) | (next() < 0.5 ? 6 : 7), 0x01]);
    }
    try {
      fromBinary(desc, bytes);
    } catch {
      return bytes;
    }
  }
}

/** A JSON body that connect cannot decode into `desc` (checked with the same decoder). */
function badJson(desc: DescMessage, next: () => number): Uint8Array {
  for (;;) {
    const bytes = badJsonCandidate(desc, next);
    try {
      fromJsonString(desc, new TextDecoder("utf-8", { fatal: true }).decode(bytes), {
        ignoreUnknownFields: true,
      });
    } catch {
      return bytes;
    }
  }
}

function badJsonCandidate(desc: DescMessage, next: () => number): Uint8Array {
  const stringField = desc.fields.find((f) => f.fieldKind === "scalar" && f.scalar === 9);
  const kind = next();
  if (stringField !== undefined && kind < 0.6) {
    const head = Buffer.from(`{"${stringField.jsonName}":"`);
    return Buffer.concat([head, Buffer.from(badString(next)), Buffer.from('"}')]);
  }
  if (kind < 0.8)
    return Buffer.from(['{"', "[1,", "{", "nul", '{"a":}'][Math.floor(next() * 5)] ?? "{");
  const first = desc.fields[0];
  return Buffer.from(JSON.stringify({ [first?.jsonName ?? "x"]: { nested: [true] } }));
}

interface Answer {
  /** gRPC status code, or the Connect code mapped to its number. */
  readonly code: number;
  readonly errorInfo: ErrorInfo | undefined;
  readonly raw: string;
}

const CONNECT_CODES: Record<string, number> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  internal: 13,
  unavailable: 14,
  unimplemented: 12,
  unauthenticated: 16,
};

function connectAnswer(json: unknown, raw: string): Answer {
  const err = json as { code?: string; details?: { type: string; value: string }[] } | undefined;
  const detail = err?.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  return {
    code: CONNECT_CODES[err?.code ?? ""] ?? -1,
    errorInfo:
      detail === undefined ? undefined : fromBinary(ErrorInfoSchema, base64Decode(detail.value)),
    raw,
  };
}

function grpcAnswer(res: Awaited<ReturnType<typeof h2request>>): Answer {
  const all = { ...res.headers, ...res.trailers };
  const code = Number(all["grpc-status"] ?? -1);
  const detailsB64 = all["grpc-status-details-bin"];
  let errorInfo: ErrorInfo | undefined;
  if (typeof detailsB64 === "string") {
    const md = { get: () => [Buffer.from(detailsB64, "base64")] };
    errorInfo = decodeGrpcErrorDetails(md as never).errorInfo;
  }
  return { code, errorInfo, raw: `${code} ${String(all["grpc-message"] ?? "")}` };
}

/** The Connect end-of-stream message of a streaming response (its error, if any). */
function connectStreamAnswer(body: Buffer): Answer {
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body.readUInt8(at);
    const len = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + len);
    at += 5 + len;
    if ((flags & 0b10) !== 0) {
      const text = payload.toString("utf8");
      const end = JSON.parse(text) as { error?: unknown };
      return connectAnswer(end.error, text);
    }
  }
  return { code: -1, errorInfo: undefined, raw: body.toString("utf8") };
}

type Listener = "grpc" | "http-grpc" | "connect-binary" | "connect-json";

let instance: Instance;
let verifier: LatchkeyVerifier;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let bootstrap: string;
let grpcSession: http2.ClientHttp2Session;
let h2cSession: http2.ClientHttp2Session;
const logText: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, auditMode: "all" });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText.push(chunk.toString("utf8"));
      done();
    },
  });
  const log = createLogger("trace", sink);
  bootstrap = (await bootstrapIfEmpty(db.sql, { orgId: "acme", prefix: PREFIX })) ?? "";
  instance = await startInstance({
    sql: db.sql,
    verifier,
    tokenPrefix: PREFIX,
    log,
    redis: false,
    grpcListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    defaultMetrics: false,
  });
  grpcSession = http2.connect(`http://127.0.0.1:${instance.grpcPort}`);
  h2cSession = http2.connect(`http://127.0.0.1:${instance.httpPort}`);
});

afterAll(async () => {
  grpcSession?.close();
  h2cSession?.close();
  await instance?.close();
  await verifier?.close();
  await db?.drop();
});

async function counts(): Promise<{ tokens: number; audit: number }> {
  await verifier.flush();
  const [t] = await db.sql<{ n: string }[]>`select count(*)::text as n from tokens`;
  const [a] = await db.sql<{ n: string }[]>`select count(*)::text as n from audit_events`;
  return { tokens: Number(t?.n), audit: Number(a?.n) };
}

async function send(
  listener: Listener,
  service: DescService,
  method: DescMethod,
  payload: Uint8Array,
  authorize: boolean,
): Promise<Answer> {
  const path = `/${service.typeName}/${method.name}`;
  const auth: Record<string, string> = authorize ? { authorization: `Bearer ${bootstrap}` } : {};
  const streaming = method.methodKind === "server_streaming";
  if (listener === "grpc" || listener === "http-grpc") {
    const session = listener === "grpc" ? grpcSession : h2cSession;
    const res = await h2request(
      session,
      { ":path": path, "content-type": "application/grpc", te: "trailers", ...auth },
      grpcFrame(payload),
    );
    return grpcAnswer(res);
  }
  if (listener === "connect-binary") {
    const res = await h2request(
      h2cSession,
      {
        ":path": path,
        "content-type": streaming ? "application/connect+proto" : "application/proto",
        "connect-protocol-version": "1",
        ...auth,
      },
      streaming ? grpcFrame(payload) : payload,
    );
    if (streaming) return connectStreamAnswer(res.body);
    const text = res.body.toString("utf8");
    return connectAnswer(JSON.parse(text), text);
  }
  const res = await fetch(`http://127.0.0.1:${instance.httpPort}${path}`, {
    method: "POST",
    headers: {
      "content-type": streaming ? "application/connect+json" : "application/json",
      "connect-protocol-version": "1",
      ...auth,
    },
    body: streaming ? grpcFrame(payload) : payload,
  });
  const body = Buffer.from(await res.arrayBuffer());
  if (streaming) return connectStreamAnswer(body);
  const text = body.toString("utf8");
  return connectAnswer(JSON.parse(text), text);
}

describe("undecodable requests on every method of both listeners", () => {
  it("answer INVALID_ARGUMENT / MALFORMED_REQUEST, write nothing, are counted, log no stack", async () => {
    const next = rng(SEED);
    const before = await counts();
    const sentPerMethod = new Map<string, number>();
    const failures: string[] = [];
    let sent = 0;
    for (const service of SERVICES) {
      for (const method of service.methods) {
        for (let i = 0; i < CASES_PER_METHOD; i++) {
          const listener = (["grpc", "http-grpc", "connect-binary", "connect-json"] as const)[
            i % 4
          ] as Listener;
          let payload: Uint8Array;
          if (listener === "connect-json") {
            payload = badJson(method.input, next);
          } else {
            const bad = next() < 0.7 ? badMessage(method.input, next) : undefined;
            payload = bad === undefined ? garbage(method.input, next) : Uint8Array.from(bad);
          }
          const answer = await send(listener, service, method, payload, next() < 0.5);
          sent++;
          const key = `${service.typeName}/${method.name}`;
          sentPerMethod.set(key, (sentPerMethod.get(key) ?? 0) + 1);
          const ok =
            answer.code === 3 &&
            answer.errorInfo?.reason === MALFORMED_REQUEST &&
            answer.errorInfo.domain === ERROR_DOMAIN;
          if (!ok) failures.push(`${key} via ${listener}: ${answer.raw.slice(0, 200)}`);
        }
      }
    }
    expect(sent).toBeGreaterThanOrEqual(500);
    expect(failures).toEqual([]);

    // Nothing was written.
    expect(await counts()).toEqual(before);

    // Counted: INVALID_ARGUMENT once per case, per method (both listeners share the series).
    const series = (await instance.metrics.rpcRequests.get()).values;
    for (const [key, n] of sentPerMethod) {
      const slash = key.lastIndexOf("/");
      const value = series.find(
        (v) =>
          v.labels.service === key.slice(0, slash) &&
          v.labels.method === key.slice(slash + 1) &&
          v.labels.code === "INVALID_ARGUMENT",
      )?.value;
      expect(value, key).toBe(n);
    }
    expect(
      series.filter((v) => v.labels.code === "INTERNAL" || v.labels.code === "UNKNOWN"),
    ).toEqual([]);

    // Still serving, and nothing in the log looks like a stack trace.
    const admin = await send(
      "grpc",
      TokenAdminService,
      TokenAdminService.method.listTokens,
      toBinary(
        TokenAdminService.method.listTokens.input,
        create(TokenAdminService.method.listTokens.input),
      ),
      true,
    );
    expect(admin.code).toBe(0);
    const log = logText.join("");
    expect(log).not.toMatch(/\n\s+at |"stack"/);
  }, 120_000);
});
