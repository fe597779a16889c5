import * as http2 from "node:http2";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Instance } from "../../src/app.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { startTestInstance } from "../helpers/instance.js";
import { PREFIX } from "../helpers/latchkey-server.js";
import { createTestDatabase } from "../helpers/postgres.js";

// Connections that do nothing useful are cut on both listeners (first byte, headers, idle), and
// one connection's streams are capped. Short limits through the options; each test only waits
// for the server to act (the file's timeout bounds it), it never times anything.

const LIMITS = { headerTimeoutMs: 300, idleTimeoutMs: 600, maxConcurrentStreams: 4 };

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let verifier: LatchkeyVerifier;
let instance: Instance;

beforeAll(async () => {
  db = await createTestDatabase();
  verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX });
  instance = await startTestInstance(db.sql, verifier, { limits: LIMITS });
});

afterAll(async () => {
  await instance?.close();
  await verifier?.close();
  await db?.drop();
});

/** Opens a TCP connection, writes `bytes` (if any), and resolves once the server closed it. */
function closedByServer(port: number, bytes?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      received += d;
    });
    socket.on("connect", () => {
      if (bytes !== undefined) socket.write(bytes);
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(received));
    socket.on("timeout", () => reject(new Error("not closed")));
  });
}

function h2Session(port: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.once("remoteSettings", () => resolve(session));
    session.once("error", reject);
  });
}

function sessionClosed(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    if (session.closed || session.destroyed) resolve();
    else session.once("close", () => resolve());
  });
}

describe("silent connections", () => {
  it("are closed on both listeners (40 of 40)", async () => {
    const ports = [instance.grpcPort, instance.httpPort];
    const all = ports.flatMap((port) => Array.from({ length: 20 }, () => closedByServer(port)));
    expect(await Promise.all(all)).toHaveLength(40);
  });

  it("an HTTP/1.1 request whose headers never end is cut", async () => {
    const got = await closedByServer(instance.httpPort, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    expect(got).not.toContain("200 OK");
  });
});

describe("idle HTTP/2 connections", () => {
  it("an h2c connection on the HTTP listener is closed after a request and idling", async () => {
    // The request goes out right behind the connection preface, without waiting for the
    // server's settings: a connection idle for 600 ms is closed, and on a loaded machine that
    // wait alone could let the server close it before the request arrived.
    const session = http2.connect(`http://127.0.0.1:${instance.httpPort}`);
    session.on("error", () => {});
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ":path": "/healthz" });
      req.on("response", (h) => resolve(Number(h[":status"])));
      req.on("error", reject);
      req.resume();
      req.end();
    });
    expect(status).toBe(200);
    await sessionClosed(session);
    expect(session.closed || session.destroyed).toBe(true);
  });

  it("a gRPC connection is closed when it has no call", async () => {
    const session = await h2Session(instance.grpcPort);
    await sessionClosed(session);
    expect(session.closed || session.destroyed).toBe(true);
  });
});

describe("streams per connection", () => {
  it("both listeners advertise the cap", async () => {
    for (const port of [instance.grpcPort, instance.httpPort]) {
      const session = await h2Session(port);
      try {
        expect(session.remoteSettings.maxConcurrentStreams).toBe(LIMITS.maxConcurrentStreams);
      } finally {
        session.destroy();
      }
    }
  });
});
