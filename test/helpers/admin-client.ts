import {
  create,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { decodeGrpcErrorDetails } from "../../src/transport/error-mapper.js";

/** The unary methods of a service over a real grpc-js channel, one promise per call. */
export type UnaryClient<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, metadata?: Record<string, string>) => Promise<MessageShape<O>>
    : never;
};

/** TokenAdminService over a real grpc-js channel. */
export type AdminClient = UnaryClient<typeof TokenAdminService>;

/** TokenVerifyService over a real grpc-js channel. */
export type VerifyClient = UnaryClient<typeof TokenVerifyService>;

/**
 * A grpc-js client for the unary methods of `desc`, built from the protobuf-es descriptors (no
 * proto loading), sending `authorization: Bearer <token>` unless `token` is undefined.
 */
export function unaryClient<S extends DescService>(
  desc: S,
  channel: grpc.Client,
  token: string | undefined,
): UnaryClient<S> {
  const out: Record<string, unknown> = {};
  for (const method of desc.methods) {
    if (method.methodKind !== "unary") continue;
    const path = `/${desc.typeName}/${method.name}`;
    out[method.localName] = (
      request: MessageInitShape<typeof method.input>,
      extra: Record<string, string> = {},
    ) =>
      new Promise((resolve, reject) => {
        const md = new grpc.Metadata();
        if (token !== undefined) md.set("authorization", `Bearer ${token}`);
        for (const [k, v] of Object.entries(extra)) md.set(k, v);
        channel.makeUnaryRequest(
          path,
          (msg: MessageInitShape<typeof method.input>) =>
            Buffer.from(toBinary(method.input, create(method.input, msg))),
          (buf: Buffer) => fromBinary(method.output, buf),
          request,
          md,
          { deadline: Date.now() + 60_000 },
          (err, value) => (err === null ? resolve(value) : reject(err)),
        );
      });
  }
  return out as UnaryClient<S>;
}

/** TokenAdminService calling with `token` (undefined: no authorization header). */
export function adminClient(channel: grpc.Client, token: string | undefined): AdminClient {
  return unaryClient(TokenAdminService, channel, token);
}

/** TokenVerifyService (it needs no authorization header). */
export function verifyClient(channel: grpc.Client): VerifyClient {
  return unaryClient(TokenVerifyService, channel, undefined);
}

/** What a failed call carried: status code, ErrorInfo and BadRequest violations. */
export interface CallFailure {
  readonly code: grpc.status;
  readonly message: string;
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Record<string, string>;
  readonly fields: string[];
  readonly descriptions: string[];
}

/**
 * Decodes a grpc-js error's ErrorInfo and BadRequest with the transport's own decoder (the
 * same one the CLI uses).
 */
export function failureOf(err: unknown): CallFailure {
  if (typeof err !== "object" || err === null || !("code" in err) || !("metadata" in err)) {
    throw err;
  }
  const e = err as grpc.ServiceError;
  const decoded = decodeGrpcErrorDetails(e.metadata);
  const violations = decoded.badRequest?.fieldViolations ?? [];
  return {
    code: e.code,
    message: e.details,
    reason: decoded.errorInfo?.reason ?? "",
    domain: decoded.errorInfo?.domain ?? "",
    metadata: { ...(decoded.errorInfo?.metadata ?? {}) },
    fields: violations.map((v) => v.field),
    descriptions: violations.map((v) => v.description),
  };
}

/** Runs a call that must fail and returns what it failed with. */
export async function failure(call: Promise<unknown>): Promise<CallFailure> {
  try {
    await call;
  } catch (err) {
    return failureOf(err);
  }
  throw new Error("expected the call to fail, it succeeded");
}
