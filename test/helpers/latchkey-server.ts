import * as grpc from "@grpc/grpc-js";
import { startInstance } from "../../src/app.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import type { Sql } from "../../src/store/db.js";
import type { HttpLog } from "../../src/transport/http/server.js";
import { type AdminClient, adminClient, type VerifyClient, verifyClient } from "./admin-client.js";

/** The token prefix every test server issues and accepts. */
export const PREFIX = "lk";

export interface LatchkeyServerOptions {
  readonly sql: Sql;
  readonly verifier: LatchkeyVerifier;
  /** Where the listeners and the admin service log (handler failures, request lines). */
  readonly log: HttpLog;
  /** Report Redis in /readyz, as main.ts does when REDIS_URL is set. */
  readonly redis?: boolean;
  /** LATCHKEY_VERIFY_AUTH. */
  readonly verifyAuth?: "off" | "token";
  /** false: unary methods through grpc-js instead of the gRPC listener's lean lane. */
  readonly grpcFastUnary?: boolean;
}

/** Both listeners of one latchkey instance, on ephemeral ports of 127.0.0.1. */
export interface LatchkeyServer {
  /** `127.0.0.1:port` of the gRPC listener. */
  readonly grpcAddress: string;
  /** `http://127.0.0.1:port` of the HTTP listener (Connect, gRPC-Web, h2c, probes). */
  readonly httpUrl: string;
  /** TokenAdminService on the gRPC listener, calling with `token` (undefined: no header). */
  admin(token: string | undefined): AdminClient;
  /** TokenVerifyService on the gRPC listener. */
  verify(): VerifyClient;
  /** Closes the clients and both listeners; the verifier and `sql` stay the caller's. */
  close(): Promise<void>;
}

/**
 * Starts one latchkey instance through src/app.ts's startInstance — the wiring main.ts
 * runs: both services on the real gRPC and HTTP listeners, readiness and metrics — on
 * ephemeral ports, over a verifier and database the caller owns, and hands out grpc-js clients
 * that the close() closes too.
 */
export async function startLatchkeyServer(opts: LatchkeyServerOptions): Promise<LatchkeyServer> {
  const listeners = await startInstance({
    sql: opts.sql,
    verifier: opts.verifier,
    tokenPrefix: PREFIX,
    log: opts.log,
    redis: opts.redis ?? false,
    grpcListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    defaultMetrics: false,
    verifyAuth: opts.verifyAuth,
    grpcFastUnary: opts.grpcFastUnary,
  });
  const grpcAddress = `127.0.0.1:${listeners.grpcPort}`;
  const channels: grpc.Client[] = [];
  const channel = (): grpc.Client => {
    const c = new grpc.Client(grpcAddress, grpc.credentials.createInsecure());
    channels.push(c);
    return c;
  };
  return {
    grpcAddress,
    httpUrl: `http://127.0.0.1:${listeners.httpPort}`,
    admin: (token) => adminClient(channel(), token),
    verify: () => verifyClient(channel()),
    async close() {
      for (const c of channels) c.close();
      await listeners.close();
    },
  };
}
