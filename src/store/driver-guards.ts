import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** What every guarded file of postgres.js carries (scripts/patch-postgres.mjs writes it). */
const GUARD_MARK = "(scripts/patch-postgres.mjs)";

/**
 * The postgres.js files that lack latchkey's guards (scripts/patch-postgres.mjs, run by npm's
 * postinstall), as paths; empty when the driver is guarded. An install made with
 * `--ignore-scripts` skips them, and then a Postgres restart at the wrong moment ends the
 * process: main.ts refuses to start rather than run like that. `entry` is the driver's
 * CommonJS entry (cjs/src/index.js), for tests.
 */
export function unguardedDriverFiles(
  entry: string = createRequire(import.meta.url).resolve("postgres"),
): string[] {
  const root = join(dirname(entry), "..", "..");
  return ["src/connection.js", "cjs/src/connection.js"]
    .map((file) => join(root, file))
    .filter((path) => {
      try {
        return !readFileSync(path, "utf8").includes(GUARD_MARK);
      } catch {
        return true;
      }
    });
}
