import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import type { Sql } from "../../src/store/db.js";
import type { AdminClient, VerifyClient } from "./admin-client.js";
import { PREFIX, startLatchkeyServer } from "./latchkey-server.js";
import { createTestDatabase } from "./postgres.js";
import type { TestRedis } from "./redis.js";

export { PREFIX };
export const ORG_A = "org-a";

/** A running admin server on a fresh database, with the bootstrap (platform) token of org A. */
export interface AdminHarness {
  readonly sql: Sql;
  /** The test database's URL (for tools that connect themselves, e.g. `latchkey admin bootstrap`). */
  readonly databaseUrl: string;
  /** The gRPC listener (`127.0.0.1:port`). */
  readonly address: string;
  /** The HTTP listener (`http://127.0.0.1:port`): Connect, gRPC-Web, h2c, /readyz, /metrics. */
  readonly httpUrl: string;
  readonly bootstrapSecret: string;
  /** A client calling with `token` (undefined: no authorization header). */
  client(token: string | undefined): AdminClient;
  /** TokenVerifyService of the same instance (same verifier and caches as the admin calls tell). */
  verify(): VerifyClient;
  /** Rows in tokens and audit_events, to prove that a refused call wrote nothing. */
  counts(): Promise<{ tokens: number; audit: number }>;
  close(): Promise<void>;
}

/**
 * Starts latchkey (both real listeners, as `npm start` runs them) on a fresh database and
 * bootstraps org A; with `redis`, the verifier uses it (under the file's own key prefix).
 */
export async function startAdminHarness(opts: { redis?: TestRedis } = {}): Promise<AdminHarness> {
  const db = await createTestDatabase();
  const verifier = createVerifier({
    sql: db.sql,
    tokenPrefix: PREFIX,
    auditMode: "denials",
    ...(opts.redis === undefined
      ? {}
      : { redisUrl: opts.redis.url, redisKeyPrefix: opts.redis.prefix }),
  });
  const log = {
    warn: (obj: Record<string, unknown>, msg: string) => console.warn(msg, obj),
    error: (obj: Record<string, unknown>, msg: string) => console.error(msg, obj),
    info: () => {},
    debug: () => {},
  };
  const bootstrapSecret = await bootstrapIfEmpty(db.sql, { orgId: ORG_A, prefix: PREFIX });
  if (bootstrapSecret === undefined) throw new Error("bootstrap did not run on a fresh database");
  const server = await startLatchkeyServer({
    sql: db.sql,
    verifier,
    log,
    redis: opts.redis !== undefined,
  });
  return {
    sql: db.sql,
    databaseUrl: db.url,
    address: server.grpcAddress,
    httpUrl: server.httpUrl,
    bootstrapSecret,
    client: (token) => server.admin(token),
    verify: () => server.verify(),
    async counts() {
      await verifier.flush();
      const [t] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM tokens`;
      const [a] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM audit_events`;
      return { tokens: Number(t?.n ?? "0"), audit: Number(a?.n ?? "0") };
    },
    async close() {
      await server.close();
      await verifier.close();
      await db.drop();
    },
  };
}
