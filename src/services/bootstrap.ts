import { newAuditId } from "../domain/ids.js";
import { mint } from "../domain/mint.js";
import { DEFAULT_TYPE_POLICIES, typePolicy } from "../domain/token-types.js";
import { AuditDecision, TokenType } from "../gen/latchkey/v1/token_pb.js";
import type { Sql } from "../store/db.js";
import { createTokenRepo } from "../store/token-repo.js";
import { PLATFORM_ADMIN } from "./auth.js";

/** The team the bootstrap token belongs to; it is org-wide anyway because it holds `*`. */
export const BOOTSTRAP_TEAM = "platform";

export interface BootstrapOptions {
  /** The org the platform admin token is created in (`LATCHKEY_BOOTSTRAP_ORG`). */
  readonly orgId: string;
  readonly prefix: string;
  readonly policies?: typeof DEFAULT_TYPE_POLICIES;
  readonly now?: () => number;
}

/**
 * On a database without any token, creates the first one — a platform admin token holding
 * `*` and `platform:admin` — and returns its secret for the caller to print once. Without it
 * nobody could call TokenAdminService at all. Returns undefined when any token exists.
 *
 * The repository checks and inserts under a transaction-scoped advisory lock, so two
 * instances starting together on an empty database create exactly one token between them.
 *
 * Shape: a TEAM token of team `platform` with no owner (no type is org-level without a cap, and
 * a team token is the closest to "the platform team's key"); its expiry is the TEAM type's
 * maximum lifetime (1 year by default), since the caps hold for every token. Operators are
 * expected to create proper admin tokens with it and then revoke it.
 */
export async function bootstrapIfEmpty(
  sql: Sql,
  options: BootstrapOptions,
): Promise<string | undefined> {
  const policies = options.policies ?? DEFAULT_TYPE_POLICIES;
  const nowMs = (options.now ?? Date.now)();
  const type = TokenType.TEAM;
  const policy = typePolicy(policies, type);
  const lifetime = policy.maxLifetimeMs ?? policy.defaultLifetimeMs;
  const { secret, ...minted } = mint(options.prefix, type);
  const at = new Date(nowMs);
  const row = await createTokenRepo(sql).createIfEmpty(
    {
      ...minted,
      name: "bootstrap platform admin",
      type,
      orgId: options.orgId,
      teamId: BOOTSTRAP_TEAM,
      permissions: ["*", PLATFORM_ADMIN],
      createTime: at,
      expireTime: lifetime === null ? null : new Date(nowMs + lifetime),
    },
    (row) => [
      {
        id: newAuditId(),
        time: at,
        orgId: row.org_id,
        actorId: "",
        action: "token.create",
        tokenId: row.id,
        decision: AuditDecision.ALLOW,
        code: "OK",
        clientIp: "",
        method: "bootstrap",
        path: "",
        requestId: "",
        details: {
          bootstrap: true,
          name: row.name,
          permissions: row.permissions,
          expire_time: row.expire_time === null ? null : row.expire_time.toISOString(),
        },
      },
    ],
  );
  return row === undefined ? undefined : secret;
}
