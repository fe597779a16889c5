import * as http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckRequestSchema } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  GetTokenRequestSchema,
  ListTokensRequestSchema,
} from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { VerifyTokenRequestSchema } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { PLATFORM_ADMIN } from "../../src/services/auth.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { decodeGrpcErrorDetails } from "../../src/transport/error-mapper.js";
import { grpcFrame, h2request } from "../helpers/h2.js";
import { type LatchkeyServer, PREFIX, startLatchkeyServer } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { insertToken } from "../helpers/seed.js";

// The gRPC listener serves latchkey's unary methods (and Envoy's Check) through a lean lane on
// node:http2 instead of grpc-js (src/transport/grpc/fast-unary.ts). Clients must not be able to
// tell: every answer here is compared byte for byte — headers, message, trailers, rich error
// details — with the same call to a listener that serves it through grpc-js.

const VERIFY = "/latchkey.v1.TokenVerifyService/VerifyToken";
const GET = "/latchkey.v1.TokenAdminService/GetToken";
const LIST = "/latchkey.v1.TokenAdminService/ListTokens";
const CHECK = "/envoy.service.auth.v3.Authorization/Check";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let verifier: LatchkeyVerifier;
let lane: LatchkeyServer;
let grpcJs: LatchkeyServer;
let valid: string;
let admin: string;

interface Answer {
  readonly headers: Record<string, unknown>;
  readonly body: string;
  readonly trailers: Record<string, unknown>;
}

function frame(message: Uint8Array, compressed = false): Buffer {
  return grpcFrame(message, compressed ? 1 : 0);
}

function bytes<S extends DescMessage>(schema: S, init: MessageInitShape<S>): Uint8Array {
  return toBinary(schema, create(schema, init));
}

/** One call on a fresh HTTP/2 connection; `date` is dropped (it differs by the second). */
async function call(
  server: LatchkeyServer,
  path: string,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const session = http2.connect(`http://${server.grpcAddress}`);
  try {
    const res = await h2request(
      session,
      { ":path": path, "content-type": "application/grpc", te: "trailers", ...headers },
      body,
    );
    const { date: _date, ...rest } = res.headers;
    return { headers: rest, body: res.body.toString("hex"), trailers: { ...res.trailers } };
  } finally {
    session.close();
  }
}

/** The same call to both listeners: equal answers, returned for further checks. */
async function same(path: string, body: Buffer, headers: Record<string, string> = {}) {
  const fromLane = await call(lane, path, body, headers);
  const fromGrpcJs = await call(grpcJs, path, body, headers);
  expect(fromLane).toEqual(fromGrpcJs);
  return fromLane;
}

/** grpc-status of an answer (trailers, or the headers of a trailers-only answer). */
function status(a: Answer): string {
  return String(a.trailers["grpc-status"] ?? a.headers["grpc-status"]);
}

beforeAll(async () => {
  db = await createTestDatabase();
  const quiet = { warn() {}, error() {}, info() {}, debug() {} };
  verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, log: quiet });
  lane = await startLatchkeyServer({ sql: db.sql, verifier, log: quiet });
  grpcJs = await startLatchkeyServer({ sql: db.sql, verifier, log: quiet, grpcFastUnary: false });
  valid = (await insertToken(db.sql, { permissions: ["deploy:read"] })).secret;
  admin = (await insertToken(db.sql, { permissions: ["*", PLATFORM_ADMIN] })).secret;
});

afterAll(async () => {
  await lane?.close();
  await grpcJs?.close();
  await verifier?.close();
  await db?.drop();
});

describe("the gRPC listener's lean unary lane", () => {
  it("answers VerifyToken exactly as grpc-js does: valid, denied, invalid argument", async () => {
    const ok = await same(
      VERIFY,
      frame(
        bytes(VerifyTokenRequestSchema, { token: valid, requiredPermissions: ["deploy:read"] }),
      ),
    );
    expect(status(ok)).toBe("0");
    expect(ok.body.length).toBeGreaterThan(10);
    const denied = await same(
      VERIFY,
      frame(bytes(VerifyTokenRequestSchema, { token: valid, requiredPermissions: ["admin:x"] })),
    );
    expect(status(denied)).toBe("0");
    expect(denied.body).not.toBe(ok.body);
    const bad = await same(
      VERIFY,
      frame(bytes(VerifyTokenRequestSchema, { token: valid, clientIp: "not-an-ip" })),
    );
    expect(status(bad)).toBe("3");
    expect(String(bad.headers["grpc-message"])).toContain("client_ip");
    expect(bad.headers["grpc-status-details-bin"]).toBeDefined();
  });

  it("answers admin calls exactly as grpc-js does: unauthenticated, not found, a page", async () => {
    const body = frame(bytes(GetTokenRequestSchema, { id: "tok_doesnotexist0000000000" }));
    expect(status(await same(GET, body))).toBe("16");
    const missing = await same(GET, body, { authorization: `Bearer ${admin}` });
    expect(["3", "5"]).toContain(status(missing));
    const page = await same(LIST, frame(bytes(ListTokensRequestSchema, { pageSize: 5 })), {
      authorization: `Bearer ${admin}`,
    });
    expect(status(page)).toBe("0");
    expect(page.body.length).toBeGreaterThan(100);
  });

  it("answers Envoy's Check exactly as grpc-js does", async () => {
    const check = (authorization: string) =>
      frame(
        bytes(CheckRequestSchema, {
          attributes: {
            request: {
              http: { method: "GET", path: "/v1/deploy", headers: { authorization } },
            },
          },
        }),
      );
    expect(status(await same(CHECK, check(`Bearer ${valid}`)))).toBe("0");
    expect(status(await same(CHECK, check("Bearer nope")))).toBe("0");
  });

  it("answers undecodable, empty, oversized and compressed requests as grpc-js does", async () => {
    const malformed = await same(VERIFY, frame(Buffer.from([0x0a, 0x05, 0x41])));
    expect(status(malformed)).toBe("3");
    const details = new grpc.Metadata();
    details.set(
      "grpc-status-details-bin",
      Buffer.from(String(malformed.headers["grpc-status-details-bin"]), "base64"),
    );
    const info = decodeGrpcErrorDetails(details).errorInfo;
    expect(info?.reason).toBe("MALFORMED_REQUEST");
    // An empty VerifyTokenRequest is a valid message: answered in the body (code MALFORMED).
    expect(status(await same(VERIFY, frame(new Uint8Array(0))))).toBe("0");
    const huge = await same(VERIFY, frame(Buffer.alloc(4 * 1024 * 1024 + 10)));
    expect(status(huge)).toBe("8");
    // A gzip request is left to grpc-js by the lane: the same answer either way.
    const request = bytes(VerifyTokenRequestSchema, { token: valid });
    const gz = await same(VERIFY, frame(gzipSync(request), true), { "grpc-encoding": "gzip" });
    expect(status(gz)).toBe("0");
  });

  it("answers a frame with a bad compressed flag, or two messages, with INVALID_ARGUMENT", async () => {
    const message = bytes(VerifyTokenRequestSchema, { token: valid });
    const flagged = Buffer.from(frame(message));
    flagged[0] = 7;
    expect(status(await call(lane, VERIFY, flagged))).toBe("3");
    const two = Buffer.concat([frame(message), frame(message)]);
    expect(status(await call(lane, VERIFY, two))).toBe("3");
    // A compressed flag without grpc-encoding is read as plain bytes, as grpc-js does.
    expect(status(await same(VERIFY, frame(message, true)))).toBe("0");
  });
});
