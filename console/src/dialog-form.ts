import type { Dialog } from "./dialog.js";
import { type Child, h } from "./dom.js";
import { markFields, problemOf, problemView } from "./errors.js";

/** What a dialog form does on submit, and how its submit button reads. */
export interface DialogFormOptions {
  readonly submit: string;
  readonly danger?: boolean;
  /** Throws to report a failure: the server's (ConnectError) or a client-side check's (Error). */
  readonly action: () => Promise<void>;
}

/**
 * The form every action dialog uses: content, Cancel and one submit button. A failure is shown
 * above the content with its code, reason and bad fields (marked on their rows), the button is
 * enabled again, and nothing else changes — so no action fails silently or blanks the page.
 */
export function dialogForm(
  dialog: Dialog,
  opts: DialogFormOptions,
  ...content: Child[]
): HTMLFormElement {
  const problem = h("div");
  const button = h(
    "button",
    { type: "submit", class: opts.danger === true ? "danger" : "primary" },
    opts.submit,
  );
  const form: HTMLFormElement = h(
    "form",
    {
      class: "form",
      novalidate: true,
      onsubmit: (e) => {
        e.preventDefault();
        button.disabled = true;
        problem.replaceChildren();
        opts.action().catch((err: unknown) => {
          const p = problemOf(err);
          problem.replaceChildren(problemView(p));
          markFields(form, p);
          button.disabled = false;
        });
      },
    },
    problem,
    content,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
      button,
    ),
  );
  return form;
}
