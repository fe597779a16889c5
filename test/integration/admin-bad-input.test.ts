import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newTokenId } from "../../src/domain/ids.js";
import { generateToken } from "../../src/domain/token-format.js";
import { type AuditDecision, TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { type AdminClient, failure } from "../helpers/admin-client.js";
import { type AdminHarness, startAdminHarness } from "../helpers/admin-harness.js";

const DAY = 24 * 3600 * 1000;

let h: AdminHarness;
let admin: AdminClient;
let existing: string;
/** A real next_page_token of `listTokens({ pageSize: 1 })`. */
let pageToken: string;
/** A real next_page_token of `listAuditEvents({ pageSize: 1 })`. */
let auditPageToken: string;

beforeAll(async () => {
  h = await startAdminHarness();
  const boot = h.client(h.bootstrapSecret);
  const a = await boot.createToken({ name: "admin", type: TokenType.CICD, permissions: ["*"] });
  admin = h.client(a.secret);
  const t = await admin.createToken({ name: "target", type: TokenType.CICD, permissions: ["x:y"] });
  existing = t.token?.id ?? "";
  await admin.createToken({ name: "another", type: TokenType.CICD, permissions: ["x:y"] });
  pageToken = (await admin.listTokens({ pageSize: 1 })).nextPageToken;
  auditPageToken = (await admin.listAuditEvents({ pageSize: 1 })).nextPageToken;
  expect(pageToken).not.toBe("");
  expect(auditPageToken).not.toBe("");
});

afterAll(async () => {
  await h?.close();
});

const cicd = { name: "ok", type: TokenType.CICD, permissions: ["x:y"] };
const long = (n: number) => "a".repeat(n);
const manyMeta = (n: number) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
const fakeIds = (n: number) => Array.from({ length: n }, () => newTokenId());
/** 200000-01-01: a valid int64 of seconds, far outside google.protobuf.Timestamp's range. */
const YEAR_200000 = { seconds: 6_249_000_000_000n, nanos: 0 };
/** A Duration of about 31 million years (beyond Duration's ±10,000 years). */
const ABSURD = { seconds: 1_000_000_000_000_000n, nanos: 0 };
/** A request id carrying something shaped like a latchkey token. */
const LEAKY_ID = `retry-${generateToken("lk", TokenType.PERSONAL)}`;

/** [label, call, the field the violation must name]. */
type Case = [string, () => Promise<unknown>, string];

const cases: Case[] = [
  // CreateToken
  ["empty name", () => admin.createToken({ ...cicd, name: "" }), "name"],
  ["101-character name", () => admin.createToken({ ...cicd, name: long(101) }), "name"],
  ["name with a newline", () => admin.createToken({ ...cicd, name: "a\nb" }), "name"],
  ["name with a bell character", () => admin.createToken({ ...cicd, name: "a\u0007b" }), "name"],
  ["name of spaces only", () => admin.createToken({ ...cicd, name: "   " }), "name"],
  ["unspecified type", () => admin.createToken({ ...cicd, type: TokenType.UNSPECIFIED }), "type"],
  ["unknown type number", () => admin.createToken({ ...cicd, type: 99 as TokenType }), "type"],
  [
    "cidr 10.0.0.0/33",
    () => admin.createToken({ ...cicd, allowedCidrs: ["10.0.0.0/33"] }),
    "allowed_cidrs",
  ],
  ["cidr abc", () => admin.createToken({ ...cicd, allowedCidrs: ["abc"] }), "allowed_cidrs"],
  [
    "cidr ::1/129",
    () => admin.createToken({ ...cicd, allowedCidrs: ["::1/129"] }),
    "allowed_cidrs",
  ],
  [
    "cidr 300.1.1.1",
    () => admin.createToken({ ...cicd, allowedCidrs: ["300.1.1.1"] }),
    "allowed_cidrs",
  ],
  ["empty cidr", () => admin.createToken({ ...cicd, allowedCidrs: [""] }), "allowed_cidrs"],
  [
    "101 cidrs",
    () =>
      admin.createToken({
        ...cicd,
        allowedCidrs: Array.from({ length: 101 }, (_, i) => `10.0.${i}.1`),
      }),
    "allowed_cidrs",
  ],
  [
    "ttl above the CI/CD cap",
    () => admin.createToken({ ...cicd, ttl: durationFromMs(91 * DAY) }),
    "ttl",
  ],
  [
    "ttl above the ephemeral cap",
    () =>
      admin.createToken({ ...cicd, type: TokenType.EPHEMERAL, ttl: durationFromMs(25 * 3600_000) }),
    "ttl",
  ],
  ["negative ttl", () => admin.createToken({ ...cicd, ttl: durationFromMs(-1000) }), "ttl"],
  [
    "expire_time in the past",
    () => admin.createToken({ ...cicd, expireTime: timestampFromMs(Date.now() - 1000) }),
    "expire_time",
  ],
  [
    "expire_time beyond the personal cap",
    () =>
      admin.createToken({
        ...cicd,
        type: TokenType.PERSONAL,
        ownerId: "u",
        expireTime: timestampFromMs(Date.now() + 400 * DAY),
      }),
    "expire_time",
  ],
  [
    "both ttl and expire_time",
    () =>
      admin.createToken({
        ...cicd,
        ttl: durationFromMs(DAY),
        expireTime: timestampFromMs(Date.now() + DAY),
      }),
    "ttl",
  ],
  ["role and permissions", () => admin.createToken({ ...cicd, role: "viewer" }), "role"],
  [
    "unknown role",
    () => admin.createToken({ ...cicd, permissions: [], role: "superuser" }),
    "role",
  ],
  [
    "neither role nor permissions",
    () => admin.createToken({ ...cicd, permissions: [] }),
    "permissions",
  ],
  [
    "malformed permission",
    () => admin.createToken({ ...cicd, permissions: ["bad perm"] }),
    "permissions",
  ],
  [
    "101 permissions",
    () =>
      admin.createToken({
        ...cicd,
        permissions: Array.from({ length: 101 }, (_, i) => `r${i}:read`),
      }),
    "permissions",
  ],
  ["33 metadata keys", () => admin.createToken({ ...cicd, metadata: manyMeta(33) }), "metadata"],
  [
    "metadata key with a space",
    () => admin.createToken({ ...cicd, metadata: { "bad key": "v" } }),
    "metadata",
  ],
  [
    "513-character metadata value",
    () => admin.createToken({ ...cicd, metadata: { k: long(513) } }),
    "metadata",
  ],
  [
    "65-character metadata key",
    () => admin.createToken({ ...cicd, metadata: { [long(65)]: "v" } }),
    "metadata",
  ],
  ["max_uses 0", () => admin.createToken({ ...cicd, maxUses: 0n }), "max_uses"],
  ["max_uses negative", () => admin.createToken({ ...cicd, maxUses: -5n }), "max_uses"],
  [
    "max_concurrent 1001",
    () => admin.createToken({ ...cicd, maxConcurrent: 1001 }),
    "max_concurrent",
  ],
  [
    "129-character request_id",
    () => admin.createToken({ ...cicd, requestId: long(129) }),
    "request_id",
  ],
  [
    "team token without team_id",
    () => admin.createToken({ ...cicd, type: TokenType.TEAM }),
    "team_id",
  ],
  [
    "personal token without owner_id",
    () => admin.createToken({ ...cicd, type: TokenType.PERSONAL }),
    "owner_id",
  ],
  ["129-character team_id", () => admin.createToken({ ...cicd, teamId: long(129) }), "team_id"],
  [
    "rate limit with no window",
    () => admin.createToken({ ...cicd, rateLimits: [{ name: "burst", limit: 10n }] }),
    "rate_limits",
  ],
  // GetToken
  ["empty id", () => admin.getToken({ id: "" }), "id"],
  ["malformed id", () => admin.getToken({ id: "abc" }), "id"],
  ["a secret pasted as id", () => admin.getToken({ id: h.bootstrapSecret }), "id"],
  // ListTokens
  ["negative page_size", () => admin.listTokens({ pageSize: -1 }), "page_size"],
  ["page_size 1001", () => admin.listTokens({ pageSize: 1001 }), "page_size"],
  ["forged page_token", () => admin.listTokens({ pageToken: "Zm9yZ2Vk" }), "page_token"],
  [
    "page_token replayed with another filter",
    () => admin.listTokens({ pageSize: 1, pageToken: pageToken, type: TokenType.CICD }),
    "page_token",
  ],
  [
    "page_token with one character flipped",
    () =>
      admin.listTokens({
        pageSize: 1,
        pageToken: `${pageToken.slice(0, -2)}${pageToken.endsWith("AA") ? "BB" : "AA"}`,
      }),
    "page_token",
  ],
  ["unknown state", () => admin.listTokens({ state: 42 as TokenState }), "state"],
  // UpdateToken
  [
    "unknown mask path",
    () =>
      admin.updateToken({
        token: { id: existing, ownerId: "x" },
        updateMask: { paths: ["owner_id"] },
      }),
    "update_mask",
  ],
  [
    "empty mask",
    () => admin.updateToken({ token: { id: existing }, updateMask: { paths: [] } }),
    "update_mask",
  ],
  [
    "bad name through the mask",
    () => admin.updateToken({ token: { id: existing, name: "" }, updateMask: { paths: ["name"] } }),
    "token.name",
  ],
  [
    "bad cidr through the mask",
    () =>
      admin.updateToken({
        token: { id: existing, allowedCidrs: ["10.0.0.0/33"] },
        updateMask: { paths: ["allowed_cidrs"] },
      }),
    "token.allowed_cidrs",
  ],
  [
    "expire_time cleared through the mask",
    () => admin.updateToken({ token: { id: existing }, updateMask: { paths: ["expire_time"] } }),
    "token.expire_time",
  ],
  ["update without a token", () => admin.updateToken({ updateMask: { paths: ["name"] } }), "token"],
  // RevokeToken
  ["501-character reason", () => admin.revokeToken({ id: existing, reason: long(501) }), "reason"],
  ["revoke a malformed id", () => admin.revokeToken({ id: "tok_nope" }), "id"],
  // BatchRevokeTokens
  ["1,001 ids to revoke", () => admin.batchRevokeTokens({ ids: fakeIds(1001) }), "ids"],
  ["duplicate ids to revoke", () => admin.batchRevokeTokens({ ids: [existing, existing] }), "ids"],
  ["neither ids nor filter", () => admin.batchRevokeTokens({}), "ids"],
  [
    "both ids and filter",
    () => admin.batchRevokeTokens({ ids: [existing], filter: { type: TokenType.CICD } }),
    "filter",
  ],
  ["empty filter", () => admin.batchRevokeTokens({ filter: {} }), "filter"],
  [
    "filter for revoked tokens",
    () => admin.batchRevokeTokens({ filter: { state: TokenState.REVOKED } }),
    "filter.state",
  ],
  // BatchUpdateTokens
  [
    "1,001 ids to update",
    () => admin.batchUpdateTokens({ ids: fakeIds(1001), metadata: { a: "b" } }),
    "ids",
  ],
  [
    "duplicate ids to update",
    () => admin.batchUpdateTokens({ ids: [existing, existing], metadata: { a: "b" } }),
    "ids",
  ],
  ["batch update with no metadata", () => admin.batchUpdateTokens({ ids: [existing] }), "metadata"],
  [
    "batch update with a bad key",
    () => admin.batchUpdateTokens({ ids: [existing], metadata: { "a b": "c" } }),
    "metadata",
  ],
  ["batch update with no ids", () => admin.batchUpdateTokens({ metadata: { a: "b" } }), "ids"],
  // RotateToken
  [
    "grace period of 8 days",
    () => admin.rotateToken({ id: existing, gracePeriod: durationFromMs(8 * DAY) }),
    "grace_period",
  ],
  [
    "negative grace period",
    () => admin.rotateToken({ id: existing, gracePeriod: durationFromMs(-1000) }),
    "grace_period",
  ],
  // ListAuditEvents
  ["negative audit page_size", () => admin.listAuditEvents({ pageSize: -5 }), "page_size"],
  [
    "start_time after end_time",
    () =>
      admin.listAuditEvents({
        startTime: timestampFromMs(Date.now()),
        endTime: timestampFromMs(Date.now() - DAY),
      }),
    "end_time",
  ],
  [
    "forged audit page_token",
    () => admin.listAuditEvents({ pageToken: "eyJ4IjoxfQ" }),
    "page_token",
  ],
  [
    "audit page_token replayed with another filter",
    () => admin.listAuditEvents({ pageSize: 1, pageToken: auditPageToken, action: "token.revoke" }),
    "page_token",
  ],
  [
    "list page_token used for audit",
    () => admin.listAuditEvents({ pageSize: 1, pageToken: pageToken }),
    "page_token",
  ],
  ["unknown decision", () => admin.listAuditEvents({ decision: 9 as AuditDecision }), "decision"],
  // Out-of-range times (they answered INTERNAL before the one shared time check).
  [
    "year 200000 unused_since",
    () => admin.listTokens({ unusedSince: YEAR_200000 }),
    "unused_since",
  ],
  [
    "year 200000 filter.unused_since",
    () => admin.batchRevokeTokens({ filter: { unusedSince: YEAR_200000 }, dryRun: true }),
    "filter.unused_since",
  ],
  ["year 200000 start_time", () => admin.listAuditEvents({ startTime: YEAR_200000 }), "start_time"],
  ["year 200000 end_time", () => admin.listAuditEvents({ endTime: YEAR_200000 }), "end_time"],
  [
    "year 200000 expire_time",
    () => admin.createToken({ ...cicd, expireTime: YEAR_200000 }),
    "expire_time",
  ],
  [
    "year 200000 token.expire_time",
    () =>
      admin.updateToken({
        token: { id: existing, expireTime: YEAR_200000 },
        updateMask: { paths: ["expire_time"] },
      }),
    "token.expire_time",
  ],
  [
    "timestamp with negative nanos",
    () => admin.listTokens({ unusedSince: { seconds: 0n, nanos: -1 } }),
    "unused_since",
  ],
  ["absurd ttl", () => admin.createToken({ ...cicd, ttl: ABSURD }), "ttl"],
  [
    "absurd grace_period",
    () => admin.rotateToken({ id: existing, gracePeriod: ABSURD }),
    "grace_period",
  ],
  [
    "absurd rate limit window",
    () => admin.createToken({ ...cicd, rateLimits: [{ name: "r", limit: 1n, window: ABSURD }] }),
    "rate_limits",
  ],
  // Metadata values refuse what names refuse (line separators, bidi controls).
  [
    "metadata value with U+2028",
    () => admin.createToken({ ...cicd, metadata: { tier: "a\u2028b" } }),
    "metadata",
  ],
  [
    "metadata value with a bidi override",
    () =>
      admin.updateToken({
        token: { id: existing, metadata: { tier: "\u202egnirts" } },
        updateMask: { paths: ["metadata"] },
      }),
    "token.metadata",
  ],
  [
    "batch metadata value with a bidi isolate",
    () => admin.batchUpdateTokens({ ids: [existing], metadata: { tier: "a\u2066b" } }),
    "metadata",
  ],
  [
    "reason with a bidi override",
    () => admin.revokeToken({ id: existing, reason: "\u202e" }),
    "reason",
  ],
  // A request_id holding a token would store the secret in the audit trail.
  [
    "token in CreateToken request_id",
    () => admin.createToken({ ...cicd, requestId: LEAKY_ID }),
    "request_id",
  ],
  [
    "token in RevokeToken request_id",
    () => admin.revokeToken({ id: existing, requestId: LEAKY_ID }),
    "request_id",
  ],
  [
    "URL-encoded token in RotateToken request_id",
    () => admin.rotateToken({ id: existing, requestId: LEAKY_ID.replaceAll("_", "%5F") }),
    "request_id",
  ],
  [
    "token in UpdateToken request_id",
    () =>
      admin.updateToken({
        token: { id: existing, name: "n" },
        updateMask: { paths: ["name"] },
        requestId: LEAKY_ID,
      }),
    "request_id",
  ],
  [
    "token in BatchRevokeTokens request_id",
    () => admin.batchRevokeTokens({ ids: [existing], requestId: LEAKY_ID }),
    "request_id",
  ],
  [
    "token in BatchUpdateTokens request_id",
    () => admin.batchUpdateTokens({ ids: [existing], metadata: { a: "b" }, requestId: LEAKY_ID }),
    "request_id",
  ],
];

describe("bad input is INVALID_ARGUMENT naming the field, with nothing written", () => {
  it("has at least 40 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases)("%s", async (_label, call, field) => {
    const before = await h.counts();
    const f = await failure(call());
    expect(f.code).toBe(status.INVALID_ARGUMENT);
    expect(f.reason).toBe("INVALID_ARGUMENT");
    expect(
      f.fields.some((x) => x === field || x.startsWith(`${field}[`) || x.startsWith(`${field}.`)),
      `fields ${JSON.stringify(f.fields)} should name ${field}`,
    ).toBe(true);
    expect(await h.counts()).toEqual(before);
    expect((await admin.getToken({ id: existing })).token?.state).toBe(TokenState.ACTIVE);
  });

  it("reports every bad field of one request together", async () => {
    const f = await failure(
      admin.createToken({
        name: "",
        type: TokenType.UNSPECIFIED,
        permissions: ["bad perm"],
        allowedCidrs: ["abc"],
        maxUses: 0n,
      }),
    );
    expect(f.code).toBe(status.INVALID_ARGUMENT);
    for (const field of ["name", "type", "permissions", "allowed_cidrs", "max_uses"]) {
      expect(f.fields.some((x) => x.startsWith(field))).toBe(true);
    }
  });
});
