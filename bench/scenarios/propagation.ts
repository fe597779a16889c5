import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  RevokeTokenRequestSchema,
  TokenAdminService,
} from "../../src/gen/latchkey/v1/token_admin_service_pb.js";
import {
  TokenVerifyService,
  VerifyCode,
  VerifyTokenRequestSchema,
  VerifyTokenResponseSchema,
} from "../../src/gen/latchkey/v1/token_verify_service_pb.js";
import { Caller } from "../lib/grpc-client.js";
import { f2, type Report } from "../lib/report.js";
import { startServer } from "../lib/server.js";
import { percentile } from "../lib/stats.js";

const VERIFY = `/${TokenVerifyService.typeName}/VerifyToken`;
const REVOKE = `/${TokenAdminService.typeName}/RevokeToken`;

async function codeOf(c: Caller, token: string): Promise<VerifyCode> {
  const req = toBinary(VerifyTokenRequestSchema, create(VerifyTokenRequestSchema, { token }));
  return fromBinary(VerifyTokenResponseSchema, await c.call(VERIFY, req)).code;
}

/**
 * Revocation propagation between two instances sharing Redis: RevokeToken returns on A, then
 * the time until B answers REVOKED for a token B had cached. 100 revocations.
 */
export async function propagationRows(
  report: Report,
  env: Record<string, string>,
  seed: (permissions: string[]) => Promise<{ id: string; secret: string }>,
): Promise<void> {
  const admin = await seed(["*", "platform:admin"]);
  const a = await startServer({ ...env, LATCHKEY_AUDIT_MODE: "denials" }, "prop-a");
  const b = await startServer({ ...env, LATCHKEY_AUDIT_MODE: "denials" }, "prop-b");
  const onA = new Caller(a.address, { authorization: `Bearer ${admin.secret}` });
  const onB = new Caller(b.address);
  const samples: number[] = [];
  let failure = "";
  try {
    for (let i = 0; i < 100; i++) {
      const t = await seed(["deploy:*"]);
      if ((await codeOf(onA, t.secret)) !== VerifyCode.VALID) throw new Error("A: not valid");
      if ((await codeOf(onB, t.secret)) !== VerifyCode.VALID) throw new Error("B: not valid");
      const body = create(RevokeTokenRequestSchema, { id: t.id, reason: "bench" });
      await onA.call(REVOKE, toBinary(RevokeTokenRequestSchema, body));
      const t0 = performance.now();
      while ((await codeOf(onB, t.secret)) !== VerifyCode.REVOKED) {
        if (performance.now() - t0 > 5_000) throw new Error("B never saw the revocation");
      }
      samples.push(performance.now() - t0);
    }
  } catch (err) {
    failure = String(err).split("\n")[0] ?? "";
  } finally {
    onA.close();
    onB.close();
    await a.stop();
    await b.stop();
  }
  const s = Float64Array.from(samples).sort();
  report.value(`revocation A→B p50 (${s.length} revocations), ms`, f2(percentile(s, 0.5)));
  const p99 = percentile(s, 0.99);
  report.value(
    "revocation A→B p99, ms",
    f2(p99),
    "< 100 ms",
    p99 === undefined ? "n/a" : p99 < 100 ? "meets" : "SHORT",
  );
  if (failure !== "") report.note(`revocation propagation stopped: ${failure}`);
}
