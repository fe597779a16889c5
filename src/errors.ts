import { Code } from "@connectrpc/connect";

/** The error domain put in every google.rpc.ErrorInfo latchkey returns. */
export const ERROR_DOMAIN = "latchkey.dev";

/** One bad field of a request, reported as a google.rpc.BadRequest field violation. */
export interface FieldViolation {
  /** Field path in the request, e.g. `name`, `allowed_cidrs[2]`, `metadata["region"]`. */
  readonly field: string;
  /** What is wrong, for a human; never echoes a secret. */
  readonly description: string;
}

export interface LatchkeyErrorOptions {
  readonly violations?: readonly FieldViolation[];
  /** Extra ErrorInfo metadata (machine-readable, no secrets). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Internal cause: logged, never sent to the client. */
  readonly cause?: unknown;
}

/**
 * The one error type services throw. Both listeners map it through the same error mapper to a
 * status code with exactly one google.rpc.ErrorInfo (domain latchkey.dev, UPPER_SNAKE reason)
 * and, for bad fields, a google.rpc.BadRequest. Anything else thrown by a handler is a bug and
 * leaves as INTERNAL with a generic message (the cause goes to the log only).
 */
export class LatchkeyError extends Error {
  override readonly name = "LatchkeyError";
  readonly violations: readonly FieldViolation[];
  readonly metadata: Readonly<Record<string, string>>;

  constructor(
    readonly code: Code,
    readonly reason: string,
    message: string,
    options: LatchkeyErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.violations = options.violations ?? [];
    this.metadata = options.metadata ?? {};
  }
}

/** INVALID_ARGUMENT naming every bad field; the message names them too. */
export function invalidArgument(violations: readonly FieldViolation[]): LatchkeyError {
  const first = violations[0];
  const message =
    violations.length === 1 && first !== undefined
      ? `invalid ${first.field}: ${first.description}`
      : `invalid request: ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}`;
  return new LatchkeyError(Code.InvalidArgument, "INVALID_ARGUMENT", message, { violations });
}

export function notFound(what: string): LatchkeyError {
  return new LatchkeyError(Code.NotFound, "TOKEN_NOT_FOUND", `${what} not found`);
}

export function unimplemented(method: string): LatchkeyError {
  return new LatchkeyError(Code.Unimplemented, "UNIMPLEMENTED", `${method} is not implemented yet`);
}

export function unavailable(what: string, cause?: unknown): LatchkeyError {
  return new LatchkeyError(Code.Unavailable, "STORAGE_UNAVAILABLE", `${what} is unavailable`, {
    cause,
  });
}

/**
 * A revocation by filter that storage stopped part-way. Each earlier transaction stays
 * committed, so a bare UNAVAILABLE would hide work that was done: the reason stays
 * STORAGE_UNAVAILABLE (clients that retry on it keep doing so), the metadata says how many
 * tokens latchkey saw revoked (`revoked_count`) and the `batch_id` their audit rows carry (a
 * chunk whose COMMIT was cut may have landed too, with that id), and the message says that
 * repeating the same request revokes the rest.
 */
export function revocationInterrupted(
  revoked: number,
  batchId: string,
  cause: unknown,
): LatchkeyError {
  const message =
    revoked === 0
      ? `storage is unavailable: the batch revocation (batch ${batchId}) stopped before latchkey saw any token revoked; repeating the same request revokes the matching tokens`
      : `storage became unavailable during the batch revocation, so it is partial: ${revoked} tokens were revoked (batch ${batchId}) before it stopped; repeating the same request revokes the rest`;
  const metadata = { revoked_count: String(revoked), batch_id: batchId };
  return new LatchkeyError(Code.Unavailable, "STORAGE_UNAVAILABLE", message, { cause, metadata });
}

/** ErrorInfo reason of a request that could not be decoded (not protobuf/JSON, invalid UTF-8). */
export const MALFORMED_REQUEST = "MALFORMED_REQUEST";

/**
 * A request whose bytes could not be decoded. It is the client's fault, so INVALID_ARGUMENT on
 * both listeners (Connect's convention too), never INTERNAL; the decoder's words stay in the log.
 */
export function malformedRequest(): LatchkeyError {
  return new LatchkeyError(
    Code.InvalidArgument,
    MALFORMED_REQUEST,
    "the request could not be decoded (not valid protobuf or JSON for this method, or a string that is not valid UTF-8)",
  );
}

/**
 * A refusal with its own reason and machine-readable metadata (scope, escalation, a token
 * state that forbids the change): the short form services use instead of the constructor.
 */
export function refused(
  code: Code,
  reason: string,
  message: string,
  metadata: Record<string, string> = {},
): LatchkeyError {
  return new LatchkeyError(code, reason, message, { metadata });
}

/** Throws one INVALID_ARGUMENT naming every collected bad field, if there is any. */
export function throwIfInvalid(violations: readonly FieldViolation[]): void {
  if (violations.length > 0) throw invalidArgument(violations);
}

/**
 * A write that collided with a unique constraint (Postgres 23505), raised by the store so that
 * services never look at driver error codes. Unhandled, it leaves as ALREADY_EXISTS.
 */
export class ConflictError extends LatchkeyError {
  constructor(
    readonly constraint: string,
    cause: unknown,
  ) {
    super(Code.AlreadyExists, "ALREADY_EXISTS", "the resource already exists", {
      cause,
      metadata: constraint === "" ? {} : { constraint },
    });
  }
}
