import type postgres from "postgres";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { MIGRATIONS_DIR, migrate } from "../../src/store/migrate.js";
import { seedToken } from "../../test/helpers/seed.js";

/** A seeded token: its id and its plain secret. */
export type Seeded = { id: string; secret: string };

/**
 * Migrates the bench database and returns a seeder of personal tokens in org `bench` (prefix
 * `lk`), the way the admin service stores them; shared by every bench program.
 */
export async function benchSeeder(
  sql: postgres.Sql,
): Promise<(permissions: string[]) => Promise<Seeded>> {
  await migrate(sql, MIGRATIONS_DIR, () => {});
  return (permissions) =>
    seedToken(sql, "lk", {
      name: "bench",
      type: TokenType.PERSONAL,
      orgId: "bench",
      permissions,
      createdBy: "bench",
      expireTime: null,
    });
}
