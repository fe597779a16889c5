import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Authorization,
  CheckRequestSchema,
  CheckResponseSchema,
} from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  GetTokenRequestSchema,
  GetTokenResponseSchema,
  TokenAdminService,
} from "../src/gen/latchkey/v1/token_admin_service_pb.js";
import {
  TokenVerifyService,
  VerifyCode,
  VerifyTokenRequestSchema,
  VerifyTokenResponseSchema,
} from "../src/gen/latchkey/v1/token_verify_service_pb.js";
import { HEALTH_PATH } from "./lib/grpc-client.js";
import type { PhaseSpec } from "./lib/phase.js";

/**
 * The RPCs the bench loads, one small function each. A phase also says how to recognise a
 * correct answer: h2load counts any HTTP 200 as a success, gRPC errors included, so every
 * phase is called once and checked before it is loaded.
 */
export interface CheckedPhase extends PhaseSpec {
  /** A problem with one answer, or undefined when it is the expected one. */
  readonly check: (response: Buffer) => string | undefined;
}

/** The tokens the bench seeds before starting servers. */
export interface BenchTokens {
  /** `deploy:*` in org `bench`: verified with `deploy:read` from a client IP. */
  readonly verify: { readonly id: string; readonly secret: string };
  /** `tokens:read` in org `bench`: the admin caller of GetToken. */
  readonly admin: { readonly id: string; readonly secret: string };
}

/** grpc.health.v1.Health/Check: the no-op every ratio is taken against. */
export function healthPhase(): CheckedPhase {
  return {
    name: "Health/Check",
    path: HEALTH_PATH,
    body: new Uint8Array(0),
    check: (r) => (r.length === 2 && r[1] === 1 ? undefined : "not SERVING"),
  };
}

/** VerifyToken of a cached, valid token (`deploy:read`, a client IP), as a gateway sends it. */
export function verifyPhase(name: string, tokens: BenchTokens): CheckedPhase {
  const body = toBinary(
    VerifyTokenRequestSchema,
    create(VerifyTokenRequestSchema, {
      token: tokens.verify.secret,
      requiredPermissions: ["deploy:read"],
      clientIp: "10.1.2.3",
      method: "POST",
      path: "/v1/deploy",
      requestId: "bench",
    }),
  );
  return {
    name,
    path: `/${TokenVerifyService.typeName}/VerifyToken`,
    body,
    check: (r) => {
      const code = fromBinary(VerifyTokenResponseSchema, r).code;
      return code === VerifyCode.VALID ? undefined : `answered ${VerifyCode[code]}`;
    },
  };
}

/** Admin GetToken by id: authentication (a cached verification) plus one Postgres read. */
export function getTokenPhase(tokens: BenchTokens): CheckedPhase {
  return {
    name: "GetToken (admin)",
    path: `/${TokenAdminService.typeName}/GetToken`,
    body: toBinary(GetTokenRequestSchema, create(GetTokenRequestSchema, { id: tokens.verify.id })),
    headers: { authorization: `Bearer ${tokens.admin.secret}` },
    check: (r) =>
      fromBinary(GetTokenResponseSchema, r).token?.id === tokens.verify.id
        ? undefined
        : "wrong token",
  };
}

/**
 * Envoy ext_authz Check of the same cached token, as Envoy's filter sends it: the same
 * verification behind a bigger request and an HTTP-shaped answer (issue #9: must not be the
 * slow door, goal ≥ 0.9× VerifyToken).
 */
export function envoyCheckPhase(tokens: BenchTokens): CheckedPhase {
  const body = toBinary(
    CheckRequestSchema,
    create(CheckRequestSchema, {
      attributes: {
        source: {
          address: { address: { case: "socketAddress", value: { address: "10.1.2.3" } } },
        },
        request: {
          http: {
            id: "bench",
            method: "POST",
            path: "/v1/deploy",
            headers: { authorization: `Bearer ${tokens.verify.secret}` },
          },
        },
        contextExtensions: { "latchkey.permissions": "deploy:read" },
      },
    }),
  );
  return {
    name: "Envoy Check",
    path: `/${Authorization.typeName}/Check`,
    body,
    check: (r) => {
      const code = fromBinary(CheckResponseSchema, r).status?.code ?? 0;
      return code === 0 ? undefined : `denied with status ${code}`;
    },
  };
}

/** Phases added to the audit-all server's alternation besides Health, Verify and GetToken. */
export const extraPhases: ((tokens: BenchTokens) => CheckedPhase)[] = [envoyCheckPhase];
