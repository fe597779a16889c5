import type { RateLimitRule, TokenRecord } from "../../domain/token-record.js";

/** The Redis form of a record: JSON of the record itself (no secret, no hash). */
export function encodeRecord(r: TokenRecord): string {
  return JSON.stringify({
    v: 1,
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
}

/** Parses a Redis record; undefined (treated as a miss) when it is not one this version wrote. */
export function decodeRecord(raw: string): TokenRecord | undefined {
  let x: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed !== "object" || parsed === null) return undefined;
    x = parsed as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (x.v !== 1 || typeof x.id !== "string" || typeof x.o !== "string") return undefined;
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
  };
}
