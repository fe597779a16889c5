import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CheckRequest,
  CheckRequestSchema,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { checkInputOf } from "../../src/services/gateway/envoy.js";
import { decodeCheckLean } from "../../src/transport/grpc/ext-authz-decode.js";

/** A CheckRequest shaped like the ones Envoy's ext_authz filter sends. */
const ENVOY_LIKE = toBinary(
  CheckRequestSchema,
  create(CheckRequestSchema, {
    attributes: {
      source: {
        address: {
          address: {
            case: "socketAddress",
            value: { address: "10.1.2.3", portSpecifier: { case: "portValue", value: 51234 } },
          },
        },
        principal: "spiffe://cluster.local/ns/a/sa/b",
      },
      destination: {
        address: {
          address: {
            case: "socketAddress",
            value: { address: "10.9.9.9", portSpecifier: { case: "portValue", value: 8080 } },
          },
        },
      },
      request: {
        time: timestampFromMs(1_700_000_000_000),
        http: {
          id: "1234",
          method: "POST",
          path: "/v1/deploy?x=1",
          host: "api.example.com",
          scheme: "https",
          protocol: "HTTP/2",
          size: 120n,
          headers: {
            ":authority": "api.example.com",
            authorization: "Bearer lk_p_x",
            "x-forwarded-for": "1.2.3.4",
            "user-agent": "curl/8 é",
          },
        },
      },
      contextExtensions: { "latchkey.permissions": "deploy:read", "latchkey.org": "o" },
    },
  }),
);

function full(bytes: Uint8Array): CheckRequest | undefined {
  try {
    return fromBinary(CheckRequestSchema, bytes);
  } catch {
    return undefined;
  }
}

describe("the lean CheckRequest decoder", () => {
  it("reads what Envoy sends exactly as the full decoder does", () => {
    const lean = decodeCheckLean(Buffer.from(ENVOY_LIKE));
    const decoded = full(ENVOY_LIKE);
    expect(lean).toBeDefined();
    expect(decoded).toBeDefined();
    if (decoded !== undefined) expect(lean).toEqual(checkInputOf(decoded));
  });

  it("accepts only what the full decoder accepts, and then reads the same (mutated bytes)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(ENVOY_LIKE.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(ENVOY_LIKE.length),
        (edits, cut) => {
          const bytes = Buffer.from(ENVOY_LIKE.subarray(0, Math.max(1, cut)));
          for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
          const lean = decodeCheckLean(bytes);
          if (lean === undefined) return; // left to the full decoder
          const decoded = full(bytes);
          expect(decoded).toBeDefined();
          if (decoded !== undefined) expect(lean).toEqual(checkInputOf(decoded));
        },
      ),
      { numRuns: 3_000 },
    );
  });

  it("leaves invalid UTF-8 in a field it does not use to the full decoder", () => {
    const bad = Buffer.from(ENVOY_LIKE);
    const at = bad.indexOf("api.example.com");
    bad[at] = 0xff;
    expect(decodeCheckLean(bad)).toBeUndefined();
    expect(full(bad)).toBeUndefined();
  });
});
