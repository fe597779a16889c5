import type {
  DescMessage,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { TokenType } from "../gen/latchkey/v1/token_pb.js";

/**
 * What a handler knows about the call, the same on both listeners. Kept small on purpose: the
 * gRPC listener builds one per request on the hot path, so no Headers or AbortController
 * objects are made unless a handler asks for them.
 */
export interface CallContext {
  /** First value of a request header (name in lower case), or undefined. */
  header(name: string): string | undefined;
  /** The peer's address as the listener saw it (IP only, no port); "" when unknown. */
  readonly peerAddress: string;
  /** Aborted when the client goes away (streams watch it). */
  readonly signal: AbortSignal;
  /** Fully qualified method name, e.g. `latchkey.v1.TokenAdminService/CreateToken`. */
  readonly method: string;
  /**
   * The authenticated caller, set once by the adapter before an authenticated handler runs
   * (TokenAdminService); undefined for unauthenticated methods.
   */
  caller: Caller | undefined;
  /**
   * The client certificate the TLS layer verified against LATCHKEY_TLS_CLIENT_CA; undefined
   * without one (plaintext, none presented, or not signed by that CA). Read lazily.
   */
  readonly clientCertificate?: ClientCertificate | undefined;
}

/** A verified client certificate (mTLS), as much of it as a handler or an audit row needs. */
export interface ClientCertificate {
  /** Subject CN ("" when the certificate has none). */
  readonly commonName: string;
  /** SHA-256 fingerprint, colon-separated upper-case hex as node:tls writes it. */
  readonly fingerprint256: string;
}

/**
 * The authenticated caller of a TokenAdminService method, built from its verified token. Every
 * admin handler decides scope (org, team, owner) and escalation from this and nothing else.
 */
export interface Caller {
  readonly tokenId: string;
  readonly orgId: string;
  readonly teamId: string;
  readonly ownerId: string;
  readonly type: TokenType;
  readonly permissions: readonly string[];
  /** Holds `platform:admin` by name (`*` does not imply it): may act in any org. */
  readonly isPlatform: boolean;
  /** The peer address the listener saw ("" when unknown); recorded in audit rows. */
  readonly clientIp: string;
}

/**
 * The caller of an authenticated method. A handler reached without one is a wiring bug (the
 * adapter authenticates every TokenAdminService call), so this throws rather than guessing.
 */
export function callerOf(context: CallContext): Caller {
  const caller = context.caller;
  if (caller === undefined)
    throw new Error(`${context.method} reached without an authenticated caller`);
  return caller;
}

/** A unary handler answers with a promise, or with the response itself when it need not wait. */
type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

type ServerStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => AsyncIterable<MessageInitShape<O>>;

/**
 * One implementation of a service, shared by the gRPC listener (grpc-js) and the HTTP listener
 * (connect-node). Handlers throw LatchkeyError for every expected failure.
 */
export type ServiceHandlers<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? UnaryHandler<I, O>
    : S["method"][K] extends DescMethodServerStreaming<infer I, infer O>
      ? ServerStreamingHandler<I, O>
      : never;
};
