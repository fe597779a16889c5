import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createSecureContext } from "node:tls";
import { readSaved } from "./config-file.js";
import type { CliEnvironment } from "./environment.js";
import { UsageError } from "./errors.js";
import type { FlagName, Flags } from "./flags.js";

/** A PEM file to read, and where its path came from (for the error that names it). */
interface PemFile {
  readonly path: string;
  readonly source: string;
}

/** The TLS material of one run, as the transport takes it and `login` saves it. */
export interface CliTls {
  /** connect-node's `nodeOptions` (http2.connect's TLS options): absent keys keep Node's defaults. */
  readonly nodeOptions: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** The CA bundle's absolute path, which `latchkey login` saves with the server. */
  readonly caPath: string | undefined;
}

const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "it is a directory",
};

/**
 * The file's bytes; an unreadable file, or one without a PEM block of `label` (`CERTIFICATE`,
 * `PRIVATE KEY`), is a usage error naming the path and never quoting the contents.
 */
function readPem(file: PemFile, label: "CERTIFICATE" | "PRIVATE KEY"): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    throw new UsageError(
      `${file.source}: cannot read "${file.path}" (${READ_ERRORS[code] ?? (code || "unreadable")})`,
    );
  }
  // "-----BEGIN CERTIFICATE-----", "-----BEGIN EC PRIVATE KEY-----", "… ENCRYPTED PRIVATE KEY".
  if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(data.toString("latin1"))) {
    throw new UsageError(`${file.source}: "${file.path}" holds no PEM ${label.toLowerCase()}`);
  }
  return data;
}

/** Lets OpenSSL parse what was read, so a bad bundle or a key that does not fit is a usage error. */
function checkPem(files: string, options: { ca?: Buffer; cert?: Buffer; key?: Buffer }): void {
  try {
    createSecureContext(options);
  } catch (err) {
    // OpenSSL's reason ("key values mismatch", "no start line") holds no key material.
    const reason = err instanceof Error ? err.message.replace(/^error:[0-9A-F]+:/, "") : "";
    throw new UsageError(`${files}: not usable for TLS (${reason})`);
  }
}

/**
 * The TLS files a run uses, as Vault's CLI takes VAULT_CACERT / VAULT_CLIENT_CERT /
 * VAULT_CLIENT_KEY: each flag wins over its variable; the CA also comes from `latchkey login`
 * when calling the server saved with it. Client certificate and key go together, and any of
 * them needs an https:// server. Read on first use, so commands that never connect (logout,
 * admin bootstrap) do not trip over a file meant for another server.
 */
export function resolveTls(flags: Flags, env: CliEnvironment, server: string): CliTls {
  const pick = (flag: FlagName, value: string | undefined, variable: string) => {
    const given = flags.string(flag);
    if (given !== undefined) return { path: given, source: `--${flag}` };
    return value === undefined ? undefined : { path: value, source: variable };
  };
  let ca: PemFile | undefined = pick("ca-cert", env.caCert, "LATCHKEY_CACERT");
  const cert = pick("client-cert", env.clientCert, "LATCHKEY_CLIENT_CERT");
  const key = pick("client-key", env.clientKey, "LATCHKEY_CLIENT_KEY");
  if (ca === undefined) {
    const saved = readSaved(env.configDir);
    if (saved.caCert !== undefined && saved.server === server) {
      ca = { path: saved.caCert, source: "the CA saved by 'latchkey login'" };
    }
  }
  if (cert !== undefined && key === undefined) {
    throw new UsageError(`${cert.source} needs --client-key (or LATCHKEY_CLIENT_KEY)`);
  }
  if (key !== undefined && cert === undefined) {
    throw new UsageError(`${key.source} needs --client-cert (or LATCHKEY_CLIENT_CERT)`);
  }
  const first = ca ?? cert;
  if (first !== undefined && !server.startsWith("https://")) {
    throw new UsageError(
      `${first.source}: TLS needs an https:// server, got ${server} (give --server https://host:port)`,
    );
  }
  let nodeOptions: CliTls["nodeOptions"] = {};
  if (ca !== undefined) {
    nodeOptions = { ca: readPem(ca, "CERTIFICATE") };
    checkPem(ca.source, nodeOptions);
  }
  if (cert !== undefined && key !== undefined) {
    const pair = { cert: readPem(cert, "CERTIFICATE"), key: readPem(key, "PRIVATE KEY") };
    checkPem(`${cert.source} and ${key.source}`, pair);
    nodeOptions = { ...nodeOptions, ...pair };
  }
  return { nodeOptions, caPath: ca === undefined ? undefined : resolve(ca.path) };
}
