import { readSaved } from "./config-file.js";
import type { CliEnvironment } from "./environment.js";
import { UsageError } from "./errors.js";

/** Where the CLI calls when nothing says otherwise: the gRPC listener's default address. */
export const DEFAULT_SERVER = "http://127.0.0.1:50051";

/**
 * Accepts what people type for a gRPC address — `host:port`, `http://host:port`,
 * `https://host:port` — and returns the base URL the transport needs; anything else is a usage
 * error naming where the value came from.
 */
export function normalizeServer(value: string, source: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`${source}: expected host:port or http(s)://host:port, got "${value}"`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    throw new UsageError(`${source}: expected host:port or http(s)://host:port, got "${value}"`);
  }
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") {
    throw new UsageError(`${source}: give only the scheme, host and port, got "${value}"`);
  }
  return url.origin;
}

/**
 * The server a command calls: `--server`, else LATCHKEY_SERVER, else the one `login` saved,
 * else the default.
 */
export function resolveServer(flag: string | undefined, env: CliEnvironment): string {
  if (flag !== undefined) return normalizeServer(flag, "--server");
  if (env.server !== undefined) return normalizeServer(env.server, "LATCHKEY_SERVER");
  const saved = readSaved(env.configDir).server;
  if (saved !== undefined) return normalizeServer(saved, "the saved server (latchkey login)");
  return DEFAULT_SERVER;
}
