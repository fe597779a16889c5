import { randomBytes } from "node:crypto";
import postgres from "postgres";

/**
 * The one Postgres handle type the store passes around. Column names come back exactly as in
 * the schema (snake_case; no transform). int8 columns (`use_count`, `max_uses`, `count(*)`)
 * come back as strings, postgres.js's default, because a JS number silently loses precision
 * past 2^53; convert where the value is known to be small. bytea comes back as a Buffer,
 * timestamptz as a Date.
 */
export type Sql = postgres.Sql;

/** Options of {@link connect}; everything else is fixed so every instance behaves alike. */
export interface ConnectOptions {
  /** Pool size. Default 10: verification is served from cache, the pool serves admin calls and batched writes. */
  readonly max?: number;
  /** How long opening a connection may take before the query fails (seconds). Default 10. */
  readonly connectTimeoutSeconds?: number;
  /** Server notices (e.g. "relation already exists, skipping"). Default: dropped. */
  readonly onnotice?: (notice: postgres.Notice) => void;
}

/**
 * Opens the process's one connection pool. Connections open lazily, so this never fails; the
 * first query (or {@link ping}) does. An unreachable server fails a query within the connect
 * timeout instead of hanging.
 */
export function connect(url: string, opts: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    idle_timeout: 60,
    connect_timeout: opts.connectTimeoutSeconds ?? 10,
    onnotice: opts.onnotice ?? (() => {}),
    connection: { application_name: "latchkey" },
    // postgres.js waits 3^n/100 s (up to 20 s) before reconnecting after n failed attempts, so
    // after a few seconds of outage the pool stayed away long after Postgres was back. Capped
    // at 0.5 s: calls succeed within about that of Postgres accepting connections again.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
  });
}

/**
 * For /readyz and health: true when Postgres answers within `timeoutMs`. Never throws, so a
 * probe can call it without a try block; a slow answer counts as down (the query is cancelled).
 */
export async function ping(sql: Sql, timeoutMs: number): Promise<boolean> {
  const query = sql`select 1 as ok`;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([query.then(() => true), timeout]).then((ok) => {
      if (!ok) {
        // The query may still be queued behind a busy pool; don't let it linger.
        query.cancel();
        query.catch(() => {});
      }
      return ok;
    });
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Start-up's first query, with a deadline: postgres.js keeps queries queued while it retries a
 * connection that was accepted but never answered (a firewall, a wrong host behind a proxy), so
 * its connect_timeout alone can hang a start silently. Throws a CONNECT_TIMEOUT error naming
 * `where` (host:port/db, never the password) when nothing answered within `timeoutMs`.
 */
export async function waitReachable(sql: Sql, timeoutMs: number, where: string): Promise<void> {
  const query = sql`select 1 as ok`;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        Object.assign(
          new Error(`Postgres at ${where} did not answer within ${timeoutMs / 1_000} s`),
          { code: "CONNECT_TIMEOUT" },
        ),
      );
    }, timeoutMs);
  });
  try {
    await Promise.race([query, timeout]);
  } finally {
    clearTimeout(timer);
    query.catch(() => {});
  }
}

/** postgres.js and socket codes that mean "the server could not be reached or went away". */
const CONNECTION_CODES = new Set([
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** SQLSTATEs of a server that is shutting down, starting, or dropped the connection. */
const UNAVAILABLE_STATES = new Set(["57P01", "57P02", "57P03", "53300"]);

/**
 * True when `err` (or one of its causes) says Postgres is unreachable rather than that it
 * refused the data: the error mapper answers UNAVAILABLE (clients retry) instead of INTERNAL,
 * and writers keep their batches for a retry.
 */
export function isConnectionError(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === "object" && e !== null; depth++) {
    const code = "code" in e ? String(e.code) : "";
    if (CONNECTION_CODES.has(code)) return true;
    if (
      e instanceof postgres.PostgresError &&
      (UNAVAILABLE_STATES.has(code) || code.startsWith("08"))
    ) {
      return true;
    }
    e = "cause" in e ? e.cause : undefined;
  }
  return false;
}

function monthStart(year: number, month: number): Date {
  return new Date(Date.UTC(year, month, 1));
}

/**
 * Makes sure the audit partitions for the month of `now` and the next month exist, so audit
 * rows never land in the DEFAULT partition (which would make creating that month's partition
 * scan and fail). Called at start and daily; safe to run from many instances at once. Failures
 * are logged and skipped, never thrown: a missing partition only sends rows to DEFAULT, which
 * must not stop the service from starting.
 */
export async function ensureAuditPartitions(
  sql: Sql,
  now: Date,
  log: (msg: string) => void = () => {},
): Promise<void> {
  const months = [
    monthStart(now.getUTCFullYear(), now.getUTCMonth()),
    monthStart(now.getUTCFullYear(), now.getUTCMonth() + 1),
  ];
  for (const at of months) {
    const label = at.toISOString().slice(0, 7);
    try {
      await sql.begin(async (tx) => {
        // Creating a partition locks audit_events exclusively: don't queue behind a long query
        // (and make every audit insert queue behind us) for more than a moment.
        await tx`set local lock_timeout = '5s'`;
        await tx`select latchkey_ensure_audit_partition(${at})`;
      });
    } catch (err) {
      const code = err instanceof postgres.PostgresError ? err.code : "";
      if (code === "23514") {
        log(
          `audit partition ${label} not created: the DEFAULT partition already holds rows of that month; move them out (see docs/storage.md)`,
        );
      } else if (code === "55P03") {
        log(`audit partition ${label} not created: lock timeout, will retry`);
      } else if (code === "42P07" || code === "23505") {
        // Another instance created it between our check and our CREATE: that is success.
      } else {
        throw err;
      }
    }
  }
}

/**
 * A secret shared by every instance on this database (e.g. the page-token signing key): created
 * once with 32 random bytes by whichever instance asks first, then read by all. Two instances
 * asking at once get the same key because the INSERT yields to the one that won.
 */
export async function serverKey(sql: Sql, name: string): Promise<Buffer> {
  await sql`
    insert into settings (key, value) values (${name}, ${randomBytes(32)})
    on conflict (key) do nothing`;
  const rows = await sql<{ value: Buffer }[]>`select value from settings where key = ${name}`;
  const value = rows[0]?.value;
  if (value === undefined || value.length !== 32) {
    throw new Error(`settings row ${name} is missing or not 32 bytes`);
  }
  return value;
}
