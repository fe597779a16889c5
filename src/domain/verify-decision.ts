import { VerifyCode } from "../gen/latchkey/v1/token_verify_service_pb.js";
import { ipAllowed } from "./cidr.js";
import { holdsCompiled } from "./permissions.js";
import type { CompiledRecord } from "./token-record.js";

/** What the caller of a verification asks for, beside the token itself. */
export interface VerifyDemand {
  readonly requiredPermissions: readonly string[];
  /** "" when the verifier did not give one. */
  readonly clientIp: string;
  /** "" when any org will do. */
  readonly orgId: string;
}

/**
 * The checks after lookup, in the documented order: revoked (any revoke_time: no clock
 * comparison) → expired → exhausted → org →
 * client IP → permissions. The first that fails decides. Pure and allocation-free, so the
 * same function serves VerifyToken and the admin authentication of both listeners. Rate
 * limits and use consumption come after it (in the verifier), so a denied call consumes
 * nothing. `usesSoFar` is the freshest known use count (the record's may be stale).
 */
export function decide(
  record: CompiledRecord,
  demand: VerifyDemand,
  nowMs: number,
  usesSoFar: number = record.useCount,
): VerifyCode {
  // Any revocation counts, whatever the two clocks say: revocation is permanent, and an instance
  // whose clock runs behind the revoking one's must not let the token through meanwhile.
  if (record.revokeTimeMs !== null) return VerifyCode.REVOKED;
  if (record.expireTimeMs !== null && record.expireTimeMs <= nowMs) return VerifyCode.EXPIRED;
  if (record.maxUses !== null && usesSoFar >= record.maxUses) return VerifyCode.USAGE_EXCEEDED;
  if (demand.orgId !== "" && demand.orgId !== record.orgId) return VerifyCode.WRONG_ORG;
  if (record.allowedCidrs.length > 0 && !ipAllowed(record.compiledCidrs, demand.clientIp)) {
    return VerifyCode.IP_NOT_ALLOWED;
  }
  for (const permission of demand.requiredPermissions) {
    if (!holdsCompiled(record.compiledPermissions, permission)) {
      return VerifyCode.INSUFFICIENT_PERMISSIONS;
    }
  }
  return VerifyCode.VALID;
}
