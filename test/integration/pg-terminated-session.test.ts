import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Sql } from "../../src/store/db.js";
import { createTestDatabase } from "../helpers/postgres.js";

// A session the server ends (pg_terminate_backend, a restart, an idle-session timeout) sends a
// FATAL ErrorResponse and closes without the ReadyForQuery that would deliver it. postgres.js
// 3.4.9 kept that error on the connection and handed it to the first statement of the next
// session: an unrelated statement failed with the dead session's 57P01 and the reconnect skipped
// its array-types query. scripts/patch-postgres.mjs guards it. The session ends itself here, so
// no timing is involved.

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;

beforeAll(async () => {
  db = await createTestDatabase({ migrated: false });
  sql = connect(db.url, { max: 1 });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

describe("a session the server terminates", () => {
  it("fails only its own statement; the next ones run on a new session, array types included", async () => {
    const [{ pid } = { pid: 0 }] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const ended = await sql`select pg_terminate_backend(pg_backend_pid())`.then(
      () => "answered",
      (err: { code?: string }) => err.code,
    );
    expect(ended).toBe("CONNECTION_CLOSED");
    const [next] = await sql<{ pid: number; p: string[] }[]>`
      select pg_backend_pid() as pid, ${["a", "b"]}::text[] as p`;
    expect(next?.pid).not.toBe(pid);
    expect(next?.p).toEqual(["a", "b"]);
    const [after] = await sql<{ x: number }[]>`select 2 as x`;
    expect(after?.x).toBe(2);
  });
});
