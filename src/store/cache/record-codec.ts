import { createHmac, timingSafeEqual } from "node:crypto";
import type { RateLimitRule, TokenRecord } from "../../domain/token-record.js";

/**
 * The Redis form of a record: `<version>|<readAtMs>|<mac>|<json>`. The version and read time
 * lead in plain digits so the compare-and-set script can read them without parsing JSON; the
 * MAC (HMAC-SHA256, base64url) covers the Redis key the value is stored under, the version,
 * the read time and the JSON, so a value copied to another key, rolled back to an older
 * version or edited in any byte fails it. No secret, no hash of one, in the value.
 */

const HEADER = /^(\d{1,16})\|(\d{1,16})\|([A-Za-z0-9_-]{43})\|/;

function mac(key: Buffer, redisKey: string, version: string, readAt: string, json: string) {
  return createHmac("sha256", key)
    .update(`${redisKey}\n${version}\n${readAt}\n`)
    .update(json)
    .digest();
}

/** Encodes and signs `r` for storage under `redisKey`. */
export function encodeRecord(r: TokenRecord, key: Buffer, redisKey: string): string {
  const json = JSON.stringify({
    v: 2,
    id: r.id,
    n: r.name,
    t: r.type,
    o: r.orgId,
    tm: r.teamId,
    ow: r.ownerId,
    p: r.permissions,
    c: r.allowedCidrs,
    m: r.metadata,
    e: r.expireTimeMs,
    r: r.revokeTimeMs,
    mu: r.maxUses,
    u: r.useCount,
    rl: r.rateLimits.map((x) => [x.name, x.limit, x.windowMs]),
    mc: r.maxConcurrent,
  });
  const version = String(Math.trunc(r.version));
  const readAt = String(Math.trunc(r.readAtMs));
  return `${version}|${readAt}|${mac(key, redisKey, version, readAt, json).toString("base64url")}|${json}`;
}

/** A decoded Redis value: the record, or why it was refused. */
export type DecodedRecord =
  | { readonly record: TokenRecord }
  | { readonly rejected: "signature" | "malformed" };

/**
 * Checks and parses a value read from `redisKey`. A value whose MAC fails (forged, edited,
 * moved, or signed with another key) is `signature`; one that is not in this format at all
 * (an older latchkey's, or garbage) is `malformed`. Either is a cache miss.
 */
export function decodeRecord(raw: string, key: Buffer, redisKey: string): DecodedRecord {
  const head = HEADER.exec(raw);
  if (head === null || head[1] === undefined || head[2] === undefined || head[3] === undefined) {
    return { rejected: "malformed" };
  }
  const json = raw.slice(head[0].length);
  const expected = mac(key, redisKey, head[1], head[2], json);
  const given = Buffer.from(head[3], "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { rejected: "signature" };
  }
  const record = parseJson(json, Number(head[1]), Number(head[2]));
  return record === undefined ? { rejected: "malformed" } : { record };
}

function parseJson(json: string, version: number, readAtMs: number): TokenRecord | undefined {
  let x: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(json);
    if (typeof parsed !== "object" || parsed === null) return undefined;
    x = parsed as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (x.v !== 2 || typeof x.id !== "string" || typeof x.o !== "string") return undefined;
  const strs = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
  const num = (v: unknown): number | null => (typeof v === "number" ? v : null);
  const meta: Record<string, string> = {};
  if (typeof x.m === "object" && x.m !== null) {
    for (const [k, v] of Object.entries(x.m)) if (typeof v === "string") meta[k] = v;
  }
  const rateLimits: RateLimitRule[] = [];
  if (Array.isArray(x.rl)) {
    for (const item of x.rl as unknown[]) {
      if (!Array.isArray(item)) continue;
      const [name, limit, windowMs] = item as unknown[];
      if (typeof name === "string" && typeof limit === "number" && typeof windowMs === "number") {
        rateLimits.push({ name, limit, windowMs });
      }
    }
  }
  return {
    id: x.id,
    name: typeof x.n === "string" ? x.n : "",
    type: (typeof x.t === "number" ? x.t : 0) as TokenRecord["type"],
    orgId: x.o,
    teamId: typeof x.tm === "string" ? x.tm : "",
    ownerId: typeof x.ow === "string" ? x.ow : "",
    permissions: strs(x.p),
    allowedCidrs: strs(x.c),
    metadata: meta,
    expireTimeMs: num(x.e),
    revokeTimeMs: num(x.r),
    maxUses: num(x.mu),
    useCount: num(x.u) ?? 0,
    rateLimits,
    maxConcurrent: num(x.mc) ?? 0,
    version,
    readAtMs,
  };
}
