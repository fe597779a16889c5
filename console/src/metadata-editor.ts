import { h } from "./dom.js";

const KEY_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_KEYS = 32;
const MAX_VALUE = 512;

/** A metadata editor: rows of key and value, checked as typed against CreateToken's rules. */
export interface MetadataEditor {
  readonly el: HTMLElement;
  /** The entries, or an error naming the first bad one. */
  read(): { ok: true; value: Record<string, string> } | { ok: false; error: string };
}

/**
 * Key/value rows with add and remove (e.g. `redaction_tier` = `strict`). With `allowEmpty` an
 * empty value is kept (BatchUpdateTokens: an empty value removes the key).
 */
export function metadataEditor(
  initial: Readonly<Record<string, string>> = {},
  opts: { allowEmpty?: boolean; label?: string } = {},
): MetadataEditor {
  const rows = h("div", { class: "kv-rows" });
  const error = h("div", { class: "field-error", role: "alert" });
  const addRow = (key = "", value = ""): void => {
    const row = h(
      "div",
      { class: "kv-row" },
      h("input", {
        class: "kv-key",
        placeholder: "key (e.g. region)",
        "aria-label": "metadata key",
        value: key,
        oninput: () => check(),
      }),
      h("input", {
        class: "kv-value",
        placeholder: opts.allowEmpty ? "value (empty removes)" : "value",
        "aria-label": "metadata value",
        value,
        oninput: () => check(),
      }),
      h(
        "button",
        {
          type: "button",
          class: "icon",
          "aria-label": "Remove entry",
          onclick: () => {
            row.remove();
            check();
          },
        },
        "×",
      ),
    );
    rows.appendChild(row);
  };
  const read: MetadataEditor["read"] = () => {
    const value: Record<string, string> = {};
    for (const row of rows.querySelectorAll(".kv-row")) {
      const k = row.querySelector<HTMLInputElement>(".kv-key")?.value.trim() ?? "";
      const v = row.querySelector<HTMLInputElement>(".kv-value")?.value ?? "";
      if (k === "" && v === "") continue;
      if (!KEY_RE.test(k))
        return { ok: false, error: `key "${k}": 1-64 characters of A-Z a-z 0-9 _ . -` };
      if (Object.hasOwn(value, k)) return { ok: false, error: `key "${k}" appears twice` };
      if (v.length > MAX_VALUE)
        return { ok: false, error: `value of "${k}": at most ${MAX_VALUE} characters` };
      if (v === "" && opts.allowEmpty !== true)
        return { ok: false, error: `key "${k}" has no value` };
      value[k] = v;
    }
    if (Object.keys(value).length > MAX_KEYS)
      return { ok: false, error: `at most ${MAX_KEYS} keys` };
    return { ok: true, value };
  };
  const check = (): void => {
    const r = read();
    error.textContent = r.ok ? "" : r.error;
  };
  for (const [k, v] of Object.entries(initial)) addRow(k, v);
  if (rows.childElementCount === 0) addRow();
  const el = h(
    "fieldset",
    { class: "field kv", "data-field": "metadata" },
    h("legend", null, opts.label ?? "Metadata"),
    rows,
    h("button", { type: "button", class: "link", onclick: () => addRow() }, "+ add entry"),
    error,
  );
  return { el, read };
}
