import { once } from "node:events";
import { decodeCopyText } from "./copy-text.js";
import type { Sql } from "./db.js";
import { isRetryableDbError, RetryableError } from "./pg-errors.js";

// The two statements that write a batch of verification audit rows (AuditWriter decides which
// and when, and retries): COPY, and multi-row INSERT as its fallback.

/**
 * Writes one batch of COPY text by COPY … FROM STDIN on a reserved connection, bounded by
 * `timeoutMs` (a RetryableError when the connection or the completion does not come). A
 * connection that failed is not handed back (`onAbandoned` counts it).
 */
export async function copyAuditBatch(
  sql: Sql,
  text: Buffer,
  timeoutMs: number,
  onAbandoned: () => void,
): Promise<void> {
  // COPY runs on a reserved connection: on a pooled one postgres.js may pipeline another
  // query onto the connection while it is in copy-in mode, and Postgres then drops the
  // connection ("protocol synchronization was lost"), failing verifications that shared it.
  const reserving = sql.reserve();
  const reserved = await bounded(reserving, timeoutMs, "reserving a connection for COPY");
  let reusable = false;
  try {
    const stream = await reserved`
      COPY audit_events (id, time, org_id, actor_id, action, token_id, decision, code,
                         client_ip, method, path, request_id, details) FROM STDIN`.writable();
    stream.end(text);
    // postgres.js resolves the COPY when the server asks for data and reports completion
    // only through the stream's finish. Unpatched, a connection that died after the data was
    // sent ended the stream neither way, and could later "finish" it for a COPY that was
    // rolled back (scripts/patch-postgres.mjs now fails the stream instead). Still bounded,
    // and retried, for a completion that never comes.
    await bounded(once(stream, "finish"), timeoutMs, "COPY completion");
    reusable = true;
  } catch (err) {
    // A server error leaves the connection usable; a connection error or a timeout may not.
    reusable = !(err instanceof RetryableError) && !isRetryableDbError(err);
    throw err;
  } finally {
    // postgres.js puts a released connection back among the open ones even when it closed
    // meanwhile, and the next query on it throws from a timer (an uncaught TypeError, which
    // kills the process). A connection that failed is left to the pool's own reconnect
    // (a closed one is already back in its closed queue), at worst one wedged slot leaked.
    if (reusable) reserved.release();
    else onAbandoned();
  }
}

/**
 * The INSERT fallback: the batch's COPY text decoded back into rows. Rows already in Postgres
 * (a retried batch that had committed) are skipped.
 */
export async function insertAuditBatch(sql: Sql, text: Buffer): Promise<void> {
  const values = decodeCopyText(text.toString("utf8")).map((f) => ({
    id: f[0] ?? "",
    time: new Date(f[1] ?? 0),
    org_id: f[2] ?? "",
    actor_id: f[3] ?? "",
    action: f[4] ?? "",
    token_id: f[5] ?? "",
    decision: Number(f[6]),
    code: f[7] ?? "",
    client_ip: f[8] ?? "",
    method: f[9] ?? "",
    path: f[10] ?? "",
    request_id: f[11] ?? "",
    details: f[12] ?? null,
  }));
  // 13 columns × 5 000 rows stays under Postgres' 65 535 parameters.
  for (let i = 0; i < values.length; i += 5_000) {
    await sql`INSERT INTO audit_events ${sql(values.slice(i, i + 5_000))} ON CONFLICT DO NOTHING`;
  }
}

/**
 * `p`, or a RetryableError after `ms`. A value that arrives late is a reserved connection
 * nobody will use: it is released then (close-safe: it was open when it arrived).
 */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new RetryableError(`${what} did not complete in ${ms} ms`));
    }, ms);
  });
  p.then(
    (v) => {
      if (late && typeof v === "function" && "release" in v && typeof v.release === "function") {
        v.release();
      }
    },
    () => {},
  );
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
