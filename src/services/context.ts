import type {
  DescMessage,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";

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
}

type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => Promise<MessageInitShape<O>>;

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
