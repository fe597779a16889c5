import { parseDuration } from "../domain/duration.js";
import { parseHostPort } from "./host-port.js";
import type { Env, ListenAddress } from "./types.js";

/** Typed readers over one environment; each bad value is pushed to `problems`, never thrown. */
export interface EnvReader {
  /** The trimmed value, or undefined when unset or blank. */
  str(name: string): string | undefined;
  listen(name: string, fallback: string): ListenAddress;
  int(name: string, fallback: number, min: number, max: number): number;
  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T;
  url(name: string, schemes: readonly string[]): string | undefined;
  /** `500ms`, `10s`, `5m`, `1h`, or bare seconds; in ms. */
  duration(name: string, fallbackMs: number, minMs: number, maxMs: number): number;
}

export function envReader(env: Env, problems: string[]): EnvReader {
  const str = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };

  const listen = (name: string, fallback: string): ListenAddress => {
    const raw = str(name) ?? fallback;
    const parsed = parseHostPort(raw);
    if (parsed === undefined) {
      problems.push(`${name}=${raw}: expected host:port, e.g. 127.0.0.1:50051 or [::1]:50051`);
      return { host: "127.0.0.1", port: 0 };
    }
    return parsed;
  };

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name}=${raw}: expected a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };

  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const found = allowed.find((a) => a === raw.toLowerCase());
    if (found === undefined) {
      problems.push(`${name}=${raw}: expected one of ${allowed.join(", ")}`);
      return fallback;
    }
    return found;
  };

  const url = (name: string, schemes: readonly string[]): string | undefined => {
    const raw = str(name);
    if (raw === undefined) return undefined;
    let scheme: string;
    try {
      scheme = new URL(raw).protocol.replace(/:$/, "");
    } catch {
      problems.push(`${name}: not a valid URL (expected ${schemes[0]}://…)`);
      return undefined;
    }
    if (!schemes.includes(scheme)) {
      problems.push(`${name}: expected a ${schemes.join(" or ")} URL, got scheme "${scheme}"`);
      return undefined;
    }
    return raw;
  };

  // --- operations (#8, #13): durations are `500ms`, `10s`, `5m`, `1h`, or bare seconds.
  const duration = (name: string, fallbackMs: number, minMs: number, maxMs: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallbackMs;
    const ms = parseDuration(raw, { units: ["ms", "s", "m", "h"], bare: "s" }) ?? Number.NaN;
    if (!Number.isSafeInteger(ms) || ms < minMs || ms > maxMs) {
      problems.push(
        `${name}=${raw}: expected a duration from ${minMs} ms to ${maxMs / 1_000} s, e.g. 10s, 500ms, 5m`,
      );
      return fallbackMs;
    }
    return ms;
  };

  return { str, listen, int, oneOf, url, duration };
}
