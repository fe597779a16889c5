import { normalizeIp } from "../domain/cidr.js";

/**
 * The client address a listener saw, as audit rows, `last_used_ip` and CIDR rules want it: the
 * canonical text of domain/cidr's normalizeIp (IPv4-mapped IPv6 such as `::ffff:1.2.3.4`, what a
 * dual-stack socket reports, becomes plain IPv4), or "" for anything that is not an IP. The HTTP
 * listener passes `socket.remoteAddress` here; the gRPC listener goes through {@link peerIp}.
 */
export function socketIp(address: string): string {
  return normalizeIp(address) ?? "";
}

/**
 * Turns a gRPC peer string into a bare IP. grpc-js writes `1.2.3.4:5678` or `::1:5678` (IPv6
 * without brackets, so the port is always cut at the last colon first), other stacks
 * `ipv4:1.2.3.4:5678` or `ipv6:[::1]:5678`.
 */
export function peerIp(peer: string): string {
  let s = peer;
  if (s.startsWith("ipv4:") || s.startsWith("ipv6:")) s = s.slice(5);
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    return socketIp(end < 0 ? s.slice(1) : s.slice(1, end));
  }
  const colon = s.lastIndexOf(":");
  const host = colon < 0 ? undefined : normalizeIp(s.slice(0, colon));
  return host ?? socketIp(s);
}
