import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import * as http from "node:http";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { invalidArgument, unimplemented } from "../../src/errors.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import {
  CreateTokenRequestSchema,
  GetTokenRequestSchema,
  ListTokensRequestSchema,
  TokenAdminService,
} from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import {
  TokenVerifyService,
  VerifyCode,
  VerifyTokenRequestSchema,
  VerifyTokenResponseSchema,
  WatchRevocationsRequestSchema,
  WatchRevocationsResponseSchema,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import type { CallContext, ServiceHandlers } from "../../src/services/context.js";
import { decodeGrpcErrorDetails } from "../../src/transport/error-mapper.js";
import { createHealthReporter, type GrpcHealthReporter } from "../../src/transport/grpc/health.js";
import { closeGrpc, createGrpcServer, listenGrpc } from "../../src/transport/grpc/server.js";
import { grpcServiceDefinition } from "../../src/transport/grpc/service.js";
import { createHttpServer, type HttpListener } from "../../src/transport/http/server.js";
import { createLogger } from "../../src/transport/logger.js";
import { createMetrics, type Metrics } from "../../src/transport/metrics.js";
import { socketIp as normalizeIp, peerIp } from "../../src/transport/peer.js";

const run = promisify(execFile);
const BUF = join(process.cwd(), "node_modules/.bin/buf");
const SQL_TEXT = "SELECT secret FROM tokens WHERE hash = 'abc'";

/** Records what the listeners log, to prove the real error went there and nowhere else. */
function captureLog() {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at =
    (level: string) =>
    (obj: Record<string, unknown>, msg: string): void => {
      lines.push({ level, obj, msg });
    };
  return { lines, error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") };
}

type AnyHandler = (request: unknown, context: CallContext) => unknown;

/** Every method throws UNIMPLEMENTED, except those given. */
function handlersFor<S extends DescService>(
  desc: S,
  overrides: Record<string, AnyHandler>,
): ServiceHandlers<S> {
  const table: Record<string, AnyHandler> = {};
  for (const m of desc.methods) {
    const name = `${desc.typeName}/${m.name}`;
    table[m.localName] =
      overrides[m.localName] ??
      (m.methodKind === "server_streaming"
        ? // biome-ignore lint/correctness/useYield: it throws before the first message on purpose
          async function* () {
            throw unimplemented(name);
          }
        : async () => {
            throw unimplemented(name);
          });
  }
  return table as unknown as ServiceHandlers<S>;
}

const admin = handlersFor(TokenAdminService, {
  getToken: async () => {
    throw invalidArgument([{ field: "id", description: "must start with tok_" }]);
  },
  listTokens: async () => {
    throw new Error(SQL_TEXT);
  },
});

const verify = handlersFor(TokenVerifyService, {
  verifyToken: async (_request: unknown, ctx: CallContext) => ({
    valid: false,
    code: VerifyCode.MALFORMED,
    name: ctx.header("x-echo") ?? "",
    orgId: ctx.peerAddress,
    ownerId: ctx.method,
  }),
  watchRevocations: async function* (_request: unknown, ctx: CallContext) {
    yield { event: { tokenId: "tok_1", orgId: "org-a", reason: "test", cursor: "1" } };
    // Then stay open until the client goes away, like the real stream.
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
    });
  },
});

let grpcServer: grpc.Server;
let grpcPort: number;
let httpListener: HttpListener;
let httpPort: number;
let health: GrpcHealthReporter;
let metrics: Metrics;
let readyOk = true;
const log = captureLog();

beforeAll(async () => {
  metrics = createMetrics({
    verifyStats: () => ({ byCode: [0, 3, 1], auditDropped: 2 }),
  });
  health = createHealthReporter();
  grpcServer = createGrpcServer({ admin, verify, health, log, metrics: metrics.rpc });
  grpcPort = await listenGrpc(grpcServer, "127.0.0.1:0");
  httpListener = createHttpServer({
    admin,
    verify,
    log,
    metrics: metrics.registry,
    rpcMetrics: metrics.rpc,
    ready: async () => ({ ok: readyOk, checks: { postgres: readyOk ? "ok" : "down" } }),
  });
  httpPort = await httpListener.listen("127.0.0.1:0");
});

afterAll(async () => {
  await closeGrpc(grpcServer, 100);
  await httpListener.close();
});

// ---- grpc-js client built from the same descriptor-derived definition ----

type UnaryFn = (
  request: unknown,
  metadata: grpc.Metadata,
  callback: (err: grpc.ServiceError | null, value?: unknown) => void,
) => grpc.ClientUnaryCall;

function grpcClient<S extends DescService>(desc: S, port: number): grpc.Client {
  const { definition } = grpcServiceDefinition(desc, handlersFor(desc, {}), log);
  const Ctor = grpc.makeGenericClientConstructor(definition, desc.name);
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

function grpcUnary(
  client: grpc.Client,
  method: string,
  request: unknown,
  md: Record<string, string> = {},
): Promise<unknown> {
  const fn = (client as unknown as Record<string, UnaryFn>)[method];
  if (fn === undefined) throw new Error(`no method ${method}`);
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return new Promise((resolve, reject) => {
    fn.call(client, request, metadata, (err, value) =>
      err === null ? resolve(value) : reject(err),
    );
  });
}

async function grpcFailure(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("call succeeded");
}

describe("gRPC listener (grpc-js)", () => {
  let adminClient: grpc.Client;
  let verifyClient: grpc.Client;
  beforeAll(() => {
    adminClient = grpcClient(TokenAdminService, grpcPort);
    verifyClient = grpcClient(TokenVerifyService, grpcPort);
  });
  afterAll(() => {
    adminClient.close();
    verifyClient.close();
  });

  it("answers VerifyToken through the shared handler with a cheap context", async () => {
    const res = await grpcUnary(
      verifyClient,
      "VerifyToken",
      create(VerifyTokenRequestSchema, { token: "nope" }),
      { "x-echo": "hello", authorization: "Bearer lk_p_notlogged" },
    );
    expect(res).toMatchObject({
      valid: false,
      code: VerifyCode.MALFORMED,
      name: "hello",
      orgId: "127.0.0.1",
      ownerId: "latchkey.v1.TokenVerifyService/VerifyToken",
    });
  });

  it("maps an unimplemented method to UNIMPLEMENTED with ErrorInfo", async () => {
    const err = await grpcFailure(
      grpcUnary(adminClient, "CreateToken", create(CreateTokenRequestSchema, {})),
    );
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    const d = decodeGrpcErrorDetails(err.metadata);
    expect(d.errorInfos).toHaveLength(1);
    expect(d.errorInfo?.domain).toBe("latchkey.dev");
    expect(d.errorInfo?.reason).toBe("UNIMPLEMENTED");
  });

  it("maps a LatchkeyError with violations to INVALID_ARGUMENT + ErrorInfo + BadRequest", async () => {
    const err = await grpcFailure(
      grpcUnary(adminClient, "GetToken", create(GetTokenRequestSchema, { id: "x" })),
    );
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    const d = decodeGrpcErrorDetails(err.metadata);
    expect(d.status?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(d.errorInfos).toHaveLength(1);
    expect(d.errorInfo).toMatchObject({ domain: "latchkey.dev", reason: "INVALID_ARGUMENT" });
    expect(d.badRequest?.fieldViolations.map((v) => v.field)).toEqual(["id"]);
  });

  it("maps a plain error to INTERNAL without leaking it, and logs it", async () => {
    const err = await grpcFailure(
      grpcUnary(adminClient, "ListTokens", create(ListTokensRequestSchema, {})),
    );
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).toBe("internal error");
    expect(err.message).not.toMatch(/SELECT|secret/);
    expect(decodeGrpcErrorDetails(err.metadata).errorInfo?.reason).toBe("INTERNAL");
    const logged = log.lines.find((l) => l.level === "error" && l.obj.err instanceof Error);
    expect((logged?.obj.err as Error | undefined)?.message).toBe(SQL_TEXT);
  });

  it("streams WatchRevocations and ends the handler when the client cancels", async () => {
    const call = verifyClient.makeServerStreamRequest(
      `/${TokenVerifyService.typeName}/WatchRevocations`,
      (m: unknown) =>
        Buffer.from(
          toBinary(
            WatchRevocationsRequestSchema,
            create(WatchRevocationsRequestSchema, m as { cursor?: string }),
          ),
        ),
      (b: Buffer) => fromBinary(WatchRevocationsResponseSchema, b),
      {},
      new grpc.Metadata(),
    );
    const first = await new Promise((resolve) => call.once("data", resolve));
    expect(first).toMatchObject({ event: { tokenId: "tok_1" } });
    call.on("error", () => {});
    call.cancel();
  });
});

describe("reflection and health (buf curl)", () => {
  const base = () => `http://127.0.0.1:${grpcPort}`;
  const curl = (...args: string[]) =>
    run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
      timeout: 20_000,
    });

  it("lists both latchkey services via reflection", async () => {
    const { stdout } = await curl("--reflect", "--list-services", base());
    expect(stdout).toContain("latchkey.v1.TokenAdminService");
    expect(stdout).toContain("latchkey.v1.TokenVerifyService");
    expect(stdout).toContain("grpc.health.v1.Health");
  });

  it("lists the methods, VerifyToken among them", async () => {
    const { stdout } = await curl("--reflect", "--list-methods", base());
    expect(stdout).toContain("latchkey.v1.TokenVerifyService/VerifyToken");
    expect(stdout).toContain("latchkey.v1.TokenAdminService/CreateToken");
  });

  it("calls VerifyToken by reflection alone", async () => {
    const { stdout } = await curl(
      "-d",
      '{"token":"x"}',
      `${base()}/latchkey.v1.TokenVerifyService/VerifyToken`,
    );
    expect(JSON.parse(stdout)).toMatchObject({ code: "VERIFY_CODE_MALFORMED" });
  });

  it("answers SERVING, then NOT_SERVING (Check and Watch) when flipped", async () => {
    const check = async (service: string) =>
      JSON.parse(
        (await curl("-d", JSON.stringify({ service }), `${base()}/grpc.health.v1.Health/Check`))
          .stdout,
      ) as { status: string };
    expect((await check("")).status).toBe("SERVING");
    expect((await check("latchkey.v1.TokenVerifyService")).status).toBe("SERVING");

    const Ctor = grpc.makeGenericClientConstructor(healthServiceDefinition, "Health");
    const client = new Ctor(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
    const watch = (
      client as unknown as Record<string, (req: unknown) => grpc.ClientReadableStream<unknown>>
    ).Watch;
    if (watch === undefined) throw new Error("no Watch");
    const stream = watch.call(client, { service: "latchkey.v1.TokenAdminService" });
    const seen: unknown[] = [];
    const flipped = new Promise<void>((resolve) => {
      stream.on("data", (m: { status: string }) => {
        seen.push(m.status);
        if (m.status === "SERVING") health.setServing(false);
        if (m.status === "NOT_SERVING") resolve();
      });
    });
    stream.on("error", () => {});
    await flipped;
    stream.cancel();
    client.close();
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    expect((await check("")).status).toBe("NOT_SERVING");
    health.setServing(true);
    expect((await check("")).status).toBe("SERVING");
  });
});

describe("HTTP listener (connect-node)", () => {
  const transports: Record<string, () => Transport> = {
    "Connect JSON over HTTP/1.1": () =>
      createConnectTransport({ baseUrl: `http://127.0.0.1:${httpPort}`, httpVersion: "1.1" }),
    "Connect binary over h2c": () =>
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${httpPort}`,
        httpVersion: "2",
        useBinaryFormat: true,
      }),
    "gRPC-Web over HTTP/1.1": () =>
      createGrpcWebTransport({ baseUrl: `http://127.0.0.1:${httpPort}`, httpVersion: "1.1" }),
    "gRPC over h2c": () => createGrpcTransport({ baseUrl: `http://127.0.0.1:${httpPort}` }),
  };

  for (const [name, make] of Object.entries(transports)) {
    describe(name, () => {
      const adminClient = () => createClient(TokenAdminService, make());
      const verifyClient = () => createClient(TokenVerifyService, make());

      it("answers VerifyToken", async () => {
        const res = await verifyClient().verifyToken(
          { token: "nope" },
          { headers: { "x-echo": "hi", authorization: "Bearer lk_p_notlogged" } },
        );
        expect(res.valid).toBe(false);
        expect(res.code).toBe(VerifyCode.MALFORMED);
        expect(res.name).toBe("hi");
        expect(res.orgId).toBe("127.0.0.1");
      });

      it("maps unimplemented to UNIMPLEMENTED", async () => {
        const err = ConnectError.from(
          await adminClient()
            .createToken({})
            .catch((e: unknown) => e),
        );
        expect(err.code).toBe(Code.Unimplemented);
        const infos = err.findDetails(ErrorInfoSchema);
        expect(infos).toHaveLength(1);
        expect(infos[0]?.domain).toBe("latchkey.dev");
      });

      it("maps violations to INVALID_ARGUMENT with ErrorInfo and BadRequest", async () => {
        const err = ConnectError.from(
          await adminClient()
            .getToken({ id: "x" })
            .catch((e: unknown) => e),
        );
        expect(err.code).toBe(Code.InvalidArgument);
        expect(err.findDetails(ErrorInfoSchema)).toMatchObject([
          { domain: "latchkey.dev", reason: "INVALID_ARGUMENT" },
        ]);
        expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("id");
      });

      it("maps a plain error to INTERNAL without SQL", async () => {
        const err = ConnectError.from(
          await adminClient()
            .listTokens({})
            .catch((e: unknown) => e),
        );
        expect(err.code).toBe(Code.Internal);
        expect(err.rawMessage).toBe("internal error");
        expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("INTERNAL");
      });
    });
  }

  it("serves /healthz, /readyz (200 and 503) and /metrics over HTTP/1.1", async () => {
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${httpPort}${path}`);
      return { status: res.status, body: await res.text() };
    };
    expect(await get("/healthz")).toEqual({ status: 200, body: "ok\n" });
    readyOk = true;
    const ready = await get("/readyz");
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ ok: true, checks: { postgres: "ok" } });
    readyOk = false;
    const notReady = await get("/readyz");
    expect(notReady.status).toBe(503);
    expect(JSON.parse(notReady.body)).toEqual({ ok: false, checks: { postgres: "down" } });
    readyOk = true;

    const m = await get("/metrics");
    expect(m.status).toBe(200);
    expect(m.body).toMatch(
      /latchkey_rpc_requests_total\{service="latchkey.v1.TokenAdminService",method="GetToken",code="INVALID_ARGUMENT"\} [1-9]/,
    );
    expect(m.body).toMatch(
      /latchkey_rpc_requests_total\{service="latchkey.v1.TokenVerifyService",method="VerifyToken",code="OK"\} [1-9]/,
    );
    expect(m.body).toContain("# TYPE latchkey_rpc_duration_seconds histogram");
    expect(m.body).toContain('latchkey_verify_decisions_total{code="MALFORMED"} 1');
    expect(m.body).toContain("latchkey_audit_dropped_total 2");
    expect(m.body).toContain("process_cpu_user_seconds_total");
  });

  it("serves /healthz over h2c on the same port", async () => {
    const session = http2.connect(`http://127.0.0.1:${httpPort}`);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = session.request({ ":path": "/healthz" });
      req.on("response", (h) => resolve(h[":status"]));
      req.on("error", reject);
      req.resume();
    });
    session.close();
    expect(status).toBe(200);
  });

  it("never logs the authorization header", () => {
    const text = JSON.stringify(log.lines);
    expect(text).not.toContain("Bearer");
    expect(log.lines.some((l) => l.msg === "http request" && l.obj.path === "/healthz")).toBe(true);
  });
});

describe("createLogger", () => {
  it("redacts authorization, secret and token fields", () => {
    const out: string[] = [];
    const logger = createLogger("info", { write: (line: string) => out.push(line) });
    logger.info(
      { authorization: "Bearer a", req: { headers: { authorization: "Bearer b" } }, secret: "c" },
      "x",
    );
    logger.info({ request: { token: "lk_p_d" }, token: "lk_p_e" }, "y");
    const text = out.join("");
    expect(text).not.toMatch(/Bearer|lk_p_|"c"/);
    expect(text).toContain("[redacted]");
  });
});

describe("peerIp", () => {
  it.each([
    ["127.0.0.1:5000", "127.0.0.1"],
    ["::1:5000", "::1"],
    ["[::1]:5000", "::1"],
    ["ipv4:10.0.0.1:443", "10.0.0.1"],
    ["ipv6:[2001:db8::1]:443", "2001:db8::1"],
    ["::ffff:192.168.1.2:8080", "192.168.1.2"],
    ["unknown", ""],
  ])("%s → %s", (peer, ip) => {
    expect(peerIp(peer)).toBe(ip);
  });
  it("normalizes bare addresses (the HTTP listener's socket.remoteAddress)", () => {
    expect(normalizeIp("::ffff:10.1.2.3")).toBe("10.1.2.3");
    expect(normalizeIp("fe80::1:2")).toBe("fe80::1:2");
    expect(normalizeIp("")).toBe("");
  });
});

describe("shutdown", () => {
  it("closes both listeners within 2 s with a client stream still open", async () => {
    const h = createHealthReporter();
    const g = createGrpcServer({ admin, verify, health: h, log });
    const gPort = await listenGrpc(g, "127.0.0.1:0");
    const l = createHttpServer({
      admin,
      verify,
      log,
      metrics: createMetrics({ defaultMetrics: false }).registry,
      ready: async () => ({ ok: true, checks: {} }),
    });
    const hPort = await l.listen("127.0.0.1:0");

    // An open WatchRevocations stream on each listener, plus an idle HTTP/1.1 keep-alive.
    const connectStream = createClient(
      TokenVerifyService,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${hPort}`, httpVersion: "2" }),
    ).watchRevocations({});
    const iterator = connectStream[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ event: { tokenId: "tok_1" } });
    const pending = iterator.next().catch(() => undefined);

    const vc = grpcClient(TokenVerifyService, gPort);
    const grpcStream = vc.makeServerStreamRequest(
      `/${TokenVerifyService.typeName}/WatchRevocations`,
      () => Buffer.alloc(0),
      (b: Buffer) => fromBinary(WatchRevocationsResponseSchema, b),
      {},
    );
    grpcStream.on("error", () => {});
    await new Promise((resolve) => grpcStream.once("data", resolve));

    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve) => {
      http.get(`http://127.0.0.1:${hPort}/healthz`, { agent }, (res) => {
        res.resume();
        res.on("end", () => resolve());
      });
    });

    const started = Date.now();
    await Promise.all([l.close(), closeGrpc(g, 500)]);
    expect(Date.now() - started).toBeLessThan(2_000);
    await pending;
    vc.close();
    agent.destroy();
  });
});

describe("TLS", () => {
  let dir: string;
  let cert: Buffer;
  let key: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "latchkey-tls-"));
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ]);
    cert = await readFile(join(dir, "cert.pem"));
    key = await readFile(join(dir, "key.pem"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("serves gRPC, Connect over HTTP/1.1 and HTTP/2 with TLS", async () => {
    const g = createGrpcServer({ admin, verify, health: createHealthReporter(), log });
    const gPort = await listenGrpc(g, "127.0.0.1:0", { cert, key });
    const l = createHttpServer({
      admin,
      verify,
      log,
      tls: { cert, key },
      metrics: createMetrics({ defaultMetrics: false }).registry,
      ready: async () => ({ ok: true, checks: {} }),
    });
    const hPort = await l.listen("127.0.0.1:0");
    try {
      const Ctor = grpc.makeGenericClientConstructor(
        grpcServiceDefinition(TokenVerifyService, verify, log).definition,
        "TokenVerifyService",
      );
      const client = new Ctor(`localhost:${gPort}`, grpc.credentials.createSsl(cert));
      const res = await grpcUnary(client, "VerifyToken", create(VerifyTokenRequestSchema, {}));
      client.close();
      expect(res).toMatchObject({ code: VerifyCode.MALFORMED });

      for (const httpVersion of ["1.1", "2"] as const) {
        const v = createClient(
          TokenVerifyService,
          createConnectTransport({
            baseUrl: `https://localhost:${hPort}`,
            httpVersion,
            nodeOptions: { ca: cert },
          }),
        );
        const r = await v.verifyToken({});
        expect(create(VerifyTokenResponseSchema, r).code).toBe(VerifyCode.MALFORMED);
      }
    } finally {
      await Promise.all([l.close(), closeGrpc(g, 100)]);
    }
  });
});
