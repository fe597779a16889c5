import { mkdtemp, rm } from "node:fs/promises";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Instance } from "../../src/app.js";
import type { ClientAuthMode } from "../../src/config.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import {
  TokenVerifyService,
  VerifyCode,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { adminClient, failure, verifyClient } from "../helpers/admin-client.js";
import type { Pem } from "../helpers/certificates.js";
import { type MtlsInstances, startMtlsInstances } from "../helpers/mtls-instances.js";

// mTLS on both listeners with a CA, a server certificate and client certificates made by
// openssl (test/helpers/certificates.ts): one client signed by the CA, one by another CA
// (refused), and clients with none.

let dir: string;
let servers: MtlsInstances | undefined;
let ca: Pem;
/** Signed by the client CA. */
let good: Pem;
/** Signed by another CA: presented, but never verified. */
let wrong: Pem;
let adminToken: string;
const channels: grpc.Client[] = [];
const agents: https.Agent[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "latchkey-mtls-"));
  servers = await startMtlsInstances(dir, "mtls admin");
  ({ ca, good, wrong } = servers.pki);
  adminToken = servers.adminToken;
});

afterAll(async () => {
  for (const c of channels) c.close();
  for (const a of agents) a.destroy();
  await servers?.close();
  await rm(dir, { recursive: true, force: true });
});

function instance(mode: ClientAuthMode): Instance {
  if (servers === undefined) throw new Error("the mTLS instances are used outside their tests");
  return servers.instance(mode);
}

/** A grpc-js channel to the gRPC listener presenting `client` (undefined: no certificate). */
function grpcChannel(mode: ClientAuthMode, client: Pem | undefined): grpc.Client {
  const creds = grpc.credentials.createSsl(ca.cert, client?.key ?? null, client?.cert ?? null);
  const channel = new grpc.Client(`localhost:${instance(mode).grpcPort}`, creds);
  channels.push(channel);
  return channel;
}

/** Connect over HTTP/1.1 or HTTP/2 (ALPN) to the HTTP listener, presenting `client`. */
function connectTransport(mode: ClientAuthMode, client: Pem | undefined, httpVersion: "1.1" | "2") {
  return createConnectTransport({
    baseUrl: `https://localhost:${instance(mode).httpPort}`,
    httpVersion,
    nodeOptions: { ca: ca.cert, ...(client === undefined ? {} : client) },
  });
}

/** GET `path` on the HTTP listener over HTTP/1.1 with `client`; resolves with the status. */
function httpsGet(mode: ClientAuthMode, path: string, client: Pem | undefined): Promise<number> {
  const agent = new https.Agent({ ca: ca.cert, ...(client === undefined ? {} : client) });
  agents.push(agent);
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: "localhost", port: instance(mode).httpPort, path, agent },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
  });
}

/**
 * Opens a TLS connection (ALPN h2) presenting `client` and resolves with the error code the
 * server's alert produced, "closed" when the server closed it without one, or "accepted" once
 * the server sent its first HTTP/2 bytes.
 */
function handshake(port: number, client: Pem | undefined): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: "localhost",
      port,
      ca: ca.cert,
      ALPNProtocols: ["h2"],
      ...(client === undefined ? {} : client),
    });
    socket.once("data", () => {
      socket.destroy();
      resolve("accepted");
    });
    let failed = "closed";
    socket.once("error", (err: NodeJS.ErrnoException) => {
      failed = err.code ?? err.message;
    });
    socket.once("close", () => resolve(failed));
  });
}

/** The ErrorInfo reason of a Connect failure. */
async function connectFailure(call: Promise<unknown>): Promise<{ code: Code; reason: string }> {
  try {
    await call;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, reason: e.findDetails(ErrorInfoSchema)[0]?.reason ?? "" };
  }
  throw new Error("expected the call to fail, it succeeded");
}

const VERSIONS = ["1.1", "2"] as const;

describe("LATCHKEY_TLS_CLIENT_AUTH=all", () => {
  it("a client certificate from the CA works on the gRPC listener", async () => {
    const channel = grpcChannel("all", good);
    const caller = await adminClient(channel, adminToken).getCaller({});
    expect(caller.token?.name).toBe("mtls admin");
    expect((await verifyClient(channel).verifyToken({ token: "nope" })).code).toBe(
      VerifyCode.MALFORMED,
    );
  });

  it.each(VERSIONS)("a client certificate from the CA works on HTTP/%s", async (v) => {
    const t = connectTransport("all", good, v);
    const caller = await createClient(TokenAdminService, t).getCaller(
      {},
      { headers: { authorization: `Bearer ${adminToken}` } },
    );
    expect(caller.token?.name).toBe("mtls admin");
    expect(await httpsGet("all", "/healthz", good)).toBe(200);
  });

  it.each([
    ["no certificate", undefined],
    ["a certificate from another CA", "wrong"],
  ] as const)("%s is refused on the gRPC listener, even for VerifyToken", async (_, which) => {
    const channel = grpcChannel("all", which === undefined ? undefined : wrong);
    const f = await failure(verifyClient(channel).verifyToken({ token: "nope" }));
    expect(f.code).toBe(grpc.status.UNAVAILABLE);
  });

  it.each(
    ["1.1", "2"].flatMap((v) => [
      { who: "no certificate", client: undefined, v },
      { who: "a certificate from another CA", client: "wrong", v },
    ]) as { who: string; client: "wrong" | undefined; v: "1.1" | "2" }[],
  )("$who is refused on HTTP/$v, even for VerifyToken", async ({ client, v }) => {
    const t = connectTransport("all", client === undefined ? undefined : wrong, v);
    const f = await connectFailure(createClient(TokenVerifyService, t).verifyToken({}));
    // The connection failed (how Node reports it varies); no latchkey answer came back.
    expect(f.code).not.toBe(Code.Unauthenticated);
    expect(f.reason).toBe("");
  });

  it.each(["grpcPort", "httpPort"] as const)(
    "%s: the TLS layer refuses the connection before a byte of HTTP/2",
    async (port) => {
      const p = instance("all")[port];
      expect(await handshake(p, undefined)).toBe("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED");
      // node verifies the chain after the handshake and closes the socket without an alert.
      expect(await handshake(p, wrong)).toBe("closed");
      expect(await handshake(p, good)).toBe("accepted");
    },
  );

  it("a plain HTTPS probe without a certificate is refused in the handshake", async () => {
    await expect(httpsGet("all", "/healthz", undefined)).rejects.toThrow();
  });
});

describe("LATCHKEY_TLS_CLIENT_AUTH=admin", () => {
  it.each([
    ["no certificate", undefined],
    ["a certificate from another CA", "wrong"],
  ] as const)("%s: VerifyToken and health still work on the gRPC listener", async (_, which) => {
    const channel = grpcChannel("admin", which === undefined ? undefined : wrong);
    expect((await verifyClient(channel).verifyToken({ token: "nope" })).code).toBe(
      VerifyCode.MALFORMED,
    );
    const health = await new Promise<Buffer>((resolve, reject) =>
      channel.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (err, value) => (err === null && value !== undefined ? resolve(value) : reject(err)),
      ),
    );
    expect([...health]).toEqual([0x08, 0x01]); // HealthCheckResponse{status: SERVING}
  });

  it.each([
    ["no certificate", undefined],
    ["a certificate from another CA", "wrong"],
  ] as const)(
    "%s: admin calls are UNAUTHENTICATED CLIENT_CERTIFICATE_REQUIRED on gRPC",
    async (_, which) => {
      const channel = grpcChannel("admin", which === undefined ? undefined : wrong);
      const f = await failure(adminClient(channel, adminToken).getCaller({}));
      expect(f.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(f.reason).toBe("CLIENT_CERTIFICATE_REQUIRED");
      expect(f.domain).toBe("latchkey.dev");
    },
  );

  it.each(
    ["1.1", "2"].flatMap((v) => [
      { who: "no certificate", which: undefined, v },
      { who: "a certificate from another CA", which: "wrong", v },
    ]) as { who: string; which: "wrong" | undefined; v: "1.1" | "2" }[],
  )(
    "$who on HTTP/$v: VerifyToken and probes work, admin calls are CLIENT_CERTIFICATE_REQUIRED",
    async ({ which, v }) => {
      const client = which === undefined ? undefined : wrong;
      const t = connectTransport("admin", client, v);
      const verified = await createClient(TokenVerifyService, t).verifyToken({ token: "nope" });
      expect(verified.code).toBe(VerifyCode.MALFORMED);
      expect(await httpsGet("admin", "/healthz", client)).toBe(200);
      const f = await connectFailure(
        createClient(TokenAdminService, t).getCaller(
          {},
          { headers: { authorization: `Bearer ${adminToken}` } },
        ),
      );
      expect(f).toEqual({ code: Code.Unauthenticated, reason: "CLIENT_CERTIFICATE_REQUIRED" });
    },
  );

  it("with a certificate from the CA, admin calls work on the gRPC listener", async () => {
    const caller = await adminClient(grpcChannel("admin", good), adminToken).getCaller({});
    expect(caller.token?.name).toBe("mtls admin");
  });

  it.each(VERSIONS)("with a certificate from the CA, admin calls work on HTTP/%s", async (v) => {
    const caller = await createClient(
      TokenAdminService,
      connectTransport("admin", good, v),
    ).getCaller({}, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(caller.token?.name).toBe("mtls admin");
  });

  it("the certificate does not replace the bearer token", async () => {
    const f = await failure(adminClient(grpcChannel("admin", good), undefined).getCaller({}));
    expect(f.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(f.reason).toBe("TOKEN_MISSING");
  });

  it("gRPC through connect-node's gRPC transport gets the same answer", async () => {
    const t = createGrpcTransport({
      baseUrl: `https://localhost:${instance("admin").grpcPort}`,
      nodeOptions: { ca: ca.cert },
    });
    const f = await connectFailure(
      createClient(TokenAdminService, t).getCaller(
        {},
        { headers: { authorization: `Bearer ${adminToken}` } },
      ),
    );
    expect(f).toEqual({ code: Code.Unauthenticated, reason: "CLIENT_CERTIFICATE_REQUIRED" });
  });
});
