import type { CliClients } from "../client.js";
import type { CliEnvironment } from "../environment.js";
import type { FlagName, Flags } from "../flags.js";
import type { Format } from "../output.js";
import type { CliTls } from "../tls.js";

/** What a command runs with: its words, the flags, the output format and a way to connect. */
export interface Context {
  /** The positional words after the command's own words (`ID` in `tokens get ID`). */
  readonly args: readonly string[];
  readonly flags: Flags;
  readonly env: CliEnvironment;
  readonly format: Format;
  /** The server's base URL (`--server`, LATCHKEY_SERVER, the saved one, or the default). */
  readonly server: string;
  /** The caller token (`--token`, `--token -` from stdin, LATCHKEY_TOKEN or the saved one). */
  readonly token: string | undefined;
  /** The CA and client certificate for `server` (read and checked on first use). */
  tls(): CliTls;
  /** Clients calling `server` with the caller token (made on first use). */
  clients(): CliClients;
}

/** One command: how it is spelled, documented and completed, and what it does. */
export interface Command {
  /** Its words: `tokens list`. */
  readonly name: string;
  /** Other spellings: `auth status` for `whoami`. */
  readonly aliases?: readonly string[];
  /** The positional arguments in the usage line (`ID`, `[ID ...]`). */
  readonly args?: string;
  /** How many positional arguments it takes at least and at most. */
  readonly arity: readonly [number, number];
  readonly summary: string;
  /** The flags it accepts besides the global ones. */
  readonly flags: readonly FlagName[];
  /** More text for `latchkey help <command>`. */
  readonly details?: string;
  run(ctx: Context): Promise<void>;
}
