import { type Instance, type InstanceDeps, startInstance } from "../../src/app.js";
import type { LatchkeyVerifier } from "../../src/services/verify/types.js";
import type { Sql } from "../../src/store/db.js";
import { PREFIX } from "./latchkey-server.js";

/** A logger that drops everything (tests that assert on outcomes, not on log lines). */
export const QUIET_LOG = { error() {}, warn() {}, info() {}, debug() {} };

/**
 * One instance through app.ts on ephemeral ports, with `overrides` (limits, readiness interval,
 * a capturing log, Redis reporting) for tests that need the Instance itself rather than clients.
 */
export function startTestInstance(
  sql: Sql,
  verifier: LatchkeyVerifier,
  overrides: Partial<InstanceDeps> = {},
): Promise<Instance> {
  return startInstance({
    sql,
    verifier,
    tokenPrefix: PREFIX,
    log: QUIET_LOG,
    redis: false,
    grpcListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    defaultMetrics: false,
    ...overrides,
  });
}
