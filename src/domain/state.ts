import { TokenState } from "../gen/latchkey/v1/token_pb.js";

/** The stored facts a token's state is derived from (state itself is never stored). */
export interface StateInputs {
  /** Date, or epoch milliseconds; null = not revoked. */
  readonly revokeTime: Date | number | null;
  /** Date, or epoch milliseconds; null = never expires. */
  readonly expireTime: Date | number | null;
  /** null = unlimited uses. */
  readonly maxUses: bigint | number | null;
  readonly useCount: bigint | number;
}

function ms(t: Date | number): number {
  return typeof t === "number" ? t : t.getTime();
}

/**
 * A token's state at `nowMs`, derived rather than stored so that expiry needs no background job
 * and every reader agrees. Precedence follows the verifier: REVOKED (any revoke_time, permanent) > EXPIRED
 * (expire_time <= now) > EXHAUSTED (use_count >= max_uses) > ACTIVE.
 */
export function deriveState(t: StateInputs, nowMs: number): TokenState {
  // Any revoke_time means revoked: no comparison with this instance's clock, which may run
  // behind the clock of the instance that revoked.
  if (t.revokeTime !== null) return TokenState.REVOKED;
  if (t.expireTime !== null && ms(t.expireTime) <= nowMs) return TokenState.EXPIRED;
  if (t.maxUses !== null && t.useCount >= t.maxUses) return TokenState.EXHAUSTED;
  return TokenState.ACTIVE;
}
