import type { VerifyAuditRow } from "./audit-writer.js";

/**
 * The COPY text format of verification audit rows: encoding of the columns (escaping, the
 * per-token prefix the verifier caches) and decoding back into fields for the INSERT fallback,
 * so one encoding serves both write methods.
 */

/** The columns of a row that depend only on the token and the decision. */
export type AuditPrefixColumns = Pick<
  VerifyAuditRow,
  "orgId" | "actorId" | "action" | "tokenId" | "decision" | "code"
>;

/**
 * The COPY text of a row's constant columns (org, actor, action, token, decision, code), tab
 * ended. Exists so that the verifier can encode them once per token and code and hand the
 * text with each row (`VerifyAuditRow.prefix`), instead of escaping the same ids on every call.
 */
export function encodeAuditPrefix(c: AuditPrefixColumns): string {
  return (
    `${esc(c.orgId)}\t${esc(c.actorId)}\t${esc(c.action)}\t${esc(c.tokenId)}\t` +
    `${c.decision}\t${esc(c.code)}\t`
  );
}

/**
 * COPY text back into rows of fields (`\\N` → null), for the INSERT fallback: the inverse of
 * the writer's encoding, so one encoding serves both write methods.
 */
export function decodeCopyText(text: string): (string | null)[][] {
  const rows: (string | null)[][] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    rows.push(line.split("\t").map(unesc));
  }
  return rows;
}

function unesc(field: string): string | null {
  if (field === "\\N") return null;
  if (!field.includes("\\")) return field;
  return field.replace(/\\(.)/g, (_, c: string) =>
    c === "t" ? "\t" : c === "n" ? "\n" : c === "r" ? "\r" : c,
  );
}

const NEEDS_ESCAPE = /[\\\t\n\r\0]/;

/** COPY text-format escaping (backslash, tab, newline, carriage return); NUL cannot be stored. */
export function esc(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/[\\\t\n\r\0]/g, (c) =>
    c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : c === "\r" ? "\\r" : "",
  );
}
