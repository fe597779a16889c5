import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Token, TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import type { Admin } from "./api.js";
import { type Dialog, openDialog } from "./dialog.js";
import { dialogForm } from "./dialog-form.js";
import { field, h } from "./dom.js";
import { problemOf, problemView } from "./errors.js";
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

/** Revoke the selected tokens in one all-or-nothing BatchRevokeTokens call. */
export function openBulkRevoke(admin: Admin, tokens: readonly Token[], done: () => void): void {
  const dialog = openDialog(`Revoke ${tokens.length} tokens?`, { testId: "bulk-revoke-dialog" });
  const reason = h("input", { name: "reason", maxlength: 500, placeholder: "e.g. offboarding" });
  const action = async (): Promise<void> => {
    await admin.batchRevokeTokens({ ids: tokens.map((t) => t.id), reason: reason.value.trim() });
    dialog.close();
    done();
  };
  dialog.show(
    dialogForm(
      dialog,
      { submit: `Revoke ${tokens.length} tokens`, danger: true, action },
      h("p", null, "These tokens stop working at once, for good (all or nothing):"),
      names(tokens),
      field("Reason", reason, { field: "reason" }).row,
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
  const action = async (): Promise<void> => {
    const m = meta.read();
    if (!m.ok) throw new Error(`Metadata: ${m.error}`);
    await admin.batchUpdateTokens({ ids: tokens.map((t) => t.id), metadata: m.value });
    dialog.close();
    done();
  };
  dialog.show(
    dialogForm(
      dialog,
      { submit: `Update ${tokens.length} tokens`, action },
      names(tokens),
      meta.el,
    ),
  );
}

function closeOnly(dialog: Dialog): HTMLElement {
  return h(
    "div",
    { class: "actions" },
    h("button", { type: "button", onclick: () => dialog.close() }, "Close"),
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
  dialog.show(h("p", null, "Counting matching tokens (dry run)…"));
  const confirm = (count: number, sample: readonly Token[]): void => {
    const reason = h("input", { name: "reason", maxlength: 500 });
    const action = async (): Promise<void> => {
      const res = await admin.batchRevokeTokens({ filter, reason: reason.value.trim() });
      dialog.show(h("p", { role: "status" }, `Revoked ${res.count} tokens.`), closeOnly(dialog));
      done();
    };
    dialog.show(
      dialogForm(
        dialog,
        { submit: `Revoke ${count} tokens`, danger: true, action },
        h(
          "p",
          { "data-test": "match-count" },
          h("strong", null, String(count)),
          ` active tokens match ${describe}:`,
        ),
        names(sample),
        field("Reason", reason, { field: "reason" }).row,
      ),
    );
  };
  admin.batchRevokeTokens({ filter, dryRun: true }).then(
    (dry) => {
      if (dry.count > 0) confirm(dry.count, dry.tokens);
      else
        dialog.show(
          h(
            "p",
            { "data-test": "match-count" },
            `No active token matches ${describe}. Nothing to revoke.`,
          ),
          closeOnly(dialog),
        );
    },
    (err: unknown) => dialog.show(problemView(problemOf(err)), closeOnly(dialog)),
  );
}
