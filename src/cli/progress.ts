/**
 * One self-overwriting status line on stderr for long listings and batch revokes. Only on a
 * terminal: on a pipe or in a log file it would be noise, so it is silent there.
 */
export class Progress {
  private shown = false;
  private readonly enabled: boolean;

  constructor(private readonly label: string) {
    this.enabled = process.stderr.isTTY === true;
  }

  /** Shows `label: text`, replacing the previous line. */
  update(text: string): void {
    if (!this.enabled) return;
    this.shown = true;
    process.stderr.write(`\r\x1b[K${this.label}: ${text}`);
  }

  /** Clears the line, so the real output starts clean. */
  done(): void {
    if (this.shown) process.stderr.write("\r\x1b[K");
    this.shown = false;
  }
}
