import { type Admin, adminClient } from "./api.js";
import { auditPage } from "./audit-page.js";
import { type Caller, callerOf, scopeLabel } from "./caller.js";
import { field, h, replace } from "./dom.js";
import { problemOf, problemView } from "./errors.js";
import { session } from "./session.js";
import { tokensPage } from "./tokens-page.js";

const root = document.getElementById("app") ?? document.body;
const banner = h("div", { class: "banner", "aria-live": "assertive" });

/** Anything that escapes a handler still reaches the screen, never a blank page. */
function showUnexpected(err: unknown): void {
  replace(
    banner,
    problemView(problemOf(err)),
    h("button", { type: "button", class: "link", onclick: () => replace(banner) }, "Dismiss"),
  );
}
window.addEventListener("error", (e) => showUnexpected(e.error ?? e.message));
window.addEventListener("unhandledrejection", (e) => showUnexpected(e.reason));

function signOut(): void {
  session.clear();
  for (const d of document.querySelectorAll("dialog")) d.remove();
  window.location.hash = "";
  renderSignIn();
}

function renderSignIn(problem?: HTMLElement): void {
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "lk_…",
  });
  const form = h(
    "form",
    {
      class: "form signin",
      onsubmit: (e) => {
        e.preventDefault();
        void signIn(input.value.trim());
      },
    },
    h("h1", null, "latchkey console"),
    h(
      "p",
      null,
      "Paste a latchkey token. It stays in this tab only (sessionStorage) and is sent as an Authorization header to this server.",
    ),
    problem ?? null,
    field("Token", input).row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  replace(root, banner, h("main", { class: "center" }, form));
  input.focus();
}

async function signIn(token: string): Promise<void> {
  if (token === "") {
    renderSignIn(
      problemView({
        code: "INVALID_INPUT",
        reason: "",
        message: "Paste a token first.",
        fields: [],
      }),
    );
    return;
  }
  const admin = adminClient(token);
  try {
    const caller = callerOf(await admin.getCaller({}));
    session.set(token);
    renderApp(admin, caller);
  } catch (err) {
    session.clear();
    renderSignIn(problemView(problemOf(err)));
  }
}

function renderApp(admin: Admin, caller: Caller): void {
  const t = caller.token;
  const main = h("main", { class: "content" });
  const nav = h(
    "nav",
    { class: "nav" },
    h("a", { href: "#/tokens" }, "Tokens"),
    caller.can("audit:read") ? h("a", { href: "#/audit" }, "Audit") : null,
  );
  const header = h(
    "header",
    { class: "top" },
    h("div", { class: "brand" }, "latchkey"),
    nav,
    h(
      "div",
      { class: "who", "data-test": "caller" },
      h(
        "div",
        null,
        h("strong", null, t.name),
        " · org ",
        h("code", null, t.orgId),
        " · ",
        scopeLabel(caller),
      ),
      h(
        "div",
        { class: "perms" },
        t.permissions.map((p) => h("code", { class: "chip" }, p)),
      ),
    ),
    h("button", { type: "button", onclick: signOut }, "Sign out"),
  );
  const route = (): void => {
    const page =
      window.location.hash === "#/audit" && caller.can("audit:read") ? "audit" : "tokens";
    for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.hash === `#/${page}`);
    replace(main, page === "audit" ? auditPage(admin) : tokensPage(admin, caller));
  };
  window.onhashchange = route;
  replace(root, banner, header, main);
  route();
}

const saved = session.get();
if (saved === undefined) renderSignIn();
else void signIn(saved);
