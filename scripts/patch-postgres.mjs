// Runs after `npm ci` / `npm install` (package.json "postinstall"): guards postgres.js 3.4.x
// against a crash of the whole process when a connection dies inside a transaction.
//
// What happens unpatched (reproduced by test/integration/batch-revoke-interrupted.test.ts):
// the server ends a session mid-transaction (a restart, pg_terminate_backend, a proxy
// dropping it); `closed()` rejects the running statement and sets the connection's socket to
// null; `sql.begin` then sends ROLLBACK on that connection, the small write is queued with
// setImmediate, and `nextWrite` calls `socket.write` on null. The TypeError is thrown from a
// timer, outside any promise, so no try/catch can catch it and Node exits.
// Upstream: porsager/postgres issues #1066, #1154 and #1208 (open; 3.4.9 is unguarded).
//
// The guard settles instead of writing: the queued statements are rejected with
// CONNECTION_CLOSED (what every other statement on that connection got), which the caller
// already handles as "storage unavailable". Remove this script once a postgres.js release
// guards nextWrite itself; it fails loudly if the driver's code no longer looks as expected.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MARK = "latchkey: guard against a closed socket";
const UNGUARDED = "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)\n";
const GUARDED = `  function nextWrite(fn) {
    if (socket === null) { // ${MARK} (scripts/patch-postgres.mjs)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)
`;

// The package's "exports" hide package.json from require.resolve: find it where npm put it.
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "node_modules", "postgres");
if (!existsSync(join(root, "package.json"))) {
  console.error(`patch-postgres: ${root} not found; nothing patched`);
  process.exit(0);
}
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
for (const file of ["src/connection.js", "cjs/src/connection.js", "cf/src/connection.js"]) {
  const path = join(root, file);
  const text = readFileSync(path, "utf8");
  if (text.includes(MARK)) continue;
  if (!text.includes(UNGUARDED)) {
    console.error(
      `patch-postgres: postgres ${version} ${file} does not contain the expected nextWrite; ` +
        "check whether the release guards it (then delete scripts/patch-postgres.mjs) or update the patch",
    );
    process.exit(1);
  }
  writeFileSync(path, text.replace(UNGUARDED, GUARDED));
}
