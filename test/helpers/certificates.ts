import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

// Certificates made by openssl (3.0 or later) for the TLS tests: a CA, a server certificate
// for localhost and 127.0.0.1, and client certificates, as the README's mTLS section makes them.

const run = promisify(execFile);
const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** A certificate and its private key, in PEM. */
export interface Pem {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Where makeCa and makeLeaf wrote `name`'s certificate and key, for tools that take files. */
export function pemFiles(
  dir: string,
  name: string,
): { readonly cert: string; readonly key: string } {
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

/** A self-signed CA in `dir` named `name` (`name.pem`, `name.key`). */
async function makeCa(dir: string, name: string): Promise<Pem> {
  const { cert, key } = pemFiles(dir, name);
  await run(
    "openssl",
    ["req", "-x509", ...EC, "-days", "1", "-subj", `/CN=${name}`].concat([
      "-keyout",
      key,
      "-out",
      cert,
    ]),
  );
  return { cert: await readFile(cert), key: await readFile(key) };
}

/** A leaf certificate for `cn` with `extensions` (-addext values), signed by the CA `ca`. */
async function makeLeaf(
  dir: string,
  ca: string,
  cn: string,
  extensions: readonly string[],
): Promise<Pem> {
  const { cert, key } = pemFiles(dir, cn);
  const csr = join(dir, `${cn}.csr`);
  const issuer = pemFiles(dir, ca);
  const addext = extensions.flatMap((e) => ["-addext", e]);
  await run(
    "openssl",
    ["req", "-new", ...EC, "-subj", `/CN=${cn}`, ...addext].concat(["-keyout", key, "-out", csr]),
  );
  await run(
    "openssl",
    ["x509", "-req", "-in", csr, "-days", "1", "-copy_extensions"]
      .concat(["copyall", "-CA", issuer.cert, "-CAkey", issuer.key])
      .concat(["-CAcreateserial", "-out", cert]),
  );
  return { cert: await readFile(cert), key: await readFile(key) };
}

/** The certificates of an mTLS test, all in one directory (see {@link pemFiles} for paths). */
export interface TestPki {
  /** `client-ca`: signs the server certificate and the good client certificate. */
  readonly ca: Pem;
  /** `localhost`: the server certificate, for DNS:localhost and IP:127.0.0.1. */
  readonly server: Pem;
  /** `deploy-bot`: a client certificate signed by the client CA. */
  readonly good: Pem;
  /** `intruder`: a client certificate signed by `other-ca`, which the server does not trust. */
  readonly wrong: Pem;
}

/** Makes the CA, the server certificate and a good and a wrong client certificate in `dir`. */
export async function makeTestPki(dir: string): Promise<TestPki> {
  const ca = await makeCa(dir, "client-ca");
  await makeCa(dir, "other-ca");
  const server = await makeLeaf(dir, "client-ca", "localhost", [
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "extendedKeyUsage=serverAuth",
  ]);
  const good = await makeLeaf(dir, "client-ca", "deploy-bot", ["extendedKeyUsage=clientAuth"]);
  const wrong = await makeLeaf(dir, "other-ca", "intruder", ["extendedKeyUsage=clientAuth"]);
  return { ca, server, good, wrong };
}
