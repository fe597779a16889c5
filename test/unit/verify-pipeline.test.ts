import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { AuditMode } from "../../src/config.js";
import { LocalRateLimiter } from "../../src/domain/rate-window.js";
import { generateToken, hashToken } from "../../src/domain/token-format.js";
import { compileRecord, type TokenRecord } from "../../src/domain/token-record.js";
import { LatchkeyError } from "../../src/errors.js";
import { AuditDecision, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { createVerifyPipeline, type VerifyPipeline } from "../../src/services/verify/pipeline.js";
import type { PeerTrust, TokenSource } from "../../src/services/verify/ports.js";
import type { VerifyInput } from "../../src/services/verify/types.js";
import type { VerifyAuditRow } from "../../src/store/audit-writer.js";
import { LocalTier } from "../../src/store/cache/local.js";
import { TieredTokenCache } from "../../src/store/cache/tiered.js";
import type { SharedTier } from "../../src/store/cache/types.js";
import type { ConsumeResult } from "../../src/store/verify-repo.js";

const PREFIX = "lk";
const T0 = Date.UTC(2026, 0, 1);
type Row = { -readonly [K in keyof TokenRecord]: TokenRecord[K] };

/** Tokens in memory, with the conditional consumption the Postgres source performs. */
class MemorySource implements TokenSource {
  readonly rows = new Map<string, Row>();
  loads = 0;
  down = false;
  private gate: Promise<void> | undefined;
  constructor(private readonly clock: () => number) {}

  add(over: Partial<Row> = {}): { secret: string; row: Row } {
    const secret = generateToken(PREFIX, TokenType.PERSONAL);
    const row: Row = {
      id: `tok_${this.rows.size + 1}`,
      ...{ name: "t", type: TokenType.PERSONAL, orgId: "org-a", teamId: "", ownerId: "u" },
      ...{ permissions: ["*"], allowedCidrs: [], metadata: {}, expireTimeMs: null },
      ...{ revokeTimeMs: null, maxUses: null, useCount: 0, rateLimits: [], maxConcurrent: 0 },
      ...{ version: 1, readAtMs: 0 },
      ...over,
    };
    this.rows.set(hashToken(secret).toString("hex"), row);
    return { secret, row };
  }

  /** Lookups read now but answer only once the returned function is called (to race a change). */
  hold(): () => void {
    let open = (): void => {};
    this.gate = new Promise((resolve) => {
      open = resolve;
    });
    return () => {
      this.gate = undefined;
      open();
    };
  }

  async findByHash(secretHash: Uint8Array): Promise<TokenRecord | undefined> {
    this.loads++;
    if (this.down) throw new Error("connection refused");
    const row = this.rows.get(Buffer.from(secretHash).toString("hex"));
    const snapshot = row === undefined ? undefined : { ...row, readAtMs: this.clock() };
    if (this.gate !== undefined) await this.gate;
    return snapshot;
  }

  async consumeUse(id: string): Promise<ConsumeResult> {
    if (this.down) throw new Error("connection refused");
    const row = [...this.rows.values()].find((r) => r.id === id);
    const now = this.clock();
    if (
      row !== undefined &&
      row.maxUses !== null &&
      row.useCount < row.maxUses &&
      row.revokeTimeMs === null &&
      (row.expireTimeMs === null || row.expireTimeMs > now)
    ) {
      row.useCount++;
      return { ok: true, useCount: row.useCount, maxUses: row.maxUses };
    }
    return { ok: false, record: row === undefined ? undefined : { ...row, readAtMs: now } };
  }
}

interface Rig {
  readonly pipeline: VerifyPipeline;
  readonly source: MemorySource;
  readonly audit: VerifyAuditRow[];
  readonly uses: { tokenId: string; clientIp: string }[];
  advance(ms: number): void;
  verify(token: string, more?: Partial<VerifyInput>): ReturnType<VerifyPipeline["verify"]>;
  changed(row: Row, secret: string): Promise<void>;
}

/** A shared tier in memory: what a test puts in it is what the pipeline reads. */
class MemoryShared implements SharedTier {
  readonly records = new Map<string, TokenRecord>();
  readonly subscribed = true;
  async getRecord(hashHex: string): Promise<TokenRecord | null> {
    return this.records.get(hashHex) ?? null;
  }
  fillRecord(hashHex: string, record: TokenRecord): void {
    this.records.set(hashHex, record);
  }
  async invalidate(): Promise<void> {}
  async applyFloors(): Promise<void> {}
}

function rig(
  auditMode: AuditMode = "all",
  shared?: MemoryShared,
  trustedPeers?: PeerTrust,
): Rig & { cache: TieredTokenCache } {
  let now = T0;
  const clock = (): number => now;
  const source = new MemorySource(clock);
  const cache = new TieredTokenCache(
    new LocalTier(100, 100),
    shared === undefined ? undefined : () => shared,
  );
  const audit: VerifyAuditRow[] = [];
  const uses: { tokenId: string; clientIp: string }[] = [];
  const pipeline = createVerifyPipeline({
    tokenPrefix: PREFIX,
    cache,
    source,
    audit: { push: (row) => audit.push(row) },
    auditMode,
    usage: { record: (tokenId, _at, clientIp) => uses.push({ tokenId, clientIp }) },
    rateLimiter: new LocalRateLimiter(),
    clock,
    maxStalenessMs: 30_000,
    negativeTtlMs: 2_000,
    trustedPeers,
  });
  return {
    cache,
    pipeline,
    source,
    audit,
    uses,
    advance: (ms) => {
      now += ms;
    },
    verify: (token, more = {}) =>
      pipeline.verify({
        ...{ token, requiredPermissions: [], clientIp: "10.0.0.1", orgId: "", method: "GET" },
        ...{ path: "/x", requestId: "r1", purpose: "verify" },
        ...more,
      }),
    changed: (row, secret) =>
      pipeline.tokensChanged([
        {
          id: row.id,
          secretHash: hashToken(secret),
          kind: "revoked",
          orgId: row.orgId,
          reason: "",
        },
      ]),
  };
}

describe("VALID", () => {
  it("answers with the record, records a use and audits an ALLOW", async () => {
    const r = rig();
    const { secret, row } = r.source.add({ metadata: { region: "eu" } });
    const outcome = await r.verify(secret);
    expect(outcome.code).toBe(VerifyCode.VALID);
    expect(outcome.record?.id).toBe(row.id);
    expect(outcome.record?.metadata).toEqual({ region: "eu" });
    expect(outcome.remainingUses).toBeUndefined();
    expect(r.uses).toEqual([{ tokenId: row.id, clientIp: "10.0.0.1" }]);
    expect(r.audit).toMatchObject([
      { action: "token.verify", decision: AuditDecision.ALLOW, code: "VALID", tokenId: row.id },
    ]);
    await r.verify(secret);
    expect(r.source.loads).toBe(1);
    expect(r.pipeline.stats().localHits).toBe(1);
  });
});

describe("MALFORMED", () => {
  it("is decided without a lookup and names no token in the audit row", async () => {
    const r = rig();
    const { secret } = r.source.add();
    const typo = `${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    for (const token of ["", "hello", typo, secret.replace(/^lk/, "xx")]) {
      expect((await r.verify(token)).code).toBe(VerifyCode.MALFORMED);
    }
    expect(r.source.loads).toBe(0);
    // Sampled per peer (13.5): the first row at once, the rest of the window as one summary.
    expect(r.audit.map((a) => [a.code, a.tokenId, a.orgId])).toEqual([["MALFORMED", "", ""]]);
    r.pipeline.drainSamples();
    expect(r.audit.map((a) => [a.code, a.tokenId, a.orgId, a.details?.suppressed])).toEqual([
      ["MALFORMED", "", "", undefined],
      ["MALFORMED", "", "", 3],
    ]);
  });
});

describe("NOT_FOUND", () => {
  it("is cached for the negative TTL, then looked up again", async () => {
    const r = rig();
    const secret = generateToken(PREFIX, TokenType.PERSONAL);
    expect((await r.verify(secret)).code).toBe(VerifyCode.NOT_FOUND);
    // Creation does not invalidate: the negative answer stands until its TTL passes.
    r.source.rows.set(hashToken(secret).toString("hex"), r.source.add().row);
    expect((await r.verify(secret)).code).toBe(VerifyCode.NOT_FOUND);
    expect(r.source.loads).toBe(1);
    r.advance(2_000);
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
    expect(r.source.loads).toBe(2);
  });
});

describe("REVOKED", () => {
  it("is seen at once after an invalidation, not before", async () => {
    const r = rig();
    const { secret, row } = r.source.add();
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
    row.revokeTimeMs = T0;
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID); // the cached record
    await r.changed(row, secret);
    const outcome = await r.verify(secret);
    expect(outcome.code).toBe(VerifyCode.REVOKED);
    expect(outcome.record?.id).toBe(row.id);
  });

  it("one load per hash, but none joined across an invalidation", async () => {
    const r = rig();
    const { secret, row } = r.source.add();
    const open = r.source.hold();
    const first = r.verify(secret);
    const joined = r.verify(secret);
    expect(r.source.loads).toBe(1);
    row.revokeTimeMs = T0;
    await r.changed(row, secret);
    const after = r.verify(secret);
    expect(r.source.loads).toBe(2);
    open();
    expect((await first).code).toBe(VerifyCode.VALID); // read before the change
    expect((await joined).code).toBe(VerifyCode.VALID);
    expect((await after).code).toBe(VerifyCode.REVOKED);
  });

  it("a load that raced the invalidation does not fill the cache", async () => {
    const r = rig();
    const { secret, row } = r.source.add();
    const open = r.source.hold();
    const first = r.verify(secret);
    row.revokeTimeMs = T0;
    await r.changed(row, secret);
    open();
    expect((await first).code).toBe(VerifyCode.VALID);
    expect((await r.verify(secret)).code).toBe(VerifyCode.REVOKED);
    expect(r.source.loads).toBe(2);
  });
});

describe("a denial consumes nothing", () => {
  it.each([
    ["INSUFFICIENT_PERMISSIONS", { requiredPermissions: ["deploy:run"] }],
    ["WRONG_ORG", { orgId: "org-b" }],
    ["IP_NOT_ALLOWED", { clientIp: "192.168.1.1" }],
  ] as const)("%s", async (code, demand) => {
    const r = rig();
    const { secret, row } = r.source.add({
      permissions: ["tokens:read"],
      allowedCidrs: ["10.0.0.0/8"],
      maxUses: 1,
    });
    expect((await r.verify(secret, demand)).code).toBe(VerifyCode[code]);
    expect(row.useCount).toBe(0);
    expect(r.uses).toEqual([]);
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
  });

  it("RATE_LIMITED, with the time to wait", async () => {
    const r = rig();
    const { secret, row } = r.source.add({
      maxUses: 10,
      rateLimits: [{ name: "s", limit: 1, windowMs: 1_000 }],
    });
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
    r.advance(400);
    const limited = await r.verify(secret);
    expect(limited.code).toBe(VerifyCode.RATE_LIMITED);
    expect(limited.retryAfterMs).toBe(600);
    expect(row.useCount).toBe(1);
  });
});

describe("audit rows per mode", () => {
  const run = async (mode: AuditMode, purpose: VerifyInput["purpose"]) => {
    const r = rig(mode);
    const { secret, row } = r.source.add({ permissions: ["tokens:read"] });
    await r.verify(secret, { purpose });
    await r.verify(secret, { purpose, requiredPermissions: ["tokens:create"] });
    return r.audit.map((a) => [a.action, a.code, a.orgId, a.tokenId === row.id]);
  };
  it("all: every verification", async () => {
    expect(await run("all", "verify")).toEqual([
      ["token.verify", "VALID", "org-a", true],
      ["token.verify", "INSUFFICIENT_PERMISSIONS", "org-a", true],
    ]);
  });
  it("denials: only denials", async () => {
    expect(await run("denials", "verify")).toEqual([
      ["token.verify", "INSUFFICIENT_PERMISSIONS", "org-a", true],
    ]);
  });
  it("none: nothing, even with a sink", async () => {
    expect(await run("none", "verify")).toEqual([]);
  });
  it("admin authentication: only denials, as auth.denied", async () => {
    expect(await run("all", "admin")).toEqual([
      ["auth.denied", "INSUFFICIENT_PERMISSIONS", "org-a", true],
    ]);
  });
});

describe("use limits", () => {
  it("consume through the source, then USAGE_EXCEEDED without another write", async () => {
    const r = rig();
    const { secret, row } = r.source.add({ maxUses: 2 });
    expect(await r.verify(secret)).toMatchObject({ code: VerifyCode.VALID, remainingUses: 1 });
    expect(await r.verify(secret)).toMatchObject({ code: VerifyCode.VALID, remainingUses: 0 });
    expect((await r.verify(secret)).code).toBe(VerifyCode.USAGE_EXCEEDED);
    expect(row.useCount).toBe(2);
    expect(r.uses).toEqual([]); // limited tokens are counted by the source, not the batcher
  });

  it("the source's refusal wins over a stale cache", async () => {
    const r = rig();
    const { secret, row } = r.source.add({ maxUses: 5 });
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
    row.useCount = 5; // spent through another instance
    expect((await r.verify(secret)).code).toBe(VerifyCode.USAGE_EXCEEDED);
    row.revokeTimeMs = T0; // the refusal dropped the cached entry: the next call reloads
    expect((await r.verify(secret)).code).toBe(VerifyCode.REVOKED);
    expect(r.source.loads).toBe(2);
  });
});

describe("fails closed", () => {
  it("serves a stale entry within the window, then UNAVAILABLE", async () => {
    const r = rig();
    const { secret } = r.source.add();
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
    r.source.down = true;
    r.advance(20_000); // past the re-read point (15 s), within the window (30 s)
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
    expect(r.pipeline.stats().staleServed).toBe(1);
    r.advance(10_000);
    const err = await r.verify(secret).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LatchkeyError);
    expect((err as LatchkeyError).code).toBe(Code.Unavailable);
  });

  it("UNAVAILABLE when a use cannot be consumed", async () => {
    const r = rig();
    const { secret, row } = r.source.add({ maxUses: 3 });
    expect((await r.verify(secret, { orgId: "org-b" })).code).toBe(VerifyCode.WRONG_ORG);
    r.source.down = true;
    await expect(r.verify(secret)).rejects.toMatchObject({ code: Code.Unavailable });
    expect(r.audit.map((a) => a.code)).toEqual(["WRONG_ORG"]);
    expect(row.useCount).toBe(0);
  });
});

describe("REVOKED whatever the clocks say (13.6)", () => {
  it("a revoke_time ahead of this instance's clock still revokes", async () => {
    const r = rig();
    const { secret } = r.source.add({ revokeTimeMs: T0 + 3_600_000 });
    expect((await r.verify(secret)).code).toBe(VerifyCode.REVOKED);
  });
});

describe("versions and read times (8.4, 13.1, 13.2)", () => {
  const key = (secret: string) => hashToken(secret).toString("hex");

  it("a shared copy older than the refresh point is not used, and a hit does not make it younger", async () => {
    const shared = new MemoryShared();
    const r = rig("none", shared);
    const { secret, row } = r.source.add();
    shared.records.set(key(secret), { ...row, readAtMs: T0 - 20_000 }); // read 20 s ago
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
    expect(r.source.loads).toBe(1); // past 15 s: Postgres, not the shared copy
    expect(r.pipeline.stats().sharedRefused).toBe(1);
    // A young copy is used, and its entry keeps the copy's read time.
    const other = r.source.add();
    shared.records.set(key(other.secret), { ...other.row, readAtMs: T0 - 14_000 });
    expect((await r.verify(other.secret)).code).toBe(VerifyCode.VALID);
    expect(r.source.loads).toBe(1);
    expect(r.cache.get(key(other.secret))?.loadedAtMs).toBe(T0 - 14_000);
    r.advance(1_000); // now 15 s after its Postgres read: re-read from Postgres
    expect((await r.verify(other.secret)).code).toBe(VerifyCode.VALID);
    expect(r.source.loads).toBe(2);
  });

  it("a change from the log refuses older copies in every tier", async () => {
    const shared = new MemoryShared();
    const r = rig("none", shared);
    const { secret, row } = r.source.add();
    expect((await r.verify(secret)).code).toBe(VerifyCode.VALID);
    const old = shared.records.get(key(secret));
    expect(old?.version).toBe(1);
    // Revoked in Postgres (version 2); the log tells this instance; Redis still has version 1.
    row.revokeTimeMs = T0;
    row.version = 2;
    await r.cache.applyChanges([{ hashHex: key(secret), id: row.id, version: 2 }]);
    expect((await r.verify(secret)).code).toBe(VerifyCode.REVOKED);
    expect(r.pipeline.stats().sharedRefused).toBe(1);
    // A late write of the old record into the local tier is refused.
    if (old === undefined) throw new Error("unreachable");
    const kept = r.cache.set(key(secret), compileRecord(old), true);
    expect(r.cache.get(key(secret))?.record.version).toBe(2);
    expect(kept.record.version).toBe(1); // the caller's own (detached) entry, not kept
  });

  it("a load that read before the change is read again", async () => {
    const r = rig("none");
    const { secret, row } = r.source.add();
    const open = r.source.hold();
    const racing = r.verify(secret);
    row.revokeTimeMs = T0;
    row.version = 2;
    await r.cache.applyChanges([{ hashHex: key(secret), id: row.id, version: 2 }]);
    open();
    expect((await racing).code).toBe(VerifyCode.REVOKED);
    expect(r.source.loads).toBe(2);
  });

  it("admin callers are never authenticated from a shared copy", async () => {
    const shared = new MemoryShared();
    const r = rig("none", shared);
    const forged = r.source.add();
    r.source.rows.delete(key(forged.secret)); // never issued: only the shared tier has it
    shared.records.set(key(forged.secret), { ...forged.row, readAtMs: T0 });
    expect((await r.verify(forged.secret)).code).toBe(VerifyCode.VALID); // a verify trusts it
    r.cache.forget(key(forged.secret), forged.row.id);
    expect((await r.verify(forged.secret, { purpose: "admin" })).code).toBe(VerifyCode.NOT_FOUND);
    // A token read from Postgres within the last second serves admin calls from memory.
    const real = r.source.add();
    expect((await r.verify(real.secret, { purpose: "admin" })).code).toBe(VerifyCode.VALID);
    expect((await r.verify(real.secret, { purpose: "admin" })).code).toBe(VerifyCode.VALID);
    expect(r.source.loads).toBe(2);
    r.advance(1_000);
    expect((await r.verify(real.secret, { purpose: "admin" })).code).toBe(VerifyCode.VALID);
    expect(r.source.loads).toBe(3);
  });
});

describe("flood (13.5)", () => {
  it("behind a trusted gateway, each client_ip has its own budget; behind another peer, not", async () => {
    const gateway = "10.7.7.7";
    const flood = async (r: Rig): Promise<void> => {
      for (let i = 0; i < 150; i++) {
        const token = generateToken(PREFIX, TokenType.PERSONAL);
        await r.verify(token, { peer: gateway, clientIp: "203.0.113.66" });
      }
    };
    const trusted = rig("all", undefined, { trusts: (ip) => ip === gateway });
    await flood(trusted);
    const other = trusted.source.add();
    // The flooding client is limited; another client behind the same gateway is not.
    const fresh = generateToken(PREFIX, TokenType.PERSONAL);
    expect((await trusted.verify(fresh, { peer: gateway, clientIp: "203.0.113.66" })).code).toBe(
      VerifyCode.RATE_LIMITED,
    );
    expect(
      (await trusted.verify(other.secret, { peer: gateway, clientIp: "198.51.100.7" })).code,
    ).toBe(VerifyCode.VALID);
    // Without trust in the peer, client_ip is not believed: the gateway's budget is spent.
    const untrusted = rig();
    await flood(untrusted);
    const next = untrusted.source.add();
    expect(
      (await untrusted.verify(next.secret, { peer: gateway, clientIp: "198.51.100.7" })).code,
    ).toBe(VerifyCode.RATE_LIMITED);
  });

  it("unknown tokens spend a per-peer budget; known ones do not", async () => {
    const r = rig();
    const known = r.source.add();
    const codes: VerifyCode[] = [];
    for (let i = 0; i < 150; i++) {
      const token = generateToken(PREFIX, TokenType.PERSONAL);
      codes.push((await r.verify(token, { peer: "10.9.9.9" })).code);
    }
    expect(codes.filter((c) => c === VerifyCode.NOT_FOUND)).toHaveLength(100); // the burst
    expect(codes.filter((c) => c === VerifyCode.RATE_LIMITED)).toHaveLength(50);
    expect(r.source.loads).toBe(100);
    // Another peer has its own budget; a cached token is not limited.
    expect((await r.verify(known.secret, { peer: "10.9.9.9" })).code).toBe(VerifyCode.RATE_LIMITED);
    expect((await r.verify(known.secret, { peer: "10.8.8.8" })).code).toBe(VerifyCode.VALID);
    expect((await r.verify(known.secret, { peer: "10.9.9.9" })).code).toBe(VerifyCode.VALID);
    r.advance(1_000); // 50 more a second
    const after = generateToken(PREFIX, TokenType.PERSONAL);
    expect((await r.verify(after, { peer: "10.9.9.9" })).code).toBe(VerifyCode.NOT_FOUND);
    // Audit: sampled per peer (one row, then a summary per code), real ones one by one.
    r.pipeline.drainSamples();
    const noToken = r.audit.filter((a) => a.tokenId === "");
    expect(noToken.reduce((n, a) => n + Number(a.details?.suppressed ?? 1), 0)).toBe(152);
    expect(noToken.length).toBeLessThanOrEqual(6);
  });
});
