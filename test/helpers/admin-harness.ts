import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { ERROR_DOMAIN, LatchkeyError } from "../../src/errors.js";
import {
  BadRequestSchema,
  ErrorInfoSchema,
} from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { createAdminService } from "../../src/services/admin-service.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import type { CallContext, ServiceHandlers } from "../../src/services/context.js";
import { createVerifier } from "../../src/services/verifier.js";
import { serverKey, type Sql } from "../../src/store/db.js";
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

type Handler = (request: unknown, context: CallContext) => Promise<unknown>;

function statusOf(err: unknown): grpc.StatusObject {
  const e =
    err instanceof LatchkeyError
      ? err
      : new LatchkeyError(13, "INTERNAL", "internal error", { cause: err });
  if (!(err instanceof LatchkeyError)) console.error(err);
  const details = [
    anyPack(
      ErrorInfoSchema,
      create(ErrorInfoSchema, { reason: e.reason, domain: ERROR_DOMAIN, metadata: { ...e.metadata } }),
    ),
  ];
  if (e.violations.length > 0) {
    details.push(
      anyPack(
        BadRequestSchema,
        create(BadRequestSchema, {
          fieldViolations: e.violations.map((v) => ({ field: v.field, description: v.description })),
        }),
      ),
    );
  }
  const metadata = new grpc.Metadata();
  metadata.set(
    "grpc-status-details-bin",
    Buffer.from(
      toBinary(StatusSchema, create(StatusSchema, { code: e.code, message: e.message, details })),
    ),
  );
  return { code: e.code as number as grpc.status, details: e.message, metadata };
}

/**
 * Serves the handlers on grpc-js, the way src/transport/grpc-server.ts does (descriptor-built
 * service definition, LatchkeyError → status + ErrorInfo/BadRequest).
 */
async function serve(handlers: ServiceHandlers<typeof TokenAdminService>): Promise<{
  address: string;
  server: grpc.Server;
}> {
  const server = new grpc.Server();
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const impl: grpc.UntypedServiceImplementation = {};
  const table = handlers as unknown as Record<string, Handler>;
  for (const method of TokenAdminService.methods) {
    definition[method.localName] = {
      path: `/${TokenAdminService.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: unknown) => Buffer.from(m as Uint8Array),
      requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
      responseSerialize: (m: Parameters<typeof toBinary>[1]) =>
        Buffer.from(toBinary(method.output, create(method.output, m))),
      responseDeserialize: (b: Buffer) => b,
    };
    const handler = table[method.localName];
    impl[method.localName] = (
      call: grpc.ServerUnaryCall<unknown, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const peer = call.getPeer();
      const ctx: CallContext = {
        header: (name) => {
          const v = call.metadata.get(name)[0];
          return typeof v === "string" ? v : undefined;
        },
        peerAddress: peer.replace(/^ipv[46]:/, "").replace(/:\d+$/, "").replace(/^\[|\]$/g, ""),
        signal: new AbortController().signal,
        method: `${TokenAdminService.typeName}/${method.name}`,
      };
      if (handler === undefined) {
        callback({ code: grpc.status.UNIMPLEMENTED });
        return;
      }
      handler(call.request, ctx).then(
        (res) => callback(null, res),
        (err: unknown) => callback(statusOf(err)),
      );
    };
  }
  server.addService(definition, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err === null ? resolve(p) : reject(err),
    ),
  );
  return { address: `127.0.0.1:${port}`, server };
}

/** Starts latchkey's admin service on a fresh database and bootstraps org A. */
export async function startAdminHarness(): Promise<AdminHarness> {
  const db = await createTestDatabase();
  const verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, auditMode: "denials" });
  const pageKey = await serverKey(db.sql, "page_token_key");
  const service = createAdminService({
    sql: db.sql,
    verifier,
    prefix: PREFIX,
    pageKey,
    log: { warn: (obj, msg) => console.warn(msg, obj) },
  });
  const bootstrapSecret = await bootstrapIfEmpty(db.sql, { orgId: ORG_A, prefix: PREFIX });
  if (bootstrapSecret === undefined) throw new Error("bootstrap did not run on a fresh database");
  const { address, server } = await serve(service);
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
      server.forceShutdown();
      await verifier.close();
      await db.drop();
    },
  };
}
