import { HealthImplementation } from "grpc-health-check";
import { TokenAdminService } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import { TokenVerifyService } from "../../gen/latchkey/v1/token_verify_service_pb.js";

/** Lets the composition root say whether this instance should receive traffic. */
export interface HealthReporter {
  /** SERVING or NOT_SERVING for "" and every latchkey service, pushed to Watch streams. */
  setServing(serving: boolean): void;
}

/** The HealthReporter the gRPC listener serves as grpc.health.v1.Health. */
export interface GrpcHealthReporter extends HealthReporter {
  readonly serving: boolean;
  /** grpc-health-check's implementation, added to the server by createGrpcServer. */
  readonly implementation: HealthImplementation;
}

/** Service names reported by health: the whole server ("") and each latchkey service. */
export const HEALTH_SERVICE_NAMES: readonly string[] = [
  "",
  TokenAdminService.typeName,
  TokenVerifyService.typeName,
];

/**
 * Creates the health state before the server exists, so whoever watches Postgres and the
 * shutdown signal can flip it without holding the server. Starts SERVING unless told otherwise
 * (the composition root starts listeners only once storage answered).
 */
export function createHealthReporter(
  options: { serving?: boolean; extraServiceNames?: readonly string[] } = {},
): GrpcHealthReporter {
  const names = [...HEALTH_SERVICE_NAMES, ...(options.extraServiceNames ?? [])];
  let serving = options.serving ?? true;
  const implementation = new HealthImplementation(
    Object.fromEntries(names.map((n) => [n, serving ? "SERVING" : "NOT_SERVING"])),
  );
  return {
    implementation,
    get serving() {
      return serving;
    },
    setServing(next) {
      serving = next;
      for (const n of names) implementation.setStatus(n, next ? "SERVING" : "NOT_SERVING");
    },
  };
}
