import { VerifyCode } from "../../gen/latchkey/v1/token_verify_service_pb.js";
import { ExitCode, UsageError } from "../errors.js";
import { printLine } from "../output.js";
import type { CommandInput } from "./command.js";

/**
 * `latchkey verify TOKEN`: asks the verifier what a gateway would hear. A denial is an
 * answer, not an error, but exits 1 so scripts can branch on it.
 */
export async function verify({ command, flags, clients }: CommandInput): Promise<void> {
  if (command === undefined) throw new UsageError("verify: give the token to verify");
  const res = await clients.verifier.verifyToken({
    token: command,
    requiredPermissions: flags.permission ?? [],
    clientIp: flags.ip ?? "",
    orgId: flags.org ?? "",
  });
  printLine(
    flags.json
      ? JSON.stringify({
          valid: res.valid,
          code: VerifyCode[res.code],
          tokenId: res.tokenId,
          orgId: res.orgId,
        })
      : `${res.valid ? "valid" : "denied"}: ${VerifyCode[res.code]}${res.tokenId === "" ? "" : ` (${res.tokenId}, org ${res.orgId})`}`,
  );
  if (!res.valid) process.exitCode = ExitCode.failure;
}
