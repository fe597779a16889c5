import type { Token } from "../../src/gen/latchkey/v1/token_pb.js";
import type { Admin } from "./api.js";
import type { Caller } from "./caller.js";
import { type Child, h } from "./dom.js";
import { dateOf, exact, relative, STATE_LABELS, TYPE_LABELS } from "./format.js";
import {
  canRevoke,
  canRotate,
  openDetail,
  openEdit,
  openRevoke,
  openRotate,
} from "./token-actions.js";

/** What a row needs from its page: the client, the caller, the selection and a reload. */
export interface RowContext {
  readonly admin: Admin;
  readonly caller: Caller;
  readonly selected: Set<string>;
  readonly canSelect: boolean;
  readonly refresh: () => void;
  /** Called after the row's checkbox changed the selection. */
  readonly onSelect: () => void;
}

function timeCell(d: Date | undefined, none: Child): Child {
  return d === undefined ? none : h("span", { title: exact(d) }, relative(d));
}

/**
 * One token as a table row (a card on phones, through data-label): the columns of the tokens
 * page and the actions the caller may take on it.
 */
export function tokenRow(t: Token, ctx: RowContext): HTMLElement {
  const { admin, caller, selected, canSelect, refresh, onSelect } = ctx;
  const lastUsed = dateOf(t.lastUsedTime);
  const td = (label: string, ...c: Child[]): HTMLElement => h("td", { "data-label": label }, ...c);
  const actions: Child[] = [
    h(
      "button",
      { type: "button", class: "link", onclick: () => openDetail(admin, caller, t) },
      "Details",
    ),
  ];
  const self = t.id === caller.token.id;
  if ((caller.can("tokens:create") || self) && canRotate(t))
    actions.push(
      h(
        "button",
        { type: "button", class: "link", onclick: () => openRotate(admin, t, refresh) },
        "Rotate",
      ),
    );
  if (caller.can("tokens:update") && canRevoke(t))
    actions.push(
      h(
        "button",
        { type: "button", class: "link", onclick: () => openEdit(admin, t, refresh) },
        "Edit",
      ),
    );
  if (caller.can("tokens:revoke") && canRevoke(t))
    actions.push(
      h(
        "button",
        { type: "button", class: "link danger", onclick: () => openRevoke(admin, t, refresh) },
        "Revoke",
      ),
    );
  const check = h("input", {
    type: "checkbox",
    "aria-label": `Select ${t.name}`,
    checked: selected.has(t.id),
    onchange: (e) => {
      if ((e.target as HTMLInputElement).checked) selected.add(t.id);
      else selected.delete(t.id);
      onSelect();
    },
  });
  return h(
    "tr",
    { "data-id": t.id, "data-name": t.name, class: `state-${STATE_LABELS[t.state]}` },
    canSelect ? h("td", { class: "select" }, check) : null,
    td(
      "Name",
      h(
        "button",
        { type: "button", class: "link name", onclick: () => openDetail(admin, caller, t) },
        t.name,
      ),
      h("div", { class: "hint" }, h("code", null, t.displayHint)),
    ),
    td("Type", TYPE_LABELS[t.type]),
    td(
      "State",
      h("span", { class: `badge state ${STATE_LABELS[t.state]}` }, STATE_LABELS[t.state]),
    ),
    td(
      "Owner / team",
      [t.ownerId && `owner ${t.ownerId}`, t.teamId && `team ${t.teamId}`]
        .filter(Boolean)
        .join(", ") || "org",
    ),
    td("Created", timeCell(dateOf(t.createTime), "—")),
    td("Expires", timeCell(dateOf(t.expireTime), "never")),
    td(
      "Last used",
      lastUsed === undefined
        ? h("span", { class: "badge muted" }, "never used")
        : [
            timeCell(lastUsed, ""),
            t.lastUsedIp === "" ? null : h("div", { class: "hint" }, t.lastUsedIp),
          ],
    ),
    td("Uses", t.maxUses === undefined ? String(t.useCount) : `${t.useCount} of ${t.maxUses}`),
    td("Slots", t.maxConcurrent === 0 ? "—" : `${t.slotsInUse} of ${t.maxConcurrent} in use`),
    td("Actions", h("div", { class: "row-actions" }, actions)),
  );
}
