/** Anything that can be placed in an element: nodes, text, or nothing. */
export type Child = Node | string | number | null | undefined | false | readonly Child[];

type Handler = (event: Event) => void;
type AttrValue = string | number | boolean | undefined | null | Handler;

/**
 * Builds an element from attributes and children. The console never assigns innerHTML: every
 * token name, metadata value and server message becomes a text node, so nothing an API caller
 * stored can run as markup (and the strict CSP stays satisfied).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Readonly<Record<string, AttrValue>> | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(value);
    } else if (key === "checked" && el instanceof HTMLInputElement) {
      el.checked = value === true;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (arrays flattened, empty values skipped). */
export function append(el: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "object" ? (c as Node) : document.createTextNode(String(c)));
  }
}

/** Replaces an element's content. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let nextId = 0;

/** A unique element id, for label/input pairs. */
export function uid(prefix: string): string {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** A labelled form field: the label names the control, a hint and an error line follow it. */
export function field(
  label: string,
  control: HTMLElement,
  opts: { hint?: Child; field?: string } = {},
): { row: HTMLElement; error: HTMLElement } {
  if (control.id === "") control.id = uid("f");
  const error = h("div", { class: "field-error", role: "alert" });
  const row = h(
    "div",
    { class: "field", "data-field": opts.field },
    h("label", { for: control.id }, label),
    control,
    opts.hint === undefined ? null : h("div", { class: "hint" }, opts.hint),
    error,
  );
  return { row, error };
}

/** The value of a labelled <select>, typed by its options. */
export function select(
  options: readonly (readonly [string, string])[],
  value: string,
  attrs: Readonly<Record<string, AttrValue>> = {},
): HTMLSelectElement {
  return h(
    "select",
    attrs,
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
  );
}
