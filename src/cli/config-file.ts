import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CliEnvironment } from "./environment.js";

/** The file `latchkey login` writes, under the CLI's config directory. */
export function configFile(dir: string): string {
  return join(dir, "config.json");
}

function savedToken(dir: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(configFile(dir), "utf8"));
    if (typeof parsed === "object" && parsed !== null && "token" in parsed) {
      const token = (parsed as { token: unknown }).token;
      return typeof token === "string" && token !== "" ? token : undefined;
    }
  } catch {
    // No config file yet, or an unreadable one: no saved token.
  }
  return undefined;
}

/**
 * Stores the caller token for later runs. The directory is 0700 and the file 0600, because
 * the token is a live credential.
 * @returns the path written, for the user to see.
 */
export function saveToken(dir: string, token: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(configFile(dir), `${JSON.stringify({ token })}\n`, { mode: 0o600 });
  return configFile(dir);
}

/** Forgets the saved token; a missing file is not an error, so logout is idempotent. */
export function removeSavedToken(dir: string): void {
  rmSync(configFile(dir), { force: true });
}

/**
 * The one place that states which caller token wins: `--token`, else LATCHKEY_TOKEN, else
 * the file written by `latchkey login`.
 */
export function callerToken(flag: string | undefined, env: CliEnvironment): string | undefined {
  return flag ?? env.token ?? savedToken(env.configDir);
}
