import { create } from "@bufbuild/protobuf";
import { durationFromMs, FieldMaskSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Token, TokenSchema, TokenState } from "../../src/gen/latchkey/v1/token_pb.js";
import type { Admin } from "./api.js";
import { auditTable } from "./audit-table.js";
import type { Caller } from "./caller.js";
import { cidrEditor } from "./cidr-editor.js";
import { openDialog } from "./dialog.js";
import { dialogForm } from "./dialog-form.js";
import { type Child, field, h, select } from "./dom.js";
import { problemOf, problemView } from "./errors.js";
import { dateOf, exact, relative, STATE_LABELS, TYPE_LABELS } from "./format.js";
import { metadataEditor } from "./metadata-editor.js";
import { secretView } from "./secret-view.js";

function row(label: string, value: Child): HTMLElement[] {
  return [h("dt", null, label), h("dd", null, value === "" ? "—" : value)];
}

function when(ts: Parameters<typeof dateOf>[0], none = "—"): Child {
  const d = dateOf(ts);
  return d === undefined ? none : h("span", { title: exact(d) }, `${exact(d)} (${relative(d)})`);
}

/** Every field of a token, and (with audit:read) the audit rows about it. */
export function openDetail(admin: Admin, caller: Caller, token: Token): void {
  const dialog = openDialog(`Token “${token.name}”`, { testId: "detail-dialog" });
  const audit = h(
    "div",
    null,
    caller.can("audit:read") ? "Loading audit events…" : "Audit events need audit:read.",
  );
  const t = token;
  dialog.show(
    h(
      "dl",
      { class: "detail" },
      row("ID", h("code", null, t.id)),
      row("Hint", h("code", null, t.displayHint)),
      row("Name", t.name),
      row("Type", TYPE_LABELS[t.type]),
      row("State", STATE_LABELS[t.state]),
      row("Org", t.orgId),
      row("Team", t.teamId),
      row("Owner", t.ownerId),
      row("Role", t.role),
      row(
        "Permissions",
        t.permissions.map((p) => h("code", { class: "chip" }, p)),
      ),
      row("Created", when(t.createTime)),
      row("Created by", t.createdBy),
      row("Updated", when(t.updateTime)),
      row("Expires", when(t.expireTime, "never")),
      row("Last used", when(t.lastUsedTime, "never used")),
      row("Last IP", t.lastUsedIp),
      row(
        "Uses",
        `${t.useCount}${t.maxUses === undefined ? "" : ` of ${t.maxUses} (${t.remainingUses ?? 0n} left)`}`,
      ),
      row("Slots", t.maxConcurrent === 0 ? "none" : `${t.slotsInUse} of ${t.maxConcurrent} in use`),
      row(
        "Rate limits",
        t.rateLimits.map((r) => `${r.name}: ${r.limit} per ${r.window?.seconds ?? 0n}s`).join(", "),
      ),
      row("Allowed IPs", t.allowedCidrs.join(", ") || "any"),
      row(
        "Metadata",
        Object.entries(t.metadata).map(([k, v]) => h("code", { class: "chip" }, `${k}=${v}`)),
      ),
      row("Revoked", when(t.revokeTime)),
      row("Revoked by", t.revokedBy),
      row("Revoke reason", t.revokeReason),
      row("Rotated from", t.rotatedFrom),
      row("Replaced by", t.replacedBy),
    ),
    h("h3", null, "Audit events"),
    audit,
  );
  if (caller.can("audit:read")) {
    admin.listAuditEvents({ tokenId: t.id, pageSize: 50 }).then(
      (res) => audit.replaceChildren(auditTable(res.events)),
      (err: unknown) => audit.replaceChildren(problemView(problemOf(err))),
    );
  }
}

const GRACE: readonly (readonly [string, string])[] = [
  ["0", "none: the old secret stops now"],
  [String(3_600_000), "1 hour"],
  [String(86_400_000), "1 day"],
  [String(7 * 86_400_000), "7 days (maximum)"],
];

/** Rotate: a new secret with the same grants; the old one lives on for the grace period. */
export function openRotate(admin: Admin, token: Token, done: () => void): void {
  const dialog = openDialog(`Rotate “${token.name}”`, { testId: "rotate-dialog" });
  const grace = select(GRACE, String(3_600_000), { name: "grace_period" });
  const action = async (): Promise<void> => {
    const gracePeriod = durationFromMs(Number(grace.value));
    const res = await admin.rotateToken({ id: token.id, gracePeriod });
    done();
    const oldEnd = dateOf(res.previous?.expireTime);
    dialog.show(
      h(
        "p",
        null,
        "The old secret ",
        oldEnd === undefined ? "is revoked." : `stops working ${relative(oldEnd)}.`,
      ),
      secretView(res.secret, res.token?.name ?? token.name, () => dialog.close()),
    );
  };
  dialog.show(
    dialogForm(
      dialog,
      { submit: "Rotate", action },
      h(
        "p",
        null,
        "A new secret with the same permissions, limits and metadata replaces ",
        h("code", null, token.id),
        ".",
      ),
      field("Grace period for the old secret", grace, { field: "grace_period" }).row,
    ),
  );
}

/** Revoke one token, for good, with a reason; the confirmation names the token. */
export function openRevoke(admin: Admin, token: Token, done: () => void): void {
  const dialog = openDialog(`Revoke “${token.name}”?`, { testId: "revoke-dialog" });
  const reason = h("input", { name: "reason", maxlength: 500, placeholder: "e.g. laptop lost" });
  const action = async (): Promise<void> => {
    await admin.revokeToken({ id: token.id, reason: reason.value.trim() });
    dialog.close();
    done();
  };
  dialog.show(
    dialogForm(
      dialog,
      { submit: `Revoke “${token.name}”`, danger: true, action },
      h(
        "p",
        null,
        "Revoking ",
        h("strong", null, token.name),
        " (",
        h("code", null, token.id),
        ") takes effect at once and cannot be undone.",
      ),
      field("Reason", reason, { field: "reason" }).row,
    ),
  );
  reason.focus();
}

function localInput(d: Date | undefined): string {
  if (d === undefined) return "";
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

/** Edit what UpdateToken allows: name, metadata (replaced whole), allowed IPs, a shorter expiry. */
export function openEdit(admin: Admin, token: Token, done: () => void): void {
  const dialog = openDialog(`Edit “${token.name}”`, { testId: "edit-dialog" });
  const name = h("input", { name: "name", maxlength: 100, value: token.name });
  const meta = metadataEditor(token.metadata);
  const cidrs = cidrEditor(token.allowedCidrs);
  const expires = dateOf(token.expireTime);
  const expiry = h("input", {
    type: "datetime-local",
    name: "expire_time",
    value: localInput(expires),
    max: localInput(expires) || undefined,
  });
  const action = async (): Promise<void> => {
    const m = meta.read();
    if (!m.ok) throw new Error(`Metadata: ${m.error}`);
    const c = cidrs.read();
    if (!c.ok) throw new Error(`Allowed IPs: ${c.error}`);
    const paths: string[] = [];
    const next = create(TokenSchema, { id: token.id });
    if (name.value.trim() !== token.name) {
      paths.push("name");
      next.name = name.value.trim();
    }
    if (JSON.stringify(m.value) !== JSON.stringify(token.metadata)) {
      paths.push("metadata");
      next.metadata = m.value;
    }
    if (c.value.join() !== token.allowedCidrs.join()) {
      paths.push("allowed_cidrs");
      next.allowedCidrs = c.value;
    }
    if (expiry.value !== localInput(expires) && expiry.value !== "") {
      paths.push("expire_time");
      next.expireTime = timestampFromDate(new Date(expiry.value));
    }
    if (paths.length > 0) {
      await admin.updateToken({ token: next, updateMask: create(FieldMaskSchema, { paths }) });
    }
    dialog.close();
    done();
  };
  const expiryHint =
    expires === undefined ? "Never expires; pick a date to set one." : "Can only be shortened.";
  dialog.show(
    dialogForm(
      dialog,
      { submit: "Save", action },
      field("Name", name, { field: "name" }).row,
      meta.el,
      cidrs.el,
      field("Expires", expiry, { field: "expire_time", hint: expiryHint }).row,
    ),
  );
}

/** Revocation is permanent: a revoked token offers no actions but its details. */
export function canRevoke(t: Token): boolean {
  return t.state !== TokenState.REVOKED;
}

/** Only an active token that was not already replaced can be rotated. */
export function canRotate(t: Token): boolean {
  return t.state === TokenState.ACTIVE && t.replacedBy === "";
}
