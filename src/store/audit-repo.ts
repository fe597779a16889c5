import type { JsonObject } from "@bufbuild/protobuf";
import { PLATFORM_ADMIN } from "../domain/permissions.js";
import type { Sql } from "./db.js";
import { type OrgScope, type Queryable, scopeSql } from "./token-rows.js";

/** One admin-side audit row to write. Never holds a secret. */
export interface NewAuditEvent {
  readonly id: string;
  readonly time: Date;
  readonly orgId: string;
  readonly actorId: string;
  readonly action: string;
  readonly tokenId: string;
  /** latchkey.v1.AuditDecision number. */
  readonly decision: number;
  readonly code: string;
  readonly clientIp: string;
  readonly method: string;
  readonly path: string;
  readonly requestId: string;
  readonly details: JsonObject | null;
}

/** An audit_events row as read back (`time_us` is the keyset position, as text). */
export interface AuditEventRow {
  readonly id: string;
  readonly time: Date;
  readonly time_us: string;
  readonly org_id: string;
  readonly actor_id: string;
  readonly action: string;
  readonly token_id: string;
  readonly decision: number;
  readonly code: string;
  readonly client_ip: string;
  readonly method: string;
  readonly path: string;
  readonly request_id: string;
  readonly details: JsonObject | null;
}

/** Filters of ListAuditEvents; empty strings, 0 and undefined mean "any". */
export interface AuditQueryFilter {
  readonly tokenId: string;
  readonly actorId: string;
  readonly action: string;
  readonly decision: number;
  readonly startTime: Date | undefined;
  readonly endTime: Date | undefined;
}

/** Keyset position in the audit trail: microseconds since the epoch and the row id. */
export interface AuditCursor {
  readonly timeUs: bigint;
  readonly id: string;
}

/** The audit trail as the admin service reads and writes it. */
export interface AuditRepo {
  /** Writes rows outside any token change (e.g. a refused call's `auth.denied`). */
  insert(events: readonly NewAuditEvent[]): Promise<void>;
  /**
   * One page of an org's rows, newest first, keyset-paged on (time, id). When `scope` names a
   * team or owner, only rows about (or acted by) tokens in that team/owner are returned, so a
   * team-scoped caller does not read the rest of the org's trail. Unless the scope reaches
   * platform tokens, rows about them (their creation, use, rotation) are left out too.
   */
  list(
    scope: OrgScope,
    filter: AuditQueryFilter,
    limit: number,
    after: AuditCursor | undefined,
  ): Promise<AuditEventRow[]>;
}

/**
 * Writes audit rows in multi-row INSERTs on `q`; the token repository calls it inside the
 * change's transaction so that a change and its audit rows commit together.
 */
export async function insertAuditEvents(
  q: Queryable,
  events: readonly NewAuditEvent[],
): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((e) => ({
    id: e.id,
    time: e.time,
    org_id: e.orgId,
    actor_id: e.actorId,
    action: e.action,
    token_id: e.tokenId,
    decision: e.decision,
    code: e.code,
    client_ip: e.clientIp,
    method: e.method,
    path: e.path,
    request_id: e.requestId,
    details: e.details === null ? null : q.json(e.details),
  }));
  // One INSERT per 1000 rows keeps the statement under the 65,535-parameter limit.
  for (let i = 0; i < rows.length; i += 1000) {
    await q`INSERT INTO audit_events ${q(rows.slice(i, i + 1000))}`;
  }
}

/** The audit repository over one `sql` pool. */
export function createAuditRepo(sql: Sql): AuditRepo {
  return {
    insert: (events) => insertAuditEvents(sql, events),
    async list(scope, f, limit, after) {
      const restricted = scope.teamId !== "" || scope.ownerId !== "";
      const inScope = sql`SELECT id FROM tokens WHERE ${scopeSql(sql, scope)}`;
      const platformIds = sql`
        SELECT id FROM tokens
        WHERE org_id = ${scope.orgId} AND permissions @> ${[PLATFORM_ADMIN]}::text[]`;
      return await sql<AuditEventRow[]>`
        SELECT id, time, (extract(epoch FROM time) * 1000000)::bigint::text AS time_us, org_id,
          actor_id, action, token_id, decision, code, client_ip, method, path, request_id, details
        FROM audit_events
        WHERE org_id = ${scope.orgId}
          ${restricted ? sql`AND (token_id IN (${inScope}) OR actor_id IN (${inScope}))` : sql``}
          ${scope.platform === true ? sql`` : sql`AND token_id NOT IN (${platformIds})`}
          ${f.tokenId === "" ? sql`` : sql`AND token_id = ${f.tokenId}`}
          ${f.actorId === "" ? sql`` : sql`AND actor_id = ${f.actorId}`}
          ${f.action === "" ? sql`` : sql`AND action = ${f.action}`}
          ${f.decision === 0 ? sql`` : sql`AND decision = ${f.decision}`}
          ${f.startTime === undefined ? sql`` : sql`AND time >= ${f.startTime}`}
          ${f.endTime === undefined ? sql`` : sql`AND time < ${f.endTime}`}
          ${
            after === undefined
              ? sql``
              : sql`AND (time, id) < (timestamptz 'epoch' + ${after.timeUs.toString()}::bigint * interval '1 microsecond', ${after.id})`
          }
        ORDER BY time DESC, id DESC
        LIMIT ${limit}`;
    },
  };
}
