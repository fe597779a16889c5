import type { VerifyAuditRow } from "../../src/store/audit-writer.js";

/** The audit row of one VALID bench verification, for the audit-writer benches. */
export const SAMPLE_ROW: VerifyAuditRow = {
  timeMs: 0,
  orgId: "bench",
  actorId: "tok_01J0000000000000000000000",
  action: "token.verify",
  tokenId: "tok_01J0000000000000000000000",
  decision: 1,
  code: "VALID",
  clientIp: "10.1.2.3",
  method: "POST",
  path: "/v1/deploy",
  requestId: "bench",
};
