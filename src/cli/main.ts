#!/usr/bin/env node
import { createClients } from "./client.js";
import { audit } from "./commands/audit.js";
import { auditExport, isAuditExport } from "./commands/audit-export.js";
import type { CommandInput } from "./commands/command.js";
import { login, logout } from "./commands/login.js";
import { tokens } from "./commands/tokens.js";
import { verify } from "./commands/verify.js";
import { loadCliEnvironment } from "./environment.js";
import { reportError, UsageError } from "./errors.js";
import { parseCommandLine } from "./flags.js";
import { printLine } from "./output.js";
import { USAGE } from "./usage.js";

/** The command groups that call the server, by their first word. */
const GROUPS: ReadonlyMap<string, (input: CommandInput) => Promise<void>> = new Map([
  ["tokens", tokens],
  ["audit", audit],
  ["verify", verify],
]);

async function run(argv: readonly string[]): Promise<void> {
  if (isAuditExport(argv)) return auditExport(argv);
  const { values: flags, positionals } = parseCommandLine(argv);
  const [group, command, arg] = positionals;
  if (flags.help || group === undefined || group === "help") {
    printLine(USAGE);
    return;
  }
  const env = loadCliEnvironment();
  if (group === "login") return login(flags, env);
  if (group === "logout") return logout(env);

  const handler = GROUPS.get(group);
  if (handler === undefined) throw new UsageError(`unknown command "${positionals.join(" ")}"`);
  await handler({ command, arg, positionals, flags, clients: createClients(flags, env) });
}

try {
  await run(process.argv.slice(2));
} catch (err) {
  reportError(err);
}
