import * as grpc from "@grpc/grpc-js";
import { createAdminService } from "../../src/services/admin-service.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import { createVerifier } from "../../src/services/verifier.js";
import { createVerifyService } from "../../src/services/verify-service.js";
import { type Sql, serverKey } from "../../src/store/db.js";
import {
  closeGrpc,
  createGrpcServer,
  createHealthReporter,
  listenGrpc,
} from "../../src/transport/grpc-server.js";
import { type AdminClient, adminClient } from "./admin-client.js";
import { createTestDatabase } from "./postgres.js";

export const PREFIX = "lk";
export const ORG_A = "org-a";

/** A running admin server on a fresh database, with the bootstrap (platform) token of org A. */
export interface AdminHarness {
  readonly sql: Sql;
  readonly address: string;
  readonly bootstrapSecret: string;
  /** A client calling with `token` (undefined: no authorization header). */
  client(token: string | undefined): AdminClient;
  /** Rows in tokens and audit_events, to prove that a refused call wrote nothing. */
  counts(): Promise<{ tokens: number; audit: number }>;
  close(): Promise<void>;
}

/** Starts latchkey's admin service on a fresh database and bootstraps org A. */
export async function startAdminHarness(): Promise<AdminHarness> {
  const db = await createTestDatabase();
  const verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, auditMode: "denials" });
  const pageKey = await serverKey(db.sql, "page_token_key");
  const log = {
    warn: (obj: Record<string, unknown>, msg: string) => console.warn(msg, obj),
    error: (obj: Record<string, unknown>, msg: string) => console.error(msg, obj),
  };
  const admin = createAdminService({ sql: db.sql, verifier, prefix: PREFIX, pageKey, log });
  const bootstrapSecret = await bootstrapIfEmpty(db.sql, { orgId: ORG_A, prefix: PREFIX });
  if (bootstrapSecret === undefined) throw new Error("bootstrap did not run on a fresh database");
  // The real gRPC listener of src/transport, as `npm start` runs it.
  const server = createGrpcServer({
    admin,
    verify: createVerifyService({ verifier }),
    health: createHealthReporter(),
    log,
  });
  const port = await listenGrpc(server, "127.0.0.1:0");
  const address = `127.0.0.1:${port}`;
  const channels: grpc.Client[] = [];
  return {
    sql: db.sql,
    address,
    bootstrapSecret,
    client(token) {
      const channel = new grpc.Client(address, grpc.credentials.createInsecure());
      channels.push(channel);
      return adminClient(channel, token);
    },
    async counts() {
      await verifier.flush();
      const [t] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM tokens`;
      const [a] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM audit_events`;
      return { tokens: Number(t?.n ?? "0"), audit: Number(a?.n ?? "0") };
    },
    async close() {
      for (const c of channels) c.close();
      await closeGrpc(server, 500);
      await verifier.close();
      await db.drop();
    },
  };
}
