import type { RedisTarget } from "../../config.js";
import { createRedisClient, type RedisClient } from "../redis-client.js";
import type { SharedTierEvents } from "./types.js";

/**
 * The listening side of the invalidation channel: its own subscriber connection, which hands
 * every instance's changes to the events. ioredis re-subscribes on reconnect (autoResubscribe);
 * until a first subscribe has succeeded, it is tried again on every connection.
 */
export class ChangeSubscriber {
  private readonly sub: RedisClient;
  private subscribedOnce = false;
  private subscribing = false;
  private subscribedNow = false;
  private closed = false;

  constructor(
    target: string | RedisTarget,
    private readonly channel: string,
    private readonly events: SharedTierEvents,
    private readonly warn: (msg: string, err?: unknown) => void,
  ) {
    this.sub = createRedisClient(target, { role: "subscriber" });
    this.sub.on("error", () => {});
    this.sub.on("message", (_channel: string, message: string) => {
      this.onMessage(message);
    });
    this.sub.on("ready", () => {
      if (this.subscribedOnce) {
        this.subscribedNow = true;
        this.events.resubscribed();
      } else this.subscribe();
    });
    this.sub.on("close", () => {
      this.subscribedNow = false;
    });
  }

  subscribe(): void {
    if (this.subscribing || this.subscribedOnce || this.closed) return;
    this.subscribing = true;
    this.sub.subscribe(this.channel).then(
      () => {
        this.subscribing = false;
        this.subscribedOnce = true;
        this.subscribedNow = true;
      },
      (err: unknown) => {
        this.subscribing = false;
        this.warn("redis subscribe failed; retrying on reconnect", err);
      },
    );
  }

  /** This instance hears other instances' changes now. */
  get subscribed(): boolean {
    return this.subscribedNow && this.sub.status === "ready";
  }

  private onMessage(message: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    if (typeof parsed !== "object" || parsed === null) return;
    const { h, i } = parsed as { h?: unknown; i?: unknown };
    const hashes = Array.isArray(h) ? h.filter((x): x is string => typeof x === "string") : [];
    const ids = Array.isArray(i) ? i.filter((x): x is string => typeof x === "string") : [];
    this.events.invalidated(hashes, ids);
  }

  /** Stops resubscribing and closes the connection politely. */
  quit(): Promise<unknown> {
    this.closed = true;
    return this.sub.quit();
  }

  disconnect(): void {
    this.sub.disconnect();
  }
}

/** The message published for changes: their hashes and token ids. */
export function changeMessage(changes: readonly { hashHex: string; id: string }[]): string {
  return JSON.stringify({
    h: changes.map((c) => c.hashHex),
    i: changes.map((c) => c.id),
  });
}
