import { resolve } from "node:path";

/** What the `latchkey` CLI takes from its environment (flags still win over these). */
export interface CliEnvironment {
  /** LATCHKEY_TOKEN: the caller token, below `--token` and above the config file. */
  readonly token: string | undefined;
  /** LATCHKEY_SERVER: base URL of the gRPC listener. */
  readonly server: string | undefined;
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
  return {
    token: env.LATCHKEY_TOKEN === "" ? undefined : env.LATCHKEY_TOKEN,
    server: env.LATCHKEY_SERVER === "" ? undefined : env.LATCHKEY_SERVER,
    configDir: resolve(
      xdg !== undefined && xdg !== "" ? xdg : resolve(home, ".config"),
      "latchkey",
    ),
  };
}
