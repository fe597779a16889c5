import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CliEnvironment } from "./environment.js";

/** What `latchkey login` keeps between runs. */
export interface SavedLogin {
  readonly token?: string;
  readonly server?: string;
  /**
   * The CA bundle's path (never its contents) trusted for `server`. Client certificate and
   * key are not saved: they come from flags or LATCHKEY_CLIENT_CERT/KEY on every run.
   */
  readonly caCert?: string;
}

/** The file `latchkey login` writes, under the CLI's config directory. */
export function configFile(dir: string): string {
  return join(dir, "config.json");
}

/** The saved login; an absent or unreadable file is an empty one. */
export function readSaved(dir: string): SavedLogin {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(configFile(dir), "utf8"));
  } catch {
    return {};
  }
  if (typeof parsed !== "object" || parsed === null) return {};
  const text = (key: string): string | undefined => {
    const v: unknown = Reflect.get(parsed, key);
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const token = text("token");
  const server = text("server");
  const caCert = text("caCert");
  return {
    ...(token === undefined ? {} : { token }),
    ...(server === undefined ? {} : { server }),
    ...(caCert === undefined ? {} : { caCert }),
  };
}

/**
 * Stores the caller token, server and CA path for later runs. The directory is 0700 and the file 0600,
 * because the token is a live credential.
 * @returns the path written, for the user to see.
 */
export function saveLogin(dir: string, login: SavedLogin): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(configFile(dir), `${JSON.stringify(login)}\n`, { mode: 0o600 });
  return configFile(dir);
}

/** Forgets the saved login; a missing file is not an error, so logout is idempotent. */
export function removeSavedLogin(dir: string): void {
  rmSync(configFile(dir), { force: true });
}

/**
 * The one place that states which caller token wins: `--token`, else LATCHKEY_TOKEN, else
 * the file written by `latchkey login`.
 */
export function callerToken(flag: string | undefined, env: CliEnvironment): string | undefined {
  return flag ?? env.token ?? readSaved(env.configDir).token;
}
