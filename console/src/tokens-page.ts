import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Token, TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import type { Admin } from "./api.js";
import {
  openBulkMetadata,
  openBulkRevoke,
  openRevokeMatching,
  type TokenFilterInit,
} from "./bulk.js";
import type { Caller } from "./caller.js";
import { openCreateDialog } from "./create-dialog.js";
import { field, h, replace, select } from "./dom.js";
import { problemOf, problemView } from "./errors.js";
import { STATE_LABELS, TYPE_LABELS } from "./format.js";
import { Pager } from "./pager.js";
import { tokenRow } from "./token-row.js";

type Filter = TokenFilterInit;

const TYPE_OPTIONS = [
  ["0", "any"],
  ...[TokenType.PERSONAL, TokenType.TEAM, TokenType.CICD, TokenType.EPHEMERAL].map(
    (t) => [String(t), TYPE_LABELS[t]] as const,
  ),
] as const;
const STATE_OPTIONS = [
  ["0", "any"],
  ...[TokenState.ACTIVE, TokenState.EXPIRED, TokenState.REVOKED, TokenState.EXHAUSTED].map(
    (s) => [String(s), STATE_LABELS[s]] as const,
  ),
] as const;

/**
 * The tokens page: filters and server-side paging over ListTokens, a name search over the
 * loaded page, per-row actions and bulk actions. Controls the caller's permissions do not
 * allow are not shown (the server refuses them anyway).
 */
export function tokensPage(admin: Admin, caller: Caller): HTMLElement {
  const type = select(TYPE_OPTIONS, "0", { name: "type" });
  const state = select(STATE_OPTIONS, "0", { name: "state" });
  const team = h("input", { name: "team_id", placeholder: "any" });
  const owner = h("input", { name: "owner_id", placeholder: "any" });
  const unusedDays = h("input", { type: "number", min: 1, name: "unused_days", placeholder: "—" });
  const neverUsed = h("input", { type: "checkbox", name: "never_used" });
  const search = h("input", {
    type: "search",
    name: "search",
    placeholder: "Search names on this page",
    "aria-label": "Search names",
  });
  const results = h("div", { class: "results" });
  const bulkBar = h("div", { class: "bulk", role: "toolbar", "aria-label": "Bulk actions" });
  const pager = new Pager(() => void load());
  const canSelect = caller.can("tokens:revoke") || caller.can("tokens:update");
  let tokens: Token[] = [];
  const selected = new Set<string>();
  let filter: Filter = {};

  const readFilter = (): Filter => {
    const f: Filter = {
      type: Number(type.value) as TokenType,
      state: Number(state.value) as TokenState,
      teamId: team.value.trim(),
      ownerId: owner.value.trim(),
      neverUsed: neverUsed.checked,
    };
    const days = Number(unusedDays.value);
    if (unusedDays.value !== "" && days > 0)
      f.unusedSince = timestampFromDate(new Date(Date.now() - days * 86_400_000));
    return f;
  };
  const filterText = (f: Filter): string => {
    const parts: string[] = [];
    if (f.type) parts.push(`type ${TYPE_LABELS[f.type]}`);
    if (f.state) parts.push(`state ${STATE_LABELS[f.state]}`);
    if (f.teamId) parts.push(`team ${f.teamId}`);
    if (f.ownerId) parts.push(`owner ${f.ownerId}`);
    if (f.unusedSince) parts.push(`unused for ${unusedDays.value} days`);
    if (f.neverUsed) parts.push("never used");
    return parts.join(", ");
  };
  const refresh = (): void => {
    void load();
  };

  const renderBulk = (): void => {
    const chosen = tokens.filter((t) => selected.has(t.id));
    const f = filterText(filter);
    replace(
      bulkBar,
      canSelect ? h("span", { class: "hint" }, `${chosen.length} selected`) : null,
      caller.can("tokens:revoke") && chosen.length > 0
        ? h(
            "button",
            {
              type: "button",
              class: "danger",
              onclick: () =>
                openBulkRevoke(admin, chosen, () => {
                  selected.clear();
                  refresh();
                }),
            },
            "Revoke selected",
          )
        : null,
      caller.can("tokens:update") && chosen.length > 0
        ? h(
            "button",
            { type: "button", onclick: () => openBulkMetadata(admin, chosen, refresh) },
            "Set metadata on selected",
          )
        : null,
      caller.can("tokens:revoke") && f !== ""
        ? h(
            "button",
            {
              type: "button",
              class: "danger outline",
              onclick: () =>
                openRevokeMatching(admin, filter, f, () => {
                  selected.clear();
                  refresh();
                }),
            },
            "Revoke all matching filter",
          )
        : null,
    );
  };

  const rowContext = { admin, caller, selected, canSelect, refresh, onSelect: () => renderBulk() };
  const row = (t: Token): HTMLElement => tokenRow(t, rowContext);

  const renderTable = (): void => {
    const q = search.value.trim().toLowerCase();
    const shown = q === "" ? tokens : tokens.filter((t) => t.name.toLowerCase().includes(q));
    const all = h("input", {
      type: "checkbox",
      "aria-label": "Select all on this page",
      checked: shown.length > 0 && shown.every((t) => selected.has(t.id)),
      onchange: (e) => {
        for (const t of shown) {
          if ((e.target as HTMLInputElement).checked) selected.add(t.id);
          else selected.delete(t.id);
        }
        renderTable();
        renderBulk();
      },
    });
    const head = [
      "Name",
      "Type",
      "State",
      "Owner / team",
      "Created",
      "Expires",
      "Last used",
      "Uses",
      "Slots",
      "Actions",
    ];
    replace(
      results,
      shown.length === 0
        ? h(
            "p",
            { class: "empty" },
            tokens.length === 0 ? "No tokens match." : "No names on this page match the search.",
          )
        : h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "data tokens" },
              h(
                "thead",
                null,
                h(
                  "tr",
                  null,
                  canSelect ? h("th", { class: "select" }, all) : null,
                  head.map((c) => h("th", null, c)),
                ),
              ),
              h("tbody", null, shown.map(row)),
            ),
          ),
      pager.el,
    );
  };

  // A load started later wins: a slower, older answer (a refresh after an action racing a
  // new filter) must not overwrite the newer one. The results say they are busy meanwhile.
  let loading = 0;
  const load = async (): Promise<void> => {
    const mine = ++loading;
    results.setAttribute("aria-busy", "true");
    try {
      const res = await admin.listTokens({ ...filter, pageSize: 25, pageToken: pager.current });
      if (mine !== loading) return;
      tokens = res.tokens;
      for (const id of [...selected]) if (!tokens.some((t) => t.id === id)) selected.delete(id);
      pager.loaded(res.nextPageToken);
      renderTable();
      renderBulk();
    } catch (err) {
      if (mine !== loading) return;
      replace(results, problemView(problemOf(err)));
    } finally {
      if (mine === loading) results.removeAttribute("aria-busy");
    }
  };

  search.addEventListener("input", renderTable);
  const filters = h(
    "form",
    {
      class: "filters",
      "aria-label": "Filters",
      onsubmit: (e) => {
        e.preventDefault();
        filter = readFilter();
        pager.reset();
        selected.clear();
        void load();
      },
    },
    field("Type", type, { field: "type" }).row,
    field("State", state, { field: "state" }).row,
    field("Team", team, { field: "team_id" }).row,
    field("Owner", owner, { field: "owner_id" }).row,
    field("Unused for (days)", unusedDays, { field: "unused_since" }).row,
    h("div", { class: "field check" }, h("label", null, neverUsed, " Never used")),
    h(
      "div",
      { class: "field" },
      h("button", { type: "submit", class: "primary" }, "Apply filters"),
    ),
  );
  void load();
  return h(
    "section",
    { class: "page" },
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Tokens"),
      caller.can("tokens:create")
        ? h(
            "button",
            {
              type: "button",
              class: "primary",
              onclick: () => openCreateDialog(admin, caller, refresh),
            },
            "Create token",
          )
        : null,
    ),
    filters,
    h("div", { class: "toolbar" }, search, bulkBar),
    results,
  );
}
