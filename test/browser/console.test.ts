import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import {
  type Browser,
  type BrowserContext,
  chromium,
  type Locator,
  type Page,
} from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenState, TokenType } from "../../src/gen/latchkey/v1/token_pb.js";
import { VerifyCode } from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { type VerifyClient, verifyClient } from "../helpers/admin-client.js";
import { type AdminHarness, ORG_A, startAdminHarness } from "../helpers/admin-harness.js";

// The web console in a real headless Chromium (Debian's `chromium`, driven by playwright-core;
// nothing downloads a browser) against a real server on real Postgres. Screenshots of the
// tokens page and the create dialog at desktop and phone sizes go to test-output/console/.

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.CI !== undefined && process.env.CI !== "") {
    throw new Error(`console browser tests: ${CHROMIUM} is missing in CI (.ci/run installs it)`);
  }
  process.stderr.write(
    `\n*** SKIPPED test/browser/console.test.ts: no Chromium at ${CHROMIUM} (apt-get install -y chromium) ***\n\n`,
  );
}

const SHOTS = join(import.meta.dirname, "..", "..", "test-output", "console");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let h: AdminHarness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let verify: VerifyClient;
let channel: grpc.Client;
const cspErrors: string[] = [];

async function shot(p: Page, name: string): Promise<void> {
  await p.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** A fresh page on /console/, signed in with `secret`, at `viewport`. */
async function signedIn(ctx: BrowserContext, secret: string): Promise<Page> {
  const p = await ctx.newPage();
  p.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text());
  });
  p.on("pageerror", (e) => cspErrors.push(`page error: ${e.message}`));
  await p.goto(`${h.httpUrl}/console/`);
  await p.getByLabel("Token").fill(secret);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.locator('[data-test="caller"]').waitFor();
  return p;
}

function row(p: Page, name: string): Locator {
  return p.locator(`tr[data-name="${name}"]`);
}

/** Applies the tokens page's filters (empty strings clear them) and waits for the reload. */
async function filterBy(
  p: Page,
  f: { team?: string; owner?: string; type?: string },
): Promise<void> {
  const form = p.locator("form.filters");
  await form.getByLabel("Team").fill(f.team ?? "");
  await form.getByLabel("Owner").fill(f.owner ?? "");
  await form.getByLabel("Type").selectOption({ label: f.type ?? "any" });
  await form.getByRole("button", { name: "Apply filters" }).click();
  // The response arriving is not the table drawn: wait until the page has rendered it.
  await p.locator(".results:not([aria-busy])").waitFor();
}

async function names(p: Page): Promise<string[]> {
  return p
    .locator("table.tokens tbody tr")
    .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-name") ?? ""));
}

describe.skipIf(!haveChromium)("web console in Chromium", () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    h = await startAdminHarness();
    channel = new grpc.Client(h.address, grpc.credentials.createInsecure());
    verify = verifyClient(channel);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    context = await browser.newContext({ viewport: DESKTOP });
    page = await signedIn(context, h.bootstrapSecret);
  });

  afterAll(async () => {
    await browser?.close();
    channel?.close();
    await h?.close();
  });

  it("signs in with the bootstrap token and shows the caller", async () => {
    const caller = page.locator('[data-test="caller"]');
    const text = await caller.innerText();
    expect(text).toContain(ORG_A);
    expect(text).toContain("platform");
    expect(text).toContain("platform:admin");
    expect(await page.evaluate("sessionStorage.getItem('latchkey.token')")).toBe(h.bootstrapSecret);
    expect(await page.evaluate("localStorage.length")).toBe(0);
    expect(await context.cookies()).toEqual([]);
    await row(page, "bootstrap").or(page.locator("table.tokens tbody tr").first()).waitFor();
  });

  it("creates a token, shows its secret once, and the secret verifies", async () => {
    await page.getByRole("button", { name: "Create token" }).click();
    const dlg = page.locator('[data-test="create-dialog"]');
    await dlg.waitFor();
    expect(await dlg.getByLabel("Role").isVisible()).toBe(true);
    expect(await dlg.getByRole("checkbox", { name: "deploy:read" }).isVisible()).toBe(false);
    await dlg.getByLabel("Name").fill("ci deploy");
    await dlg.getByLabel("Type").selectOption({ label: "CI/CD" });
    expect(await dlg.innerText()).toContain("at most 90 days");
    await dlg.getByLabel("Grant").selectOption("permissions");
    await dlg.getByRole("checkbox", { name: "deploy:read" }).check();
    const cidrs = dlg.getByLabel("Allowed IPs (one per line)");
    await cidrs.fill("10.20.0.300/16");
    await dlg.getByText('"10.20.0.300/16" is not an IPv4/IPv6 address or CIDR').waitFor();
    await cidrs.fill("10.20.1.2/16\n2001:DB8::/32");
    await dlg.getByText("Stored as: 10.20.0.0/16, 2001:db8::/32").waitFor();
    await dlg.getByLabel("metadata key").first().fill("region");
    await dlg.getByLabel("metadata value").first().fill("eu-west");
    await dlg.getByLabel("Max concurrent (slots)").fill("10");
    await shot(page, "create-dialog-1280x800");
    await dlg.getByRole("button", { name: "Create token" }).click();

    const secretBox = dlg.locator('[data-test="secret"]');
    await secretBox.waitFor();
    expect(await dlg.innerText()).toContain("You will not see it again");
    const secret = await secretBox.inputValue();
    expect(secret).toMatch(/^lk_c_[0-9A-Za-z]{49}$/);

    const ok = await verify.verifyToken({
      token: secret,
      requiredPermissions: ["deploy:read"],
      clientIp: "10.20.3.4",
    });
    expect(ok.valid).toBe(true);
    expect(ok.metadata).toEqual({ region: "eu-west" });
    const denied = await verify.verifyToken({ token: secret, clientIp: "192.0.2.1" });
    expect(denied.code).toBe(VerifyCode.IP_NOT_ALLOWED);

    await dlg.getByRole("button", { name: "Done, I stored it" }).click();
    await dlg.waitFor({ state: "detached" });
    expect(await page.content()).not.toContain(secret);
    await row(page, "ci deploy").waitFor();
    expect(await row(page, "ci deploy").innerText()).toContain("0 of 10 in use");
  });

  it("shows a server refusal with its code, reason and field", async () => {
    await page.getByRole("button", { name: "Create token" }).click();
    const dlg = page.locator('[data-test="create-dialog"]');
    await dlg.getByLabel("Name").fill("no team");
    await dlg.getByLabel("Type").selectOption({ label: "team" });
    await dlg.getByRole("button", { name: "Create token" }).click();
    const problem = dlg.locator(".problem");
    await problem.waitFor();
    expect(await problem.getAttribute("data-code")).toBe("INVALID_ARGUMENT");
    expect(await problem.innerText()).toContain("team_id");
    await dlg.locator('.field.invalid[data-field~="team_id"]').waitFor();
    await dlg.getByRole("button", { name: "Cancel" }).click();
    await dlg.waitFor({ state: "detached" });
  });

  it("filters, then bulk-selects two tokens and revokes them", async () => {
    const boot = h.client(h.bootstrapSecret);
    for (const name of ["pay-1", "pay-2"]) {
      await boot.createToken({
        name,
        type: TokenType.TEAM,
        teamId: "payments",
        permissions: ["deploy:read"],
      });
    }
    await boot.createToken({
      name: "alice laptop",
      type: TokenType.PERSONAL,
      ownerId: "alice",
      role: "viewer",
    });
    await filterBy(page, { team: "payments" });
    expect((await names(page)).sort()).toEqual(["pay-1", "pay-2"]);
    await filterBy(page, { type: "personal" });
    expect(await names(page)).toEqual(["alice laptop"]);
    await page.getByLabel("Search names").fill("nothing like it");
    await page.getByText("No names on this page match the search.").waitFor();
    await page.getByLabel("Search names").fill("");

    await filterBy(page, { team: "payments" });
    await page.getByLabel("Select pay-1").check();
    await page.getByLabel("Select pay-2").check();
    await page.getByRole("button", { name: "Set metadata on selected" }).click();
    const meta = page.locator('[data-test="bulk-metadata-dialog"]');
    await meta.getByLabel("metadata value").first().fill("strict");
    await meta.getByRole("button", { name: "Update 2 tokens" }).click();
    await meta.waitFor({ state: "detached" });
    const tiers = (await boot.listTokens({ teamId: "payments" })).tokens.map((t) => t.metadata);
    expect(tiers).toEqual([{ redaction_tier: "strict" }, { redaction_tier: "strict" }]);

    await page.getByLabel("Select pay-1").check();
    await page.getByLabel("Select pay-2").check();
    await page.getByRole("button", { name: "Revoke selected" }).click();
    const dlg = page.locator('[data-test="bulk-revoke-dialog"]');
    await dlg.getByLabel("Reason").fill("team dissolved");
    await dlg.getByRole("button", { name: "Revoke 2 tokens" }).click();
    await row(page, "pay-1").and(page.locator(".state-revoked")).waitFor();
    await row(page, "pay-2").and(page.locator(".state-revoked")).waitFor();
    const listed = await boot.listTokens({ teamId: "payments" });
    expect(listed.tokens.map((t) => t.state)).toEqual([TokenState.REVOKED, TokenState.REVOKED]);
    expect(listed.tokens.every((t) => t.revokeReason === "team dissolved")).toBe(true);
  });

  it("revokes all tokens matching a filter after showing the dry-run count", async () => {
    const boot = h.client(h.bootstrapSecret);
    for (const name of ["bob-1", "bob-2", "bob-3"]) {
      await boot.createToken({ name, type: TokenType.PERSONAL, ownerId: "bob", role: "viewer" });
    }
    await filterBy(page, { owner: "bob" });
    await page.getByRole("button", { name: "Revoke all matching filter" }).click();
    const dlg = page.locator('[data-test="revoke-matching-dialog"]');
    const count = dlg.locator('[data-test="match-count"]');
    await count.waitFor();
    expect(await count.innerText()).toContain("3 active tokens match owner bob");
    expect(
      (await boot.listTokens({ ownerId: "bob", state: TokenState.ACTIVE })).tokens,
    ).toHaveLength(3);
    await dlg.getByLabel("Reason").fill("bob left");
    await dlg.getByRole("button", { name: "Revoke 3 tokens" }).click();
    await dlg.getByText("Revoked 3 tokens.").waitFor();
    await dlg.getByRole("button", { name: "Close" }).last().click();
    expect(
      (await boot.listTokens({ ownerId: "bob", state: TokenState.ACTIVE })).tokens,
    ).toHaveLength(0);
  });

  it("rotates a token with a grace period and shows the new secret once", async () => {
    await filterBy(page, {});
    await row(page, "ci deploy").getByRole("button", { name: "Rotate" }).click();
    const dlg = page.locator('[data-test="rotate-dialog"]');
    await dlg.getByLabel("Grace period for the old secret").selectOption({ label: "1 day" });
    await dlg.getByRole("button", { name: "Rotate" }).click();
    const secret = await dlg.locator('[data-test="secret"]').inputValue();
    expect(secret).toMatch(/^lk_c_/);
    const ok = await verify.verifyToken({ token: secret, clientIp: "10.20.0.1" });
    expect(ok.valid).toBe(true);
    await dlg.getByRole("button", { name: "Close" }).click();
    await dlg.waitFor({ state: "detached" });
    expect(await page.content()).not.toContain(secret);
    expect(await page.locator('tr[data-name="ci deploy"]').count()).toBe(2);
  });

  it("edits a token within UpdateToken's rules and shows its details with its audit events", async () => {
    await row(page, "alice laptop").getByRole("button", { name: "Edit" }).click();
    const edit = page.locator('[data-test="edit-dialog"]');
    await edit.getByLabel("Name").fill("alice desktop");
    await edit.getByLabel("metadata key").first().fill("redaction_tier");
    await edit.getByLabel("metadata value").first().fill("strict");
    await edit.getByRole("button", { name: "Save" }).click();
    await edit.waitFor({ state: "detached" });
    await row(page, "alice desktop").getByRole("button", { name: "Details" }).click();
    const detail = page.locator('[data-test="detail-dialog"]');
    await detail.locator("table.audit").waitFor();
    const text = await detail.innerText();
    expect(text).toContain("redaction_tier=strict");
    expect(text).toContain("never used");
    const actions = await detail
      .locator("table.audit tbody tr")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action")));
    expect(actions).toEqual(["token.update", "token.create"]);
    await detail.getByRole("button", { name: "Close" }).click();
  });

  it("shows the audit trail, denied verifications included", async () => {
    await h.counts(); // flushes the verifier's buffered audit rows (the IP denial above)
    await page.getByRole("link", { name: "Audit" }).click();
    await page.locator("table.audit").waitFor();
    const actions = await page
      .locator("table.audit tbody tr")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action")));
    for (const a of ["token.create", "token.batch_revoke", "token.rotate"])
      expect(actions).toContain(a);
    await page.locator("form.filters").getByLabel("Decision").selectOption({ label: "deny" });
    const reloaded = page.waitForResponse((r) => r.url().endsWith("/ListAuditEvents"));
    await page.getByRole("button", { name: "Apply" }).click();
    await reloaded;
    const denied = page.locator("table.audit tbody tr.deny");
    await denied.first().waitFor();
    expect(await denied.first().innerText()).toContain("IP_NOT_ALLOWED");
    await page.getByRole("link", { name: "Tokens" }).click();
    await page.locator("table.tokens").waitFor();
  });

  it("takes screenshots at desktop and phone sizes, with no CSP violation", async () => {
    await shot(page, "tokens-1280x800");
    const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    const p = await signedIn(phone, h.bootstrapSecret);
    await p.locator("table.tokens").waitFor();
    expect(await p.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(
      PHONE.width,
    );
    await shot(p, "tokens-390x844");
    await p.getByRole("button", { name: "Create token" }).click();
    await p.locator('[data-test="create-dialog"]').waitFor();
    await shot(p, "create-dialog-390x844");
    await phone.close();
    expect(cspErrors).toEqual([]);
  });

  it("signs out and leaves nothing in sessionStorage", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    await page.reload();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
  });

  it("a tokens:read-only caller sees no create or revoke controls, and a forced call is refused", async () => {
    const boot = h.client(h.bootstrapSecret);
    const reader = await boot.createToken({
      name: "reader",
      type: TokenType.CICD,
      permissions: ["tokens:read"],
    });
    const ctx = await browser.newContext({ viewport: DESKTOP });
    const p = await signedIn(ctx, reader.secret);
    await row(p, "ci deploy").first().waitFor();
    expect(await p.getByRole("button", { name: "Create token" }).count()).toBe(0);
    expect(await p.getByRole("button", { name: /^Revoke/ }).count()).toBe(0);
    expect(await p.locator("table.tokens input[type=checkbox]").count()).toBe(0);
    expect(await p.getByRole("link", { name: "Audit" }).count()).toBe(0);

    const target = (await boot.listTokens({ pageSize: 1 })).tokens[0]?.id ?? "";
    const forced = (await p.evaluate(`(async () => {
      const r = await fetch("/latchkey.v1.TokenAdminService/RevokeToken", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer " + sessionStorage.getItem("latchkey.token") },
        body: JSON.stringify({ id: ${JSON.stringify(target)}, reason: "forced" }),
      });
      return { status: r.status, body: await r.json() };
    })()`)) as { status: number; body: { code?: string; details?: unknown[] } };
    expect(forced.status).toBe(403);
    expect(forced.body.code).toBe("permission_denied");
    expect((await boot.getToken({ id: target })).token?.state).toBe(TokenState.ACTIVE);
    await ctx.close();
  });
});
