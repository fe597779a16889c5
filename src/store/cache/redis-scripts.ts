import { createHash } from "node:crypto";
import type { RedisClient } from "../redis-client.js";

/*
 * The Lua scripts of the Redis tier (each touches the keys of one token, so one hash slot, when
 * called per token) and the names of the keys they work on.
 */

/*
 * Compare-and-set of a record: refused while a change's tombstone stands, below the token's
 * version floor, and over a record of a higher version (or the same version read later).
 * KEYS: record, tombstone, floor. ARGV: value, ttl ms, version, read time ms.
 */
const FILL = `if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local v = tonumber(ARGV[3])
if v < tonumber(redis.call('GET', KEYS[3]) or '0') then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cv, cr = string.match(cur, '^(%d+)|(%d+)|')
  if cv and (tonumber(cv) > v or (tonumber(cv) == v and tonumber(cr) >= tonumber(ARGV[4]))) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/*
 * Version floors from the change log. KEYS: record, floor pairs; ARGV: floor ttl ms, then one
 * version per pair. Raises each floor and deletes a held record of a lower version.
 */
const FLOOR = `for i = 1, #KEYS, 2 do
  local v = tonumber(ARGV[(i + 1) / 2 + 1])
  if v > tonumber(redis.call('GET', KEYS[i + 1]) or '0') then
    redis.call('SET', KEYS[i + 1], ARGV[(i + 1) / 2 + 1], 'PX', ARGV[1])
  end
  local cur = redis.call('GET', KEYS[i])
  if cur then
    local cv = string.match(cur, '^(%d+)|')
    if not cv or tonumber(cv) < v then redis.call('DEL', KEYS[i]) end
  end
end
return 1`;

/* Deletes a value only if it is still the one that was refused (KEYS: record; ARGV: value). */
const DROP_IF = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0`;

/*
 * Deletes records and sets their tombstones (KEYS: record, tombstone pairs; ARGV: tombstone ms,
 * then channel and message, or nothing on a cluster, where the keys of one call share a slot
 * and the message is published once afterwards).
 */
const INVALIDATE = `for i = 1, #KEYS, 2 do
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[1])
end
if ARGV[2] then return redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 0`;

/* Checks every rule first and counts only when all pass, so a refused call consumes nothing. */
const RATE = `for i = 1, #KEYS do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  if c >= tonumber(ARGV[i * 2 - 1]) then return i end
end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[i * 2]) end
end
return 0`;

export interface Script {
  readonly src: string;
  readonly sha: string;
}

function script(src: string): Script {
  return { src, sha: createHash("sha1").update(src).digest("hex") };
}

export const SCRIPTS = {
  fill: script(FILL),
  floor: script(FLOOR),
  dropIf: script(DROP_IF),
  invalidate: script(INVALIDATE),
  rate: script(RATE),
};

/** Runs a script by its SHA, sending the source once when Redis does not know it yet. */
export async function runScript(
  cmd: RedisClient,
  s: Script,
  keys: readonly string[],
  args: readonly string[],
): Promise<unknown> {
  try {
    return await cmd.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (err instanceof Error && err.message.includes("NOSCRIPT")) {
      return await cmd.eval(s.src, keys.length, ...keys, ...args);
    }
    throw err;
  }
}

/**
 * Key naming. The hash tag ({…}) keeps a token's keys in one slot, so its scripts also run on a
 * cluster (the prefix holds no braces of its own: the first {…} of a key is its tag).
 */
export class RedisKeys {
  constructor(private readonly prefix: string) {}

  /** The signed record of a token. */
  record(hashHex: string): string {
    return `${this.prefix}tok:{${hashHex}}`;
  }

  /** Set for a moment after a change: no write-back of the record meanwhile. */
  tomb(hashHex: string): string {
    return `${this.prefix}tomb:{${hashHex}}`;
  }

  /** The lowest version of a record that may still be stored. */
  floor(hashHex: string): string {
    return `${this.prefix}floor:{${hashHex}}`;
  }

  /** One rate-limit window. One tag per token: every rule's window lives in one slot. */
  rateWindow(tokenId: string, name: string, windowMs: number, window: number): string {
    return `${this.prefix}rl:{${tokenId}}:${name}:${windowMs}:${window}`;
  }

  /** The invalidation channel. */
  get channel(): string {
    return `${this.prefix}changes`;
  }
}
