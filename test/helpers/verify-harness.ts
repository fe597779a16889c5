import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  VerifyTokenRequestSchema,
  VerifyTokenResponse,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { PLATFORM_ADMIN } from "../../src/services/auth.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier, type VerifierDeps } from "../../src/services/verify/verifier.js";
import type { AdminClient } from "./admin-client.js";
import { PREFIX, startLatchkeyServer } from "./latchkey-server.js";
import { insertToken } from "./seed.js";

export { insertToken, type TestToken } from "./seed.js";
export { PREFIX };

/** A running latchkey instance (both services, real listeners) over one verifier. */
export interface VerifyInstance {
  /** The gRPC listener. */
  readonly address: string;
  readonly verifier: LatchkeyVerifier;
  /** Lines the verifier and the listeners logged (for the secret scan). */
  readonly logs: string[];
  verify(request: MessageInitShape<typeof VerifyTokenRequestSchema>): Promise<VerifyTokenResponse>;
  /**
   * TokenAdminService of this instance, as a platform admin of org A (a token inserted on first
   * use, so instances that never call it add no row).
   */
  admin(): Promise<AdminClient>;
  /** Revokes `id` through this instance's RevokeToken, the way an operator would. */
  revoke(id: string, reason?: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts latchkey over a fresh verifier on `deps.sql` with the real gRPC and HTTP listeners
 * (see startLatchkeyServer) and calls it through a grpc-js client, so tests go through real
 * HTTP/2, protobuf encoding and the one error mapper.
 */
export async function startVerifyInstance(
  deps: Omit<VerifierDeps, "log" | "tokenPrefix"> & { tokenPrefix?: string },
): Promise<VerifyInstance> {
  const logs: string[] = [];
  const line = (msg: string, obj: object): void => {
    logs.push(`${msg} ${JSON.stringify(obj)}`);
  };
  const verifier = createVerifier({
    tokenPrefix: PREFIX,
    ...deps,
    log: { warn: (obj, msg) => line(msg, obj) },
  });
  const log = {
    warn: (obj: Record<string, unknown>, msg: string) => line(msg, obj),
    error: (obj: Record<string, unknown>, msg: string) => line(msg, obj),
    info: (obj: Record<string, unknown>, msg: string) => line(msg, obj),
    debug: () => {},
  };
  const server = await startLatchkeyServer({
    sql: deps.sql,
    verifier,
    log,
    redis: deps.redisUrl !== undefined,
  });
  const client = server.verify();
  let admin: Promise<AdminClient> | undefined;
  const adminOnce = (): Promise<AdminClient> => {
    admin ??= insertToken(deps.sql, {
      name: "verify harness admin",
      permissions: ["*", PLATFORM_ADMIN],
    }).then(({ secret }) => server.admin(secret));
    return admin;
  };
  return {
    address: server.grpcAddress,
    verifier,
    logs,
    verify: (request) => client.verifyToken(request),
    admin: adminOnce,
    async revoke(id, reason = "test") {
      await (await adminOnce()).revokeToken({ id, reason });
    },
    async close() {
      await server.close();
      await verifier.close();
    },
  };
}

/** Polls `check` every 10 ms until it returns true or `ms` pass; returns the time taken or -1. */
export async function waitFor(check: () => Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > ms) return -1;
    await new Promise((r) => setTimeout(r, 10));
  }
}
