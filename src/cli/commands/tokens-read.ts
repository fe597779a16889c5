import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { TokenState, TokenType } from "../../gen/latchkey/v1/token_pb.js";
import { durationFlag, type Flags, intFlag, lookup } from "../flags.js";
import { emit, tokenDetails, tokenJson, tokenTable } from "../output.js";
import { collectPages } from "../paging.js";
import type { Command, Context } from "./command.js";

/** `--type` words. */
export const TYPES: Readonly<Record<string, TokenType>> = {
  personal: TokenType.PERSONAL,
  team: TokenType.TEAM,
  cicd: TokenType.CICD,
  ephemeral: TokenType.EPHEMERAL,
};

/** `--state` words; `all` lifts the default of active tokens only. */
export const STATES: Readonly<Record<string, TokenState>> = {
  active: TokenState.ACTIVE,
  expired: TokenState.EXPIRED,
  revoked: TokenState.REVOKED,
  exhausted: TokenState.EXHAUSTED,
  all: TokenState.UNSPECIFIED,
};

/** `--limit N`, or undefined for every page. */
export function limitFlag(flags: Flags): number | undefined {
  const v = flags.string("limit");
  return v === undefined ? undefined : intFlag("limit", v, 1, 1_000_000);
}

/** The filter words shared by `tokens list` and `tokens batch-revoke --filter`. */
export interface TokenFilterWords {
  readonly type?: string | undefined;
  readonly team?: string | undefined;
  readonly owner?: string | undefined;
  readonly state?: string | undefined;
  readonly unusedFor?: string | undefined;
  readonly neverUsed?: boolean | undefined;
}

/** The TokenFilter / ListTokens fields for those words (state defaults to `defaultState`). */
export function tokenFilter(words: TokenFilterWords, defaultState: TokenState) {
  return {
    type: words.type === undefined ? TokenType.UNSPECIFIED : lookup(TYPES, "type", words.type),
    state: words.state === undefined ? defaultState : lookup(STATES, "state", words.state),
    teamId: words.team ?? "",
    ownerId: words.owner ?? "",
    neverUsed: words.neverUsed ?? false,
    ...(words.unusedFor === undefined
      ? {}
      : { unusedSince: timestampFromMs(Date.now() - durationFlag("unused-for", words.unusedFor)) }),
  };
}

async function list({ flags, clients, format }: Context): Promise<void> {
  const filter = tokenFilter(
    {
      type: flags.string("type"),
      team: flags.string("team"),
      owner: flags.string("owner"),
      state: flags.string("state"),
      unusedFor: flags.string("unused-for"),
      neverUsed: flags.bool("never-used"),
    },
    TokenState.ACTIVE,
  );
  const admin = clients().admin;
  const tokens = await collectPages(
    "listing tokens",
    limitFlag(flags),
    async (pageToken, pageSize) => {
      const res = await admin.listTokens({
        ...filter,
        pageSize,
        pageToken,
        orgId: flags.string("org") ?? "",
      });
      return { items: res.tokens, next: res.nextPageToken };
    },
  );
  emit(format, tokens.map(tokenJson), () => tokenTable(tokens));
}

async function get({ args, clients, format }: Context): Promise<void> {
  const res = await clients().admin.getToken({ id: args[0] ?? "" });
  emit(format, tokenJson(res.token), () =>
    res.token === undefined ? "" : tokenDetails(res.token),
  );
}

/** `tokens list` and `tokens get`. */
export const tokensReadCommands: readonly Command[] = [
  {
    name: "tokens list",
    arity: [0, 0],
    summary: "list tokens (active ones unless --state), every page",
    flags: ["type", "state", "team", "owner", "unused-for", "never-used", "org", "limit"],
    details:
      "Lists are newest first. Every page is fetched (a progress line shows on a terminal);\n" +
      "--limit N stops after N tokens. --state all shows tokens in every state.",
    run: list,
  },
  {
    name: "tokens get",
    args: "ID",
    arity: [1, 1],
    summary: "show one token in full",
    flags: [],
    run: get,
  },
];
