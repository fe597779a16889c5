import type { VerifyAuditRow } from "../../store/audit-writer.js";
import type { AuditSink } from "./ports.js";

interface Window {
  readonly startMs: number;
  readonly first: VerifyAuditRow;
  readonly peer: string;
  /** Rows folded into the summary (not written one by one), and the time of the last. */
  count: number;
  lastMs: number;
}

/**
 * Audit rows for denials that name no token (MALFORMED, NOT_FOUND, an unknown token refused by
 * the per-peer limit), sampled per peer: the first of each peer's window is written as usual,
 * the rest of the window only counted, and one summary row (details: `suppressed`, `window_ms`,
 * `peer`) written when the window ends. A flood of garbage then costs a few rows a second
 * instead of one each, and cannot push real denials out of the bounded audit buffer.
 */
export class AuditSampler {
  private readonly windows = new Map<string, Window>();
  /** Rows folded into summaries (metrics). */
  suppressed = 0;

  /** `windowMs` 0 writes every row. */
  constructor(
    private readonly sink: AuditSink,
    private readonly windowMs: number,
    private readonly maxWindows = 10_000,
  ) {}

  push(peer: string, row: VerifyAuditRow): void {
    if (this.windowMs <= 0) {
      this.sink.push(row);
      return;
    }
    const key = `${peer}\u0000${row.action}\u0000${row.code}`;
    const w = this.windows.get(key);
    if (w !== undefined && row.timeMs - w.startMs < this.windowMs) {
      w.count++;
      w.lastMs = row.timeMs;
      this.suppressed++;
      return;
    }
    if (w !== undefined) {
      this.windows.delete(key);
      this.summarise(w);
    } else if (this.windows.size >= this.maxWindows) {
      this.tick(Number.POSITIVE_INFINITY);
    }
    this.windows.set(key, { startMs: row.timeMs, first: row, peer, count: 0, lastMs: row.timeMs });
    this.sink.push(row);
  }

  /** Writes the summaries of the windows that ended by `nowMs` (every window: Infinity). */
  tick(nowMs: number): void {
    for (const [key, w] of this.windows) {
      if (nowMs - w.startMs >= this.windowMs) {
        this.windows.delete(key);
        this.summarise(w);
      }
    }
  }

  private summarise(w: Window): void {
    if (w.count === 0) return;
    this.sink.push({
      ...w.first,
      timeMs: w.lastMs,
      requestId: "",
      details: { suppressed: w.count, window_ms: this.windowMs, peer: w.peer },
    });
  }
}
