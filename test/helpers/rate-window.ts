/**
 * Rate limits are fixed windows aligned on multiples of their length (src/domain/rate-window.ts,
 * and the Redis script: `floor(now / window)`), so a 60 s window restarts at every full minute.
 * A test that makes N calls and expects the (N+1)th to be refused fails when a boundary falls
 * between them: more likely on a loaded machine, where the calls take longer. Called right
 * before such a sequence, this waits until at least `marginMs` are left in the current window
 * (at most `marginMs`), so the whole sequence runs inside one window.
 */
export async function awayFromWindowEnd(windowMs: number, marginMs = 10_000): Promise<void> {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await new Promise((r) => setTimeout(r, left + 50));
}
