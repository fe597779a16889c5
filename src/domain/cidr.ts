import { createRequire } from "node:module";

// ipaddr.js is CommonJS with `export =`; without esModuleInterop the typed way to load it is
// require (a namespace import has no named exports at run time).
const ipaddr = createRequire(import.meta.url)("ipaddr.js") as typeof import("ipaddr.js");

/** One parsed address: IPv4 as an unsigned 32-bit number, IPv6 as eight 16-bit groups. */
type Address = { readonly v: 4; readonly n: number } | { readonly v: 6; readonly parts: number[] };

const DOTTED_RE = /^(?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3}$/;
const PREFIX_LEN_RE = /^(?:0|[1-9]\d{0,2})$/;
const MAX_INPUT = 64;

/** Strict dotted quad: four decimal octets, no leading zeros (`010` is octal to some parsers). */
function parseV4(s: string): number | undefined {
  if (!DOTTED_RE.test(s)) return undefined;
  let n = 0;
  let octet = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (octet > 255) return undefined;
      n = n * 256 + octet;
      octet = 0;
    } else {
      octet = octet * 10 + (c - 0x30);
    }
  }
  return n;
}

function v4FromGroups(hi: number, lo: number): number {
  return hi * 65536 + lo;
}

const HEX_GROUP_RE = /^[0-9A-Fa-f]{1,4}$/;

function parseGroups(text: string, out: number[]): boolean {
  if (text.length === 0) return true;
  for (const g of text.split(":")) {
    if (!HEX_GROUP_RE.test(g)) return false;
    out.push(Number.parseInt(g, 16));
  }
  return true;
}

/**
 * Strict IPv6 (RFC 4291 text forms): eight groups of 1-4 hex digits, one `::` at most, an
 * optional trailing dotted quad (itself strict), no zone id. Written by hand rather than with
 * ipaddr.js because it runs per verification and ipaddr.js reads `::a.b.c.d` as IPv4-mapped.
 */
function parseV6(s: string): number[] | undefined {
  if (s.length < 2 || s.length > MAX_INPUT) return undefined;
  let text = s;
  let v4Tail: number | undefined;
  const lastColon = s.lastIndexOf(":");
  if (lastColon < 0) return undefined;
  if (s.indexOf(".", lastColon) >= 0) {
    v4Tail = parseV4(s.slice(lastColon + 1));
    if (v4Tail === undefined) return undefined;
    // Keep the separator: "::1.2.3.4" → "::", "1::1.2.3.4" → "1::", "1:2:…:6:1.2.3.4" → "…:6:".
    text = s.slice(0, lastColon + 1);
    if (text.endsWith(":") && !text.endsWith("::")) text = text.slice(0, -1);
  }
  const room = v4Tail === undefined ? 8 : 6;
  const head: number[] = [];
  const tail: number[] = [];
  const gap = text.indexOf("::");
  if (gap >= 0) {
    if (text.indexOf("::", gap + 1) >= 0) return undefined;
    if (!parseGroups(text.slice(0, gap), head) || !parseGroups(text.slice(gap + 2), tail)) {
      return undefined;
    }
    if (head.length + tail.length > room - 1) return undefined;
  } else {
    if (!parseGroups(text, head) || head.length !== room) return undefined;
  }
  const parts = head;
  while (parts.length + tail.length < room) parts.push(0);
  for (const g of tail) parts.push(g);
  if (v4Tail !== undefined) parts.push(v4Tail >>> 16, v4Tail & 0xffff);
  return parts;
}

function isMapped(parts: readonly number[]): boolean {
  return (
    parts[0] === 0 &&
    parts[1] === 0 &&
    parts[2] === 0 &&
    parts[3] === 0 &&
    parts[4] === 0 &&
    parts[5] === 0xffff
  );
}

/** Parses one address; IPv4-mapped IPv6 becomes IPv4, since that is what the client is. */
function parseAddress(s: string): Address | undefined {
  if (s.length === 0 || s.length > MAX_INPUT) return undefined;
  if (s.includes(":")) {
    const parts = parseV6(s);
    if (parts === undefined) return undefined;
    if (isMapped(parts)) return { v: 4, n: v4FromGroups(parts[6] ?? 0, parts[7] ?? 0) };
    return { v: 6, parts };
  }
  const n = parseV4(s);
  return n === undefined ? undefined : { v: 4, n };
}

function v4Mask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

function groupMask(prefix: number, group: number): number {
  const bits = Math.min(16, Math.max(0, prefix - 16 * group));
  return bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
}

function v4Text(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function v6Text(parts: readonly number[]): string {
  return new ipaddr.IPv6(parts.slice()).toRFC5952String();
}

function addressText(a: Address): string {
  return a.v === 4 ? v4Text(a.n) : v6Text(a.parts);
}

/**
 * Canonical form of an allowed-IP entry, as Postgres `cidr` will store it: an address becomes
 * a /32 or /128, host bits are cleared (`10.1.2.3/8` → `10.0.0.0/8`, since `cidr` refuses
 * them), IPv6 is compressed lower case, IPv4-mapped IPv6 becomes IPv4. Undefined for anything
 * ambiguous or malformed (out-of-range prefix, leading zeros, zone ids, surrounding spaces).
 */
export function normalizeCidr(input: string): string | undefined {
  if (input.length === 0 || input.length > MAX_INPUT + 4) return undefined;
  const slash = input.indexOf("/");
  const addrText = slash < 0 ? input : input.slice(0, slash);
  if (addrText.includes(":")) {
    const parts = parseV6(addrText);
    if (parts === undefined) return undefined;
    let prefix = 128;
    if (slash >= 0) {
      const p = input.slice(slash + 1);
      if (!PREFIX_LEN_RE.test(p)) return undefined;
      prefix = Number(p);
      if (prefix > 128) return undefined;
    }
    const net = parts.map((g, i) => g & groupMask(prefix, i));
    if (prefix >= 96 && isMapped(net)) {
      return `${v4Text(v4FromGroups(net[6] ?? 0, net[7] ?? 0))}/${prefix - 96}`;
    }
    return `${v6Text(net)}/${prefix}`;
  }
  const n = parseV4(addrText);
  if (n === undefined) return undefined;
  let prefix = 32;
  if (slash >= 0) {
    const p = input.slice(slash + 1);
    if (!PREFIX_LEN_RE.test(p)) return undefined;
    prefix = Number(p);
    if (prefix > 32) return undefined;
  }
  return `${v4Text((n & v4Mask(prefix)) >>> 0)}/${prefix}`;
}

/**
 * Canonical text of one client address (no prefix), so that audit rows and `last_used_ip`
 * compare equal however a proxy spelled the address; IPv4-mapped IPv6 becomes IPv4.
 */
export function normalizeIp(input: string): string | undefined {
  const a = parseAddress(input);
  return a === undefined ? undefined : addressText(a);
}

interface V6Range {
  readonly net: readonly number[];
  readonly masks: readonly number[];
}

/** A token's allowed IPs prepared once for the verification hot path. */
export interface CompiledCidrs {
  /** True when the list was empty: any client, even one with no address. */
  readonly unrestricted: boolean;
  /** IPv4 ranges as [network, mask] pairs of unsigned 32-bit numbers. */
  readonly v4: Uint32Array;
  readonly v6: readonly V6Range[];
}

/**
 * Compiles a token's allowed CIDRs once (when it enters the cache) into numeric ranges. An entry
 * that does not parse is dropped but still counts as a restriction: a list holding only bad
 * entries allows nobody rather than everybody (fail closed).
 */
export function compileCidrs(cidrs: readonly string[]): CompiledCidrs {
  const v4: number[] = [];
  const v6: V6Range[] = [];
  for (const entry of cidrs) {
    const canonical = normalizeCidr(entry);
    if (canonical === undefined) continue;
    const slash = canonical.indexOf("/");
    const prefix = Number(canonical.slice(slash + 1));
    const addr = parseAddress(canonical.slice(0, slash));
    if (addr === undefined) continue;
    if (addr.v === 4) {
      const mask = v4Mask(prefix);
      v4.push((addr.n & mask) >>> 0, mask);
    } else {
      const masks = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => groupMask(prefix, i));
      v6.push({ net: addr.parts.map((g, i) => g & (masks[i] ?? 0)), masks });
    }
  }
  return { unrestricted: cidrs.length === 0, v4: Uint32Array.from(v4), v6 };
}

/**
 * Whether a client may use a token with these allowed IPs (VERIFY_CODE_IP_NOT_ALLOWED). A
 * restricted token with a missing or unparseable client address is refused. An IPv4 client
 * seen through a dual-stack socket (`::ffff:a.b.c.d`) matches IPv4 ranges. Address families
 * are otherwise kept apart, as Postgres does: `::/0` does not admit IPv4 clients.
 */
export function ipAllowed(compiled: CompiledCidrs, clientIp: string): boolean {
  if (compiled.unrestricted) return true;
  const a = parseAddress(clientIp);
  if (a === undefined) return false;
  if (a.v === 4) {
    const r = compiled.v4;
    for (let i = 0; i + 1 < r.length; i += 2) {
      if ((a.n & (r[i + 1] ?? 0)) >>> 0 === r[i]) return true;
    }
    return false;
  }
  for (const range of compiled.v6) {
    let match = true;
    for (let g = 0; g < 8; g++) {
      const mask = range.masks[g] ?? 0;
      if (mask === 0) break;
      if (((a.parts[g] ?? 0) & mask) !== range.net[g]) {
        match = false;
        break;
      }
    }
    if (match) return true;
  }
  return false;
}
