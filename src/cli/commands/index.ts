import { adminCommands } from "./admin.js";
import { auditCommands } from "./audit.js";
import { auditExportCommands } from "./audit-export.js";
import type { Command } from "./command.js";
import { sessionCommands } from "./session.js";
import { tokensReadCommands } from "./tokens-read.js";
import { tokensRevokeCommands } from "./tokens-revoke.js";
import { tokensWriteCommands } from "./tokens-write.js";

/** Every command, in the order `latchkey --help` lists them. */
export const COMMANDS: readonly Command[] = [
  ...sessionCommands,
  ...tokensWriteCommands.slice(0, 1),
  ...tokensReadCommands,
  ...tokensWriteCommands.slice(1),
  ...tokensRevokeCommands,
  ...auditCommands,
  ...auditExportCommands,
  ...adminCommands,
];

/** First words that only name a group of commands (`tokens`), for the group's usage. */
export const GROUPS: ReadonlySet<string> = new Set(
  COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])])
    .filter((n) => n.includes(" "))
    .map((n) => n.split(" ")[0] ?? ""),
);

/** The command the leading words name (longest match, aliases included) and the words left. */
export function findCommand(
  words: readonly string[],
): { command: Command; rest: readonly string[] } | undefined {
  let best: { command: Command; rest: readonly string[]; length: number } | undefined;
  for (const command of COMMANDS) {
    for (const name of [command.name, ...(command.aliases ?? [])]) {
      const parts = name.split(" ");
      const matches = parts.every((p, i) => words[i] === p);
      if (matches && (best === undefined || parts.length > best.length)) {
        best = { command, rest: words.slice(parts.length), length: parts.length };
      }
    }
  }
  return best === undefined ? undefined : { command: best.command, rest: best.rest };
}
