import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GetTokenRequestSchema } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import {
  VerifyTokenRequestSchema,
  VerifyTokenResponseSchema,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { stringsDecoder } from "../../src/transport/grpc/lean-reader.js";

const decode = stringsDecoder(VerifyTokenRequestSchema);
const REQUEST = toBinary(
  VerifyTokenRequestSchema,
  create(VerifyTokenRequestSchema, {
    token: "lk_p_abc",
    requiredPermissions: ["deploy:read", "deploy:write"],
    clientIp: "10.1.2.3",
    orgId: "org",
    method: "POST",
    path: "/v1/deploy é",
    requestId: "r-1",
  }),
);

function full(bytes: Uint8Array): unknown {
  try {
    return fromBinary(VerifyTokenRequestSchema, bytes);
  } catch {
    return undefined;
  }
}

describe("the lean decoder of string-only requests", () => {
  it("applies to string-only messages, not to others", () => {
    expect(decode).toBeDefined();
    expect(stringsDecoder(GetTokenRequestSchema)).toBeDefined();
    expect(stringsDecoder(VerifyTokenResponseSchema)).toBeUndefined();
  });

  it("builds the very object fromBinary builds", () => {
    const lean = decode?.(Buffer.from(REQUEST));
    expect(lean).toStrictEqual(full(REQUEST));
    expect(Object.keys(lean ?? {})).toEqual(Object.keys(full(REQUEST) ?? {}));
    expect(decode?.(Buffer.alloc(0))).toStrictEqual(full(new Uint8Array(0)));
  });

  it("accepts only what fromBinary accepts, and then builds the same (mutated bytes)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(REQUEST.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 3,
        }),
        fc.nat(REQUEST.length),
        (edits, cut) => {
          const bytes = Buffer.from(REQUEST.subarray(0, cut));
          for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
          const lean = decode?.(bytes);
          if (lean !== undefined) expect(lean).toStrictEqual(full(bytes));
        },
      ),
      { numRuns: 5_000 },
    );
  });
});
