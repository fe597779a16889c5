import { isKnownState, isKnownType } from "../../domain/admin-rules.js";
import { checkTimestamp } from "../../domain/time-fields.js";
import { checkIdentifier } from "../../domain/validation.js";
import type { FieldViolation } from "../../errors.js";
import type { TokenFilter } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenType } from "../../gen/latchkey/v1/token_pb.js";
import type { TokenQueryFilter } from "../../store/token-repo.js";
import { stateFilter } from "./mappers.js";

/** The filter fields ListTokens and BatchRevokeTokens share. */
export type FilterFields = Pick<
  TokenFilter,
  "type" | "teamId" | "ownerId" | "state" | "unusedSince" | "neverUsed"
>;

/**
 * Validates a token filter (List, or batch revoke's `filter` under `field`), pushing bad
 * fields onto `v`; returns it in store form.
 */
export function readFilter(f: FilterFields, field: string, v: FieldViolation[]): TokenQueryFilter {
  const at = (name: string) => (field === "" ? name : `${field}.${name}`);
  if (f.type !== TokenType.UNSPECIFIED && !isKnownType(f.type)) {
    v.push({ field: at("type"), description: "unknown token type" });
  }
  const knownState = isKnownState(f.state);
  if (!knownState) v.push({ field: at("state"), description: "unknown token state" });
  v.push(...checkIdentifier(f.teamId, at("team_id"), { required: false, max: 128 }));
  v.push(...checkIdentifier(f.ownerId, at("owner_id"), { required: false, max: 128 }));
  let unusedSince: Date | undefined;
  if (f.unusedSince !== undefined) {
    const since = checkTimestamp(f.unusedSince, at("unused_since"));
    v.push(...since.violations);
    unusedSince = new Date(since.ms);
  }
  return {
    type: f.type === TokenType.UNSPECIFIED ? undefined : f.type,
    teamId: f.teamId,
    ownerId: f.ownerId,
    state: knownState ? stateFilter(f.state) : undefined,
    unusedSince,
    neverUsed: f.neverUsed,
  };
}

/** A list without repeats, first occurrence kept (permissions as granted). */
export function dedupe(list: readonly string[]): string[] {
  return [...new Set(list)];
}
