import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { TokenSchema } from "../../gen/latchkey/v1/token_pb.js";
import { UsageError } from "../errors.js";
import { durationFlag, intFlag, keyValues, lookup } from "../flags.js";
import { emit, secretLine, tokenJson, tokenTable } from "../output.js";
import type { Command, Context } from "./command.js";
import { TYPES } from "./tokens-read.js";

async function createToken({ flags, clients, format }: Context): Promise<void> {
  const name = flags.string("name");
  const type = flags.string("type");
  if (name === undefined || type === undefined) {
    throw new UsageError("tokens create: --name and --type are required");
  }
  const maxUses = flags.string("max-uses");
  const maxConcurrent = flags.string("max-concurrent");
  const ttl = flags.string("ttl");
  const res = await clients().admin.createToken({
    name,
    type: lookup(TYPES, "type", type),
    role: flags.string("role") ?? "",
    permissions: [...(flags.list("permission") ?? [])],
    allowedCidrs: [...(flags.list("cidr") ?? [])],
    metadata: keyValues("meta", flags.list("meta") ?? []),
    teamId: flags.string("team") ?? "",
    ownerId: flags.string("owner") ?? "",
    orgId: flags.string("org") ?? "",
    ...(ttl === undefined ? {} : { ttl: durationFromMs(durationFlag("ttl", ttl)) }),
    ...(maxUses === undefined
      ? {}
      : { maxUses: BigInt(intFlag("max-uses", maxUses, 1, Number.MAX_SAFE_INTEGER)) }),
    ...(maxConcurrent === undefined
      ? {}
      : { maxConcurrent: intFlag("max-concurrent", maxConcurrent, 1, 1_000_000) }),
  });
  emit(format, { token: tokenJson(res.token), secret: res.secret }, () =>
    [tokenTable(res.token === undefined ? [] : [res.token]), secretLine(res.secret)].join("\n"),
  );
}

async function updateToken({ args, flags, clients, format }: Context): Promise<void> {
  const paths: string[] = [];
  const token = create(TokenSchema, { id: args[0] ?? "" });
  const name = flags.string("name");
  const meta = flags.list("meta");
  const cidrs = flags.list("cidr");
  const permissions = flags.list("permission");
  const ttl = flags.string("ttl");
  if (name !== undefined) {
    paths.push("name");
    token.name = name;
  }
  if (meta !== undefined) {
    paths.push("metadata");
    token.metadata = keyValues("meta", meta);
  }
  if (cidrs !== undefined) {
    paths.push("allowed_cidrs");
    token.allowedCidrs = [...cidrs];
  }
  if (permissions !== undefined) {
    paths.push("permissions");
    token.permissions = [...permissions];
  }
  if (ttl !== undefined) {
    paths.push("expire_time");
    token.expireTime = timestampFromMs(Date.now() + durationFlag("ttl", ttl));
  }
  if (paths.length === 0) {
    throw new UsageError("tokens update: give --name, --meta, --cidr, --permission or --ttl");
  }
  const res = await clients().admin.updateToken({ token, updateMask: { paths } });
  emit(format, tokenJson(res.token), () => tokenTable(res.token === undefined ? [] : [res.token]));
}

async function rotateToken({ args, flags, clients, format }: Context): Promise<void> {
  const grace = flags.string("grace");
  const res = await clients().admin.rotateToken({
    id: args[0] ?? "",
    ...(grace === undefined ? {} : { gracePeriod: durationFromMs(durationFlag("grace", grace)) }),
  });
  // The new secret is the only usable credential left (without --grace the old one is
  // already revoked), so every format prints it.
  emit(
    format,
    { token: tokenJson(res.token), secret: res.secret, previous: tokenJson(res.previous) },
    () =>
      [
        tokenTable([res.token, res.previous].filter((t) => t !== undefined)),
        secretLine(res.secret),
      ].join("\n"),
  );
}

/** `tokens create`, `tokens update` and `tokens rotate`. */
export const tokensWriteCommands: readonly Command[] = [
  {
    name: "tokens create",
    arity: [0, 0],
    summary: "issue a token; prints its secret once",
    flags: [
      "name",
      "type",
      "role",
      "permission",
      "ttl",
      "cidr",
      "meta",
      "max-uses",
      "max-concurrent",
      "team",
      "owner",
      "org",
    ],
    details:
      "Give --role or --permission (not both). Without --ttl the type's default lifetime\n" +
      "applies; the caps are personal and team 1y, cicd 90d, ephemeral 24h.",
    run: createToken,
  },
  {
    name: "tokens update",
    args: "ID",
    arity: [1, 1],
    summary: "rename, re-tag, narrow permissions or shorten the lifetime",
    flags: ["name", "meta", "cidr", "permission", "ttl"],
    details:
      "--meta replaces the whole metadata map; --permission replaces the permissions and may\n" +
      "only narrow them; --ttl sets a new expiry from now and may only shorten it.",
    run: updateToken,
  },
  {
    name: "tokens rotate",
    args: "ID",
    arity: [1, 1],
    summary: "issue a new secret with the same grants; prints it once",
    flags: ["grace"],
    details:
      "The old secret keeps working for --grace (at most 7d), then expires; without --grace it\n" +
      "is revoked at once. The new secret is printed in every output format.",
    run: rotateToken,
  },
];
