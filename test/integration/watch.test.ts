import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type RevocationEvent,
  RevocationKind,
  TokenVerifyService,
  WatchRevocationsRequestSchema,
  WatchRevocationsResponseSchema,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { PLATFORM_ADMIN } from "../../src/services/auth.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { headCursor } from "../../src/store/token-events.js";
import { failureOf } from "../helpers/admin-client.js";
import { type LatchkeyServer, PREFIX, startLatchkeyServer } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { insertToken } from "../helpers/seed.js";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let watcher: string;
let platform: string;
let reader: string;

const log = {
  warn: () => {},
  error: (obj: Record<string, unknown>, msg: string) => console.error(msg, obj),
  info: () => {},
  debug: () => {},
};

/** One latchkey instance with its own verifier, as a process would have. */
async function startOne(): Promise<{ server: LatchkeyServer; verifier: LatchkeyVerifier }> {
  const verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX, auditMode: "none" });
  const server = await startLatchkeyServer({ sql: db.sql, verifier, log });
  return {
    server,
    verifier,
  };
}

async function stop(one: { server: LatchkeyServer; verifier: LatchkeyVerifier }): Promise<void> {
  await one.server.close();
  await one.verifier.close();
}

beforeAll(async () => {
  db = await createTestDatabase();
  watcher = (await insertToken(db.sql, { orgId: "org-w", permissions: ["tokens:watch"] })).secret;
  platform = (
    await insertToken(db.sql, { orgId: "org-p", permissions: ["tokens:watch", PLATFORM_ADMIN] })
  ).secret;
  reader = (await insertToken(db.sql, { orgId: "org-w", permissions: ["tokens:read"] })).secret;
});

afterAll(async () => {
  await db?.drop();
});

/** A WatchRevocations stream over a real grpc-js channel, read one event at a time. */
function watch(address: string, token: string | undefined, cursor = "") {
  const channel = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  const call = channel.makeServerStreamRequest(
    `/${TokenVerifyService.typeName}/WatchRevocations`,
    (m: { cursor: string }) =>
      Buffer.from(
        toBinary(WatchRevocationsRequestSchema, create(WatchRevocationsRequestSchema, m)),
      ),
    (b: Buffer) => fromBinary(WatchRevocationsResponseSchema, b),
    { cursor },
    md,
  );
  const queue: RevocationEvent[] = [];
  const waiters: { resolve: (e: RevocationEvent) => void; reject: (e: unknown) => void }[] = [];
  let failed: unknown;
  call.on("data", (m: { event?: RevocationEvent }) => {
    if (m.event === undefined) return;
    const w = waiters.shift();
    if (w !== undefined) w.resolve(m.event);
    else queue.push(m.event);
  });
  call.on("error", (err: unknown) => {
    failed = err;
    for (const w of waiters.splice(0)) w.reject(err);
  });
  return {
    next(): Promise<RevocationEvent> {
      const e = queue.shift();
      if (e !== undefined) return Promise.resolve(e);
      if (failed !== undefined) return Promise.reject(failed);
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    async take(n: number): Promise<RevocationEvent[]> {
      const out: RevocationEvent[] = [];
      for (let i = 0; i < n; i++) out.push(await this.next());
      return out;
    },
    kill(): void {
      call.cancel();
      channel.close();
    },
  };
}

/**
 * A stream of `token`'s that is known to be open (it streamed a sentinel revocation), so what
 * follows happens to a running stream rather than racing its opening.
 */
async function opened(address: string, token: string): Promise<ReturnType<typeof watch>> {
  const sentinel = await insertToken(db.sql, { orgId: "org-w" });
  const s = watch(address, token, await headCursor(db.sql));
  await revoke(sentinel.id, "the stream is open");
  expect((await s.next()).tokenId).toBe(sentinel.id);
  return s;
}

/** A Timestamp as epoch milliseconds (undefined when unset). */
function millis(t: Timestamp | undefined): number | undefined {
  return t === undefined ? undefined : timestampMs(t);
}

async function revoke(id: string, reason: string): Promise<void> {
  await db.sql`UPDATE tokens SET revoke_time = now(), revoke_reason = ${reason} WHERE id = ${id}`;
}

describe("WatchRevocations resumes from a cursor", () => {
  it("kill the stream, revoke three tokens, reconnect with the last cursor: exactly those three", async () => {
    const one = await startOne();
    try {
      const ts = await Promise.all(
        [0, 1, 2, 3, 4].map(() => insertToken(db.sql, { orgId: "org-w" })),
      );
      const other = await insertToken(db.sql, { orgId: "org-x" });
      const [t0, t1, t2, t3, t4] = ts.map((t) => t.id);
      // Start at the log's head as the test sees it (an empty cursor would race the revoke).
      const first = watch(one.server.grpcAddress, watcher, await headCursor(db.sql));
      await revoke(t0 ?? "", "leaked");
      const e0 = await first.next();
      expect([e0.tokenId, e0.orgId, e0.reason]).toEqual([t0, "org-w", "leaked"]);
      expect(e0.time).toBeDefined();
      first.kill();

      await revoke(t1 ?? "", "one");
      await db.sql`UPDATE tokens SET name = 'renamed' WHERE id = ${t4 ?? ""}`; // plain update
      await revoke(other.id, "other org");
      await revoke(t2 ?? "", "two");
      await db.sql`UPDATE tokens SET expire_time = now() + interval '1 hour' WHERE id = ${t3 ?? ""}`;

      const second = watch(one.server.grpcAddress, watcher, e0.cursor);
      const got = await second.take(3);
      expect(got.map((e) => [e.tokenId, e.reason, e.kind])).toEqual([
        [t1, "one", RevocationKind.REVOKED],
        [t2, "two", RevocationKind.REVOKED],
        [t3, "expiry shortened", RevocationKind.EXPIRY_SHORTENED],
      ]);
      const [stored1, stored3] = await db.sql<{ revoke_time: Date; expire_time: Date }[]>`
        SELECT revoke_time, expire_time FROM tokens WHERE id IN (${t1 ?? ""}, ${t3 ?? ""})
        ORDER BY id = ${t3 ?? ""}`;
      expect(millis(got[0]?.validUntil)).toBe(stored1?.revoke_time.getTime());
      expect(millis(got[2]?.validUntil)).toBe(stored3?.expire_time.getTime());
      // Nothing else was pending: the next event is the one made now.
      await revoke(t4 ?? "", "sentinel");
      expect((await second.next()).tokenId).toBe(t4);
      second.kill();
    } finally {
      await stop(one);
    }
  });

  it("resumes across a latchkey restart", async () => {
    const t = await Promise.all([0, 1, 2, 3].map(() => insertToken(db.sql, { orgId: "org-w" })));
    const [t0, t1, t2, t3] = t.map((x) => x.id);
    const before = await startOne();
    const s = watch(before.server.grpcAddress, watcher, await headCursor(db.sql));
    await revoke(t0 ?? "", "before restart");
    const last = await s.next();
    s.kill();
    await stop(before);

    // latchkey is down while these happen.
    await revoke(t1 ?? "", "down 1");
    await revoke(t2 ?? "", "down 2");
    await revoke(t3 ?? "", "down 3");

    const after = await startOne();
    try {
      const resumed = watch(after.server.grpcAddress, watcher, last.cursor);
      expect((await resumed.take(3)).map((e) => e.tokenId)).toEqual([t1, t2, t3]);
      resumed.kill();
    } finally {
      await stop(after);
    }
  });
});

describe("WatchRevocations scope and refusals", () => {
  let one: { server: LatchkeyServer; verifier: LatchkeyVerifier };
  beforeAll(async () => {
    one = await startOne();
  });
  afterAll(async () => {
    await stop(one);
  });

  it("a platform caller watches every org", async () => {
    const a = await insertToken(db.sql, { orgId: "org-y" });
    const b = await insertToken(db.sql, { orgId: "org-z" });
    const s = watch(one.server.grpcAddress, platform, await headCursor(db.sql));
    await revoke(a.id, "y");
    const first = await s.next();
    await revoke(b.id, "z");
    const second = await s.next();
    expect([first.orgId, second.orgId]).toEqual(["org-y", "org-z"]);
    s.kill();
  });

  it("a caller without tokens:watch is PERMISSION_DENIED; no token is UNAUTHENTICATED", async () => {
    const denied = watch(one.server.grpcAddress, reader);
    const f = failureOf(await denied.next().catch((e: unknown) => e));
    expect(f.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(f.metadata.permission).toBe("tokens:watch");
    const anonymous = watch(one.server.grpcAddress, undefined);
    expect(failureOf(await anonymous.next().catch((e: unknown) => e)).code).toBe(
      grpc.status.UNAUTHENTICATED,
    );
  });

  it("ends when the watcher's own token is revoked: its revocation first, then UNAUTHENTICATED", async () => {
    const own = await insertToken(db.sql, { orgId: "org-w", permissions: ["tokens:watch"] });
    const s = await opened(one.server.grpcAddress, own.secret);
    await revoke(own.id, "watcher leaked");
    const last = await s.next();
    expect([last.tokenId, last.reason]).toEqual([own.id, "watcher leaked"]);
    const f = failureOf(await s.next().catch((e: unknown) => e));
    expect([f.code, f.reason]).toEqual([grpc.status.UNAUTHENTICATED, "TOKEN_REVOKED"]);
    s.kill();
  });

  it("does not open for a token revoked just before, even while this instance still holds it", async () => {
    const own = await insertToken(db.sql, { orgId: "org-w", permissions: ["tokens:watch"] });
    (await opened(one.server.grpcAddress, own.secret)).kill(); // the instance now holds it
    // Revoked in Postgres only (no cache is told): the next stream may authenticate from the
    // record this instance holds, and the revocation lies before the log position it starts at.
    await revoke(own.id, "revoked meanwhile");
    const again = watch(one.server.grpcAddress, own.secret);
    const f = failureOf(await again.next().catch((e: unknown) => e));
    expect([f.code, f.reason]).toEqual([grpc.status.UNAUTHENTICATED, "TOKEN_REVOKED"]);
    again.kill();
  });

  it("ends when the watcher's token expires, or loses tokens:watch", async () => {
    const expiring = await insertToken(db.sql, {
      orgId: "org-w",
      permissions: ["tokens:watch"],
      expireTime: new Date(Date.now() + 2_000),
    });
    const s = watch(one.server.grpcAddress, expiring.secret);
    const f = failureOf(await s.next().catch((e: unknown) => e));
    expect([f.code, f.reason]).toEqual([grpc.status.UNAUTHENTICATED, "TOKEN_EXPIRED"]);
    s.kill();

    const narrowed = await insertToken(db.sql, { orgId: "org-w", permissions: ["tokens:watch"] });
    const n = await opened(one.server.grpcAddress, narrowed.secret);
    await db.sql`UPDATE tokens SET permissions = '{tokens:read}' WHERE id = ${narrowed.id}`;
    const g = failureOf(await n.next().catch((e: unknown) => e));
    expect([g.code, g.metadata.permission]).toEqual([
      grpc.status.PERMISSION_DENIED,
      "tokens:watch",
    ]);
    n.kill();
  });

  it("a use-limited watcher spends one use on opening and is not refused for it", async () => {
    const once = await insertToken(db.sql, {
      orgId: "org-w",
      permissions: ["tokens:watch"],
      maxUses: 1,
    });
    const t = await insertToken(db.sql, { orgId: "org-w" });
    const s = watch(one.server.grpcAddress, once.secret, await headCursor(db.sql));
    await revoke(t.id, "after the one use");
    expect((await s.next()).tokenId).toBe(t.id);
    s.kill();
  });

  it("a rotation with grace is ROTATED, valid until the grace ends", async () => {
    const old = await insertToken(db.sql, { orgId: "org-w" });
    const successor = await insertToken(db.sql, { orgId: "org-w" });
    const s = watch(one.server.grpcAddress, watcher, await headCursor(db.sql));
    const [row] = await db.sql<{ expire_time: Date }[]>`
      UPDATE tokens SET replaced_by = ${successor.id}, expire_time = now() + interval '1 day'
      WHERE id = ${old.id} RETURNING expire_time`;
    const e = await s.next();
    expect([e.tokenId, e.kind, e.reason]).toEqual([old.id, RevocationKind.ROTATED, "rotated"]);
    expect(millis(e.validUntil)).toBe(row?.expire_time.getTime());
    s.kill();
  });

  it("a bad cursor is INVALID_ARGUMENT naming cursor", async () => {
    for (const cursor of ["not-a-cursor", "99999999999.1"]) {
      const s = watch(one.server.grpcAddress, watcher, cursor);
      const f = failureOf(await s.next().catch((e: unknown) => e));
      expect(f.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(f.fields).toEqual(["cursor"]);
    }
  });

  it("streams on the HTTP listener too (Connect protocol)", async () => {
    const t = await insertToken(db.sql, { orgId: "org-w" });
    const client = createClient(
      TokenVerifyService,
      createConnectTransport({ baseUrl: one.server.httpUrl, httpVersion: "1.1" }),
    );
    const controller = new AbortController();
    const stream = client.watchRevocations(
      { cursor: await headCursor(db.sql) },
      { headers: { authorization: `Bearer ${watcher}` }, signal: controller.signal },
    );
    const iterator = stream[Symbol.asyncIterator]();
    const first = iterator.next();
    await revoke(t.id, "over connect");
    const got = await first;
    expect(got.value?.event?.tokenId).toBe(t.id);
    controller.abort();
    await iterator.return?.();
  });
});
