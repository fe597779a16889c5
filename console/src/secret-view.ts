import { h } from "./dom.js";

/**
 * Shows a new secret once: a warning, the value, a copy button. The value exists only in this
 * element; when its dialog closes the element is removed and the secret is gone from the page.
 */
export function secretView(secret: string, name: string, onDone: () => void): HTMLElement {
  const input = h("input", {
    class: "secret",
    readonly: true,
    value: secret,
    "aria-label": "New token secret",
    "data-test": "secret",
  });
  const status = h("span", { class: "hint", role: "status" });
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(input.value);
      status.textContent = "Copied to the clipboard.";
    } catch {
      input.select();
      status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  };
  return h(
    "div",
    { class: "secret-view" },
    h(
      "p",
      { class: "warning", role: "alert" },
      h("strong", null, "Copy this token now. "),
      "You will not see it again: latchkey stores only its hash.",
    ),
    h("p", null, "Secret of ", h("strong", null, name), ":"),
    h(
      "div",
      { class: "secret-row" },
      input,
      h("button", { type: "button", class: "primary", onclick: () => void copy() }, "Copy"),
    ),
    status,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: onDone }, "Done, I stored it"),
    ),
  );
}
