import { parentPort, workerData } from "node:worker_threads";
import * as grpc from "@grpc/grpc-js";

/** What the bench asks a load worker to do (closed loop: `inFlight` calls outstanding). */
export interface LoadJob {
  readonly address: string;
  readonly path: string;
  /** The serialized request message (protobuf bytes, no gRPC frame header). */
  readonly body: Uint8Array;
  readonly connections: number;
  readonly inFlight: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Request metadata (e.g. authorization for admin calls). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

export interface LoadResult {
  readonly completed: number;
  readonly failed: number;
  /** Latencies of the measured calls, microseconds. */
  readonly latenciesUs: number[];
}

/**
 * The fallback load generator when h2load is not installed: grpc-js clients in a worker
 * thread, closed loop. Slower than h2load (grpc-js costs as much on the client as on the
 * server), so the bench runs several of these and says so in its report.
 */
async function run(job: LoadJob): Promise<LoadResult> {
  const clients = Array.from(
    { length: job.connections },
    (_, i) =>
      new grpc.Client(job.address, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
        "lk.bench.channel": i,
      }),
  );
  const body = Buffer.from(job.body);
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(job.headers ?? {})) metadata.set(k, v);
  const start = performance.now();
  const measureFrom = start + job.warmupMs;
  const end = measureFrom + job.durationMs;
  let completed = 0;
  let failed = 0;
  const latenciesUs: number[] = [];
  const loop = (client: grpc.Client): Promise<void> =>
    new Promise((resolve) => {
      const next = (): void => {
        const t0 = performance.now();
        if (t0 >= end) {
          resolve();
          return;
        }
        client.makeUnaryRequest(
          job.path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          body,
          metadata,
          (err) => {
            const t1 = performance.now();
            if (t0 >= measureFrom) {
              if (err === null) {
                completed++;
                if (latenciesUs.length < 2_000_000) latenciesUs.push((t1 - t0) * 1000);
              } else failed++;
            }
            next();
          },
        );
      };
      next();
    });
  const loops: Promise<void>[] = [];
  for (const c of clients) for (let i = 0; i < job.inFlight; i++) loops.push(loop(c));
  await Promise.all(loops);
  for (const c of clients) c.close();
  return { completed, failed, latenciesUs };
}

if (parentPort !== null) {
  const port = parentPort;
  run(workerData as LoadJob).then(
    (r) => port.postMessage(r),
    (err: unknown) =>
      port.postMessage({ completed: 0, failed: 1, latenciesUs: [], error: String(err) }),
  );
}
