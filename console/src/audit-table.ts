import { AuditDecision, type AuditEvent } from "../../src/gen/latchkey/v1/token_pb.js";
import { h } from "./dom.js";
import { DECISION_LABELS, dateOf, exact, relative } from "./format.js";

function details(e: AuditEvent): string {
  if (e.details === undefined) return "";
  const json = JSON.stringify(e.details);
  return json === "{}" ? "" : json;
}

/** Audit rows as a table (cards on a phone); denials stand out. */
export function auditTable(events: readonly AuditEvent[]): HTMLElement {
  if (events.length === 0) return h("p", { class: "empty" }, "No audit events.");
  const cell = (label: string, ...content: (Node | string)[]): HTMLElement =>
    h("td", { "data-label": label }, ...content);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data audit" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          [
            "Time",
            "Action",
            "Decision",
            "Code",
            "Token",
            "Actor",
            "Client IP",
            "Method / path",
            "Details",
          ].map((c) => h("th", null, c)),
        ),
      ),
      h(
        "tbody",
        null,
        events.map((e) => {
          const at = dateOf(e.time);
          const deny = e.decision === AuditDecision.DENY;
          return h(
            "tr",
            { class: deny ? "deny" : "", "data-action": e.action },
            cell("Time", h("span", { title: exact(at) }, at === undefined ? "—" : relative(at))),
            cell("Action", h("code", null, e.action)),
            cell(
              "Decision",
              h("span", { class: `badge ${deny ? "bad" : "good"}` }, DECISION_LABELS[e.decision]),
            ),
            cell("Code", e.code),
            cell("Token", h("code", null, e.tokenId)),
            cell("Actor", h("code", null, e.actorId)),
            cell("Client IP", e.clientIp),
            cell("Method / path", [e.method, e.path].filter((x) => x !== "").join(" ")),
            cell("Details", h("code", { class: "details" }, details(e))),
          );
        }),
      ),
    ),
  );
}
