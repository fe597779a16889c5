import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/domain/token-format.js";
import { AuditDecision, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import type { Sql } from "../../src/store/db.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { awayFromWindowEnd } from "../helpers/rate-window.js";
import {
  insertToken,
  PREFIX,
  startVerifyInstance,
  type VerifyInstance,
  waitFor,
} from "../helpers/verify-harness.js";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Sql;
let lk: VerifyInstance;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  lk = await startVerifyInstance({
    sql,
    auditMode: "all",
    auditFlushIntervalMs: 50,
    usageFlushIntervalMs: 200,
    // Row-per-verification assertions below; the per-peer sampling has its own test.
    auditSampleMs: 0,
  });
});

afterAll(async () => {
  await lk?.close();
  await db?.drop();
});

const HOUR = 3_600_000;

describe("VERIFY_CODE_VALID", () => {
  it("answers valid with the token's identity", async () => {
    const { id, secret } = await insertToken(sql, {
      permissions: ["tokens:read"],
      metadata: { redaction_tier: "strict" },
      expireTime: new Date(Date.now() + HOUR),
    });
    const r = await lk.verify({ token: secret, requiredPermissions: ["tokens:read"] });
    expect(r.code).toBe(VerifyCode.VALID);
    expect(r.valid).toBe(true);
    expect(r.tokenId).toBe(id);
    expect(r.orgId).toBe("org-a");
    expect(r.teamId).toBe("team-1");
    expect(r.ownerId).toBe("user-1");
    expect(r.type).toBe(TokenType.PERSONAL);
    expect(r.permissions).toEqual(["tokens:read"]);
    expect(r.metadata).toEqual({ redaction_tier: "strict" });
    expect(r.expireTime).toBeDefined();
    expect(r.remainingUses).toBeUndefined();
    // Second call is a cache hit and answers the same.
    const again = await lk.verify({ token: secret });
    expect(again.code).toBe(VerifyCode.VALID);
    expect(again.tokenId).toBe(id);
  });
});

describe("VERIFY_CODE_MALFORMED", () => {
  it("refuses strings that are not latchkey tokens, without identity", async () => {
    const good = generateToken(PREFIX, TokenType.PERSONAL);
    const last = good.at(-1) === "0" ? "1" : "0";
    for (const token of [
      "",
      "hello",
      `${good.slice(0, -1)}${last}`, // checksum wrong
      good.replace(/^lk_/, "xx_"), // other prefix
      `${good}x`,
    ]) {
      const r = await lk.verify({ token });
      expect(r.code, token).toBe(VerifyCode.MALFORMED);
      expect(r.valid).toBe(false);
      expect(r.tokenId).toBe("");
    }
  });
});

describe("VERIFY_CODE_NOT_FOUND", () => {
  it("refuses a well-formed token that was never issued, and finds it once created", async () => {
    const secret = generateToken(PREFIX, TokenType.TEAM);
    const r = await lk.verify({ token: secret });
    expect(r.code).toBe(VerifyCode.NOT_FOUND);
    expect(r.valid).toBe(false);
    expect(r.tokenId).toBe("");
    expect((await lk.verify({ token: secret })).code).toBe(VerifyCode.NOT_FOUND); // negative hit
    // The negative entry lives 2 s: a token created afterwards is found once it lapses (the
    // deadline leaves a loaded machine room; the poll ends as soon as the token is found).
    const { id } = await insertToken(sql, { secret, type: TokenType.TEAM });
    const took = await waitFor(
      async () => (await lk.verify({ token: secret })).tokenId === id,
      15_000,
    );
    expect(took).toBeGreaterThanOrEqual(0);
  });
});

describe("VERIFY_CODE_EXPIRED", () => {
  it("refuses a token past its expire_time but still names it", async () => {
    const { id, secret } = await insertToken(sql, { expireTime: new Date(Date.now() - 1_000) });
    const r = await lk.verify({ token: secret });
    expect(r.code).toBe(VerifyCode.EXPIRED);
    expect(r.valid).toBe(false);
    expect(r.tokenId).toBe(id);
  });
});

describe("VERIFY_CODE_REVOKED", () => {
  it("refuses a revoked token, and a token revoked after it was cached", async () => {
    const revoked = await insertToken(sql, { revokeTime: new Date(Date.now() - 1_000) });
    expect((await lk.verify({ token: revoked.secret })).code).toBe(VerifyCode.REVOKED);

    const { id, secret } = await insertToken(sql);
    expect((await lk.verify({ token: secret })).code).toBe(VerifyCode.VALID);
    await lk.revoke(id); // the admin RevokeToken of the same instance
    expect((await lk.verify({ token: secret })).code).toBe(VerifyCode.REVOKED);
  });
});

describe("VERIFY_CODE_WRONG_ORG", () => {
  it("refuses a token of another org when org_id is given", async () => {
    const { secret } = await insertToken(sql, { orgId: "org-b" });
    expect((await lk.verify({ token: secret, orgId: "org-a" })).code).toBe(VerifyCode.WRONG_ORG);
    expect((await lk.verify({ token: secret, orgId: "org-b" })).code).toBe(VerifyCode.VALID);
    expect((await lk.verify({ token: secret })).code).toBe(VerifyCode.VALID);
  });
});

describe("VERIFY_CODE_IP_NOT_ALLOWED", () => {
  it("matches IPv4, IPv6, CIDRs and IPv4-mapped IPv6", async () => {
    const { secret } = await insertToken(sql, {
      allowedCidrs: ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"],
    });
    const cases: [string, VerifyCode][] = [
      ["10.1.2.3", VerifyCode.VALID],
      ["192.0.2.7", VerifyCode.VALID],
      ["192.0.2.8", VerifyCode.IP_NOT_ALLOWED],
      ["11.0.0.1", VerifyCode.IP_NOT_ALLOWED],
      ["2001:db8:1::5", VerifyCode.VALID],
      ["2001:db9::1", VerifyCode.IP_NOT_ALLOWED],
      ["::ffff:10.9.8.7", VerifyCode.VALID],
      ["::ffff:11.9.8.7", VerifyCode.IP_NOT_ALLOWED],
      ["", VerifyCode.IP_NOT_ALLOWED], // missing client_ip with an allowlist
    ];
    for (const [clientIp, code] of cases) {
      expect((await lk.verify({ token: secret, clientIp })).code, clientIp).toBe(code);
    }
  });

  it("refuses a client_ip that is not an address with INVALID_ARGUMENT naming it (issue 8.3)", async () => {
    const open = await insertToken(sql);
    const listed = await insertToken(sql, { allowedCidrs: ["10.0.0.0/8"] });
    for (const { secret } of [open, listed]) {
      for (const clientIp of ["not-an-ip", "10.0.0.300", "10.0.0.1/8", " 10.0.0.1", "::g"]) {
        const err = await lk.verify({ token: secret, clientIp }).catch((e: unknown) => e);
        expect(err, clientIp).toMatchObject({ code: 3 });
        expect(String((err as Error).message)).toContain("client_ip");
      }
    }
    // Empty stays allowed for a token without an allowlist.
    expect((await lk.verify({ token: open.secret, clientIp: "" })).code).toBe(VerifyCode.VALID);
  });

  it("lets any (or no) client_ip through when the token has no allowlist", async () => {
    const { secret } = await insertToken(sql);
    expect((await lk.verify({ token: secret })).code).toBe(VerifyCode.VALID);
    expect((await lk.verify({ token: secret, clientIp: "::1" })).code).toBe(VerifyCode.VALID);
  });
});

describe("VERIFY_CODE_INSUFFICIENT_PERMISSIONS", () => {
  it("requires every permission and honours wildcards", async () => {
    const scoped = await insertToken(sql, { permissions: ["tokens:*", "audit:read"] });
    const all = await insertToken(sql, { permissions: ["*"] });
    const v = async (token: string, requiredPermissions: string[]) =>
      (await lk.verify({ token, requiredPermissions })).code;
    expect(await v(scoped.secret, ["tokens:read"])).toBe(VerifyCode.VALID);
    expect(await v(scoped.secret, ["tokens:revoke", "audit:read"])).toBe(VerifyCode.VALID);
    expect(await v(scoped.secret, ["tokens:read", "deploy:run"])).toBe(
      VerifyCode.INSUFFICIENT_PERMISSIONS,
    );
    expect(await v(scoped.secret, ["audit:write"])).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    expect(await v(all.secret, ["deploy:run", "anything:else"])).toBe(VerifyCode.VALID);
  });
});

describe("VERIFY_CODE_USAGE_EXCEEDED", () => {
  it("lets a single-use token through exactly once under concurrency", async () => {
    const { id, secret } = await insertToken(sql, { type: TokenType.EPHEMERAL, maxUses: 1 });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => lk.verify({ token: secret })),
    );
    const valid = results.filter((r) => r.code === VerifyCode.VALID);
    expect(valid).toHaveLength(1);
    expect(valid[0]?.remainingUses).toBe(0n);
    expect(results.filter((r) => r.code === VerifyCode.USAGE_EXCEEDED)).toHaveLength(19);
    expect((await lk.verify({ token: secret })).code).toBe(VerifyCode.USAGE_EXCEEDED);
    const [row] = await sql<
      { n: string }[]
    >`SELECT use_count::text AS n FROM tokens WHERE id = ${id}`;
    expect(row?.n).toBe("1");
  });

  it("consumes nothing on a denied call and counts remaining uses down", async () => {
    const { id, secret } = await insertToken(sql, { maxUses: 2 });
    expect((await lk.verify({ token: secret, orgId: "org-z" })).code).toBe(VerifyCode.WRONG_ORG);
    expect((await lk.verify({ token: secret, requiredPermissions: ["x:y"] })).code).toBe(
      VerifyCode.VALID,
    ); // "*" holds x:y
    const second = await lk.verify({ token: secret });
    expect(second.code).toBe(VerifyCode.VALID);
    expect(second.remainingUses).toBe(0n);
    expect((await lk.verify({ token: secret })).code).toBe(VerifyCode.USAGE_EXCEEDED);
    const [row] = await sql<
      { n: string }[]
    >`SELECT use_count::text AS n FROM tokens WHERE id = ${id}`;
    expect(row?.n).toBe("2");
  });
});

describe("VERIFY_CODE_RATE_LIMITED", () => {
  it("refuses past the limit with retry_after, and counts only passing calls", async () => {
    const { secret } = await insertToken(sql, {
      rateLimits: [{ name: "burst", limit: 3, window_ms: 60_000 }],
    });
    await awayFromWindowEnd(60_000); // all four calls in one minute window
    const codes: VerifyCode[] = [];
    for (let i = 0; i < 3; i++) codes.push((await lk.verify({ token: secret })).code);
    expect(codes).toEqual([VerifyCode.VALID, VerifyCode.VALID, VerifyCode.VALID]);
    const limited = await lk.verify({ token: secret });
    expect(limited.code).toBe(VerifyCode.RATE_LIMITED);
    expect(limited.valid).toBe(false);
    expect(limited.retryAfter).toBeDefined();
    const wait = Number(limited.retryAfter?.seconds ?? 0n) * 1000;
    expect(wait).toBeLessThanOrEqual(60_000);
    // A denial for another reason does not count against the limit (checked before it).
    expect((await lk.verify({ token: secret, orgId: "org-z" })).code).toBe(VerifyCode.WRONG_ORG);
  });
});

describe("usage tracking", () => {
  it("shows last_used_time, last_used_ip and use_count within 5 s", async () => {
    const { id, secret } = await insertToken(sql);
    const before = Date.now();
    for (let i = 0; i < 5; i++) {
      expect((await lk.verify({ token: secret, clientIp: "203.0.113.9" })).code).toBe(
        VerifyCode.VALID,
      );
    }
    const took = await waitFor(async () => {
      const [row] = await sql<{ n: string; ip: string | null; t: Date | null }[]>`
        SELECT use_count::text AS n, host(last_used_ip) AS ip, last_used_time AS t
        FROM tokens WHERE id = ${id}`;
      return (
        row?.n === "5" &&
        row.ip === "203.0.113.9" &&
        row.t !== null &&
        row.t.getTime() >= before - 1_000
      );
    }, 5_000);
    expect(took).toBeGreaterThanOrEqual(0);
  });
});

describe("audit", () => {
  it("writes one row per verification in mode all, never the token", async () => {
    const { id, secret } = await insertToken(sql, { allowedCidrs: ["10.0.0.0/8"] });
    const requests = [
      { requestId: "req-audit-1", clientIp: "10.0.0.1", code: "VALID" },
      { requestId: "req-audit-2", clientIp: "11.0.0.1", code: "IP_NOT_ALLOWED" },
      { requestId: "req-audit-3", clientIp: "10.0.0.2", code: "VALID" },
    ];
    for (const r of requests) {
      await lk.verify({
        token: secret,
        clientIp: r.clientIp,
        requestId: r.requestId,
        method: "GET",
        path: `/v1/things?access_token=${secret}`,
      });
    }
    await lk.verify({ token: "garbage", requestId: "req-audit-4" });
    await lk.verifier.flush();
    const rows = await sql<
      {
        request_id: string;
        token_id: string;
        code: string;
        decision: number;
        path: string;
        action: string;
        client_ip: string;
      }[]
    >`SELECT request_id, token_id, code, decision, path, action, client_ip FROM audit_events
      WHERE request_id LIKE 'req-audit-%' ORDER BY request_id`;
    expect(rows.map((r) => r.request_id)).toEqual([
      "req-audit-1",
      "req-audit-2",
      "req-audit-3",
      "req-audit-4",
    ]);
    for (const [i, r] of requests.entries()) {
      const row = rows[i];
      expect(row?.token_id).toBe(id);
      expect(row?.code).toBe(r.code);
      expect(row?.action).toBe("token.verify");
      expect(row?.client_ip).toBe(r.clientIp);
      expect(row?.decision).toBe(r.code === "VALID" ? AuditDecision.ALLOW : AuditDecision.DENY);
      expect(row?.path).not.toContain(secret);
      expect(row?.path).toContain("[redacted]");
    }
    expect(rows[3]?.code).toBe("MALFORMED");
    expect(rows[3]?.token_id).toBe("");
  });
});

describe("audit scrubbing (13.6)", () => {
  it("never stores a token sent percent-encoded in the path, or as the request id header", async () => {
    const { secret } = await insertToken(sql);
    const encoded = secret.replaceAll("_", "%5F");
    await lk.verify({
      token: secret,
      requestId: "req-scrub-1",
      method: "GET",
      path: `/v1/things?access_token=${encoded}`,
    });
    await lk.verify({
      token: secret,
      requestId: "req-scrub-2",
      method: "GET",
      path: `/v1/things?t=${encodeURIComponent(`other_p_${secret.slice(5)}`)}`,
    });
    await lk.verifier.flush();
    const rows = await sql<{ path: string }[]>`
      SELECT path FROM audit_events WHERE request_id LIKE 'req-scrub-%' ORDER BY request_id`;
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r.path).not.toContain(secret.slice(5, 40));
      expect(r.path).toContain("[redacted]");
    }
  });
});

describe("Postgres down", () => {
  it("keeps cached tokens verifying within the staleness window, then fails closed", async () => {
    const { connect } = await import("../../src/store/db.js");
    const own = connect(db.url, { max: 2 });
    // The window is wide enough for a loaded CI machine: the cached answers below must come
    // within it, and the wait past it is measured from the load, not from a fixed point. The
    // entry's age counts from its Postgres read, which happens somewhere inside the first
    // verify, so the fail-closed check waits until `loadDone + window`: the read is no later.
    const windowMs = 4_000;
    const inst = await startVerifyInstance({
      sql: own,
      auditMode: "none",
      cacheMaxStalenessMs: windowMs,
    });
    try {
      const cached = await insertToken(sql);
      const uncached = await insertToken(sql);
      expect((await inst.verify({ token: cached.secret })).code).toBe(VerifyCode.VALID);
      const loadDone = Date.now();
      await own.end({ timeout: 0 });
      // Cached: still answers (from the local tier), including denials it can decide.
      expect((await inst.verify({ token: cached.secret })).code).toBe(VerifyCode.VALID);
      expect((await inst.verify({ token: cached.secret, orgId: "org-z" })).code).toBe(
        VerifyCode.WRONG_ORG,
      );
      // Not cached: UNAVAILABLE, never VALID.
      await expect(inst.verify({ token: uncached.secret })).rejects.toMatchObject({ code: 14 });
      // Past the staleness window the cached token fails closed too.
      await new Promise((r) => setTimeout(r, Math.max(0, loadDone + windowMs + 100 - Date.now())));
      await expect(inst.verify({ token: cached.secret })).rejects.toMatchObject({ code: 14 });
      // A malformed token needs no storage and is still answered.
      expect((await inst.verify({ token: "nope" })).code).toBe(VerifyCode.MALFORMED);
    } finally {
      await inst.close();
    }
  });
});
