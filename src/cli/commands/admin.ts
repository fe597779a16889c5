import { userInfo } from "node:os";
import { ConfigError, loadConfig } from "../../config.js";
import { tokenMessage } from "../../services/admin/mappers.js";
import { mintBreakGlassToken } from "../../services/break-glass.js";
import { connect } from "../../store/db.js";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../store/embedded.js";
import { embeddedExists, runningEmbeddedUrl } from "../../store/embedded-running.js";
import { MIGRATIONS_DIR, pendingMigrations } from "../../store/migrate.js";
import { UsageError } from "../errors.js";
import { emit, secretLine, tokenJson, tokenTable } from "../output.js";
import type { Command, Context } from "./command.js";

/** The database the server uses: DATABASE_URL, the running embedded one, or a private start. */
async function openDatabase(
  databaseUrl: string | undefined,
  dataDir: string,
): Promise<{ url: string; embedded?: EmbeddedPostgres }> {
  if (databaseUrl !== undefined) return { url: databaseUrl };
  const running = await runningEmbeddedUrl(dataDir);
  if (running !== undefined) return { url: running };
  if (!embeddedExists(dataDir)) {
    throw new UsageError(
      `admin bootstrap: no database under ${dataDir}; set DATABASE_URL or LATCHKEY_DATA_DIR to the server's`,
    );
  }
  const embedded = await startEmbeddedPostgres(dataDir, () => {});
  return { url: embedded.url, embedded };
}

async function bootstrap(ctx: Context): Promise<void> {
  const org = ctx.flags.string("org");
  if (org === undefined || org === "") throw new UsageError("admin bootstrap: --org is required");
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  const db = await openDatabase(config.databaseUrl, config.dataDir);
  const sql = connect(db.url, { max: 1 });
  try {
    const pending = await pendingMigrations(sql, MIGRATIONS_DIR);
    if (pending.length > 0) {
      throw new UsageError(
        `admin bootstrap: migrations pending (${pending.join(", ")}); start latchkey once first`,
      );
    }
    const { row, secret } = await mintBreakGlassToken(sql, {
      orgId: org,
      prefix: config.tokenPrefix,
      operator: userInfo().username,
    });
    const token = tokenMessage(row, Date.now());
    emit(ctx.format, { token: tokenJson(token), secret }, () =>
      [tokenTable([token]), secretLine(secret)].join("\n"),
    );
  } finally {
    await sql.end({ timeout: 2 });
    await db.embedded?.stop();
  }
}

/** `admin bootstrap`: the documented break-glass. */
export const adminCommands: readonly Command[] = [
  {
    name: "admin bootstrap",
    arity: [0, 0],
    summary: "break-glass: mint a new platform admin token straight in the database",
    flags: ["org"],
    details:
      "Run where the server's database is reachable: with the server's DATABASE_URL, or in its\n" +
      "directory (LATCHKEY_DATA_DIR, default ./.latchkey) for the embedded Postgres, running or\n" +
      "not. Needs no token. Mints a platform admin token (holding * and platform:admin) in --org\n" +
      "and writes an audit row (action token.create, method break-glass). Use it to create\n" +
      "proper admin tokens, then revoke it.",
    run: bootstrap,
  },
];
