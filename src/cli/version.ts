import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The version in latchkey's package.json, found by walking up from this file, so it is right
 * both from src/ (tests) and from dist/src/ (the built CLI).
 */
export function cliVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      const name: unknown =
        typeof pkg === "object" && pkg !== null ? Reflect.get(pkg, "name") : undefined;
      const version: unknown =
        typeof pkg === "object" && pkg !== null ? Reflect.get(pkg, "version") : undefined;
      if (name === "latchkey" && typeof version === "string") return version;
    } catch {
      // not here; look one directory up
    }
    dir = dirname(dir);
  }
  return "unknown";
}
