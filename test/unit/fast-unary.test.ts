import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { type FastUnary, installFastUnary } from "../../src/transport/grpc/fast-unary.js";
import { MALFORMED } from "../../src/transport/malformed.js";
import type { UnaryRpc } from "../../src/transport/rpc-adapter.js";

const method: FastUnary = {
  path: "/x.Y/Z",
  rpc: { kind: "unary", fullName: "x.Y/Z" } as unknown as UnaryRpc,
  decode: () => MALFORMED,
  encode: () => Buffer.alloc(0),
};

describe("installFastUnary", () => {
  it("refuses, with a sentence, a grpc-js without the internals it relies on", () => {
    expect(() => installFastUnary({} as grpc.Server, [method], 1024)).toThrow(
      /grpc-js 1\.14 internals \(http2Servers, onStreamOpened\)/,
    );
  });

  it("finds those internals on the pinned grpc-js (an upgrade that drops them fails here)", () => {
    const server = new grpc.Server();
    expect(() => installFastUnary(server, [method], 1024)).not.toThrow();
    server.forceShutdown();
  });

  it("does nothing without methods", () => {
    expect(() => installFastUnary({} as grpc.Server, [], 1024)).not.toThrow();
  });
});
