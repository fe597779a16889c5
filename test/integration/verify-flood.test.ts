import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/domain/token-format.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import type { Sql } from "../../src/store/db.js";
import { failure } from "../helpers/admin-client.js";
import { PREFIX, startLatchkeyServer } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { insertToken, startVerifyInstance, waitFor } from "../helpers/verify-harness.js";

/**
 * Issue 13, item 5: VerifyToken cannot be used to flood. Denials naming no token are sampled
 * into the audit log per peer, unknown tokens are looked up at a bounded rate per peer, and
 * LATCHKEY_VERIFY_AUTH=token closes the service to callers without `tokens:verify`.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
});

afterAll(async () => {
  await db?.drop();
});

describe("a flood of 10,000 unknown tokens", () => {
  it("leaves a handful of audit rows, real denials intact, and few lookups", async () => {
    const lk = await startVerifyInstance({ sql, auditMode: "all", auditFlushIntervalMs: 100 });
    try {
      const revoked = await insertToken(sql, { revokeTime: new Date() });
      const expired = await insertToken(sql, { expireTime: new Date(Date.now() - 1_000) });
      // The seeded revocation is an UPDATE: let the change log's poll apply it first.
      await waitFor(async () => lk.verifier.stats().changesApplied > 0, 10_000);
      // Known tokens are cached before the flood (as a gateway's regular tokens are); an
      // uncached token from a peer over its unknown-token budget would be RATE_LIMITED too.
      for (const t of [revoked, expired]) await lk.verify({ token: t.secret, requestId: "warm" });
      const loadsBefore = lk.verifier.stats().postgresLoads;
      const started = Date.now();
      const codes = new Map<VerifyCode, number>();
      let real = 0;
      const send = async (i: number): Promise<void> => {
        const token = i % 2 === 0 ? `garbage-${i}` : generateToken(PREFIX, TokenType.PERSONAL); // unknown
        const r = await lk.verify({ token, requestId: `flood-${i}` });
        codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
        if (i % 500 === 0) {
          // Real denials among the flood, each with its own row.
          for (const t of [revoked, expired]) {
            await lk.verify({ token: t.secret, requestId: `real-${real++}` });
          }
        }
      };
      const N = 10_000;
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < N) await send(next++);
        }),
      );
      const seconds = (Date.now() - started) / 1000;
      await lk.verifier.flush();
      const loads = lk.verifier.stats().postgresLoads - loadsBefore;

      expect(codes.get(VerifyCode.VALID) ?? 0).toBe(0);
      expect(codes.get(VerifyCode.MALFORMED)).toBe(N / 2);
      // Unknown well-formed tokens: NOT_FOUND while the peer's budget lasts, then refused
      // without a lookup.
      expect(
        (codes.get(VerifyCode.NOT_FOUND) ?? 0) + (codes.get(VerifyCode.RATE_LIMITED) ?? 0),
      ).toBe(N / 2);
      expect(codes.get(VerifyCode.RATE_LIMITED) ?? 0).toBeGreaterThan(0);
      // Lookups: the burst (100) plus 50 a second, plus the real tokens — not one per token.
      expect(loads).toBeLessThanOrEqual(100 + Math.ceil(50 * (seconds + 1)) + 4);

      const rows = await sql<{ code: string; details: { suppressed?: number } | null }[]>`
        SELECT code, details FROM audit_events WHERE token_id = ''`;
      // A row stands for itself, a summary row for the `suppressed` requests it folds.
      const accounted = rows.reduce((n, r) => n + (r.details?.suppressed ?? 1), 0);
      expect(accounted).toBe(N); // every flood request is counted, in few rows
      // At most two rows (the first and a summary) per code per window of 1 s.
      expect(rows.length).toBeLessThanOrEqual(2 * 3 * (Math.ceil(seconds) + 1));
      const realRows = await sql<{ n: string }[]>`
        SELECT count(*)::text AS n FROM audit_events
        WHERE request_id LIKE 'real-%' AND token_id IN (${revoked.id}, ${expired.id})
          AND code IN ('REVOKED', 'EXPIRED')`;
      expect(Number(realRows[0]?.n)).toBe(real);
      console.log(
        `flood: ${N} unknown tokens in ${seconds.toFixed(1)} s → ${rows.length} audit rows, ` +
          `${loads} Postgres lookups, ${codes.get(VerifyCode.RATE_LIMITED) ?? 0} refused by the ` +
          `per-peer limit; ${real} real denials, each with its row`,
      );
    } finally {
      await lk.close();
    }
    // 10,000 calls: ~6 s on a quiet machine, past 30 s on a loaded 2-core one. The bounds
    // above scale with the measured duration; nothing here is timed.
  }, 120_000);
});

describe("LATCHKEY_VERIFY_AUTH=token", () => {
  it("requires a bearer token holding tokens:verify", async () => {
    const quiet = { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} };
    const verifier = createVerifier({ sql, tokenPrefix: PREFIX, auditMode: "none" });
    const server = await startLatchkeyServer({ sql, verifier, log: quiet, verifyAuth: "token" });
    try {
      const target = await insertToken(sql);
      const gateway = await insertToken(sql, { permissions: ["tokens:verify"] });
      const other = await insertToken(sql, { permissions: ["tokens:read"] });
      const revoked = await insertToken(sql, {
        permissions: ["tokens:verify"],
        revokeTime: new Date(),
      });
      const client = server.verify();
      const none = await failure(client.verifyToken({ token: target.secret }));
      expect([none.code, none.reason]).toEqual([16, "TOKEN_MISSING"]);
      const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
      const denied = await failure(
        client.verifyToken({ token: target.secret }, bearer(other.secret)),
      );
      expect([denied.code, denied.metadata.permission]).toEqual([7, "tokens:verify"]);
      const gone = await failure(
        client.verifyToken({ token: target.secret }, bearer(revoked.secret)),
      );
      expect([gone.code, gone.reason]).toEqual([16, "TOKEN_REVOKED"]);
      const ok = await client.verifyToken({ token: target.secret }, bearer(gateway.secret));
      expect(ok.code).toBe(VerifyCode.VALID);
      // Authentication comes first: an anonymous caller learns nothing about its input.
      const bad = await failure(client.verifyToken({ token: target.secret, clientIp: "x" }));
      expect(bad.code).toBe(16);
    } finally {
      await server.close();
      await verifier.close();
    }
  });
});
