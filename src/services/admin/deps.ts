import { DEFAULT_ROLES } from "../../domain/permissions.js";
import { DEFAULT_TYPE_POLICIES } from "../../domain/token-types.js";
import type { TokenAdminService } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import type { AuditRepo } from "../../store/audit-repo.js";
import type { TokenRepo, TokenRow } from "../../store/token-repo.js";
import type { ServiceHandlers } from "../context.js";
import type { TokenChange, Verifier } from "../verify/types.js";

/** The part of a logger the admin service uses (pino's Logger fits). */
export interface AdminLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** What TokenAdminService needs, passed in so tests can hand it real or in-memory parts. */
export interface AdminServiceDeps {
  readonly tokens: TokenRepo;
  readonly audit: AuditRepo;
  /** Told after every committed change, so caches drop the tokens at once. */
  readonly changes: Pick<Verifier, "tokensChanged">;
  /** Prefix of issued tokens (`LATCHKEY_TOKEN_PREFIX`). */
  readonly prefix: string;
  /** Key that signs page tokens; shared by every instance (see serverKey). */
  readonly pageKey: Uint8Array;
  /** Per-type lifetime caps and defaults; DEFAULT_TYPE_POLICIES when unset. */
  readonly policies?: typeof DEFAULT_TYPE_POLICIES;
  /** Role table that CreateToken expands; DEFAULT_ROLES when unset. */
  readonly roles?: typeof DEFAULT_ROLES;
  /** Clock (epoch ms); tests move it. */
  readonly now?: () => number;
  readonly log: AdminLog;
}

/** The dependencies with their defaults filled in: what every handler file receives. */
export interface AdminDeps extends Omit<AdminServiceDeps, "policies" | "roles" | "now"> {
  readonly policies: typeof DEFAULT_TYPE_POLICIES;
  readonly roles: typeof DEFAULT_ROLES;
  readonly now: () => number;
}

/** Fills in the defaults once, so handlers never repeat them. */
export function resolveDeps(deps: AdminServiceDeps): AdminDeps {
  return {
    ...deps,
    policies: deps.policies ?? DEFAULT_TYPE_POLICIES,
    roles: deps.roles ?? DEFAULT_ROLES,
    now: deps.now ?? Date.now,
  };
}

/**
 * Tells the caches about committed changes. A failure here is logged and the change stands:
 * the commit already happened, and the caches' own expiry bounds the staleness.
 */
export async function announce(
  deps: AdminDeps,
  rows: readonly TokenRow[],
  kind: TokenChange["kind"],
  reason: string,
): Promise<void> {
  if (rows.length === 0) return;
  const changes = rows.map(
    (row): TokenChange => ({
      id: row.id,
      secretHash: row.secret_hash,
      kind,
      orgId: row.org_id,
      reason,
    }),
  );
  try {
    await deps.changes.tokensChanged(changes);
  } catch (err) {
    deps.log.warn({ err, count: changes.length }, "tokensChanged failed after commit");
  }
}

/** The handler table of TokenAdminService, one entry per RPC. */
export type Handlers = ServiceHandlers<typeof TokenAdminService>;
