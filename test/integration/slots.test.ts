import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { connect, type Sql } from "../../src/store/db.js";
import { failure } from "../helpers/admin-client.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { seedToken } from "../helpers/seed.js";
import {
  PREFIX,
  startVerifyInstance,
  type VerifyInstance,
  waitFor,
} from "../helpers/verify-harness.js";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sqlB: Sql;
let a: VerifyInstance;
let b: VerifyInstance;
let clientA: ReturnType<typeof slotClient>;
let clientB: ReturnType<typeof slotClient>;
const channels: grpc.Client[] = [];

import { TokenVerifyService } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { unaryClient } from "../helpers/admin-client.js";

function slotClient(address: string) {
  const channel = new grpc.Client(address, grpc.credentials.createInsecure());
  channels.push(channel);
  return unaryClient(TokenVerifyService, channel, undefined);
}

beforeAll(async () => {
  db = await createTestDatabase();
  // Two instances, each with its own pool, as two latchkey processes would have.
  sqlB = connect(db.url, { max: 4 });
  a = await startVerifyInstance({ sql: db.sql, auditMode: "none" });
  b = await startVerifyInstance({ sql: sqlB, auditMode: "none" });
  clientA = slotClient(a.address);
  clientB = slotClient(b.address);
});

afterAll(async () => {
  for (const c of channels) c.close();
  await a?.close();
  await b?.close();
  await sqlB?.end({ timeout: 5 });
  await db?.drop();
});

async function slotToken(maxConcurrent: number, expireTime: Date | null = null) {
  return seedToken(db.sql, PREFIX, {
    name: "ci tunnel",
    type: TokenType.CICD,
    orgId: "org-a",
    permissions: ["deploy:*"],
    maxConcurrent,
    expireTime,
  });
}

async function leasesOf(tokenId: string): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM slot_leases WHERE token_id = ${tokenId} AND expire_time > now()`;
  return row?.n ?? 0;
}

describe("AcquireSlot under contention", () => {
  it("50 parallel acquires on a 10-slot token from two instances give exactly 10 leases", async () => {
    const t = await slotToken(10);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 === 0 ? clientA : clientB).acquireSlot({
          token: t.secret,
          holder: `tunnel-${i}`,
          ttl: durationFromMs(60_000),
        }),
      ),
    );
    const won = results.filter((r) => r.acquired);
    expect(won).toHaveLength(10);
    expect(new Set(won.map((r) => r.leaseId)).size).toBe(10);
    for (const r of results.filter((r) => !r.acquired)) {
      expect(r.slotsInUse).toBe(10);
      expect(r.maxConcurrent).toBe(10);
      expect(r.leaseId).toBe("");
    }
    expect(await leasesOf(t.id)).toBe(10);

    const admin = await a.admin();
    const got = await admin.getToken({ id: t.id });
    expect(got.token?.slotsInUse).toBe(10);
    expect(got.token?.maxConcurrent).toBe(10);
    const listed = await admin.listTokens({ orgId: "org-a", type: TokenType.CICD });
    expect(listed.tokens.find((x) => x.id === t.id)?.slotsInUse).toBe(10);
  });
});

describe("release and renew", () => {
  it("release frees a slot at once; renew moves the end; a released lease is gone", async () => {
    const t = await slotToken(1);
    const first = await clientA.acquireSlot({ token: t.secret, holder: "h1" });
    expect(first.acquired).toBe(true);
    expect((await clientB.acquireSlot({ token: t.secret, holder: "h2" })).acquired).toBe(false);

    const renewed = await clientB.renewSlot({
      leaseId: first.leaseId,
      ttl: durationFromMs(600_000),
    });
    const before = first.expireTime === undefined ? 0 : timestampDate(first.expireTime).getTime();
    const after =
      renewed.expireTime === undefined ? 0 : timestampDate(renewed.expireTime).getTime();
    expect(after).toBeGreaterThan(before);

    await clientB.releaseSlot({ leaseId: first.leaseId });
    expect(await leasesOf(t.id)).toBe(0);
    const second = await clientA.acquireSlot({ token: t.secret, holder: "h2" });
    expect(second.acquired).toBe(true);
    expect(second.slotsInUse).toBe(1);

    const gone = await failure(clientA.renewSlot({ leaseId: first.leaseId }));
    expect(gone.code).toBe(grpc.status.NOT_FOUND);
    expect(gone.reason).toBe("LEASE_NOT_FOUND");
    const again = await failure(clientA.releaseSlot({ leaseId: first.leaseId }));
    expect(again.code).toBe(grpc.status.NOT_FOUND);
  });
});

describe("lease expiry", () => {
  it("a lease that is not renewed expires and its slot can be taken again", async () => {
    // The lease is as short as allowed (1 s), and B's refusal must come while it lives. B
    // loads the token before the lease is taken, so its acquire needs no Postgres load; should
    // a loaded machine still take a second or more, B finding the slot free proves nothing and
    // the round is repeated with a fresh token (a refusal is checked whenever B was in time).
    let t: Awaited<ReturnType<typeof slotToken>>;
    let lease: Awaited<ReturnType<typeof clientA.acquireSlot>>;
    for (let attempt = 1; ; attempt++) {
      t = await slotToken(1);
      expect((await b.verify({ token: t.secret })).valid).toBe(true);
      const started = Date.now();
      lease = await clientA.acquireSlot({ token: t.secret, ttl: durationFromMs(1_000) });
      expect(lease.acquired).toBe(true);
      const other = await clientB.acquireSlot({ token: t.secret });
      if (other.acquired && Date.now() - started >= 1_000 && attempt < 5) continue;
      expect(other.acquired).toBe(false);
      break;
    }
    const waited = await waitFor(
      async () => (await clientB.acquireSlot({ token: t.secret })).acquired,
      15_000,
    );
    expect(waited).toBeGreaterThanOrEqual(0);
    const renew = await failure(clientA.renewSlot({ leaseId: lease.leaseId }));
    expect(renew.code).toBe(grpc.status.NOT_FOUND);
  });

  it("a lease never outlives its token's expire_time", async () => {
    const end = new Date(Date.now() + 120_000);
    const t = await slotToken(2, end);
    const lease = await clientA.acquireSlot({ token: t.secret, ttl: durationFromMs(3_600_000) });
    expect(lease.acquired).toBe(true);
    const leaseEnd = lease.expireTime === undefined ? 0 : timestampDate(lease.expireTime).getTime();
    expect(leaseEnd).toBeLessThanOrEqual(end.getTime());
  });
});

describe("revocation and expiry end leases", () => {
  it("revoking the token ends its leases at once", async () => {
    const t = await slotToken(3);
    const l1 = await clientA.acquireSlot({ token: t.secret });
    await clientB.acquireSlot({ token: t.secret });
    expect(await leasesOf(t.id)).toBe(2);
    await a.revoke(t.id, "tunnel closed");
    expect(await leasesOf(t.id)).toBe(0);
    expect((await failure(clientB.renewSlot({ leaseId: l1.leaseId }))).code).toBe(
      grpc.status.NOT_FOUND,
    );
    const denied = await failure(clientB.acquireSlot({ token: t.secret }));
    expect(denied.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(denied.reason).toBe("TOKEN_REVOKED");
    expect((await (await a.admin()).getToken({ id: t.id })).token?.slotsInUse).toBe(0);
  });

  it("shortening the token's expiry into the past ends its leases", async () => {
    const t = await slotToken(2, new Date(Date.now() + 3_600_000));
    const l1 = await clientA.acquireSlot({ token: t.secret });
    expect(l1.acquired).toBe(true);
    await db.sql`UPDATE tokens SET expire_time = now() - interval '1 second' WHERE id = ${t.id}`;
    expect(await leasesOf(t.id)).toBe(0);
    expect((await failure(clientA.renewSlot({ leaseId: l1.leaseId }))).code).toBe(
      grpc.status.NOT_FOUND,
    );
  });
});

describe("refusals", () => {
  it("a token without max_concurrent is FAILED_PRECONDITION", async () => {
    const t = await slotToken(0);
    const f = await failure(clientA.acquireSlot({ token: t.secret }));
    expect(f.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(f.reason).toBe("NO_CONCURRENCY_SLOTS");
    expect(await leasesOf(t.id)).toBe(0);
  });

  it("bad input is INVALID_ARGUMENT naming the field, and takes nothing", async () => {
    const t = await slotToken(1);
    const ttl = await failure(clientA.acquireSlot({ token: t.secret, ttl: durationFromMs(10) }));
    expect(ttl.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(ttl.fields).toEqual(["ttl"]);
    const holder = await failure(clientA.acquireSlot({ token: t.secret, holder: "x".repeat(300) }));
    expect(holder.fields).toEqual(["holder"]);
    const token = await failure(clientA.acquireSlot({ token: "" }));
    expect(token.fields).toEqual(["token"]);
    const lease = await failure(clientA.renewSlot({ leaseId: "lse_nope" }));
    expect(lease.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(lease.fields).toEqual(["lease_id"]);
    const release = await failure(clientA.releaseSlot({ leaseId: t.secret }));
    expect(release.fields).toEqual(["lease_id"]);
    expect(await leasesOf(t.id)).toBe(0);
  });

  it("a malformed token is UNAUTHENTICATED", async () => {
    const f = await failure(clientA.acquireSlot({ token: "lk_c_nope" }));
    expect(f.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(f.reason).toBe("TOKEN_MALFORMED");
  });
});
