/**
 * `node --max-semi-space-size=512 dist/bench/handler-bench.js`: latchkey's own cost of a
 * VerifyToken (or of an Envoy ext_authz Check: METHOD=check) on the gRPC path, without grpc-js
 * and node:http2 (which Health/Check pays too): request decode, the bound grpc-js handler,
 * adapter, metrics, the verifier (local-tier hit), audit push and flush, response encode. CPU µs
 * and young-generation bytes per call, 32 calls in flight, median of 9 batches.
 * HANDLER_DIST=/other/dist measures another build (A/B of a prototype); AUDIT=all|none.
 * Needs DATABASE_URL with the bench token's schema.
 */

import { join, resolve } from "node:path";
import { getHeapSpaceStatistics } from "node:v8";

import * as grpc from "@grpc/grpc-js";
import postgres from "postgres";
import { benchSeeder } from "./lib/seed.js";
import { spread } from "./lib/stats.js";
import { envoyCheckPhase, verifyPhase } from "./phases.js";

type VerifierModule = typeof import("../src/services/verify/verifier.js");
type ServiceModule = typeof import("../src/services/verify/service.js");
type AdapterModule = typeof import("../src/transport/rpc-adapter.js");
type GrpcModule = typeof import("../src/transport/grpc/service.js");
type MetricsModule = typeof import("../src/transport/metrics.js");
type PbModule = typeof import("../src/gen/latchkey/v1/token_verify_service_pb.js");
type GatewayModule = typeof import("../src/services/gateway/check.js");
type ExtAuthzModule = typeof import("../src/transport/grpc/ext-authz.js");

const dist = resolve(process.env.HANDLER_DIST ?? join(import.meta.dirname, ".."));
const load = <T>(rel: string): Promise<T> => import(join(dist, rel)) as Promise<T>;
const { createVerifier } = await load<VerifierModule>("src/services/verify/verifier.js");
const { createVerifyService } = await load<ServiceModule>("src/services/verify/service.js");
const { adaptService } = await load<AdapterModule>("src/transport/rpc-adapter.js");
const { bindGrpcService } = await load<GrpcModule>("src/transport/grpc/service.js");
const { createMetrics } = await load<MetricsModule>("src/transport/metrics.js");
const { createGatewayCheck } = await load<GatewayModule>("src/services/gateway/check.js");
const { extAuthzService } = await load<ExtAuthzModule>("src/transport/grpc/ext-authz.js");
const pb = await load<PbModule>("src/gen/latchkey/v1/token_verify_service_pb.js");

const url = process.env.DATABASE_URL ?? "";
if (url === "") throw new Error("DATABASE_URL is required");
const sql = postgres(url, { max: 4, onnotice: () => {} });
const seed = await benchSeeder(sql);
const tokens = { verify: await seed(["deploy:*"]), admin: await seed(["tokens:read"]) };
const audit = process.env.AUDIT === "none" ? "none" : "all";
const method = process.env.METHOD === "check" ? "check" : "verify";
const verifier = createVerifier({ sql, tokenPrefix: "lk", auditMode: audit });
const metrics = createMetrics({ defaultMetrics: false });
const log = { error() {}, warn() {} } as unknown as Parameters<
  AdapterModule["adaptService"]
>[2]["log"];
const bound =
  method === "check"
    ? extAuthzService(createGatewayCheck(verifier), log, metrics.rpc).service
    : bindGrpcService(
        adaptService(pb.TokenVerifyService, createVerifyService({ verifier, sql }), {
          log,
          metrics: metrics.rpc,
        }),
      );
const name = method === "check" ? "Check" : "VerifyToken";
const def = bound.definition[name];
const impl = bound.implementation[name] as grpc.handleUnaryCall<unknown, unknown> | undefined;
if (def === undefined || impl === undefined) throw new Error(`${name} not bound`);
const phase = method === "check" ? envoyCheckPhase(tokens) : verifyPhase(name, tokens);
const wire = Buffer.from(phase.body);

/** One call as grpc-js makes it: decode, handler, encode of the answer. */
function oneCall(done: () => void): void {
  const call = {
    request: def?.requestDeserialize(wire),
    metadata: new grpc.Metadata(),
    cancelled: false,
    getPeer: () => "127.0.0.1:5000",
    once: () => call,
  };
  impl?.(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (err, value) => {
    if (err !== null || value === undefined) throw new Error(String(err));
    const bytes = def?.responseSerialize(value);
    if (checked++ === 0 && bytes !== undefined) {
      const problem = phase.check(bytes);
      if (problem !== undefined) throw new Error(`${name}: ${problem}`);
    }
    done();
  });
}
let checked = 0;

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
  // Includes the audit flush of the previous batch: its CPU is part of the per-call cost.
  const m0 = newSpace();
  const c0 = process.cpuUsage();
  await batch(20_000);
  await verifier.flush();
  const c = process.cpuUsage(c0);
  const m1 = newSpace();
  us.push((c.user + c.system) / 20_000);
  if (m1 > m0) bytes.push((m1 - m0) / 20_000);
}
const u = spread(us);
const b = spread(bytes);
console.log(
  `${dist} ${name}, audit ${audit}: ${u?.median.toFixed(2)} µs/call (${u?.min.toFixed(2)}–${u?.max.toFixed(2)}), ` +
    `${b?.median.toFixed(0) ?? "?"} B/call young generation (${b?.n ?? 0} batches without a scavenge)`,
);
await verifier.close();
await sql.end({ timeout: 2 });
process.exit(0);
