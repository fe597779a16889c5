import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DEFAULT_ROLES, isValidPermission, uncovered } from "../../src/domain/permissions.js";
import { DEFAULT_TYPE_POLICIES } from "../../src/domain/token-types.js";
import type { CreateTokenRequestSchema } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import { TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import type { Admin } from "./api.js";
import type { Caller } from "./caller.js";
import { cidrEditor } from "./cidr-editor.js";
import { openDialog } from "./dialog.js";
import { dialogForm } from "./dialog-form.js";
import { field, h, select } from "./dom.js";
import { lifetime, TYPE_LABELS } from "./format.js";
import { metadataEditor } from "./metadata-editor.js";
import { secretView } from "./secret-view.js";

type Policies = typeof DEFAULT_TYPE_POLICIES;
type KnownType = keyof Policies;

const TYPES: readonly KnownType[] = [
  TokenType.PERSONAL,
  TokenType.TEAM,
  TokenType.CICD,
  TokenType.EPHEMERAL,
];
const TYPE_WHO: Readonly<Record<KnownType, string>> = {
  [TokenType.PERSONAL]: "a user in the org (needs an owner)",
  [TokenType.TEAM]: "a team (needs a team id)",
  [TokenType.CICD]: "the org, for pipelines; has concurrency slots",
  [TokenType.EPHEMERAL]: "one use by default",
};
const KNOWN_PERMISSIONS = [
  "tokens:read",
  "tokens:create",
  "tokens:update",
  "tokens:revoke",
  "audit:read",
  "tokens:watch",
  "tokens:introspect",
  "deploy:read",
  "deploy:write",
  "deploy:*",
  "artifacts:*",
  "*",
];
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const PRESETS: readonly (readonly [string, number])[] = [
  ["1 hour", HOUR],
  ["1 day", DAY],
  ["7 days", 7 * DAY],
  ["30 days", 30 * DAY],
  ["90 days", 90 * DAY],
  ["1 year", 365 * DAY],
];

function describeType(t: KnownType): string {
  const p = DEFAULT_TYPE_POLICIES[t];
  return `${TYPE_LABELS[t]}: ${TYPE_WHO[t]}. Lives at most ${lifetime(p.maxLifetimeMs)} (default ${lifetime(p.defaultLifetimeMs)}).`;
}

/** What the caller may grant: known permissions and its own, each one it holds. */
function grantable(caller: Caller): string[] {
  const all = [...KNOWN_PERMISSIONS, ...caller.token.permissions];
  return [...new Set(all)].filter((p) => caller.can(p));
}

/**
 * The create dialog: every CreateToken option, only grants the caller holds, allowlist and
 * metadata checked as typed; then the secret, once. Closing the dialog forgets the secret.
 */
export function openCreateDialog(admin: Admin, caller: Caller, onCreated: () => void): void {
  const dialog = openDialog("Create token", { testId: "create-dialog" });
  const name = h("input", {
    name: "name",
    required: true,
    maxlength: 100,
    placeholder: "e.g. GitHub Actions - Production",
  });
  const type = select(
    TYPES.map((t) => [String(t), TYPE_LABELS[t]] as const),
    String(TokenType.PERSONAL),
    { name: "type" },
  );
  const typeHint = h("span");
  const team = h("input", {
    name: "team_id",
    value: caller.orgWide ? "" : caller.token.teamId,
    placeholder: "e.g. payments",
  });
  const owner = h("input", {
    name: "owner_id",
    value: caller.token.ownerId,
    placeholder: "e.g. alice",
  });
  const roles = Object.entries(DEFAULT_ROLES).filter(
    ([, perms]) => uncovered(caller.token.permissions, perms).length === 0,
  );
  const grantMode = select(
    [
      ["role", "a role"],
      ["permissions", "explicit permissions"],
    ],
    roles.length > 0 ? "role" : "permissions",
    { name: "grant" },
  );
  const role = select(
    roles.map(([r, perms]) => [r, `${r} (${perms.join(", ")})`] as const),
    roles[0]?.[0] ?? "",
    { name: "role" },
  );
  const perms = h(
    "div",
    { class: "checks" },
    grantable(caller).map((p) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", value: p, name: "permission" }),
        h("code", null, p),
      ),
    ),
  );
  const extraPerms = h("input", {
    name: "extra_permissions",
    placeholder: "more, comma-separated: resource:action",
  });
  const expiry = select([], "", { name: "expiry" });
  const customExpiry = h("input", { type: "datetime-local", name: "expire_time", hidden: true });
  const cidrs = cidrEditor();
  const meta = metadataEditor();
  const maxUses = h("input", {
    type: "number",
    min: 1,
    name: "max_uses",
    placeholder: "unlimited",
  });
  const maxConcurrent = h("input", {
    type: "number",
    min: 0,
    max: 1000,
    name: "max_concurrent",
    value: 0,
  });

  const roleRow = field("Role", role, {
    field: "role",
    hint: "Only roles within your own permissions are offered.",
  });
  const permRow = field("Permissions", h("div", null, perms, extraPerms), {
    field: "permissions",
    hint: "Only permissions you hold can be granted.",
  });
  const syncType = (): void => {
    const t = Number(type.value) as KnownType;
    typeHint.textContent = describeType(t);
    const max = DEFAULT_TYPE_POLICIES[t].maxLifetimeMs;
    const previous = expiry.value;
    expiry.replaceChildren(
      h(
        "option",
        { value: "" },
        `type default (${lifetime(DEFAULT_TYPE_POLICIES[t].defaultLifetimeMs)})`,
      ),
      ...PRESETS.filter(([, ms]) => max === null || ms <= max).map(([label, ms]) =>
        h("option", { value: String(ms) }, label),
      ),
      h("option", { value: "custom" }, "pick a date…"),
    );
    expiry.value = [...expiry.options].some((o) => o.value === previous) ? previous : "";
    customExpiry.hidden = expiry.value !== "custom";
    maxUses.placeholder = t === TokenType.EPHEMERAL ? "1 (ephemeral default)" : "unlimited";
  };
  const syncGrant = (): void => {
    roleRow.row.hidden = grantMode.value !== "role";
    permRow.row.hidden = grantMode.value === "role";
  };
  type.addEventListener("change", syncType);
  grantMode.addEventListener("change", syncGrant);
  expiry.addEventListener("change", () => {
    customExpiry.hidden = expiry.value !== "custom";
  });
  syncType();
  syncGrant();

  const build = (): MessageInitShape<typeof CreateTokenRequestSchema> | string => {
    const c = cidrs.read();
    if (!c.ok) return `Allowed IPs: ${c.error}`;
    const m = meta.read();
    if (!m.ok) return `Metadata: ${m.error}`;
    const req: MessageInitShape<typeof CreateTokenRequestSchema> = {
      name: name.value.trim(),
      type: Number(type.value) as TokenType,
      teamId: team.value.trim(),
      ownerId: owner.value.trim(),
      allowedCidrs: c.value,
      metadata: m.value,
      maxConcurrent: Number(maxConcurrent.value || "0"),
    };
    if (grantMode.value === "role") req.role = role.value;
    else {
      const chosen = [...perms.querySelectorAll<HTMLInputElement>("input:checked")].map(
        (i) => i.value,
      );
      const extra = extraPerms.value
        .split(",")
        .map((p) => p.trim())
        .filter((p) => p !== "");
      const bad = extra.find((p) => !isValidPermission(p));
      if (bad !== undefined) return `Permissions: "${bad}" is not resource:action`;
      const notHeld = uncovered(caller.token.permissions, extra);
      if (notHeld.length > 0) return `Permissions: you do not hold ${notHeld.join(", ")}`;
      req.permissions = [...new Set([...chosen, ...extra])];
    }
    if (expiry.value === "custom") {
      const at = new Date(customExpiry.value);
      if (Number.isNaN(at.getTime())) return "Expiry: pick a date and time";
      req.expireTime = timestampFromDate(at);
    } else if (expiry.value !== "") req.ttl = durationFromMs(Number(expiry.value));
    if (maxUses.value !== "") req.maxUses = BigInt(maxUses.value);
    return req;
  };

  const action = async (): Promise<void> => {
    const req = build();
    if (typeof req === "string") throw new Error(req);
    const res = await admin.createToken(req);
    onCreated();
    dialog.show(secretView(res.secret, res.token?.name ?? req.name ?? "", () => dialog.close()));
  };
  const form = dialogForm(
    dialog,
    { submit: "Create token", action },
    field("Name", name, { field: "name" }).row,
    field("Type", type, { field: "type", hint: typeHint }).row,
    h(
      "div",
      { class: "two" },
      field("Team", team, { field: "team_id", hint: "Required for team tokens." }).row,
      field("Owner", owner, { field: "owner_id", hint: "The user, for personal tokens." }).row,
    ),
    field("Grant", grantMode).row,
    roleRow.row,
    permRow.row,
    field("Expires", h("div", null, expiry, customExpiry), { field: "ttl expire_time" }).row,
    cidrs.el,
    meta.el,
    h(
      "div",
      { class: "two" },
      field("Max uses", maxUses, { field: "max_uses" }).row,
      field("Max concurrent (slots)", maxConcurrent, { field: "max_concurrent" }).row,
    ),
  );
  dialog.show(form);
  name.focus();
}
