import type { Instance } from "../../src/app.js";
import type { ClientAuthMode } from "../../src/config.js";
import { createVerifier } from "../../src/services/verify/verifier.js";
import { makeTestPki, type TestPki } from "./certificates.js";
import { startTestInstance } from "./instance.js";
import { PREFIX } from "./latchkey-server.js";
import { createTestDatabase } from "./postgres.js";
import { insertToken } from "./seed.js";

/** latchkey with TLS and a client CA, once per client-auth mode, over one fresh database. */
export interface MtlsInstances {
  /** The certificates, made in the directory given (paths: see `pemFiles`). */
  readonly pki: TestPki;
  /** A token with every permission, for admin calls. */
  readonly adminToken: string;
  /** The instance running with LATCHKEY_TLS_CLIENT_AUTH=`mode`. */
  instance(mode: ClientAuthMode): Instance;
  /** Stops both instances and drops the database (the directory stays the caller's). */
  close(): Promise<void>;
}

/**
 * Makes the test PKI in `dir` and starts one instance with the server certificate and the
 * client CA for each of `all` and `admin`, plus an admin token named `tokenName`: the setup
 * of the mTLS tests, whether they call with their own clients or through the CLI.
 */
export async function startMtlsInstances(dir: string, tokenName: string): Promise<MtlsInstances> {
  const pki = await makeTestPki(dir);
  const db = await createTestDatabase();
  const verifier = createVerifier({ sql: db.sql, tokenPrefix: PREFIX });
  const adminToken = (await insertToken(db.sql, { name: tokenName, permissions: ["*"] })).secret;
  const instances = new Map<ClientAuthMode, Instance>();
  for (const mode of ["all", "admin"] as const) {
    instances.set(
      mode,
      await startTestInstance(db.sql, verifier, {
        tls: { ...pki.server, clientCa: pki.ca.cert, clientAuth: mode },
      }),
    );
  }
  return {
    pki,
    adminToken,
    instance(mode) {
      const found = instances.get(mode);
      if (found === undefined) throw new Error(`no ${mode} instance`);
      return found;
    },
    async close() {
      await Promise.all([...instances.values()].map((i) => i.close()));
      await verifier.close();
      await db.drop();
    },
  };
}
