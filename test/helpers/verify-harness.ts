import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { generateToken, hashToken } from "../../src/domain/token-format.js";
import { LatchkeyError } from "../../src/errors.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import {
  TokenVerifyService,
  type VerifyTokenRequestSchema,
  type VerifyTokenResponse,
  VerifyTokenResponseSchema,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import type { CallContext } from "../../src/services/context.js";
import {
  createVerifier,
  type LatchkeyVerifier,
  type VerifierDeps,
} from "../../src/services/verifier.js";
import { createVerifyService } from "../../src/services/verify-service.js";
import type { Sql } from "../../src/store/db.js";

export const PREFIX = "lk";

type Handler = (request: unknown, context: CallContext) => Promise<unknown>;

/** A running TokenVerifyService (grpc-js) over one verifier. */
export interface VerifyInstance {
  readonly address: string;
  readonly verifier: LatchkeyVerifier;
  /** Lines the verifier logged (for the secret scan). */
  readonly logs: string[];
  verify(request: MessageInitShape<typeof VerifyTokenRequestSchema>): Promise<VerifyTokenResponse>;
  close(): Promise<void>;
}

/**
 * Serves createVerifyService on grpc-js the way the gRPC listener does (descriptor-built
 * definition, LatchkeyError → status code) and returns a grpc-js client for it, so tests go
 * through real HTTP/2 and protobuf encoding.
 */
export async function startVerifyInstance(
  deps: Omit<VerifierDeps, "log" | "tokenPrefix"> & { tokenPrefix?: string },
): Promise<VerifyInstance> {
  const logs: string[] = [];
  const verifier = createVerifier({
    tokenPrefix: PREFIX,
    ...deps,
    log: { warn: (obj, msg) => logs.push(`${msg} ${JSON.stringify(obj)}`) },
  });
  const handlers = createVerifyService({ verifier }) as unknown as Record<string, Handler>;
  const server = new grpc.Server();
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const impl: grpc.UntypedServiceImplementation = {};
  for (const method of TokenVerifyService.methods) {
    if (method.methodKind !== "unary") continue;
    definition[method.localName] = {
      path: `/${TokenVerifyService.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: unknown) => Buffer.from(m as Uint8Array),
      requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
      responseSerialize: (m: unknown) =>
        Buffer.from(
          toBinary(
            method.output,
            create(method.output, m as MessageInitShape<typeof method.output>),
          ),
        ),
      responseDeserialize: (b: Buffer) => b,
    };
    const handler = handlers[method.localName];
    impl[method.localName] = (
      call: grpc.ServerUnaryCall<unknown, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const ctx: CallContext = {
        header: (name) => {
          const v = call.metadata.get(name)[0];
          return typeof v === "string" ? v : undefined;
        },
        peerAddress: "",
        signal: new AbortController().signal,
        method: `${TokenVerifyService.typeName}/${method.name}`,
      };
      if (handler === undefined) {
        callback({ code: grpc.status.UNIMPLEMENTED });
        return;
      }
      handler(call.request, ctx).then(
        (res) => callback(null, res),
        (err: unknown) =>
          callback(
            err instanceof LatchkeyError
              ? { code: err.code as number as grpc.status, details: err.message }
              : { code: grpc.status.INTERNAL, details: "internal error" },
          ),
      );
    };
  }
  server.addService(definition, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err === null ? resolve(p) : reject(err),
    ),
  );
  const address = `127.0.0.1:${port}`;
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const path = `/${TokenVerifyService.typeName}/VerifyToken`;
  return {
    address,
    verifier,
    logs,
    verify: (request) =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          path,
          (msg: MessageInitShape<typeof VerifyTokenRequestSchema>) =>
            Buffer.from(
              toBinary(
                TokenVerifyService.method.verifyToken.input,
                create(TokenVerifyService.method.verifyToken.input, msg),
              ),
            ),
          (buf: Buffer) => fromBinary(VerifyTokenResponseSchema, buf),
          request,
          new grpc.Metadata(),
          { deadline: Date.now() + 20_000 },
          (err, value) => (err === null && value !== undefined ? resolve(value) : reject(err)),
        );
      }),
    async close() {
      client.close();
      server.forceShutdown();
      await verifier.close();
    },
  };
}

/** What a test token looks like in the database; everything optional has a harmless default. */
export interface TestToken {
  readonly orgId?: string;
  readonly type?: TokenType;
  readonly permissions?: readonly string[];
  readonly allowedCidrs?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly expireTime?: Date | null;
  readonly revokeTime?: Date | null;
  readonly maxUses?: number | null;
  readonly useCount?: number;
  readonly rateLimits?: readonly { name: string; limit: number; window_ms: number }[];
  readonly name?: string;
  /** Use this secret instead of a fresh one (e.g. one that was verified before it existed). */
  readonly secret?: string;
}

let seq = 0;

/**
 * Inserts a token row the way the admin service stores it (SHA-256 of the secret, never the
 * secret) and returns its id and plain secret.
 */
export async function insertToken(
  sql: Sql,
  t: TestToken = {},
): Promise<{ id: string; secret: string }> {
  const type = t.type ?? TokenType.PERSONAL;
  const secret = t.secret ?? generateToken(PREFIX, type);
  seq++;
  const id = `tok_TEST${String(Date.now()).slice(-8)}${String(seq).padStart(6, "0")}${Math.floor(Math.random() * 1e6)}`;
  await sql`
    INSERT INTO tokens (id, secret_hash, display_hint, name, type, org_id, team_id, owner_id,
                        permissions, allowed_cidrs, metadata, max_uses, use_count, rate_limits,
                        expire_time, revoke_time)
    VALUES (${id}, ${hashToken(secret)}, ${`${PREFIX}_…${secret.slice(-4)}`},
            ${t.name ?? "test token"}, ${type}, ${t.orgId ?? "org-a"}, 'team-1', 'user-1',
            ${[...(t.permissions ?? ["*"])]}::text[], ${[...(t.allowedCidrs ?? [])]}::cidr[],
            ${sql.json(t.metadata ?? { region: "eu-west" })}, ${t.maxUses ?? null},
            ${t.useCount ?? 0}, ${sql.json([...(t.rateLimits ?? [])])},
            ${t.expireTime ?? null}, ${t.revokeTime ?? null})`;
  return { id, secret };
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
