import { removeSavedToken, saveToken } from "../config-file.js";
import type { CliEnvironment } from "../environment.js";
import { UsageError } from "../errors.js";
import type { Flags } from "../flags.js";
import { printLine } from "../output.js";

/** `latchkey login`: saves `--token` (or LATCHKEY_TOKEN) so later runs need neither. */
export function login(flags: Flags, env: CliEnvironment): void {
  const token = flags.token ?? env.token;
  if (token === undefined) throw new UsageError("login: give --token TOKEN");
  printLine(`saved to ${saveToken(env.configDir, token)}`);
}

/** `latchkey logout`: forgets the saved token. */
export function logout(env: CliEnvironment): void {
  removeSavedToken(env.configDir);
  printLine("logged out");
}
