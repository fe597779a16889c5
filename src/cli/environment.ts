import { resolve } from "node:path";

/** What the `latchkey` CLI takes from its environment (flags still win over these). */
export interface CliEnvironment {
  /** LATCHKEY_TOKEN: the caller token, below `--token` and above the config file. */
  readonly token: string | undefined;
  /** LATCHKEY_SERVER: base URL of the gRPC listener. */
  readonly server: string | undefined;
  /** LATCHKEY_CACERT: PEM CA bundle to trust for an https:// server (below `--ca-cert`). */
  readonly caCert: string | undefined;
  /** LATCHKEY_CLIENT_CERT: PEM client certificate for mTLS (below `--client-cert`). */
  readonly clientCert: string | undefined;
  /** LATCHKEY_CLIENT_KEY: PEM key of the client certificate (below `--client-key`). */
  readonly clientKey: string | undefined;
  /** Where `latchkey login` keeps its config file. */
  readonly configDir: string;
}

/**
 * Reads the CLI's environment. The CLI is its own program with its own knobs, so it keeps
 * them apart from the server's `src/config.ts`; nothing else under `src/cli` reads
 * process.env.
 */
export function loadCliEnvironment(
  env: Readonly<Record<string, string | undefined>> = process.env,
): CliEnvironment {
  const home = env.HOME ?? ".";
  const xdg = env.XDG_CONFIG_HOME;
  const set = (name: string): string | undefined => (env[name] === "" ? undefined : env[name]);
  return {
    token: set("LATCHKEY_TOKEN"),
    server: set("LATCHKEY_SERVER"),
    caCert: set("LATCHKEY_CACERT"),
    clientCert: set("LATCHKEY_CLIENT_CERT"),
    clientKey: set("LATCHKEY_CLIENT_KEY"),
    configDir: resolve(
      xdg !== undefined && xdg !== "" ? xdg : resolve(home, ".config"),
      "latchkey",
    ),
  };
}
