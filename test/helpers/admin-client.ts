import {
  type DescMethodUnary,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  create,
  toBinary,
} from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";

type Methods = (typeof TokenAdminService)["method"];

/** TokenAdminService over a real grpc-js channel, one promise per call. */
export type AdminClient = {
  [K in keyof Methods]: Methods[K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, metadata?: Record<string, string>) => Promise<MessageShape<O>>
    : never;
};

/**
 * A grpc-js client for TokenAdminService built from the protobuf-es descriptors (no proto
 * loading), sending `authorization: Bearer <token>` unless `token` is undefined.
 */
export function adminClient(
  channel: grpc.Client,
  token: string | undefined,
): AdminClient {
  const out: Record<string, unknown> = {};
  for (const method of TokenAdminService.methods) {
    if (method.methodKind !== "unary") continue;
    const path = `/${TokenAdminService.typeName}/${method.name}`;
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
  return out as AdminClient;
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

/** Decodes `grpc-status-details-bin` of a grpc-js error into its ErrorInfo and BadRequest. */
export function failureOf(err: unknown): CallFailure {
  if (typeof err !== "object" || err === null || !("code" in err) || !("metadata" in err)) {
    throw err;
  }
  const e = err as grpc.ServiceError;
  const raw = e.metadata.get("grpc-status-details-bin")[0];
  let reason = "";
  let domain = "";
  let metadata: Record<string, string> = {};
  const fields: string[] = [];
  const descriptions: string[] = [];
  if (raw !== undefined) {
    const status = fromBinary(
      StatusSchema,
      typeof raw === "string" ? Buffer.from(raw, "base64") : new Uint8Array(raw),
    );
    for (const detail of status.details) {
      const info = anyUnpack(detail, ErrorInfoSchema);
      if (info !== undefined) {
        reason = info.reason;
        domain = info.domain;
        metadata = { ...info.metadata };
      }
      const bad = anyUnpack(detail, BadRequestSchema);
      if (bad !== undefined) {
        for (const v of bad.fieldViolations) {
          fields.push(v.field);
          descriptions.push(v.description);
        }
      }
    }
  }
  return { code: e.code, message: e.details, reason, domain, metadata, fields, descriptions };
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
