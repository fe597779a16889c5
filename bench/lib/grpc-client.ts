import * as grpc from "@grpc/grpc-js";

/** The standard health method; the no-op every ratio is taken against. */
export const HEALTH_PATH = "/grpc.health.v1.Health/Check";

/**
 * A long-lived grpc-js client that sends raw protobuf bytes: the bench checks each RPC's answer
 * once before loading it (h2load counts a gRPC error as a success: it is HTTP 200) and drives
 * the revocation-propagation loop.
 */
export class Caller {
  private readonly client: grpc.Client;
  constructor(
    address: string,
    private readonly headers: Readonly<Record<string, string>> = {},
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  call(path: string, body: Uint8Array, timeoutMs = 5_000): Promise<Buffer> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.headers)) md.set(k, v);
    return new Promise((res, rej) => {
      this.client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(body),
        md,
        { deadline: Date.now() + timeoutMs },
        (err, v) => (err === null && v !== undefined ? res(v) : rej(err ?? new Error("empty"))),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

/** True when the server at `address` answers Health/Check with SERVING. */
export async function healthOk(address: string): Promise<boolean> {
  const c = new Caller(address);
  try {
    const r = await c.call(HEALTH_PATH, new Uint8Array(0), 500);
    return r.length === 2 && r[1] === 1;
  } catch {
    return false;
  } finally {
    c.close();
  }
}
