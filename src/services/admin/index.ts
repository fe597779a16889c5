import type { TokenAdminService } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import type { ServiceHandlers } from "../context.js";
import { listAuditEvents } from "./audit-events.js";
import { batchRevokeTokens } from "./batch-revoke.js";
import { batchUpdateTokens } from "./batch-update.js";
import { createToken } from "./create.js";
import { type AdminServiceDeps, resolveDeps } from "./deps.js";
import { getCaller } from "./get-caller.js";
import { getToken, listTokens } from "./get-list.js";
import { revokeToken } from "./revoke.js";
import { rotateToken } from "./rotate.js";
import { updateToken } from "./update.js";

export type { AdminLog, AdminServiceDeps } from "./deps.js";

/**
 * The TokenAdminService methods, written against the authenticated caller that the
 * adapter puts in the call context: the one implementation both listeners serve.
 *
 * Scope: every query names the org (a platform caller's by-id lookups are the one exception,
 * as the contract allows); another org's token, and a token outside a restricted caller's
 * team/owner, is NOT_FOUND. Grants: no created or updated token may hold a permission the
 * caller does not (scope.ts). Writes: each change and its audit rows commit in one repository
 * transaction, and caches are told (`tokensChanged`) after the commit. Input: every bad field
 * is collected and reported in one INVALID_ARGUMENT before anything is read or written.
 */
export function createAdminService(
  deps: AdminServiceDeps,
): ServiceHandlers<typeof TokenAdminService> {
  const d = resolveDeps(deps);
  return {
    createToken: createToken(d),
    getToken: getToken(d),
    listTokens: listTokens(d),
    updateToken: updateToken(d),
    revokeToken: revokeToken(d),
    batchRevokeTokens: batchRevokeTokens(d),
    batchUpdateTokens: batchUpdateTokens(d),
    rotateToken: rotateToken(d),
    listAuditEvents: listAuditEvents(d),
    getCaller: getCaller(d),
  };
}
