import { type Duration, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { isLeaseId } from "../../domain/ids.js";
import { checkFreeText } from "../../domain/validation.js";
import {
  type FieldViolation,
  LatchkeyError,
  refused,
  throwIfInvalid,
  unavailable,
} from "../../errors.js";
import {
  type TokenVerifyService,
  VerifyCode,
} from "../../gen/latchkey/v1/token_verify_service_pb.js";
import type { SlotRepo } from "../../store/slot-repo.js";
import { denial, verifyPresented } from "../auth.js";
import type { ServiceHandlers } from "../context.js";
import type { Verifier } from "./types.js";

type Handlers = ServiceHandlers<typeof TokenVerifyService>;

export interface SlotDeps {
  readonly verifier: Pick<Verifier, "verify">;
  readonly slots: SlotRepo;
}

const DEFAULT_TTL_MS = 60_000;
const MIN_TTL_MS = 1_000;
const MAX_TTL_MS = 3_600_000;
const MAX_HOLDER = 256;

/** A lease length from the request: unset is the default, else 1 s to 1 h. */
function readTtl(ttl: Duration | undefined, v: FieldViolation[]): number {
  if (ttl === undefined) return DEFAULT_TTL_MS;
  const ms = durationMs(ttl);
  if (!(ms >= MIN_TTL_MS && ms <= MAX_TTL_MS)) {
    v.push({ field: "ttl", description: "must be from 1 second to 1 hour" });
  }
  return ms;
}

function checkLeaseId(id: string): FieldViolation[] {
  return isLeaseId(id)
    ? []
    : [{ field: "lease_id", description: "must be a lease id (lse_…) from AcquireSlot" }];
}

function leaseGone(): LatchkeyError {
  return new LatchkeyError(
    Code.NotFound,
    "LEASE_NOT_FOUND",
    "lease not found: it expired, was released, or its token was revoked or expired",
  );
}

/**
 * AcquireSlot, RenewSlot and ReleaseSlot. Acquire verifies the token with the same core as
 * VerifyToken (same checks, audit row and use accounting; a denial is the admin-style error of
 * auth.ts's `denial`), then leases a slot in Postgres under the token's row lock (exact across
 * instances, see store/slot-repo.ts). A full token is a normal answer (`acquired=false`).
 * Renew and release take the lease id alone: it is unguessable and is the holder's credential.
 */
export function createSlotHandlers(
  deps: SlotDeps,
): Pick<Handlers, "acquireSlot" | "renewSlot" | "releaseSlot"> {
  const { verifier, slots } = deps;
  return {
    async acquireSlot(req, ctx) {
      const v: FieldViolation[] = [];
      if (req.token === "") v.push({ field: "token", description: "is required" });
      v.push(...checkFreeText(req.holder, "holder", MAX_HOLDER));
      const ttlMs = readTtl(req.ttl, v);
      throwIfInvalid(v);
      const record = await verifyPresented(verifier, ctx, req.token, "", "verify");
      if (record.maxConcurrent <= 0) throw noSlots();
      const result = await storage(slots.acquire(record.id, req.holder, ttlMs));
      switch (result.kind) {
        case "acquired":
          return {
            acquired: true,
            leaseId: result.leaseId,
            expireTime: timestampFromDate(result.expireTime),
            slotsInUse: result.inUse,
            maxConcurrent: result.max,
          };
        case "full":
          return { acquired: false, slotsInUse: result.inUse, maxConcurrent: result.max };
        case "no_slots":
          throw noSlots();
        case "gone":
          // Revoked or expired between the (possibly cached) verification and the lock.
          throw denial(VerifyCode.REVOKED, "", undefined);
      }
    },
    async renewSlot(req) {
      const v = checkLeaseId(req.leaseId);
      const ttlMs = readTtl(req.ttl, v);
      throwIfInvalid(v);
      const expireTime = await storage(slots.renew(req.leaseId, ttlMs));
      if (expireTime === undefined) throw leaseGone();
      return { expireTime: timestampFromDate(expireTime) };
    },
    async releaseSlot(req) {
      throwIfInvalid(checkLeaseId(req.leaseId));
      if (!(await storage(slots.release(req.leaseId)))) throw leaseGone();
      return {};
    },
  };
}

function noSlots(): LatchkeyError {
  return refused(
    Code.FailedPrecondition,
    "NO_CONCURRENCY_SLOTS",
    "the token has no concurrency slots (max_concurrent is not set)",
  );
}

/** A storage failure is UNAVAILABLE (the cause goes to the log), never INTERNAL. */
async function storage<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (err) {
    throw unavailable("slot storage", err);
  }
}
