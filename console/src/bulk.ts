import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Token, TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import type { Admin } from "./api.js";
import { openDialog } from "./dialog.js";
import { field, h } from "./dom.js";
import { markFields, problemOf, problemView } from "./errors.js";
import { metadataEditor } from "./metadata-editor.js";

/** The filters ListTokens and BatchRevokeTokens' TokenFilter share. */
export interface TokenFilterInit {
  type?: TokenType;
  state?: TokenState;
  teamId?: string;
  ownerId?: string;
  neverUsed?: boolean;
  unusedSince?: Timestamp;
}

function names(tokens: readonly Token[]): HTMLElement {
  const shown = tokens.slice(0, 10);
  return h(
    "ul",
    { class: "names" },
    shown.map((t) => h("li", null, t.name, " ", h("code", null, t.id))),
    tokens.length > shown.length
      ? h("li", null, `… and ${tokens.length - shown.length} more`)
      : null,
  );
}

function form(
  problem: HTMLElement,
  submit: (form: HTMLFormElement, button: HTMLButtonElement) => Promise<void>,
  button: HTMLButtonElement,
  ...content: (Node | null)[]
): HTMLFormElement {
  const el: HTMLFormElement = h(
    "form",
    {
      class: "form",
      onsubmit: (e) => {
        e.preventDefault();
        button.disabled = true;
        problem.replaceChildren();
        submit(el, button).catch((err: unknown) => {
          const p = problemOf(err);
          problem.replaceChildren(problemView(p));
          markFields(el, p);
          button.disabled = false;
        });
      },
    },
    problem,
    ...content,
  );
  return el;
}

/** Revoke the selected tokens in one all-or-nothing BatchRevokeTokens call. */
export function openBulkRevoke(admin: Admin, tokens: readonly Token[], done: () => void): void {
  const dialog = openDialog(`Revoke ${tokens.length} tokens?`, { testId: "bulk-revoke-dialog" });
  const reason = h("input", { name: "reason", maxlength: 500, placeholder: "e.g. offboarding" });
  const button = h("button", { type: "submit", class: "danger" }, `Revoke ${tokens.length} tokens`);
  dialog.show(
    form(
      h("div"),
      async () => {
        await admin.batchRevokeTokens({
          ids: tokens.map((t) => t.id),
          reason: reason.value.trim(),
        });
        dialog.close();
        done();
      },
      button,
      h("p", null, "These tokens stop working at once, for good (all or nothing):"),
      names(tokens),
      field("Reason", reason, { field: "reason" }).row,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
        button,
      ),
    ),
  );
}

/** One metadata change over the selected tokens (e.g. redaction_tier=strict); empty removes. */
export function openBulkMetadata(admin: Admin, tokens: readonly Token[], done: () => void): void {
  const dialog = openDialog(`Set metadata on ${tokens.length} tokens`, {
    testId: "bulk-metadata-dialog",
  });
  const meta = metadataEditor(
    { redaction_tier: "" },
    { allowEmpty: true, label: "Keys to set (an empty value removes the key)" },
  );
  const button = h(
    "button",
    { type: "submit", class: "primary" },
    `Update ${tokens.length} tokens`,
  );
  dialog.show(
    form(
      h("div"),
      async () => {
        const m = meta.read();
        if (!m.ok) throw new Error(`Metadata: ${m.error}`);
        await admin.batchUpdateTokens({ ids: tokens.map((t) => t.id), metadata: m.value });
        dialog.close();
        done();
      },
      button,
      names(tokens),
      meta.el,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
        button,
      ),
    ),
  );
}

/**
 * "Revoke all matching filter": a dry run first, so the count (and the first names) are on
 * screen before anything is revoked; the real call repeats the same filter.
 */
export function openRevokeMatching(
  admin: Admin,
  filter: TokenFilterInit,
  describe: string,
  done: () => void,
): void {
  const dialog = openDialog("Revoke all tokens matching the filter", {
    testId: "revoke-matching-dialog",
  });
  const problem = h("div");
  dialog.show(h("p", null, "Counting matching tokens (dry run)…"));
  admin.batchRevokeTokens({ filter, dryRun: true }).then(
    (dry) => {
      if (dry.count === 0) {
        dialog.show(
          h(
            "p",
            { "data-test": "match-count" },
            "No active token matches ",
            describe,
            ". Nothing to revoke.",
          ),
          h(
            "div",
            { class: "actions" },
            h("button", { type: "button", onclick: () => dialog.close() }, "Close"),
          ),
        );
        return;
      }
      const reason = h("input", { name: "reason", maxlength: 500 });
      const button = h("button", { type: "submit", class: "danger" }, `Revoke ${dry.count} tokens`);
      dialog.show(
        form(
          problem,
          async () => {
            const res = await admin.batchRevokeTokens({ filter, reason: reason.value.trim() });
            dialog.show(
              h("p", { role: "status" }, `Revoked ${res.count} tokens.`),
              h(
                "div",
                { class: "actions" },
                h("button", { type: "button", onclick: () => dialog.close() }, "Close"),
              ),
            );
            done();
          },
          button,
          h(
            "p",
            { "data-test": "match-count" },
            h("strong", null, String(dry.count)),
            ` active tokens match ${describe}:`,
          ),
          names(dry.tokens),
          field("Reason", reason, { field: "reason" }).row,
          h(
            "div",
            { class: "actions" },
            h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
            button,
          ),
        ),
      );
    },
    (err: unknown) => dialog.show(problemView(problemOf(err))),
  );
}
