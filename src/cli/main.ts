#!/usr/bin/env node
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create, type DescMessage, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { loadCliEnvironment } from "../config.js";
import { TokenAdminService } from "../gen/latchkey/v1/token_admin_service_pb.js";
import {
  AuditDecision,
  type Token,
  TokenSchema,
  TokenState,
  TokenType,
} from "../gen/latchkey/v1/token_pb.js";
import { TokenVerifyService, VerifyCode } from "../gen/latchkey/v1/token_verify_service_pb.js";
import { parseDuration } from "./duration.js";

const USAGE = `latchkey — the token authority's command line

Usage: latchkey [--server URL] [--token TOKEN] [--json] <command> [options]

Commands:
  login --token TOKEN            save the token in the config file
  logout                         remove the saved token
  tokens create --name N --type personal|team|cicd|ephemeral
                [--role R | --permission P ...] [--ttl 30d] [--cidr C ...]
                [--meta k=v ...] [--max-uses N] [--team T] [--owner O] [--org O]
  tokens list [--type T] [--state active|expired|revoked|exhausted] [--team T]
              [--owner O] [--unused-for 30d] [--never-used] [--org O] [--all]
  tokens get ID
  tokens update ID [--name N] [--meta k=v ...] [--cidr C ...] [--ttl 7d]
  tokens revoke ID [--reason TEXT]
  tokens rotate ID [--grace 1h]
  audit list [--token-id ID] [--actor-id ID] [--action A] [--org O]
  verify TOKEN [--permission P ...] [--ip ADDR] [--org O]

The caller token is taken from --token, else LATCHKEY_TOKEN, else the config file
written by 'latchkey login'. The server is --server, else LATCHKEY_SERVER, else
http://127.0.0.1:50051 (the gRPC listener).`;

class UsageError extends Error {}

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

function lookup<T>(table: Readonly<Record<string, T>>, flag: string, value: string): T {
  const found = table[value.toLowerCase()];
  if (found === undefined) {
    throw new UsageError(`--${flag}: expected one of ${Object.keys(table).join(", ")}`);
  }
  return found;
}

function duration(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new UsageError(`--${flag}: expected a duration like 90s, 15m, 12h, 30d`);
  return ms;
}

function keyValues(flag: string, values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of values) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--${flag}: expected key=value, got "${kv}"`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

function configFile(dir: string): string {
  return join(dir, "config.json");
}

function savedToken(dir: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(configFile(dir), "utf8"));
    if (typeof parsed === "object" && parsed !== null && "token" in parsed) {
      const token = (parsed as { token: unknown }).token;
      return typeof token === "string" && token !== "" ? token : undefined;
    }
  } catch {
    // No config file yet, or an unreadable one: no saved token.
  }
  return undefined;
}

function formatTime(ts: { seconds: bigint } | undefined): string {
  return ts === undefined ? "never" : new Date(Number(ts.seconds) * 1000).toISOString();
}

function tokenLine(t: Token): string {
  const type = TokenType[t.type].toLowerCase();
  const state = TokenState[t.state].toLowerCase();
  return [
    t.id,
    t.displayHint,
    type,
    state,
    `expires ${formatTime(t.expireTime)}`,
    `used ${t.useCount}×`,
    t.name,
  ].join("  ");
}

function print<D extends DescMessage>(
  json: boolean,
  schema: D,
  message: MessageShape<D>,
  human: string,
): void {
  process.stdout.write(`${json ? toJsonString(schema, message, { prettySpaces: 2 }) : human}\n`);
}

async function run(argv: readonly string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      server: { type: "string" },
      token: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      name: { type: "string" },
      type: { type: "string" },
      role: { type: "string" },
      permission: { type: "string", multiple: true },
      ttl: { type: "string" },
      cidr: { type: "string", multiple: true },
      meta: { type: "string", multiple: true },
      "max-uses": { type: "string" },
      team: { type: "string" },
      owner: { type: "string" },
      org: { type: "string" },
      state: { type: "string" },
      "unused-for": { type: "string" },
      "never-used": { type: "boolean", default: false },
      all: { type: "boolean", default: false },
      reason: { type: "string" },
      grace: { type: "string" },
      "token-id": { type: "string" },
      "actor-id": { type: "string" },
      action: { type: "string" },
      ip: { type: "string" },
    },
  });
  const [group, command, arg] = positionals;
  if (values.help || group === undefined || group === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const env = loadCliEnvironment();

  if (group === "login") {
    const token = values.token ?? env.token;
    if (token === undefined) throw new UsageError("login: give --token TOKEN");
    mkdirSync(env.configDir, { recursive: true, mode: 0o700 });
    writeFileSync(configFile(env.configDir), `${JSON.stringify({ token })}\n`, { mode: 0o600 });
    process.stdout.write(`saved to ${configFile(env.configDir)}\n`);
    return;
  }
  if (group === "logout") {
    rmSync(configFile(env.configDir), { force: true });
    process.stdout.write("logged out\n");
    return;
  }

  const callerToken = values.token ?? env.token ?? savedToken(env.configDir);
  const auth: Interceptor = (next) => async (req) => {
    if (callerToken !== undefined) req.header.set("authorization", `Bearer ${callerToken}`);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: values.server ?? env.server ?? "http://127.0.0.1:50051",
    interceptors: [auth],
  });
  const admin = createClient(TokenAdminService, transport);
  const json = values.json;

  if (group === "verify") {
    if (command === undefined) throw new UsageError("verify: give the token to verify");
    const verifier = createClient(TokenVerifyService, transport);
    const res = await verifier.verifyToken({
      token: command,
      requiredPermissions: values.permission ?? [],
      clientIp: values.ip ?? "",
      orgId: values.org ?? "",
    });
    process.stdout.write(
      json
        ? `${JSON.stringify({ valid: res.valid, code: VerifyCode[res.code], tokenId: res.tokenId, orgId: res.orgId })}\n`
        : `${res.valid ? "valid" : "denied"}: ${VerifyCode[res.code]}${res.tokenId === "" ? "" : ` (${res.tokenId}, org ${res.orgId})`}\n`,
    );
    if (!res.valid) process.exitCode = 1;
    return;
  }

  if (group === "tokens") {
    switch (command) {
      case "create": {
        if (values.name === undefined || values.type === undefined) {
          throw new UsageError("tokens create: --name and --type are required");
        }
        const maxUses = values["max-uses"];
        if (maxUses !== undefined && !/^\d+$/.test(maxUses)) {
          throw new UsageError("--max-uses: expected a whole number");
        }
        const res = await admin.createToken({
          name: values.name,
          type: lookup(TYPES, "type", values.type),
          role: values.role ?? "",
          permissions: values.permission ?? [],
          allowedCidrs: values.cidr ?? [],
          metadata: keyValues("meta", values.meta ?? []),
          teamId: values.team ?? "",
          ownerId: values.owner ?? "",
          orgId: values.org ?? "",
          ...(values.ttl === undefined ? {} : { ttl: durationFromMs(duration("ttl", values.ttl)) }),
          ...(maxUses === undefined ? {} : { maxUses: BigInt(maxUses) }),
        });
        if (json) {
          process.stdout.write(
            `${JSON.stringify({ token: JSON.parse(toJsonString(TokenSchema, res.token ?? create(TokenSchema))), secret: res.secret })}\n`,
          );
        } else {
          process.stdout.write(`${res.token === undefined ? "" : tokenLine(res.token)}\n`);
          process.stdout.write(`secret (shown once, store it now): ${res.secret}\n`);
        }
        return;
      }
      case "list": {
        let pageToken = "";
        do {
          const res = await admin.listTokens({
            pageSize: 200,
            pageToken,
            orgId: values.org ?? "",
            type:
              values.type === undefined
                ? TokenType.UNSPECIFIED
                : lookup(TYPES, "type", values.type),
            state:
              values.state === undefined
                ? TokenState.UNSPECIFIED
                : lookup(STATES, "state", values.state),
            teamId: values.team ?? "",
            ownerId: values.owner ?? "",
            neverUsed: values["never-used"],
            ...(values["unused-for"] === undefined
              ? {}
              : {
                  unusedSince: timestampFromMs(
                    Date.now() - duration("unused-for", values["unused-for"]),
                  ),
                }),
          });
          for (const t of res.tokens) print(json, TokenSchema, t, tokenLine(t));
          pageToken = values.all ? res.nextPageToken : "";
        } while (pageToken !== "");
        return;
      }
      case "get": {
        if (arg === undefined) throw new UsageError("tokens get: give the token id");
        const res = await admin.getToken({ id: arg });
        const t = res.token ?? create(TokenSchema);
        print(json, TokenSchema, t, tokenLine(t));
        return;
      }
      case "update": {
        if (arg === undefined) throw new UsageError("tokens update: give the token id");
        const paths: string[] = [];
        const token = create(TokenSchema, { id: arg });
        if (values.name !== undefined) {
          paths.push("name");
          token.name = values.name;
        }
        if (values.meta !== undefined) {
          paths.push("metadata");
          token.metadata = keyValues("meta", values.meta);
        }
        if (values.cidr !== undefined) {
          paths.push("allowed_cidrs");
          token.allowedCidrs = values.cidr;
        }
        if (values.ttl !== undefined) {
          paths.push("expire_time");
          token.expireTime = timestampFromMs(Date.now() + duration("ttl", values.ttl));
        }
        if (paths.length === 0) throw new UsageError("tokens update: nothing to change");
        const res = await admin.updateToken({ token, updateMask: { paths } });
        const t = res.token ?? create(TokenSchema);
        print(json, TokenSchema, t, tokenLine(t));
        return;
      }
      case "revoke": {
        if (arg === undefined) throw new UsageError("tokens revoke: give the token id");
        const res = await admin.revokeToken({ id: arg, reason: values.reason ?? "" });
        const t = res.token ?? create(TokenSchema);
        print(json, TokenSchema, t, tokenLine(t));
        return;
      }
      case "rotate": {
        if (arg === undefined) throw new UsageError("tokens rotate: give the token id");
        const res = await admin.rotateToken({
          id: arg,
          ...(values.grace === undefined
            ? {}
            : { gracePeriod: durationFromMs(duration("grace", values.grace)) }),
        });
        const t = res.token ?? create(TokenSchema);
        print(json, TokenSchema, t, tokenLine(t));
        if (!json) process.stdout.write(`secret (shown once, store it now): ${res.secret}\n`);
        return;
      }
      default:
        throw new UsageError(`tokens: unknown command "${command ?? ""}"`);
    }
  }

  if (group === "audit" && command === "list") {
    const res = await admin.listAuditEvents({
      tokenId: values["token-id"] ?? "",
      actorId: values["actor-id"] ?? "",
      action: values.action ?? "",
      orgId: values.org ?? "",
      pageSize: 100,
    });
    for (const e of res.events) {
      process.stdout.write(
        `${formatTime(e.time)}  ${e.action}  ${AuditDecision[e.decision].toLowerCase()}  ${e.code}  actor ${e.actorId}  token ${e.tokenId}\n`,
      );
    }
    return;
  }
  throw new UsageError(`unknown command "${positionals.join(" ")}"`);
}

try {
  await run(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`latchkey: ${err.message}\n\n${USAGE}\n`);
    process.exitCode = 2;
  } else if (err instanceof ConnectError) {
    process.stderr.write(`latchkey: ${Code[err.code]}: ${err.rawMessage}\n`);
    process.exitCode = 1;
  } else if (
    err instanceof Error &&
    "code" in err &&
    err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
  ) {
    process.stderr.write(`latchkey: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    throw err;
  }
}
