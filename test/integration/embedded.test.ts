import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres } from "../../src/store/embedded.js";

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, "127.0.0.1");
    s.on("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

describe("embedded Postgres", () => {
  let dir = "";
  afterAll(async () => {
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  it("keeps data across a stop and a start on the same directory, and really stops", async () => {
    dir = await mkdtemp(join(tmpdir(), "latchkey-embedded-"));
    const logs: string[] = [];
    const first = await startEmbeddedPostgres(dir, (m) => logs.push(m));
    const firstPort = Number(new URL(first.url).port);
    try {
      const sql = postgres(first.url, { max: 1, onnotice: () => {} });
      await sql`create table kept (v text)`;
      await sql`insert into kept values ('still here')`;
      await sql.end();
    } finally {
      await first.stop();
    }
    await first.stop(); // idempotent
    expect(await portOpen(firstPort)).toBe(false);

    // A pid file left by a killed run, naming a pid that is not alive, must not block a start.
    await writeFile(join(dir, "pg", "postmaster.pid"), "999999999\n");
    const second = await startEmbeddedPostgres(dir, (m) => logs.push(m));
    try {
      const sql = postgres(second.url, { max: 1 });
      const rows = await sql<{ v: string }[]>`select v from kept`;
      expect(rows.map((r) => r.v)).toEqual(["still here"]);
      await sql.end();
      // Password auth, even on 127.0.0.1.
      const anon = postgres(second.url.replace(/:[^:@/]+@/, ":wrong@"), { max: 1 });
      await expect(anon`select 1`).rejects.toThrow(/password authentication failed/);
      await anon.end();
    } finally {
      await second.stop();
    }
    expect(await portOpen(Number(new URL(second.url).port))).toBe(false);
    expect(logs.some((l) => l.includes("ready on 127.0.0.1"))).toBe(true);
  });
});
