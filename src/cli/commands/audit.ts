import { AuditDecision } from "../../gen/latchkey/v1/token_pb.js";
import { UsageError } from "../errors.js";
import { formatTime, printLine } from "../output.js";
import type { CommandInput } from "./command.js";

/** `latchkey audit list`: the latest audit rows matching the filters, one line each. */
export async function audit({ command, positionals, flags, clients }: CommandInput): Promise<void> {
  if (command !== "list") throw new UsageError(`unknown command "${positionals.join(" ")}"`);
  const res = await clients.admin.listAuditEvents({
    tokenId: flags["token-id"] ?? "",
    actorId: flags["actor-id"] ?? "",
    action: flags.action ?? "",
    orgId: flags.org ?? "",
    pageSize: 100,
  });
  for (const e of res.events) {
    printLine(
      `${formatTime(e.time)}  ${e.action}  ${AuditDecision[e.decision].toLowerCase()}  ${e.code}  actor ${e.actorId}  token ${e.tokenId}`,
    );
  }
}
