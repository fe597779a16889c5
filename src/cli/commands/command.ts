import type { CliClients } from "../client.js";
import type { Flags } from "../flags.js";

/** What main hands a server-calling command group: its words, the flags and the clients. */
export interface CommandInput {
  /** The word after the group (`create` in `tokens create`); for `verify`, the token. */
  readonly command: string | undefined;
  /** The word after that (the token id in `tokens get ID`). */
  readonly arg: string | undefined;
  /** Every positional word, for the "unknown command" message. */
  readonly positionals: readonly string[];
  readonly flags: Flags;
  readonly clients: CliClients;
}
