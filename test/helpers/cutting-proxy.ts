import * as net from "node:net";

/** A TCP proxy in front of Postgres that cuts one connection at a chosen client message. */
export interface CuttingProxy {
  readonly port: number;
  /** Connections cut so far. */
  readonly cuts: number;
  /**
   * Cuts the next connection whose client sends a chunk for which `match` is true: that chunk
   * is not forwarded and both sides are closed, as when the server dies right then.
   */
  arm(match: (chunk: Buffer) => boolean): void;
  /**
   * Cuts the next connection whose server sends a chunk for which `match` is true, before the
   * client sees it: the server did the work, the client never hears of it.
   */
  armResponse(match: (chunk: Buffer) => boolean): void;
  close(): Promise<void>;
}

/**
 * Forwards 127.0.0.1:<port> to `target` and, once armed, cuts one connection at a precise
 * point in the protocol, so a test can end a session mid-statement without any timing.
 */
export async function startCuttingProxy(target: {
  host: string;
  port: number;
}): Promise<CuttingProxy> {
  const sockets = new Set<net.Socket>();
  type Match = ((chunk: Buffer) => boolean) | undefined;
  const state: { cuts: number; match: Match; response: Match } = {
    cuts: 0,
    match: undefined,
    response: undefined,
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    // Forwards a chunk to `to`, or cuts both sides when the armed matcher `which` matches it.
    const relay = (which: "match" | "response", to: net.Socket) => (chunk: Buffer) => {
      if (state[which]?.(chunk) === true) {
        state[which] = undefined;
        state.cuts++;
        client.destroy();
        upstream.destroy();
        return;
      }
      to.write(chunk);
    };
    client.on("data", relay("match", upstream));
    upstream.on("data", relay("response", client));
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = addr !== null && typeof addr === "object" ? addr.port : 0;
  return {
    port,
    get cuts() {
      return state.cuts;
    },
    arm(match) {
      state.match = match;
    },
    armResponse(match) {
      state.response = match;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** `url` with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: CuttingProxy): string {
  const u = new URL(url);
  u.hostname = "127.0.0.1";
  u.port = String(proxy.port);
  return u.toString();
}

/** Host and port of a Postgres URL, for {@link startCuttingProxy}. */
export function targetOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 5432) };
}
