import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ListAuditEventsRequestSchema } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { AuditDecision } from "../../src/gen/latchkey/v1/token_pb.js";
import type { Admin } from "./api.js";
import { auditTable } from "./audit-table.js";
import { field, h, replace, select } from "./dom.js";
import { problemOf, problemView } from "./errors.js";
import { Pager } from "./pager.js";

const ACTIONS = [
  "token.create",
  "token.update",
  "token.revoke",
  "token.rotate",
  "token.batch_revoke",
  "token.batch_update",
  "token.verify",
  "auth.denied",
];

/** The audit page: ListAuditEvents with its filters, paged with the server's page tokens. */
export function auditPage(admin: Admin): HTMLElement {
  const action = h("input", { name: "action", list: "audit-actions", placeholder: "any" });
  const decision = select(
    [
      ["0", "any"],
      [String(AuditDecision.ALLOW), "allow"],
      [String(AuditDecision.DENY), "deny"],
    ],
    "0",
    { name: "decision" },
  );
  const tokenId = h("input", { name: "token_id", placeholder: "tok_…" });
  const start = h("input", { type: "datetime-local", name: "start_time" });
  const end = h("input", { type: "datetime-local", name: "end_time" });
  const results = h("div", { class: "results" });
  const pager = new Pager(() => void load());

  const request = (): MessageInitShape<typeof ListAuditEventsRequestSchema> => {
    const req: MessageInitShape<typeof ListAuditEventsRequestSchema> = {
      action: action.value.trim(),
      decision: Number(decision.value) as AuditDecision,
      tokenId: tokenId.value.trim(),
      pageSize: 50,
      pageToken: pager.current,
    };
    if (start.value !== "") req.startTime = timestampFromDate(new Date(start.value));
    if (end.value !== "") req.endTime = timestampFromDate(new Date(end.value));
    return req;
  };
  const load = async (): Promise<void> => {
    replace(results, h("p", { class: "empty" }, "Loading…"));
    try {
      const res = await admin.listAuditEvents(request());
      pager.loaded(res.nextPageToken);
      replace(results, auditTable(res.events), pager.el);
    } catch (err) {
      replace(results, problemView(problemOf(err)));
    }
  };
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: (e) => {
        e.preventDefault();
        pager.reset();
        void load();
      },
    },
    h(
      "datalist",
      { id: "audit-actions" },
      ACTIONS.map((a) => h("option", { value: a })),
    ),
    field("Action", action, { field: "action" }).row,
    field("Decision", decision, { field: "decision" }).row,
    field("Token", tokenId, { field: "token_id" }).row,
    field("From", start, { field: "start_time" }).row,
    field("Until", end, { field: "end_time" }).row,
    h("div", { class: "field" }, h("button", { type: "submit", class: "primary" }, "Apply")),
  );
  void load();
  return h("section", { class: "page" }, h("h1", null, "Audit events"), form, results);
}
