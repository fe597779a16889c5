import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Sql } from "../../src/store/db.js";
import {
  type CuttingProxy,
  startCuttingProxy,
  targetOf,
  throughProxy,
} from "../helpers/cutting-proxy.js";
import { createTestDatabase } from "../helpers/postgres.js";

// postgres.js runs an array-types query (select b.oid, b.typarray from pg_catalog.pg_type …) as
// the first statement of every new connection and discarded that query's promise: a connection
// that died during it (Postgres stopping just as the pool reconnects, the audit writer reserving
// a connection for COPY) rejected it with CONNECTION_CLOSED as an unhandled rejection, which
// ends a Node process. scripts/patch-postgres.mjs guards it. A proxy in front of the test
// database cuts the connection the first time it sees that query, with no timing involved.

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let proxy: CuttingProxy;
let sql: Sql;

beforeAll(async () => {
  db = await createTestDatabase({ migrated: false });
  proxy = await startCuttingProxy(targetOf(db.url));
  sql = connect(throughProxy(db.url, proxy), { max: 1 });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await proxy?.close();
  await db?.drop();
});

describe("a connection that dies during postgres.js's array-types query", () => {
  it("raises no unhandled rejection, and the pool reconnects with array types working", async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on("unhandledRejection", record);
    try {
      proxy.arm((chunk) => chunk.includes("typarray"));
      // A reserved connection is what the audit writer takes for every COPY. postgres.js 3.4.9
      // loses a reserve request whose first connection died this way (it never settles; the
      // writer bounds that wait), so it is left pending here and an ordinary query follows.
      const reserving = sql.reserve();
      reserving.then(
        (r) => r.release(),
        () => {},
      );
      const [row] = await sql<{ p: string[] }[]>`select ${["a", "b"]}::text[] as p`;
      expect(proxy.cuts).toBe(1);
      expect(row?.p).toEqual(["a", "b"]);
      // An unhandled rejection is reported after the microtask queue drains.
      await new Promise((r) => setTimeout(r, 100));
      expect(unhandled.map(String)).toEqual([]);
    } finally {
      process.off("unhandledRejection", record);
    }
  });
});
