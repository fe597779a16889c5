import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { EnvReader } from "./reader.js";
import { CLIENT_AUTH_MODES, type Config } from "./types.js";

/**
 * LATCHKEY_TLS_CERT / LATCHKEY_TLS_KEY (read here, so an unreadable file is reported with the
 * other problems) plus the mTLS settings layered on top of them.
 */
export function tlsConfig(r: EnvReader, problems: string[]): Config["tls"] {
  const { str, oneOf } = r;
  // --- mTLS (issue #11): a client CA only means something on top of TLS.
  const mtls = {
    clientCa: clientCa(str("LATCHKEY_TLS_CLIENT_CA"), problems),
    clientAuth: oneOf("LATCHKEY_TLS_CLIENT_AUTH", CLIENT_AUTH_MODES, "all"),
  };
  if (mtls.clientCa !== undefined && str("LATCHKEY_TLS_CERT") === undefined) {
    problems.push(
      "LATCHKEY_TLS_CLIENT_CA: client certificates need TLS; set LATCHKEY_TLS_CERT and LATCHKEY_TLS_KEY too",
    );
  }
  if (
    str("LATCHKEY_TLS_CLIENT_AUTH") !== undefined &&
    str("LATCHKEY_TLS_CLIENT_CA") === undefined
  ) {
    problems.push(
      "LATCHKEY_TLS_CLIENT_AUTH: only meaningful with LATCHKEY_TLS_CLIENT_CA (the CA client certificates must chain to)",
    );
  }

  const certPath = str("LATCHKEY_TLS_CERT");
  const keyPath = str("LATCHKEY_TLS_KEY");
  let tls: Config["tls"];
  if ((certPath === undefined) !== (keyPath === undefined)) {
    problems.push("LATCHKEY_TLS_CERT and LATCHKEY_TLS_KEY: set both or neither");
  } else if (certPath !== undefined && keyPath !== undefined) {
    const read = (name: string, path: string): Buffer | undefined => {
      try {
        return readFileSync(path);
      } catch {
        problems.push(`${name}=${path}: cannot read the file`);
        return undefined;
      }
    };
    const cert = read("LATCHKEY_TLS_CERT", certPath);
    const key = read("LATCHKEY_TLS_KEY", keyPath);
    if (cert !== undefined && key !== undefined) tls = { cert, key, ...mtls };
  }
  return tls;
}

// --- mTLS (issue #11) ---
/**
 * LATCHKEY_TLS_CLIENT_CA: a PEM file of one or more CA certificates. Read and parsed here so a
 * wrong path or a file that is not a certificate stops the start with the other problems,
 * instead of surfacing as a TLS failure on the first client.
 */
export function clientCa(path: string | undefined, problems: string[]): Buffer | undefined {
  if (path === undefined) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch {
    problems.push(`LATCHKEY_TLS_CLIENT_CA=${path}: cannot read the file`);
    return undefined;
  }
  try {
    new X509Certificate(pem);
  } catch {
    problems.push(`LATCHKEY_TLS_CLIENT_CA=${path}: not a PEM certificate`);
    return undefined;
  }
  return pem;
}
