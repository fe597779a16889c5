import type { Token } from "../../gen/latchkey/v1/token_pb.js";
import { TokenState } from "../../gen/latchkey/v1/token_pb.js";
import { ExitCode, UsageError } from "../errors.js";
import { emit, tokenJson, tokenTable } from "../output.js";
import { Progress } from "../progress.js";
import { confirm, interactive } from "../prompt.js";
import type { Command, Context } from "./command.js";
import { type TokenFilterWords, tokenFilter } from "./tokens-read.js";

/** The server takes at most this many ids per BatchRevokeTokens call. */
const IDS_PER_CALL = 1_000;

/** Asks on a terminal unless --yes; scripts (no terminal) are not asked. */
async function confirmed(ctx: Context, question: string): Promise<boolean> {
  if (ctx.flags.bool("yes") || !interactive()) return true;
  if (await confirm(question)) return true;
  process.stderr.write("latchkey: cancelled; nothing was revoked\n");
  process.exitCode = ExitCode.refused;
  return false;
}

async function revoke(ctx: Context): Promise<void> {
  const id = ctx.args[0] ?? "";
  const admin = ctx.clients().admin;
  if (!ctx.flags.bool("yes") && interactive()) {
    const { token } = await admin.getToken({ id });
    if (!(await confirmed(ctx, `Revoke ${id} ("${token?.name ?? ""}")? This cannot be undone.`))) {
      return;
    }
  }
  const res = await admin.revokeToken({ id, reason: ctx.flags.string("reason") ?? "" });
  emit(ctx.format, tokenJson(res.token), () =>
    tokenTable(res.token === undefined ? [] : [res.token]),
  );
}

/** FILTER_KEYS: `--filter` words and whether they take a value. */
const FILTER_KEYS: Readonly<Record<string, keyof TokenFilterWords>> = {
  type: "type",
  team: "team",
  owner: "owner",
  state: "state",
  "unused-for": "unusedFor",
  "never-used": "neverUsed",
};

/** `--filter team=payments,type=cicd` (repeatable) as filter words. */
function filterWords(values: readonly string[]): TokenFilterWords {
  const words: Record<string, string | boolean> = {};
  for (const part of values.flatMap((v) => v.split(","))) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? "" : part.slice(eq + 1);
    const field = Object.hasOwn(FILTER_KEYS, key) ? FILTER_KEYS[key] : undefined;
    if (field === undefined) {
      throw new UsageError(
        `--filter: unknown key "${key}"; expected ${Object.keys(FILTER_KEYS).join(", ")}`,
      );
    }
    if (field === "neverUsed") {
      if (value !== "" && value !== "true" && value !== "false") {
        throw new UsageError("--filter: never-used takes true or false");
      }
      words[field] = value !== "false";
    } else if (value === "") {
      throw new UsageError(`--filter: ${key} needs a value (${key}=…)`);
    } else words[field] = value;
  }
  if (Object.keys(words).length === 0)
    throw new UsageError("--filter: give at least one key=value");
  return words as TokenFilterWords;
}

async function batchRevoke(ctx: Context): Promise<void> {
  const { args, flags, format } = ctx;
  const filterFlags = flags.list("filter");
  if ((args.length === 0) === (filterFlags === undefined)) {
    throw new UsageError("tokens batch-revoke: give token ids or --filter, not both");
  }
  const admin = ctx.clients().admin;
  const base = { reason: flags.string("reason") ?? "", orgId: flags.string("org") ?? "" };
  const filter =
    filterFlags === undefined
      ? undefined
      : tokenFilter(filterWords(filterFlags), TokenState.UNSPECIFIED);
  const dryRun = flags.bool("dry-run");

  if (dryRun || (!flags.bool("yes") && interactive())) {
    const preview =
      filter === undefined
        ? { count: args.length, tokens: [] as Token[] }
        : await admin.batchRevokeTokens({ ...base, filter, dryRun: true });
    if (dryRun) {
      emit(
        format,
        { dryRun: true, count: preview.count, tokens: preview.tokens.map(tokenJson) },
        () => `${tokenTable(preview.tokens)}\nwould revoke ${preview.count} token(s)`,
      );
      return;
    }
    if (!(await confirmed(ctx, `Revoke ${preview.count} token(s)? This cannot be undone.`))) return;
  }

  const revoked: Token[] = [];
  const progress = new Progress("revoking");
  try {
    if (filter !== undefined) {
      progress.update("by filter…");
      revoked.push(...(await admin.batchRevokeTokens({ ...base, filter })).tokens);
    } else {
      for (let i = 0; i < args.length; i += IDS_PER_CALL) {
        const ids = args.slice(i, i + IDS_PER_CALL);
        revoked.push(...(await admin.batchRevokeTokens({ ...base, ids })).tokens);
        progress.update(`${revoked.length} of ${args.length}`);
      }
    }
  } finally {
    progress.done();
  }
  emit(
    format,
    { count: revoked.length, tokens: revoked.map(tokenJson) },
    () => `${tokenTable(revoked)}\nrevoked ${revoked.length} token(s)`,
  );
}

/** `tokens revoke` and `tokens batch-revoke`. */
export const tokensRevokeCommands: readonly Command[] = [
  {
    name: "tokens revoke",
    args: "ID",
    arity: [1, 1],
    summary: "revoke one token at once and for good (asks on a terminal)",
    flags: ["reason", "yes"],
    run: revoke,
  },
  {
    name: "tokens batch-revoke",
    args: "[ID ...]",
    arity: [0, 100_000],
    summary: "revoke many tokens by id or by --filter (try --dry-run first)",
    flags: ["filter", "reason", "dry-run", "yes", "org"],
    details:
      "By ids: all or nothing per 1000 ids (one already revoked token refuses its batch).\n" +
      "By filter: --filter team=payments,type=cicd (keys: type, team, owner, state,\n" +
      "unused-for, never-used); at most 10,000 matches. On a terminal it shows the count and\n" +
      "asks before revoking, unless --yes.",
    run: batchRevoke,
  },
];
