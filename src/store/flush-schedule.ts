/**
 * When a batch writer (audit rows, usage counts) may write next, and what its writes cost: one
 * write in flight at a time, a failed write retried after a capped, doubling backoff, and the
 * counters the metrics read. Shared so both writers retry, back off and report alike.
 */
export class FlushSchedule {
  /** Writes attempted, and the seconds they took in all (flush latency for the metrics). */
  flushes = 0;
  flushSeconds = 0;
  /** Failed writes. */
  failures = 0;
  /** Failed writes in a row (0 after a success); sets the backoff. */
  private streak = 0;
  /** Epoch ms before which a retry waits (after a failure). */
  retryAtMs = 0;

  constructor(private readonly maxBackoffMs: number) {}

  /** Whether a write may start now: always when forced, else not while backing off. */
  due(force: boolean): boolean {
    return force || this.streak === 0 || Date.now() >= this.retryAtMs;
  }

  /** True after a success (no failure streak): the writer may start the next write at once. */
  get healthy(): boolean {
    return this.streak === 0;
  }

  /** Runs one write, timing it into the counters. */
  timed(write: Promise<void>): Promise<void> {
    const started = performance.now();
    return write.finally(() => {
      this.flushes++;
      this.flushSeconds += (performance.now() - started) / 1_000;
    });
  }

  succeeded(): void {
    this.streak = 0;
  }

  failed(): void {
    this.failures++;
    this.streak++;
    this.retryAtMs = Date.now() + backoffMs(this.streak, this.maxBackoffMs);
  }
}

/** Wait before retry number `streak` (1, 2, …): 100 ms doubling, capped. */
export function backoffMs(streak: number, capMs: number): number {
  return Math.min(capMs, 100 * 2 ** Math.min(streak - 1, 16));
}

/**
 * Shutdown of a batch writer: flushes, and while that fails waits for the writer's next retry
 * time and flushes again, until `done()` or `graceMs` has passed.
 */
export async function flushWithin(
  graceMs: number,
  flush: () => Promise<void>,
  done: () => boolean,
  retryAtMs: () => number,
): Promise<void> {
  const until = Date.now() + graceMs;
  for (;;) {
    await flush();
    if (done() || Date.now() >= until) return;
    const wait = Math.max(0, Math.min(retryAtMs(), until) - Date.now());
    await new Promise((r) => setTimeout(r, wait));
  }
}
