/** List and retention values: CORS origins, trusted proxy CIDRs, audit retention. */
import { normalizeCidr } from "../domain/cidr.js";
import { parseDuration } from "../domain/duration.js";

// --- web console (issue 12) ---
/**
 * LATCHKEY_CORS_ORIGINS: comma-separated exact origins (`https://admin.example.com`) that may
 * call the API from a browser. Exact origins only, no `*`: the API takes bearer tokens, and a
 * wildcard would let any page that obtained one drive it from a victim's browser.
 */
export function corsOrigins(raw: string | undefined, problems: string[]): readonly string[] {
  if (raw === undefined) return [];
  const out: string[] = [];
  for (const entry of raw.split(",").map((e) => e.trim())) {
    let origin: string | undefined;
    try {
      const u = new URL(entry);
      const bare = u.pathname === "/" && u.search === "" && u.hash === "" && u.username === "";
      if ((u.protocol === "http:" || u.protocol === "https:") && bare) origin = u.origin;
    } catch {
      origin = undefined;
    }
    if (origin === undefined) {
      problems.push(
        `LATCHKEY_CORS_ORIGINS: "${entry}" is not an origin (expected e.g. https://admin.example.com, comma-separated)`,
      );
    } else if (!out.includes(origin)) out.push(origin);
  }
  return out;
}

// --- gateways (issue #9) ---
/** LATCHKEY_TRUSTED_PROXIES: comma-separated IPs or CIDRs (canonicalised), or `none`. */
export function trustedProxies(raw: string, problems: string[]): readonly string[] {
  const out: string[] = [];
  if (raw.toLowerCase() !== "none") {
    for (const entry of raw.split(",").map((e) => e.trim())) {
      const cidr = normalizeCidr(entry);
      if (cidr === undefined) {
        problems.push(`LATCHKEY_TRUSTED_PROXIES: "${entry}" is not an IP address or CIDR`);
      } else out.push(cidr);
    }
  }
  return out;
}

// --- audit retention (issue #11 item 5) ---
export const DAY_MS = 86_400_000;

/**
 * LATCHKEY_AUDIT_RETENTION in whole days (`30d`, `12w`, `1y` = 365 days), from 1 day to 100
 * years. Days, not hours: retention is a compliance setting, and a unit typo must not turn a
 * year into an hour of audit trail.
 */
export function retentionDays(raw: string, problems: string[]): number {
  const ms = parseDuration(raw.toLowerCase(), { units: ["d", "w", "y"] });
  const days = ms === undefined ? 0 : ms / DAY_MS;
  if (days < 1 || days > 36_500) {
    problems.push(
      `LATCHKEY_AUDIT_RETENTION=${raw}: expected a duration from 1d to 100y, e.g. 400d, 12w, 1y (unset keeps audit rows forever)`,
    );
    return 0;
  }
  return days;
}
