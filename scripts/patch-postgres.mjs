// Runs after `npm ci` / `npm install` (package.json "postinstall"): guards postgres.js 3.4.x
// against two crashes of the whole process, one lost COPY and one misdelivered error when a
// connection dies at the wrong moment.
//
// 1. A closed socket inside a transaction (reproduced by
// test/integration/batch-revoke-interrupted.test.ts): the server ends a session
// mid-transaction (a restart, pg_terminate_backend, a proxy dropping it); `closed()` rejects the
// running statement and sets the connection's socket to null; `sql.begin` then sends ROLLBACK
// on that connection, the small write is queued with setImmediate, and `nextWrite` calls
// `socket.write` on null. The TypeError is thrown from a timer, outside any promise, so no
// try/catch can catch it and Node exits. Upstream: porsager/postgres issues #1066, #1154 and
// #1208 (open; 3.4.9 is unguarded). The guard settles instead of writing: the queued statements
// are rejected with CONNECTION_CLOSED (what every other statement on that connection got),
// which the caller already handles as "storage unavailable".
//
// 2. The array-types query (reproduced by test/integration/pg-fetch-types.test.ts): every new
// connection first runs `select b.oid, b.typarray from pg_catalog.pg_type …` (fetch_types),
// and `ReadyForQuery` discards the promise of `fetchArrayTypes()`. When the connection dies
// during that query (Postgres stopping while the pool reconnects; the audit writer reserving a
// connection for COPY) or the server cancels it, the query rejects and nothing handles it: an
// unhandled rejection, which ends Node. Upstream: porsager/postgres issues #279, #1192, #1205,
// #1223 (open; 3.4.9 is unguarded). The guard handles that one promise and nothing else: the
// failure already reaches the statements that wait on the connection through its own error
// path (CONNECTION_CLOSED to queued ones, the ErrorResponse to the first one), the pool
// reconnects as for any closed connection, and the parsers the query installs are shared by
// the whole pool, so the next connection that gets through installs them. (3.4.9 then also
// loses a `sql.reserve()` that was waiting for that connection: it never settles. The audit
// writer bounds that wait and retries; see src/store/audit-writer.ts.)
// `fetch_types: false` is not an alternative: array parameters (`${ids}::text[]`) then fail
// with "malformed array literal" and text[] columns come back as strings.
//
// 3. A COPY … FROM STDIN whose connection dies after the data was sent (reproduced by
// test/integration/audit-writer.test.ts): ending the writable stream sends CopyDone and keeps
// the stream's final callback until the server's CommandComplete. A connection error reached
// neither (the stream was already detached), so the stream never finished nor failed, and the
// callback stayed on the connection: when the pool reopened that connection, the first
// CommandComplete of any statement on it (the array-types query) called it, and the stream
// reported "finish" for a COPY the server had rolled back. The audit writer took that as written
// and lost the batch. The guard fails the callback with the connection's error, so the stream
// emits "error" and the writer retries; a server error on the COPY (bad data) now arrives the
// same way instead of never.
//
// 4. A session the server ends (pg_terminate_backend, a restart, an idle-session timeout;
// reproduced by test/integration/pg-terminated-session.test.ts): the server sends a FATAL
// ErrorResponse and closes the socket without the ReadyForQuery that would deliver it. The
// running statement gets CONNECTION_CLOSED, but the ErrorResponse stayed on the connection and
// the first ReadyForQuery of its next session (the reconnect's) delivered it to whatever ran
// first there: a later, unrelated statement failed with the dead session's 57P01, and the
// reconnect skipped its array-types query. Upstream: porsager/postgres #1223 (open). The guard
// drops a closed session's pending ErrorResponse with the socket.
//
// Remove this script once a postgres.js release guards all four itself; it fails loudly if the
// driver's code no longer looks as expected.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MARK = "latchkey: guard against a closed socket";
const TYPES_MARK = "latchkey: the array-types query may fail";
const COPY_MARK = "latchkey: a COPY cut short fails its stream";
const COPYFAIL_MARK = "latchkey: CopyFail only on a live socket";
const SESSION_MARK = "latchkey: a closed session's error stays with it";
const GUARDS = [
  {
    mark: MARK,
    unguarded: "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)\n",
    guarded: `  function nextWrite(fn) {
    if (socket === null) { // ${MARK} (scripts/patch-postgres.mjs)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)
`,
  },
  {
    mark: TYPES_MARK,
    unguarded: "        return fetchArrayTypes()\n",
    guarded: `        // ${TYPES_MARK} (scripts/patch-postgres.mjs); the connection's own error path reports it
        return fetchArrayTypes().catch(() => {})
`,
  },
  {
    mark: COPY_MARK,
    unguarded: "  function errored(err) {\n    stream && (stream.destroy(err), stream = null)\n",
    guarded: `  function errored(err) {
    stream && (stream.destroy(err), stream = null)
    final && (final(err), final = null) // ${COPY_MARK} (scripts/patch-postgres.mjs)
`,
  },
  {
    // Failing the callback destroys the stream, whose destroy sends CopyFail: on a connection
    // whose socket is already gone that threw a TypeError out of the socket's close handler.
    mark: COPYFAIL_MARK,
    count: 2, // CopyInResponse and CopyBothResponse
    unguarded: "        socket.write(b().f().str(error + b.N).end())\n",
    guarded: `        socket && socket.write(b().f().str(error + b.N).end()) // ${COPYFAIL_MARK}
`,
  },
  {
    mark: SESSION_MARK,
    unguarded: "    socket.removeAllListeners()\n    socket = null\n\n    if (initial)\n",
    guarded: `    socket.removeAllListeners()
    socket = null
    errorResponse = null // ${SESSION_MARK} (scripts/patch-postgres.mjs)

    if (initial)
`,
  },
];

// The package's "exports" hide package.json from require.resolve: find it where npm put it.
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "node_modules", "postgres");
if (!existsSync(join(root, "package.json"))) {
  // postgres is a production dependency: an install without it is broken, not unpatched.
  console.error(`patch-postgres: ${root} not found; nothing patched`);
  process.exit(1);
}
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
for (const file of ["src/connection.js", "cjs/src/connection.js", "cf/src/connection.js"]) {
  const path = join(root, file);
  let text = readFileSync(path, "utf8");
  for (const { mark, count = 1, unguarded, guarded } of GUARDS) {
    if (text.includes(mark)) continue;
    if (text.split(unguarded).length !== count + 1) {
      console.error(
        `patch-postgres: postgres ${version} ${file} does not contain the expected code ${count}× ` +
          `for "${mark}"; check whether the release guards it (then drop that guard from ` +
          "scripts/patch-postgres.mjs) or update the patch",
      );
      process.exit(1);
    }
    text = text.replaceAll(unguarded, guarded);
  }
  writeFileSync(path, text);
}
