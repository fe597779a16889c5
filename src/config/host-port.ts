import { isIP } from "node:net";
import type { ListenAddress } from "./types.js";

/** Parses `host:port`, `[v6]:port` or `:port` (all interfaces); port 0 picks a free one. */
export function parseHostPort(raw: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const v6 = m[1];
  if (v6 !== undefined) return isIP(v6) === 6 ? { host: v6, port } : undefined;
  const host = m[2] ?? "";
  if (host === "") return { host: "0.0.0.0", port };
  if (isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host)) return undefined;
  return { host, port };
}

/** Formats an address for logs and for grpc-js `bindAsync` (`[::1]:50051`). */
export function formatHostPort(a: ListenAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
