import { newAuditId } from "../domain/ids.js";
import { mint } from "../domain/mint.js";
import { DEFAULT_TYPE_POLICIES, typePolicy } from "../domain/token-types.js";
import { AuditDecision, TokenType } from "../gen/latchkey/v1/token_pb.js";
import type { Sql } from "../store/db.js";
import { createTokenRepo, type TokenRow } from "../store/token-repo.js";
import { PLATFORM_ADMIN } from "./auth.js";
import { BOOTSTRAP_TEAM } from "./bootstrap.js";

/** What `latchkey admin bootstrap` minted: the stored row and the secret, shown once. */
export interface BreakGlassToken {
  readonly row: TokenRow;
  readonly secret: string;
}

/**
 * The break-glass path: mints a new platform admin token in `orgId` even though tokens exist,
 * for when the bootstrap token was lost or revoked and nobody can create an org any more. It is
 * reached only with direct database access (like `vault operator generate-root`), never through
 * the API, and it writes an audit row (`token.create`, method `break-glass`, actor
 * `operator:<user>`) in the same transaction, so its use is always visible.
 *
 * The token has the bootstrap token's shape (a TEAM token of team `platform` holding `*` and
 * `platform:admin`, the TEAM type's maximum lifetime): create proper admin tokens with it, then
 * revoke it.
 */
export async function mintBreakGlassToken(
  sql: Sql,
  options: { readonly orgId: string; readonly prefix: string; readonly operator: string },
): Promise<BreakGlassToken> {
  const type = TokenType.TEAM;
  const policy = typePolicy(DEFAULT_TYPE_POLICIES, type);
  const lifetimeMs = policy.maxLifetimeMs ?? policy.defaultLifetimeMs;
  const issuedAt = new Date();
  const { secret, id, secretHash, displayHint } = mint(options.prefix, type);
  const row = await createTokenRepo(sql).create(
    {
      id,
      secretHash,
      displayHint,
      name: "break-glass platform admin",
      type,
      orgId: options.orgId,
      teamId: BOOTSTRAP_TEAM,
      createdBy: `operator:${options.operator}`,
      permissions: ["*", PLATFORM_ADMIN],
      createTime: issuedAt,
      expireTime: lifetimeMs === null ? null : new Date(issuedAt.getTime() + lifetimeMs),
    },
    (created) => [
      {
        id: newAuditId(),
        time: issuedAt,
        orgId: created.org_id,
        actorId: `operator:${options.operator}`,
        action: "token.create",
        tokenId: created.id,
        decision: AuditDecision.ALLOW,
        code: "OK",
        clientIp: "",
        method: "break-glass",
        path: "",
        requestId: "",
        details: { break_glass: true, name: created.name, permissions: created.permissions },
      },
    ],
  );
  return { row, secret };
}
