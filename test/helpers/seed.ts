import { mint, storedSecret } from "../../src/domain/mint.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import type { Sql } from "../../src/store/db.js";
import { createTokenRepo, type NewToken } from "../../src/store/token-repo.js";
import { PREFIX } from "./latchkey-server.js";

/** A token to seed: what the store takes, minus what minting decides (id, secret, hint). */
export type SeedSpec = Omit<
  NewToken,
  "id" | "secretHash" | "displayHint" | "createTime" | "type"
> & {
  readonly type: TokenType;
  /** Use this secret instead of a fresh one (e.g. one that was verified before it existed). */
  readonly secret?: string;
  /** Facts a real token only reaches by use or revocation, written after the insert. */
  readonly useCount?: number;
  readonly revokeTime?: Date | null;
};

/**
 * Seeds one token the way the admin service writes it: minted by domain/mint (SHA-256 of the
 * secret and the service's display hint, never the secret) and inserted by the token
 * repository. Returns its id and plain secret. Shared by the tests and the bench.
 */
export async function seedToken(
  sql: Sql,
  prefix: string,
  spec: SeedSpec,
): Promise<{ id: string; secret: string }> {
  const { secret: given, useCount, revokeTime, ...fields } = spec;
  const { secret: fresh, ...minted } = mint(prefix, fields.type);
  const secret = given ?? fresh;
  const stored = given === undefined ? minted : { ...minted, ...storedSecret(given) };
  await createTokenRepo(sql).insert([{ ...stored, ...fields, createTime: new Date() }]);
  if ((useCount ?? 0) !== 0 || (revokeTime ?? null) !== null) {
    await sql`
      UPDATE tokens SET use_count = ${useCount ?? 0}, revoke_time = ${revokeTime ?? null}
      WHERE id = ${minted.id}`;
  }
  return { id: minted.id, secret };
}

/**
 * Seeds many tokens at once (multi-row INSERTs of 1,000) the way seedToken does one, for tests
 * and benchmarks that need thousands of rows quickly. Specs carry no use count or revocation.
 */
export async function seedTokens(
  sql: Sql,
  prefix: string,
  specs: readonly Omit<SeedSpec, "secret" | "useCount" | "revokeTime">[],
): Promise<{ id: string; secret: string }[]> {
  const repo = createTokenRepo(sql);
  const out: { id: string; secret: string }[] = [];
  for (let i = 0; i < specs.length; i += 1000) {
    const batch = specs.slice(i, i + 1000).map((fields) => {
      const { secret, ...minted } = mint(prefix, fields.type);
      out.push({ id: minted.id, secret });
      return { ...minted, ...fields, createTime: new Date() };
    });
    await repo.insert(batch);
  }
  return out;
}

/** What a test token looks like in the database; everything optional has a harmless default. */
export interface TestToken {
  readonly orgId?: string;
  readonly type?: TokenType;
  readonly permissions?: readonly string[];
  readonly allowedCidrs?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly expireTime?: Date | null;
  readonly revokeTime?: Date | null;
  readonly maxUses?: number | null;
  readonly useCount?: number;
  readonly rateLimits?: readonly { name: string; limit: number; window_ms: number }[];
  readonly name?: string;
  /** Use this secret instead of a fresh one (e.g. one that was verified before it existed). */
  readonly secret?: string;
}

/**
 * Inserts a verify-test token (org-a, team-1, user-1, `*`, region=eu-west unless told
 * otherwise) and returns its id and plain secret.
 */
export async function insertToken(
  sql: Sql,
  t: TestToken = {},
): Promise<{ id: string; secret: string }> {
  return await seedToken(sql, PREFIX, {
    name: t.name ?? "test token",
    type: t.type ?? TokenType.PERSONAL,
    orgId: t.orgId ?? "org-a",
    teamId: "team-1",
    ownerId: "user-1",
    permissions: t.permissions ?? ["*"],
    allowedCidrs: t.allowedCidrs ?? [],
    metadata: t.metadata ?? { region: "eu-west" },
    maxUses: t.maxUses === undefined || t.maxUses === null ? null : BigInt(t.maxUses),
    rateLimits: t.rateLimits ?? [],
    expireTime: t.expireTime ?? null,
    ...(t.secret === undefined ? {} : { secret: t.secret }),
    ...(t.useCount === undefined ? {} : { useCount: t.useCount }),
    ...(t.revokeTime === undefined ? {} : { revokeTime: t.revokeTime }),
  });
}
