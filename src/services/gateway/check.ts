import type { Verifier } from "../verify/types.js";
import { deny, type GatewayAnswer, gatewayAnswer } from "./answer.js";
import { clientAddress, LOOPBACK_PROXIES, type TrustedProxies, trustedProxies } from "./proxies.js";

/** One request a gateway asks about, as ext_authz and /v1/check both describe it. */
export interface GatewayRequest {
  /** Value of the token header (see {@link GatewayOptions.tokenHeader}); undefined if absent. */
  readonly credential: string | undefined;
  /** The address of whoever sent the request to the gateway (ext_authz: source.address). */
  readonly peer: string;
  /** x-forwarded-for as the gateway received it; believed only from a trusted peer. */
  readonly forwardedFor: string | undefined;
  readonly method: string;
  readonly path: string;
  /** All must be held (already syntax-checked by the caller). */
  readonly permissions: readonly string[];
  /** "" when any org will do. */
  readonly orgId: string;
  readonly requestId: string;
}

export interface GatewayOptions {
  /** LATCHKEY_TRUSTED_PROXIES as canonical CIDRs (default loopback). */
  readonly trustedProxies?: readonly string[] | undefined;
  /** LATCHKEY_GATEWAY_TOKEN_HEADER, lower case (default `authorization`). */
  readonly tokenHeader?: string | undefined;
}

/** The gateway decision core, configured once per instance. */
export interface GatewayCheck {
  /** Lower-case name of the header that carries the token. */
  readonly tokenHeader: string;
  readonly proxies: TrustedProxies;
  /** The answer for one request; rejects (UNAVAILABLE) only when latchkey cannot decide. */
  check(request: GatewayRequest): Promise<GatewayAnswer>;
  /**
   * {@link check} answered without a promise when the verifier's local tier decides (see
   * Verifier.verifyNow); throws or rejects (UNAVAILABLE) only when latchkey cannot decide.
   */
  checkNow(request: GatewayRequest): GatewayAnswer | Promise<GatewayAnswer>;
}

const BEARER = /^\s*bearer\s+(\S+)\s*$/i;

/**
 * The token in a credential header: `Bearer <token>` in `authorization`; in any other
 * configured header (e.g. `x-api-key`) the bare value, with an optional `Bearer ` prefix.
 */
function tokenOf(header: string, value: string): string | undefined {
  const bearer = BEARER.exec(value)?.[1];
  if (bearer !== undefined) return bearer;
  if (header === "authorization") return undefined;
  const bare = value.trim();
  return bare === "" || /\s/.test(bare) ? undefined : bare;
}

/**
 * Builds the check that Envoy ext_authz and the HTTP forward-auth endpoint share: the token
 * from the configured header, the client address through the trusted-proxy rule, then the
 * verification core with purpose `verify` (same checks, order, caches, audit rows and use
 * accounting as VerifyToken), mapped to a status and headers by answer.ts.
 */
export function createGatewayCheck(
  verifier: Pick<Verifier, "verifyNow">,
  options: GatewayOptions = {},
): GatewayCheck {
  const tokenHeader = options.tokenHeader ?? "authorization";
  const proxies = trustedProxies(options.trustedProxies ?? LOOPBACK_PROXIES);
  const checkNow = (request: GatewayRequest): GatewayAnswer | Promise<GatewayAnswer> => {
    const credential = request.credential;
    if (credential === undefined || credential.trim() === "") return deny(401, "MISSING");
    const token = tokenOf(tokenHeader, credential);
    if (token === undefined) return deny(401, "MALFORMED");
    const outcome = verifier.verifyNow({
      purpose: "verify",
      token,
      requiredPermissions: request.permissions,
      clientIp: clientAddress(request.peer, request.forwardedFor, proxies),
      orgId: request.orgId,
      method: request.method,
      path: request.path,
      requestId: request.requestId,
    });
    return outcome instanceof Promise ? outcome.then(gatewayAnswer) : gatewayAnswer(outcome);
  };
  return {
    tokenHeader,
    proxies,
    checkNow,
    check(request) {
      try {
        return Promise.resolve(checkNow(request));
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
}
