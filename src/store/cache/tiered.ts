import type { CompiledRecord, TokenRecord } from "../../domain/token-record.js";
import type { LocalTier } from "./local.js";
import type {
  CachedTokenKey,
  CacheEntry,
  SharedTier,
  SharedTierEvents,
  TokenCache,
  VersionedChange,
} from "./types.js";

/**
 * The production TokenCache: the in-process tier in front of an optional shared tier (Redis),
 * with the epoch, the one-load-per-hash registry and the invalidations that tie them together.
 * Without a shared tier it is the whole cache of a single instance (and of the unit tests).
 */
export class TieredTokenCache<S extends SharedTier = SharedTier> implements TokenCache {
  /** The shared tier, built by the factory given to the constructor (undefined: none). */
  readonly shared: S | undefined;
  private readonly inflight = new Map<string, Promise<CacheEntry | undefined>>();
  private currentEpoch = 0;

  /**
   * `connectShared` receives the callbacks through which the shared tier reports changes made
   * elsewhere and a lost subscription.
   */
  constructor(
    private readonly local: LocalTier,
    connectShared?: ((events: SharedTierEvents) => S) | undefined,
  ) {
    this.shared = connectShared?.({
      invalidated: (hashes, ids) => this.dropChanged(hashes, ids),
      resubscribed: () => {
        this.currentEpoch++;
        this.local.clear();
        this.inflight.clear();
      },
    });
  }

  get(hashHex: string): CacheEntry | undefined {
    return this.local.get(hashHex);
  }

  isKnownMissing(hashHex: string, nowMs: number): boolean {
    return this.local.isKnownMissing(hashHex, nowMs);
  }

  get coherent(): boolean {
    return this.shared === undefined || this.shared.subscribed;
  }

  get epoch(): number {
    return this.currentEpoch;
  }

  floor(hashHex: string): number {
    return this.local.floor(hashHex);
  }

  readShared(hashHex: string): Promise<TokenRecord | null | undefined> | undefined {
    return this.shared?.getRecord(hashHex);
  }

  set(hashHex: string, record: CompiledRecord, fromSource: boolean): CacheEntry {
    return this.local.set(hashHex, record, fromSource);
  }

  setMissing(hashHex: string, untilMs: number): void {
    this.local.setMissing(hashHex, untilMs);
  }

  share(hashHex: string, record: TokenRecord): void {
    this.shared?.fillRecord(hashHex, record);
  }

  running(hashHex: string): Promise<CacheEntry | undefined> | undefined {
    return this.inflight.get(hashHex);
  }

  track(hashHex: string, load: Promise<CacheEntry | undefined>): void {
    this.inflight.set(hashHex, load);
    const done = (): void => {
      if (this.inflight.get(hashHex) === load) this.inflight.delete(hashHex);
    };
    load.then(done, done);
  }

  forget(hashHex: string, id: string): void {
    this.currentEpoch++;
    this.local.drop(hashHex, id);
  }

  async invalidate(changes: readonly CachedTokenKey[]): Promise<void> {
    this.dropChanged(
      changes.map((c) => c.hashHex),
      changes.map((c) => c.id),
    );
    if (this.shared !== undefined) await this.shared.invalidate(changes);
  }

  async applyChanges(changes: readonly VersionedChange[]): Promise<void> {
    if (changes.length === 0) return;
    this.dropChanged(
      changes.map((c) => c.hashHex),
      changes.map((c) => c.id),
    );
    for (const c of changes) this.local.raiseFloor(c.hashHex, c.version);
    if (this.shared !== undefined) await this.shared.applyFloors(changes);
  }

  get size(): number {
    return this.local.size;
  }

  private dropChanged(hashes: readonly string[], ids: readonly string[]): void {
    this.currentEpoch++;
    for (const h of hashes) {
      this.local.drop(h, undefined);
      this.inflight.delete(h);
    }
    for (const id of ids) this.local.drop(undefined, id);
  }
}
