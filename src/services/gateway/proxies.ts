import { compileCidrs, ipAllowed, normalizeIp } from "../../domain/cidr.js";

/** The peers whose forwarding headers (x-forwarded-*, x-original-*) are believed. */
export interface TrustedProxies {
  trusts(ip: string): boolean;
}

/** The default of LATCHKEY_TRUSTED_PROXIES: the loopback addresses. */
export const LOOPBACK_PROXIES: readonly string[] = ["127.0.0.0/8", "::1/128"];

/**
 * Compiles LATCHKEY_TRUSTED_PROXIES once. An empty list trusts nobody (unlike a token's empty
 * allowed_cidrs, which allows everybody).
 */
export function trustedProxies(cidrs: readonly string[]): TrustedProxies {
  if (cidrs.length === 0) return { trusts: () => false };
  const compiled = compileCidrs(cidrs);
  return { trusts: (ip) => ip !== "" && ipAllowed(compiled, ip) };
}

/**
 * The end client's address behind `peer`. A forwarding header is believed only when the peer
 * that sent it is a trusted proxy; then its entries are walked from the right (nearest hop)
 * skipping trusted proxies, and the first untrusted address is the client (the leftmost when
 * every hop is trusted). An entry that is not an IP stops the walk: nothing left of it can be
 * trusted, so the last good hop is the answer. Returns "" when nothing usable is known.
 */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  proxies: TrustedProxies,
): string {
  if (forwardedFor === undefined || forwardedFor.trim() === "" || !proxies.trusts(peer)) {
    return peer;
  }
  const hops = forwardedFor.split(",");
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const ip = normalizeIp(stripPort((hops[i] ?? "").trim()));
    if (ip === undefined) return client;
    client = ip;
    if (!proxies.trusts(ip)) return ip;
  }
  return client;
}

/** `1.2.3.4:80` → `1.2.3.4`, `[::1]:80` → `::1`; anything else unchanged. */
function stripPort(hop: string): string {
  if (hop.startsWith("[")) {
    const end = hop.indexOf("]");
    return end < 0 ? hop : hop.slice(1, end);
  }
  const colon = hop.indexOf(":");
  return colon >= 0 && colon === hop.lastIndexOf(":") ? hop.slice(0, colon) : hop;
}
