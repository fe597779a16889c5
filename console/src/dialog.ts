import { type Child, h, replace } from "./dom.js";

/** An open modal dialog; closing it removes it from the page with everything it showed. */
export interface Dialog {
  readonly el: HTMLDialogElement;
  /** The content area, below the title. */
  readonly body: HTMLElement;
  show(...children: Child[]): void;
  close(): void;
}

/**
 * Opens a modal <dialog>. When it closes (button, Escape, or close()) its element is removed,
 * so a secret shown inside it is gone from the page: nothing keeps a reference to it.
 */
export function openDialog(
  title: string,
  opts: { onClose?: () => void; testId?: string } = {},
): Dialog {
  const body = h("div", { class: "dialog-body" });
  const el = h(
    "dialog",
    { class: "dialog", "aria-label": title, "data-test": opts.testId },
    h(
      "header",
      { class: "dialog-head" },
      h("h2", null, title),
      h(
        "button",
        { type: "button", class: "icon", "aria-label": "Close", onclick: () => close() },
        "×",
      ),
    ),
    body,
  );
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    if (el.open) el.close();
    body.replaceChildren();
    el.remove();
    opts.onClose?.();
  };
  el.addEventListener("close", close);
  document.body.appendChild(el);
  el.showModal();
  return { el, body, show: (...children) => replace(body, ...children), close };
}
