import { normalizeCidr } from "../../src/domain/cidr.js";
import { field, h } from "./dom.js";

const MAX_ENTRIES = 100;

/** An allowlist editor: one address or CIDR per line, validated as typed. */
export interface CidrEditor {
  readonly el: HTMLElement;
  read(): { ok: true; value: string[] } | { ok: false; error: string };
}

/**
 * A textarea for allowed client addresses (IPv4 and IPv6, addresses or CIDRs), checked on every
 * keystroke with the server's own parser (src/domain/cidr.ts), showing the normalized form that
 * will be stored (`10.1.2.3/8` → `10.0.0.0/8`).
 */
export function cidrEditor(initial: readonly string[] = []): CidrEditor {
  const input = h("textarea", {
    rows: 3,
    placeholder: "10.20.0.0/16\n2001:db8::/32",
    spellcheck: "false",
    value: initial.join("\n"),
  });
  const preview = h("span", null, "Empty: any address.");
  const { row, error } = field("Allowed IPs (one per line)", input, {
    hint: preview,
    field: "allowed_cidrs",
  });
  const read: CidrEditor["read"] = () => {
    const entries = input.value.split(/[\s,]+/).filter((e) => e !== "");
    const value: string[] = [];
    for (const entry of entries) {
      const normalized = normalizeCidr(entry);
      if (normalized === undefined)
        return { ok: false, error: `"${entry}" is not an IPv4/IPv6 address or CIDR` };
      value.push(normalized);
    }
    if (value.length > MAX_ENTRIES) return { ok: false, error: `at most ${MAX_ENTRIES} entries` };
    return { ok: true, value };
  };
  const check = (): void => {
    const r = read();
    error.textContent = r.ok ? "" : r.error;
    row.classList.toggle("invalid", !r.ok);
    preview.textContent = r.ok
      ? r.value.length === 0
        ? "Empty: any address."
        : `Stored as: ${r.value.join(", ")}`
      : "";
  };
  input.addEventListener("input", check);
  return { el: row, read };
}
