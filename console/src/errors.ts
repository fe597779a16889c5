import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { h } from "./dom.js";

/** What went wrong with a call, in the terms the server gave: code, reason, bad fields. */
export interface Problem {
  /** The gRPC code name, e.g. INVALID_ARGUMENT. */
  readonly code: string;
  /** ErrorInfo reason, e.g. TOKEN_REVOKED; empty when the server sent none. */
  readonly reason: string;
  readonly message: string;
  readonly fields: readonly { readonly field: string; readonly description: string }[];
}

function codeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * Reads a failed call's ErrorInfo and BadRequest details (latchkey's error contract), so the
 * console can say which field was wrong and why instead of a generic failure.
 */
export function problemOf(err: unknown): Problem {
  if (err instanceof ConnectError) {
    const info = err.findDetails(ErrorInfoSchema)[0];
    const fields = err
      .findDetails(BadRequestSchema)
      .flatMap((b) => b.fieldViolations)
      .map((v) => ({ field: v.field, description: v.description }));
    return {
      code: codeName(err.code),
      reason: info?.reason ?? "",
      message: err.rawMessage,
      fields,
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: "CLIENT_ERROR", reason: "", message, fields: [] };
}

/** A visible, announced error box for a problem. */
export function problemView(p: Problem): HTMLElement {
  return h(
    "div",
    { class: "problem", role: "alert", "data-code": p.code, "data-reason": p.reason },
    h(
      "div",
      { class: "problem-head" },
      h("strong", null, p.code),
      p.reason === "" ? null : h("code", { class: "reason" }, p.reason),
    ),
    h("div", null, p.message),
    p.fields.length === 0
      ? null
      : h(
          "ul",
          { class: "problem-fields" },
          p.fields.map((f) => h("li", null, h("code", null, f.field), ": ", f.description)),
        ),
  );
}

/** Marks the form fields a BadRequest named (rows carry data-field), clearing older marks. */
export function markFields(form: HTMLElement, p: Problem): void {
  for (const row of form.querySelectorAll<HTMLElement>(".field")) {
    row.classList.remove("invalid");
    const error = row.querySelector(".field-error");
    if (error !== null) error.textContent = "";
  }
  for (const f of p.fields) {
    const root = f.field.split(/[.[]/)[0] ?? f.field;
    const row = form.querySelector<HTMLElement>(`.field[data-field~="${CSS.escape(root)}"]`);
    if (row === null) continue;
    row.classList.add("invalid");
    const error = row.querySelector(".field-error");
    if (error !== null) error.textContent = f.description;
  }
}
