import type { RedisTarget } from "../../config.js";
import type { RateLimitRule, TokenRecord } from "../../domain/token-record.js";
import { createRedisClient, type RedisClient, redisHealthy } from "../redis-client.js";
import { redisConnectionWarning } from "../redis-connection-error.js";
import { decodeRecord, encodeRecord } from "./record-codec.js";
import { RedisKeys, runScript, SCRIPTS } from "./redis-scripts.js";
import { ChangeSubscriber, changeMessage } from "./redis-subscriber.js";
import type { CachedTokenKey, SharedTier, SharedTierEvents, VersionedChange } from "./types.js";

export interface RedisTierOptions {
  /** One Redis (a REDIS_URL-style string), a Sentinel set or a Cluster (see redis-client.ts). */
  readonly target: string | RedisTarget;
  /** Prefix of every key and of the channel, so several deployments can share one Redis. */
  readonly keyPrefix: string;
  /** TTL of a cached record in Redis. */
  readonly recordTtlMs: number;
  /** How long after a change no instance may write the changed record back (cache race). */
  readonly tombstoneMs: number;
  /**
   * How long a version floor from the change log is kept: at least the longest a record may be
   * served after its Postgres read, so an outdated copy has aged out when the floor goes.
   */
  readonly floorTtlMs: number;
  /**
   * The key that signs records (from the `settings` table, shared by every instance). Until it
   * has been read, the tier neither serves nor stores records.
   */
  readonly loadKey: () => Promise<Buffer>;
  /** Per-command timeout: a slow Redis must not hold verification up. */
  readonly commandTimeoutMs: number;
  readonly events: SharedTierEvents;
  /** Redis trouble worth a log line (the caller throttles). */
  readonly warn: (msg: string, err?: unknown) => void;
}

/**
 * The shared tier: compact, signed token records under `<prefix>tok:{<sha256 hex>}` (never the
 * secret; see record-codec.ts), invalidations on the channel `<prefix>changes`, version floors
 * and per-token rate-limit windows. A record is written only by compare-and-set (never over a
 * newer version, never below a floor) and read only if its MAC holds: whoever can write to
 * Redis can delete records or make them fail (a miss: Postgres answers), not forge one. Every
 * command fails fast when Redis is away (no offline queue, short timeouts), so the verifier
 * falls back to its local tier and Postgres instead of waiting. Invalidations that could not be
 * delivered are kept and replayed when Redis returns, so a revocation made during an outage
 * cannot be undone by a stale record left in Redis.
 */
export class RedisTier implements SharedTier {
  private readonly cmd: RedisClient;
  private readonly sub: ChangeSubscriber;
  /** On a Redis Cluster every script call carries the keys of one token (one hash slot). */
  private readonly clustered: boolean;
  private readonly keys: RedisKeys;
  private readonly channel: string;
  /** hash hex → token id of changes not yet applied to Redis. */
  private readonly undelivered = new Map<string, string>();
  private closed = false;
  /** Redis commands that failed (metrics). */
  errors = 0;
  /** Records refused on read: MAC failed (forged, edited, moved) or not in this format. */
  readonly rejected = { signature: 0, malformed: 0 };
  private signingKey: Buffer | undefined;

  constructor(private readonly options: RedisTierOptions) {
    this.cmd = createRedisClient(options.target, {
      role: "commands",
      commandTimeoutMs: options.commandTimeoutMs,
    });
    this.keys = new RedisKeys(options.keyPrefix);
    this.channel = this.keys.channel;
    this.sub = new ChangeSubscriber(options.target, this.channel, options.events, options.warn);
    this.clustered = this.cmd.isCluster;
    this.cmd.on("error", (err: unknown) => {
      // ioredis reconnects on its own; readiness reports the outage, this line its cause.
      options.warn(redisConnectionWarning(err), err);
    });
    this.cmd.on("ready", () => {
      void this.retryUndelivered();
    });
    this.sub.subscribe();
    void this.readKey();
  }

  /** Reads the signing key, retrying every second while Postgres cannot answer. */
  private async readKey(): Promise<void> {
    while (!this.closed && this.signingKey === undefined) {
      try {
        this.signingKey = await this.options.loadKey();
      } catch (err) {
        this.options.warn("cannot read the cache signing key; Redis tier off until it can", err);
        await new Promise((r) => setTimeout(r, 1_000).unref());
      }
    }
  }

  /** Commands can be sent now. */
  get ready(): boolean {
    return this.cmd.status === "ready";
  }

  /** This instance hears other instances' changes now. */
  get subscribed(): boolean {
    return this.sub.subscribed;
  }

  /**
   * The cached record, null when Redis has none (or only one that fails its MAC: counted, and
   * deleted), undefined when Redis cannot answer (or the token has an undelivered change, so
   * Redis may hold a stale copy, or the signing key is not known yet).
   */
  async getRecord(hashHex: string): Promise<TokenRecord | null | undefined> {
    const signingKey = this.signingKey;
    if (!this.ready || signingKey === undefined || this.undelivered.has(hashHex)) return undefined;
    const key = this.keys.record(hashHex);
    let raw: string | null;
    try {
      raw = await this.cmd.get(key);
    } catch {
      this.errors++;
      return undefined;
    }
    if (raw === null) return null;
    const decoded = decodeRecord(raw, signingKey, key);
    if ("record" in decoded) return decoded.record;
    this.rejected[decoded.rejected]++;
    if (decoded.rejected === "signature") {
      this.options.warn("redis record failed its signature; ignored and deleted");
    }
    runScript(this.cmd, SCRIPTS.dropIf, [key], [raw]).catch(() => {
      this.errors++;
    });
    return null;
  }

  /**
   * Caches a record read from Postgres by compare-and-set: not while a change's tombstone
   * stands, not below the token's version floor, never over a newer copy.
   */
  fillRecord(hashHex: string, record: TokenRecord): void {
    const signingKey = this.signingKey;
    if (!this.ready || signingKey === undefined || this.undelivered.has(hashHex)) return;
    const key = this.keys.record(hashHex);
    runScript(
      this.cmd,
      SCRIPTS.fill,
      [key, this.keys.tomb(hashHex), this.keys.floor(hashHex)],
      [
        encodeRecord(record, signingKey, key),
        String(this.options.recordTtlMs),
        String(Math.trunc(record.version)),
        String(Math.trunc(record.readAtMs)),
      ],
    ).catch(() => {
      this.errors++;
    });
  }

  /**
   * Version floors from the change log: from now on no copy older than the change is stored,
   * and an older one held is deleted. Best effort (every instance applies the same log, and
   * each also checks floors itself on read).
   */
  async applyFloors(changes: readonly VersionedChange[]): Promise<void> {
    if (!this.ready) return;
    for (const batch of this.batches(changes)) {
      try {
        await Promise.all(
          this.slotGroups(batch).map((group) => {
            const keys: string[] = [];
            const args: string[] = [String(this.options.floorTtlMs)];
            for (const c of group) {
              keys.push(this.keys.record(c.hashHex), this.keys.floor(c.hashHex));
              args.push(String(Math.trunc(c.version)));
            }
            return runScript(this.cmd, SCRIPTS.floor, keys, args);
          }),
        );
      } catch (err) {
        this.errors++;
        this.options.warn("redis version floors not applied", err);
        return;
      }
    }
  }

  /**
   * Deletes the changed records, blocks write-backs for a moment and tells every instance.
   * When Redis cannot be reached the change is kept and replayed on reconnect.
   */
  async invalidate(changes: readonly CachedTokenKey[]): Promise<void> {
    if (changes.length === 0) return;
    for (const c of changes) this.undelivered.set(c.hashHex, c.id);
    if (!this.ready) return;
    await this.deliver(changes);
  }

  private async deliver(changes: readonly CachedTokenKey[]): Promise<void> {
    const message = changeMessage(changes);
    const tombstoneMs = String(this.options.tombstoneMs);
    const keysOf = (group: readonly CachedTokenKey[]): string[] =>
      group.flatMap((c) => [this.keys.record(c.hashHex), this.keys.tomb(c.hashHex)]);
    try {
      if (this.clustered) {
        // Records gone and tombstones set on every shard first, then one message: an instance
        // that reloads on hearing it cannot find the old record. PUBLISH reaches every node.
        await Promise.all(
          this.slotGroups(changes).map((g) =>
            runScript(this.cmd, SCRIPTS.invalidate, keysOf(g), [tombstoneMs]),
          ),
        );
        await this.cmd.publish(this.channel, message);
      } else {
        await runScript(this.cmd, SCRIPTS.invalidate, keysOf(changes), [
          tombstoneMs,
          this.channel,
          message,
        ]);
      }
      for (const c of changes) {
        if (this.undelivered.get(c.hashHex) === c.id) this.undelivered.delete(c.hashHex);
      }
    } catch (err) {
      this.errors++;
      this.options.warn("redis invalidation failed; will retry on reconnect", err);
    }
  }

  /** Re-sends changes that did not reach Redis (on reconnect and from a periodic timer). */
  async retryUndelivered(): Promise<void> {
    if (this.undelivered.size === 0 || !this.ready) return;
    const all = [...this.undelivered].map(([hashHex, id]) => ({ hashHex, id }));
    for (const batch of this.batches(all)) await this.deliver(batch);
  }

  /** Script calls go out 500 tokens at a time. */
  private *batches<T>(items: readonly T[]): Generator<readonly T[]> {
    for (let i = 0; i < items.length; i += 500) yield items.slice(i, i + 500);
  }

  /**
   * The calls one batch needs: all of it on one Redis; one per token on a cluster, whose scripts
   * must not touch keys of two slots (ioredis pipelines the calls per node).
   */
  private slotGroups<T>(batch: readonly T[]): (readonly T[])[] {
    return this.clustered ? batch.map((c) => [c]) : [batch];
  }

  /** Changes waiting for Redis (metrics, tests). */
  get undeliveredCount(): number {
    return this.undelivered.size;
  }

  /**
   * Shared fixed-window rate limiting: 0 when the call may pass (and was counted in every
   * window), the 1-based index of the first full rule otherwise, undefined when Redis cannot
   * answer (the caller then limits locally).
   */
  async rateLimit(
    tokenId: string,
    rules: readonly RateLimitRule[],
    nowMs: number,
  ): Promise<number | undefined> {
    if (!this.ready) return undefined;
    const keys: string[] = [];
    const args: string[] = [];
    for (const r of rules) {
      const window = Math.floor(nowMs / r.windowMs);
      // One tag per token: every rule's window lives in one slot, as the script needs.
      keys.push(this.keys.rateWindow(tokenId, r.name, r.windowMs, window));
      args.push(String(r.limit), String(r.windowMs + 1_000));
    }
    try {
      const result = await runScript(this.cmd, SCRIPTS.rate, keys, args);
      return typeof result === "number" ? result : Number(result);
    } catch {
      this.errors++;
      return undefined;
    }
  }

  /** For /readyz: a PING (on a cluster, its state) within the command timeout. */
  ping(): Promise<boolean> {
    return redisHealthy(this.cmd);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.cmd.quit(), this.sub.quit()]);
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}
