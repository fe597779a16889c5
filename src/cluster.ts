import cluster, { type Worker } from "node:cluster";

export interface ClusterOptions {
  /**
   * Extra environment for the workers, e.g. the DATABASE_URL of an embedded Postgres the
   * primary started (workers must not start their own).
   */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** How long workers get to stop after SIGTERM before they are killed (default 15 s). */
  readonly stopTimeoutMs?: number | undefined;
  /** Runs in the primary once every worker has stopped (e.g. stop the embedded Postgres). */
  readonly onStopped?: (() => Promise<void>) | undefined;
}

/**
 * Supervises `workers` worker processes serving the same listeners (node:cluster shares the
 * listening sockets; the primary hands connections out round-robin), so verification uses
 * every core. Call it in the primary only: each worker runs main.ts again and, seeing
 * `cluster.isWorker`, starts its own instance. The primary only supervises: a worker that dies
 * unexpectedly is replaced (at most once per second, so a worker that cannot start does not
 * fork-bomb), SIGTERM or SIGINT on the primary stops every worker gracefully (each runs its own
 * shutdown: listeners close, usage and audit are flushed) and the primary exits when they are
 * gone, with code 1 if any worker failed to stop within `stopTimeoutMs`.
 */
export function superviseWorkers(workers: number, options: ClusterOptions = {}): void {
  if (!cluster.isPrimary) throw new Error("superviseWorkers runs in the primary process only");
  const stopTimeoutMs = options.stopTimeoutMs ?? 15_000;
  // Round-robin is the default on Linux; set it explicitly so it does not depend on the platform.
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let stopping = false;
  let lastFork = 0;
  const fork = (): Worker => {
    lastFork = Date.now();
    return cluster.fork(options.env);
  };
  for (let i = 0; i < workers; i++) fork();
  const finish = (code: number): void => {
    const done = options.onStopped?.() ?? Promise.resolve();
    done.then(
      () => process.exit(code),
      () => process.exit(1),
    );
  };

  cluster.on("exit", (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) finish(0);
      return;
    }
    process.stderr.write(
      `latchkey: worker ${worker.process.pid} exited (code ${code}, signal ${signal}); replacing it\n`,
    );
    const wait = Math.max(0, lastFork + 1_000 - Date.now());
    setTimeout(() => {
      if (!stopping) fork();
    }, wait);
  });

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    if (alive.length === 0) finish(0);
    for (const w of alive) w.process.kill(signal);
    setTimeout(() => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGKILL");
      finish(1);
    }, stopTimeoutMs).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGTERM"));
}
