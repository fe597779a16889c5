import { type PeerCertificate, TLSSocket } from "node:tls";
import { Code } from "@connectrpc/connect";
import type { ClientAuthMode } from "../config.js";
import { LatchkeyError } from "../errors.js";
import type { Authenticator } from "../services/auth.js";
import type { ClientCertificate } from "../services/context.js";

/** TLS of both listeners; with `clientCa`, mutual TLS (client certificates signed by it). */
export interface TlsOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** PEM CA bundle that client certificates must chain to (LATCHKEY_TLS_CLIENT_CA). */
  readonly clientCa?: Buffer | undefined;
  /**
   * `all` (default) refuses a client without a certificate from `clientCa` in the handshake on
   * both listeners; `admin` only asks for one there, and the RPC adapter refuses
   * TokenAdminService calls that did not present a verified one.
   */
  readonly clientAuth?: ClientAuthMode | undefined;
}

/** Node's TLS options for one listener: what to ask of the client, and whether to insist. */
export function clientCertificateOptions(tls: TlsOptions): {
  ca?: Buffer;
  requestCert: boolean;
  rejectUnauthorized: boolean;
} {
  if (tls.clientCa === undefined) return { requestCert: false, rejectUnauthorized: false };
  return {
    ca: tls.clientCa,
    requestCert: true,
    rejectUnauthorized: (tls.clientAuth ?? "all") === "all",
  };
}

/**
 * The certificate a TLS peer presented, when it chained to the configured CA (`authorized`);
 * undefined for plaintext, no certificate, or one that did not verify (a wrong CA under
 * `admin`, where the handshake lets it through). Both listeners go through here, so they agree.
 */
export function verifiedCertificate(socket: unknown): ClientCertificate | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  return fromPeerCertificate(socket.getPeerCertificate());
}

/** A node:tls peer certificate as the call context carries it (undefined when empty). */
export function fromPeerCertificate(
  peer: PeerCertificate | undefined,
): ClientCertificate | undefined {
  // node returns {} rather than undefined when the peer sent no certificate.
  if (peer === undefined || peer.raw === undefined) return undefined;
  const cn = peer.subject?.CN;
  return {
    commonName: (Array.isArray(cn) ? cn[0] : cn) ?? "",
    fingerprint256: peer.fingerprint256,
  };
}

/**
 * Wraps TokenAdminService's authenticator so that a call without a verified client certificate
 * is UNAUTHENTICATED / CLIENT_CERTIFICATE_REQUIRED before its bearer token is even looked at.
 * The adapter applies it once for both listeners.
 */
export function requiringClientCertificate(authenticate: Authenticator): Authenticator {
  return (method, context) =>
    context.clientCertificate === undefined
      ? Promise.reject(
          new LatchkeyError(
            Code.Unauthenticated,
            "CLIENT_CERTIFICATE_REQUIRED",
            "TokenAdminService requires a client certificate signed by the configured client CA",
          ),
        )
      : authenticate(method, context);
}
