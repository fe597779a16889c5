import type { AuditMode } from "../../config.js";
import type { CompiledRecord } from "../../domain/token-record.js";
import { AuditDecision } from "../../gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../gen/latchkey/v1/token_verify_service_pb.js";
import { type AuditPrefixColumns, encodeAuditPrefix } from "../../store/audit-writer.js";
import type { AuditSampler } from "./audit-sampler.js";
import type { AuditSink, PeerTrust } from "./ports.js";
import type { VerifyInput } from "./types.js";

/** Short VerifyCode names as written in audit rows (`EXPIRED`, …), the admin service's form. */
export const CODE_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [k, v] of Object.entries(VerifyCode)) if (typeof v === "number") names[v] = k;
  return names;
})();

const MAX_TEXT = 1_024;

function clip(s: string): string {
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s;
}

/** Writes the audit row of one verification answer, if the audit mode wants one. */
export type WriteAuditRow = (
  input: VerifyInput,
  code: VerifyCode,
  record: CompiledRecord | undefined,
  nowMs: number,
) => void;

/**
 * The audit-row builder: rows of found tokens go straight to `audit`, denials that name no
 * token to the per-peer `sampler`. VALID answers are written only in mode `all`, never for
 * admin callers.
 */
export function createAuditRows(
  audit: AuditSink,
  sampler: AuditSampler,
  auditMode: AuditMode,
  trusted?: PeerTrust | undefined,
): WriteAuditRow {
  /**
   * The constant columns of a found token's audit rows (org, actor, action, token, decision,
   * code), COPY-encoded once per record and code: a record object is replaced whenever its
   * token changes, so the text cannot outlive the data it was made from.
   */
  const prefixes = new WeakMap<CompiledRecord, (string | undefined)[]>();
  const prefixOf = (
    record: CompiledRecord,
    code: VerifyCode,
    admin: boolean,
    columns: AuditPrefixColumns,
  ): string => {
    let byCode = prefixes.get(record);
    if (byCode === undefined) {
      byCode = [];
      prefixes.set(record, byCode);
    }
    const slot = admin ? code + CODE_NAMES.length : code;
    let prefix = byCode[slot];
    if (prefix === undefined) {
      prefix = encodeAuditPrefix(columns);
      byCode[slot] = prefix;
    }
    return prefix;
  };

  return (input, code, record, nowMs) => {
    const admin = input.purpose === "admin";
    if (code !== VerifyCode.VALID || (!admin && auditMode === "all")) {
      const row = {
        timeMs: nowMs,
        // Only a found token names the org: an unauthenticated caller must not be able to
        // write rows into another org's audit trail.
        orgId: record === undefined ? "" : record.orgId,
        // A verified token is the subject of its row (token_id), not its actor: the caller is
        // a gateway. Only a token that tried to act (an admin call refused) is the actor. So
        // verification rows stay out of the actor index, as docs/storage.md plans it.
        actorId: record === undefined || !admin ? "" : record.id,
        action: admin ? "auth.denied" : "token.verify",
        tokenId: record === undefined ? "" : record.id,
        decision: code === VerifyCode.VALID ? AuditDecision.ALLOW : AuditDecision.DENY,
        code: CODE_NAMES[code] ?? "UNSPECIFIED",
        clientIp: clip(input.clientIp),
        method: clip(input.method),
        path: clip(input.path),
        requestId: clip(input.requestId),
        prefix: undefined as string | undefined,
      };
      if (record !== undefined) row.prefix = prefixOf(record, code, admin, row);
      // Denials that name no token cost nothing to send: sampled per peer.
      if (record === undefined) sampler.push(peerOf(input, trusted), row);
      else audit.push(row);
    }
  };
}

/**
 * Who a verification counts against for the per-peer limits and sampling: the connection's
 * address — or, when that connection is a trusted gateway (`trusted`) and names the client in
 * `client_ip`, that client, so one client's flood of unknown tokens does not refuse the first
 * verifications of everyone else behind the same gateway. Read only when a lookup or a sample
 * needs it, so a cache hit never parses the peer string.
 */
export function peerOf(input: VerifyInput, trusted?: PeerTrust | undefined): string {
  const peer = input.peer;
  if (peer === undefined) return input.clientIp;
  const address = typeof peer === "string" ? peer : peer.peerAddress;
  if (trusted === undefined || input.clientIp === "" || !trusted.trusts(address)) return address;
  return input.clientIp;
}
