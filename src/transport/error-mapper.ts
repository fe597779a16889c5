import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { AnySchema, anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { ERROR_DOMAIN, LatchkeyError, unavailable } from "../errors.js";
import {
  type BadRequest,
  BadRequestSchema,
  type ErrorInfo,
  ErrorInfoSchema,
} from "../gen/google/rpc/error_details_pb.js";
import { type Status, StatusSchema } from "../gen/google/rpc/status_pb.js";
import { isConnectionError } from "../store/db.js";

/** The trailer grpc-js clients (and grpcurl, buf curl) read rich error details from. */
export const GRPC_STATUS_DETAILS_KEY = "grpc-status-details-bin";

/** The two log calls the mapper makes; a pino Logger fits. */
export interface ErrorLog {
  error(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** A protobuf message to attach to an error, in the form connect-es calls an outgoing detail. */
interface Detail {
  readonly desc: DescMessage;
  readonly value: MessageInitShape<DescMessage>;
}

/** What every listener sends for one failure: the same for grpc-js and connect-node. */
interface Mapped {
  readonly code: Code;
  readonly message: string;
  readonly details: readonly Detail[];
}

const INTERNAL_MESSAGE = "internal error";

/** Codes that mean latchkey itself is at fault: their causes are worth an error log line. */
function isServerFault(code: Code): boolean {
  return code === Code.Internal || code === Code.Unknown || code === Code.DataLoss;
}

/**
 * The single decision of what a client may learn from a thrown value. A LatchkeyError keeps
 * its code and message and gets exactly one ErrorInfo (plus BadRequest for bad fields);
 * anything else is a bug or an unwrapped driver error, whose text may hold SQL, a stack or a
 * secret, so it leaves as a bare INTERNAL and goes to the log only.
 */
function mapError(err: unknown, log: ErrorLog, method: string | undefined): Mapped {
  if (isConnectionError(err) && !(err instanceof LatchkeyError && err.code !== Code.Internal)) {
    // Storage is unreachable: UNAVAILABLE so clients retry; one short line, no driver text.
    const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
    log.warn({ method, code }, "rpc failed: storage unavailable");
    return mapError(unavailable("storage"), log, method);
  }
  if (err instanceof LatchkeyError) {
    if (err.cause !== undefined) {
      const line = { err: err.cause, method, code: Code[err.code], reason: err.reason };
      if (isServerFault(err.code)) log.error(line, "rpc failed");
      else log.warn(line, "rpc failed with a cause");
    }
    const details: Detail[] = [
      {
        desc: ErrorInfoSchema,
        value: { domain: ERROR_DOMAIN, reason: err.reason, metadata: { ...err.metadata } },
      },
    ];
    if (err.violations.length > 0) {
      details.push({
        desc: BadRequestSchema,
        value: {
          fieldViolations: err.violations.map((v) => ({
            field: v.field,
            description: v.description,
          })),
        },
      });
    }
    return { code: err.code, message: err.message, details };
  }
  log.error({ err, method }, "unexpected error in rpc handler");
  return {
    code: Code.Internal,
    message: INTERNAL_MESSAGE,
    details: [
      {
        desc: ErrorInfoSchema,
        value: { domain: ERROR_DOMAIN, reason: "INTERNAL", metadata: {} },
      },
    ],
  };
}

/**
 * Maps a handler failure once, for both listeners (the RPC adapter calls it): connect-node
 * sends the result as it is (connect-es serialises the details itself: JSON `details` for the
 * Connect protocol, `grpc-status-details-bin` for gRPC and gRPC-Web), the gRPC listener through
 * {@link toGrpcError}.
 */
export function toConnectError(err: unknown, log: ErrorLog, method?: string): ConnectError {
  const m = mapError(err, log, method);
  return new ConnectError(m.message, m.code, undefined, [...m.details]);
}

/**
 * The adapter's mapped error as grpc-js sends it: status code, message and a binary
 * google.rpc.Status in the `grpc-status-details-bin` trailer, the form grpc-go, grpcurl and buf
 * curl decode. The result is an Error too, so it can be passed to a unary callback or emitted on
 * a stream. It maps nothing itself: `err` comes from {@link toConnectError}.
 */
export function toGrpcError(err: ConnectError): grpc.ServerErrorResponse {
  const status = create(StatusSchema, {
    code: err.code,
    message: err.rawMessage,
    details: err.details.map((d) =>
      "desc" in d
        ? anyPack(d.desc, create(d.desc, d.value))
        : create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value }),
    ),
  });
  const bytes = toBinary(StatusSchema, status);
  const metadata = new grpc.Metadata();
  metadata.set(GRPC_STATUS_DETAILS_KEY, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  return Object.assign(new Error(err.rawMessage), {
    code: err.code as number as grpc.status,
    details: err.rawMessage,
    metadata,
  });
}

/** Rich error details decoded from a grpc-js error's trailers. */
export interface DecodedErrorDetails {
  readonly status: Status | undefined;
  /** Every ErrorInfo found (latchkey sends exactly one). */
  readonly errorInfos: readonly ErrorInfo[];
  readonly errorInfo: ErrorInfo | undefined;
  readonly badRequest: BadRequest | undefined;
}

/**
 * Reads `grpc-status-details-bin` back into ErrorInfo and BadRequest, for tests and the CLI,
 * which talk to the gRPC listener with grpc-js and want the machine-readable reason.
 */
export function decodeGrpcErrorDetails(metadata: grpc.Metadata | undefined): DecodedErrorDetails {
  const raw = metadata?.get(GRPC_STATUS_DETAILS_KEY)[0];
  if (raw === undefined || typeof raw === "string") {
    return { status: undefined, errorInfos: [], errorInfo: undefined, badRequest: undefined };
  }
  const status = fromBinaryStatus(raw);
  const errorInfos: ErrorInfo[] = [];
  let badRequest: BadRequest | undefined;
  for (const any of status.details) {
    const info = anyUnpack(any, ErrorInfoSchema);
    if (info !== undefined) errorInfos.push(info);
    badRequest ??= anyUnpack(any, BadRequestSchema);
  }
  return { status, errorInfos, errorInfo: errorInfos[0], badRequest };
}

function fromBinaryStatus(bytes: Uint8Array): Status {
  return fromBinary(StatusSchema, bytes);
}
