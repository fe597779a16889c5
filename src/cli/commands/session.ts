import { toJson } from "@bufbuild/protobuf";
import { parseToken } from "../../domain/token-format.js";
import {
  VerifyCode,
  VerifyTokenResponseSchema,
} from "../../gen/latchkey/v1/token_verify_service_pb.js";
import { createClients } from "../client.js";
import { removeSavedLogin, saveLogin } from "../config-file.js";
import { ExitCode, UsageError } from "../errors.js";
import { emit, printLine, tokenJson } from "../output.js";
import { readStdin } from "../prompt.js";
import type { Command, Context } from "./command.js";

/**
 * The offline check `login` makes before any call: the shape `<prefix>_<type>_<49 base62>` and
 * its CRC-32, so a truncated paste is caught without asking the server.
 */
function checkTokenFormat(token: string): void {
  const prefix = /^(.+)_[a-z]_[0-9A-Za-z]{49}$/.exec(token)?.[1];
  if (prefix === undefined || parseToken(token, prefix) === undefined) {
    throw new UsageError(
      "login: that is not a latchkey token (expected <prefix>_<p|t|c|e>_<49 characters> with a valid checksum)",
    );
  }
}

async function login(ctx: Context): Promise<void> {
  let token = ctx.flags.string("token") === undefined ? ctx.env.token : ctx.token;
  if (token === undefined && process.stdin.isTTY !== true) token = (await readStdin()).trim();
  if (token === undefined || token === "") {
    throw new UsageError("login: give --token TOKEN, or --token - to read it from stdin");
  }
  checkTokenFormat(token);
  const { nodeOptions, caPath } = ctx.tls();
  const res = await createClients(ctx.server, token, nodeOptions).admin.getCaller({});
  // The CA path is saved (it says whom to trust, and is no secret); the client certificate
  // and key are not: they come from flags or LATCHKEY_CLIENT_CERT/KEY on every run.
  const ca = caPath === undefined ? {} : { caCert: caPath };
  const file = saveLogin(ctx.env.configDir, { token, server: ctx.server, ...ca });
  emit(ctx.format, { server: ctx.server, token: tokenJson(res.token), saved: file, ...ca }, () =>
    [
      `logged in to ${ctx.server} as ${res.token?.id ?? "?"} ("${res.token?.name ?? ""}", org ${res.token?.orgId ?? "?"})`,
      `saved to ${file}${caPath === undefined ? "" : ` (with the CA ${caPath})`}`,
    ].join("\n"),
  );
}

async function logout(ctx: Context): Promise<void> {
  removeSavedLogin(ctx.env.configDir);
  printLine("logged out");
}

async function whoami(ctx: Context): Promise<void> {
  if (ctx.token === undefined) {
    process.stderr.write(
      "latchkey: not logged in (no --token, LATCHKEY_TOKEN or saved login); run 'latchkey login'\n",
    );
    process.exitCode = ExitCode.refused;
    return;
  }
  const res = await ctx.clients().admin.getCaller({});
  const t = res.token;
  emit(
    ctx.format,
    { server: ctx.server, token: tokenJson(t), platform: res.platform, orgWide: res.orgWide },
    () =>
      [
        `server:       ${ctx.server}`,
        `token:        ${t?.id ?? "?"} ("${t?.name ?? ""}")`,
        `org:          ${t?.orgId ?? "?"}${res.platform ? " (platform admin: may act in any org)" : ""}`,
        `scope:        ${res.orgWide ? "org-wide" : t?.teamId ? `team ${t.teamId}` : `owner ${t?.ownerId ?? "?"}`}`,
        `permissions:  ${t?.permissions.join(" ") ?? ""}`,
        `expires:      ${t?.expireTime === undefined ? "never" : new Date(Number(t.expireTime.seconds) * 1000).toISOString()}`,
      ].join("\n"),
  );
}

async function verify(ctx: Context): Promise<void> {
  const { flags } = ctx;
  const res = await ctx.clients().verifier.verifyToken({
    token: ctx.args[0] ?? "",
    requiredPermissions: [...(flags.list("permission") ?? [])],
    clientIp: flags.string("ip") ?? "",
    orgId: flags.string("org") ?? "",
  });
  emit(
    ctx.format,
    toJson(VerifyTokenResponseSchema, res),
    () =>
      `${res.valid ? "valid" : "denied"}: ${VerifyCode[res.code]}${res.tokenId === "" ? "" : ` (${res.tokenId}, org ${res.orgId})`}`,
  );
  // A denial is an answer, not an error, but exits 1 so scripts can branch on it.
  if (!res.valid) process.exitCode = ExitCode.refused;
}

/** `login`, `logout`, `whoami` (`auth status`) and `verify`. */
export const sessionCommands: readonly Command[] = [
  {
    name: "login",
    arity: [0, 0],
    summary: "check a token with the server, then save it (and --server, --ca-cert)",
    flags: [],
    details:
      "The token comes from --token, '--token -' or stdin (e.g. latchkey login < token.txt).\n" +
      "Its format and checksum are checked offline, then GetCaller checks it with the server;\n" +
      "only then are the token and the server saved (~/.config/latchkey/config.json, 0600),\n" +
      "with the path of the CA bundle (--ca-cert or LATCHKEY_CACERT) if one was used. A client\n" +
      "certificate and key are never saved: give them on every run (or LATCHKEY_CLIENT_CERT/KEY).",
    run: login,
  },
  { name: "logout", arity: [0, 0], summary: "forget the saved token", flags: [], run: logout },
  {
    name: "whoami",
    aliases: ["auth status"],
    arity: [0, 0],
    summary: "show the caller token, its org and reach (GetCaller)",
    flags: [],
    run: whoami,
  },
  {
    name: "verify",
    args: "TOKEN",
    arity: [1, 1],
    summary: "ask what a gateway would hear for TOKEN (exit 1 when denied)",
    flags: ["permission", "ip", "org"],
    run: verify,
  },
];
