import type * as http from "node:http";
import type * as http2 from "node:http2";
import * as net from "node:net";

/** The HTTP/2 connection preface begins with these bytes; HTTP/1.1 never does. */
const H2_PREFACE_START = Buffer.from("PRI");

/**
 * One plaintext port for HTTP/1.1 and h2c (HTTP/2 with prior knowledge, what gRPC and Connect
 * clients send without TLS): the first bytes of each connection decide which server gets it.
 * `onSocket` sees every accepted socket (close() tracks them to cut them at the deadline).
 * A socket that sends nothing within `firstByteTimeoutMs` is destroyed.
 */
export function sniffingServer(
  h1: http.Server,
  h2: http2.Http2Server,
  onSocket: (socket: net.Socket) => void,
  firstByteTimeoutMs = 10_000,
): net.Server {
  const server = net.createServer((socket) => {
    onSocket(socket);
    // A connection that never says which protocol it speaks is cut.
    const silent = (): void => {
      socket.destroy();
    };
    socket.setTimeout(firstByteTimeoutMs, silent);
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE_START.length);
      const maybeH2 = head.subarray(0, n).equals(H2_PREFACE_START.subarray(0, n));
      // A first segment shorter than "PRI" that could still be the preface: wait for more.
      if (maybeH2 && head.length < H2_PREFACE_START.length) return;
      socket.off("data", onData);
      socket.setTimeout(0);
      socket.off("timeout", silent);
      socket.pause();
      socket.unshift(head);
      if (maybeH2) {
        // The HTTP/2 session reads the socket itself, unshifted bytes first; resuming the
        // stream here would hand the preface to nobody.
        h2.emit("connection", socket);
      } else {
        // The HTTP/1.1 parser takes the peeked bytes through "data" events, so the stream
        // has to flow again.
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });
  // node:http checks headersTimeout/requestTimeout from a timer it starts on "listening" and
  // stops on close; h1 never listens itself, so it follows the sniffing server.
  server.on("listening", () => h1.emit("listening"));
  server.on("close", () => h1.close());
  return server;
}
