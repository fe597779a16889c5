import { create, toJsonString } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { TokenSchema, TokenState, TokenType } from "../../gen/latchkey/v1/token_pb.js";
import { UsageError } from "../errors.js";
import { durationFlag, type Flags, keyValues, lookup } from "../flags.js";
import { printLine, printSecret, printToken, tokenLine } from "../output.js";
import type { CommandInput } from "./command.js";

const TYPES: Readonly<Record<string, TokenType>> = {
  personal: TokenType.PERSONAL,
  team: TokenType.TEAM,
  cicd: TokenType.CICD,
  ephemeral: TokenType.EPHEMERAL,
};
const STATES: Readonly<Record<string, TokenState>> = {
  active: TokenState.ACTIVE,
  expired: TokenState.EXPIRED,
  revoked: TokenState.REVOKED,
  exhausted: TokenState.EXHAUSTED,
};

type Admin = CommandInput["clients"]["admin"];

/** `latchkey tokens …`: dispatches to create, list, get, update, revoke or rotate. */
export async function tokens({ command, arg, flags, clients }: CommandInput): Promise<void> {
  const admin = clients.admin;
  switch (command) {
    case "create":
      return createToken(admin, flags);
    case "list":
      return listTokens(admin, flags);
    case "get": {
      const res = await admin.getToken({ id: tokenId("get", arg) });
      return printToken(flags.json, res.token);
    }
    case "update":
      return updateToken(admin, tokenId("update", arg), flags);
    case "revoke": {
      const id = tokenId("revoke", arg);
      const res = await admin.revokeToken({ id, reason: flags.reason ?? "" });
      return printToken(flags.json, res.token);
    }
    case "rotate":
      return rotateToken(admin, tokenId("rotate", arg), flags);
    default:
      throw new UsageError(`tokens: unknown command "${command ?? ""}"`);
  }
}

function tokenId(command: string, arg: string | undefined): string {
  if (arg === undefined) throw new UsageError(`tokens ${command}: give the token id`);
  return arg;
}

async function createToken(admin: Admin, flags: Flags): Promise<void> {
  if (flags.name === undefined || flags.type === undefined) {
    throw new UsageError("tokens create: --name and --type are required");
  }
  const maxUses = flags["max-uses"];
  if (maxUses !== undefined && !/^\d+$/.test(maxUses)) {
    throw new UsageError("--max-uses: expected a whole number");
  }
  const res = await admin.createToken({
    name: flags.name,
    type: lookup(TYPES, "type", flags.type),
    role: flags.role ?? "",
    permissions: flags.permission ?? [],
    allowedCidrs: flags.cidr ?? [],
    metadata: keyValues("meta", flags.meta ?? []),
    teamId: flags.team ?? "",
    ownerId: flags.owner ?? "",
    orgId: flags.org ?? "",
    ...(flags.ttl === undefined ? {} : { ttl: durationFromMs(durationFlag("ttl", flags.ttl)) }),
    ...(maxUses === undefined ? {} : { maxUses: BigInt(maxUses) }),
  });
  if (flags.json) {
    const token = JSON.parse(toJsonString(TokenSchema, res.token ?? create(TokenSchema)));
    printLine(JSON.stringify({ token, secret: res.secret }));
  } else {
    printLine(res.token === undefined ? "" : tokenLine(res.token));
    printSecret(res.secret);
  }
}

async function listTokens(admin: Admin, flags: Flags): Promise<void> {
  const unusedFor = flags["unused-for"];
  let pageToken = "";
  do {
    const res = await admin.listTokens({
      pageSize: 200,
      pageToken,
      orgId: flags.org ?? "",
      type: flags.type === undefined ? TokenType.UNSPECIFIED : lookup(TYPES, "type", flags.type),
      state:
        flags.state === undefined ? TokenState.UNSPECIFIED : lookup(STATES, "state", flags.state),
      teamId: flags.team ?? "",
      ownerId: flags.owner ?? "",
      neverUsed: flags["never-used"],
      ...(unusedFor === undefined
        ? {}
        : { unusedSince: timestampFromMs(Date.now() - durationFlag("unused-for", unusedFor)) }),
    });
    for (const t of res.tokens) printToken(flags.json, t);
    pageToken = flags.all ? res.nextPageToken : "";
  } while (pageToken !== "");
}

async function updateToken(admin: Admin, id: string, flags: Flags): Promise<void> {
  const paths: string[] = [];
  const token = create(TokenSchema, { id });
  if (flags.name !== undefined) {
    paths.push("name");
    token.name = flags.name;
  }
  if (flags.meta !== undefined) {
    paths.push("metadata");
    token.metadata = keyValues("meta", flags.meta);
  }
  if (flags.cidr !== undefined) {
    paths.push("allowed_cidrs");
    token.allowedCidrs = flags.cidr;
  }
  if (flags.ttl !== undefined) {
    paths.push("expire_time");
    token.expireTime = timestampFromMs(Date.now() + durationFlag("ttl", flags.ttl));
  }
  if (paths.length === 0) throw new UsageError("tokens update: nothing to change");
  const res = await admin.updateToken({ token, updateMask: { paths } });
  printToken(flags.json, res.token);
}

async function rotateToken(admin: Admin, id: string, flags: Flags): Promise<void> {
  const res = await admin.rotateToken({
    id,
    ...(flags.grace === undefined
      ? {}
      : { gracePeriod: durationFromMs(durationFlag("grace", flags.grace)) }),
  });
  printToken(flags.json, res.token);
  if (!flags.json) printSecret(res.secret);
}
