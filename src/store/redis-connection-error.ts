/** Node's TLS verification codes that mean "this certificate is not signed by a trusted CA". */
const UNTRUSTED = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
]);

/**
 * The log line for a failed Redis connection. ioredis reconnects on its own and verification
 * goes on without Redis, so without this line an operator would see only `checks.redis:
 * "unreachable"`; a TLS failure in particular needs its cause and its fix named. Built from the
 * error's code only: never the URL, which may hold a password.
 */
export function redisConnectionWarning(err: unknown): string {
  const code =
    typeof err === "object" && err !== null && "code" in err && typeof err.code === "string"
      ? err.code
      : undefined;
  if (code !== undefined && UNTRUSTED.has(code)) {
    return `redis TLS: the server's certificate is not trusted (${code}); for a private CA set NODE_EXTRA_CA_CERTS to its PEM file`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return "redis TLS: the server's certificate does not name the host in REDIS_URL (ERR_TLS_CERT_ALTNAME_INVALID)";
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return `redis TLS: the server's certificate is outside its validity period (${code})`;
  }
  return "redis connection failed; verification goes on from the local tier and Postgres";
}
