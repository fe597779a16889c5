/**
 * `node --max-semi-space-size=512 dist/bench/handler-bench.js`: latchkey's own cost of a
 * VerifyToken on the gRPC path, without grpc-js and node:http2 (which Health/Check pays too):
 * request decode, the bound grpc-js handler, adapter, metrics, the verifier (local-tier hit),
 * audit push, response encode. CPU µs and young-generation bytes per call, 32 calls in flight,
 * median of 9 batches. HANDLER_DIST=/other/dist measures another build (A/B of a prototype);
 * AUDIT=all|none. Needs DATABASE_URL with the bench token's schema.
 */

import { join, resolve } from "node:path";
import { getHeapSpaceStatistics } from "node:v8";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import postgres from "postgres";
import { benchSeeder } from "./lib/seed.js";
import { spread } from "./lib/stats.js";

type VerifierModule = typeof import("../src/services/verify/verifier.js");
type ServiceModule = typeof import("../src/services/verify/service.js");
type AdapterModule = typeof import("../src/transport/rpc-adapter.js");
type GrpcModule = typeof import("../src/transport/grpc/service.js");
type MetricsModule = typeof import("../src/transport/metrics.js");
type PbModule = typeof import("../src/gen/latchkey/v1/token_verify_service_pb.js");

const dist = resolve(process.env.HANDLER_DIST ?? join(import.meta.dirname, ".."));
const load = <T>(rel: string): Promise<T> => import(join(dist, rel)) as Promise<T>;
const { createVerifier } = await load<VerifierModule>("src/services/verify/verifier.js");
const { createVerifyService } = await load<ServiceModule>("src/services/verify/service.js");
const { adaptService } = await load<AdapterModule>("src/transport/rpc-adapter.js");
const { bindGrpcService } = await load<GrpcModule>("src/transport/grpc/service.js");
const { createMetrics } = await load<MetricsModule>("src/transport/metrics.js");
const pb = await load<PbModule>("src/gen/latchkey/v1/token_verify_service_pb.js");

const url = process.env.DATABASE_URL ?? "";
if (url === "") throw new Error("DATABASE_URL is required");
const sql = postgres(url, { max: 4, onnotice: () => {} });
const token = await (await benchSeeder(sql))(["deploy:*"]);
const audit = process.env.AUDIT === "none" ? "none" : "all";
const verifier = createVerifier({ sql, tokenPrefix: "lk", auditMode: audit });
const metrics = createMetrics({ defaultMetrics: false });
const log = { error() {}, warn() {} } as unknown as Parameters<
  AdapterModule["adaptService"]
>[2]["log"];
const adapted = adaptService(pb.TokenVerifyService, createVerifyService({ verifier, sql }), {
  log,
  metrics: metrics.rpc,
});
const bound = bindGrpcService(adapted);
const def = bound.definition.VerifyToken;
const impl = bound.implementation.VerifyToken as grpc.handleUnaryCall<unknown, unknown> | undefined;
if (def === undefined || impl === undefined) throw new Error("VerifyToken not bound");
const wire = Buffer.from(
  toBinary(
    pb.VerifyTokenRequestSchema,
    create(pb.VerifyTokenRequestSchema, {
      token: token.secret,
      requiredPermissions: ["deploy:read"],
      clientIp: "10.1.2.3",
      method: "POST",
      path: "/v1/deploy",
      requestId: "bench",
    }),
  ),
);

/** One call as grpc-js makes it: decode, handler, encode of the answer. */
function oneCall(done: () => void): void {
  const call = {
    request: def?.requestDeserialize(wire),
    metadata: new grpc.Metadata(),
    cancelled: false,
    getPeer: () => "ipv4:127.0.0.1:5000",
    once: () => call,
  };
  impl?.(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (err, value) => {
    if (err !== null || value === undefined) throw new Error(String(err));
    def?.responseSerialize(value);
    done();
  });
}

/** `n` calls, 32 in flight; resolves when all answered. */
function batch(n: number): Promise<void> {
  return new Promise((res) => {
    let sent = 0;
    let answered = 0;
    const next = (): void => {
      answered++;
      if (answered === n) res();
      else if (sent < n) {
        sent++;
        // Like a network turn: the next call never runs inside the previous one's reply.
        queueMicrotask(() => oneCall(next));
      }
    };
    for (; sent < Math.min(32, n); ) {
      sent++;
      oneCall(next);
    }
  });
}

const newSpace = () =>
  getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_used_size ?? 0;
await batch(20_000); // warm: the token is cached, code is optimised
const us: number[] = [];
const bytes: number[] = [];
for (let r = 0; r < 9; r++) {
  await new Promise((res) => setTimeout(res, 250)); // let the audit writer flush off the clock
  const m0 = newSpace();
  const c0 = process.cpuUsage();
  await batch(20_000);
  const c = process.cpuUsage(c0);
  const m1 = newSpace();
  us.push((c.user + c.system) / 20_000);
  if (m1 > m0) bytes.push((m1 - m0) / 20_000);
}
const u = spread(us);
const b = spread(bytes);
console.log(
  `${dist} audit ${audit}: ${u?.median.toFixed(2)} µs/call (${u?.min.toFixed(2)}–${u?.max.toFixed(2)}), ` +
    `${b?.median.toFixed(0) ?? "?"} B/call young generation (${b?.n ?? 0} batches without a scavenge)`,
);
await verifier.close();
await sql.end({ timeout: 2 });
process.exit(0);
