import { newLeaseId } from "../domain/ids.js";
import type { Sql } from "./db.js";

/**
 * Concurrency-slot leases in Postgres (migrations/0005_slot_leases.sql). Exact across
 * instances: an acquire locks the token's row, sweeps its expired leases, counts the live ones
 * and inserts, all in one transaction, so N instances racing on one token queue on that row.
 */

/** What an acquire found: a lease, or a full token (or one that can no longer hold leases). */
export type AcquireResult =
  | {
      readonly kind: "acquired";
      readonly leaseId: string;
      readonly expireTime: Date;
      readonly inUse: number;
      readonly max: number;
    }
  | { readonly kind: "full"; readonly inUse: number; readonly max: number }
  /** No slots configured (max_concurrent 0). */
  | { readonly kind: "no_slots" }
  /** Revoked or expired since it was verified, or deleted. */
  | { readonly kind: "gone" };

export interface SlotRepo {
  acquire(tokenId: string, holder: string, ttlMs: number): Promise<AcquireResult>;
  /** The lease's new end, or undefined when it has expired, was released or its token ended. */
  renew(leaseId: string, ttlMs: number): Promise<Date | undefined>;
  /** Whether the lease existed (an expired one is removed too). */
  release(leaseId: string): Promise<boolean>;
}

/** The Postgres slot leases (see the module comment for why a row lock suffices). */
export function createSlotRepo(sql: Sql): SlotRepo {
  return {
    acquire: (tokenId, holder, ttlMs) =>
      sql.begin(async (tx): Promise<AcquireResult> => {
        const [token] = await tx<{ max: number; live: boolean }[]>`
          SELECT max_concurrent AS max,
                 revoke_time IS NULL AND (expire_time IS NULL OR expire_time > clock_timestamp())
                   AS live
          FROM tokens WHERE id = ${tokenId} FOR NO KEY UPDATE`;
        if (token === undefined || !token.live) return { kind: "gone" };
        if (token.max <= 0) return { kind: "no_slots" };
        await tx`
          DELETE FROM slot_leases WHERE token_id = ${tokenId} AND expire_time <= clock_timestamp()`;
        const [count] = await tx<{ n: number }[]>`
          SELECT count(*)::int AS n FROM slot_leases WHERE token_id = ${tokenId}`;
        const inUse = count?.n ?? 0;
        if (inUse >= token.max) return { kind: "full", inUse, max: token.max };
        const id = newLeaseId();
        const [lease] = await tx<{ expire_time: Date }[]>`
          INSERT INTO slot_leases (id, token_id, holder, expire_time)
          SELECT ${id}, t.id, ${holder},
                 least(clock_timestamp() + ${ttlMs} * interval '1 millisecond', t.expire_time)
          FROM tokens t WHERE t.id = ${tokenId}
          RETURNING expire_time`;
        if (lease === undefined) return { kind: "gone" };
        return {
          kind: "acquired",
          leaseId: id,
          expireTime: lease.expire_time,
          inUse: inUse + 1,
          max: token.max,
        };
      }),
    async renew(id, ttlMs) {
      const [row] = await sql<{ expire_time: Date }[]>`
        UPDATE slot_leases l
        SET expire_time = least(clock_timestamp() + ${ttlMs} * interval '1 millisecond',
                                t.expire_time)
        FROM tokens t
        WHERE l.id = ${id} AND t.id = l.token_id AND l.expire_time > clock_timestamp()
          AND t.revoke_time IS NULL
          AND (t.expire_time IS NULL OR t.expire_time > clock_timestamp())
        RETURNING l.expire_time`;
      return row?.expire_time;
    },
    async release(id) {
      const rows = await sql`
        DELETE FROM slot_leases WHERE id = ${id} RETURNING id`;
      return rows.length > 0;
    },
  };
}
