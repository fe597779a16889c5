import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TOKENS_WATCH } from "../../domain/permissions.js";
import { hashToken } from "../../domain/token-format.js";
import { type CompiledRecord, compileRecord } from "../../domain/token-record.js";
import { decide } from "../../domain/verify-decision.js";
import { invalidArgument, unavailable } from "../../errors.js";
import {
  RevocationKind,
  type TokenVerifyService,
  VerifyCode,
  type WatchRevocationsResponseSchema,
} from "../../gen/latchkey/v1/token_verify_service_pb.js";
import type { Sql } from "../../store/db.js";
import { headCursor, isCursor, readEvents, type TokenEvent } from "../../store/token-events.js";
import { loadTokenByHash } from "../../store/verify-repo.js";
import { bearerToken, callerFrom, denial, verifyPresented } from "../auth.js";
import type { ServiceHandlers } from "../context.js";
import type { Verifier } from "./types.js";

type Handlers = ServiceHandlers<typeof TokenVerifyService>;
type WatchMessage = MessageInitShape<typeof WatchRevocationsResponseSchema>;

export interface WatchDeps {
  readonly verifier: Pick<Verifier, "verify">;
  readonly sql: Sql;
  /** How often an idle stream looks at the log (default 250 ms). */
  readonly pollMs?: number | undefined;
}

/** Entries read per query; a stream catching up after a reconnect reads in pages of this. */
const PAGE = 500;

/** The kinds a watcher hears of (a token stopped being valid, or will stop sooner), as sent. */
const STREAMED: ReadonlyMap<string, RevocationKind> = new Map([
  ["revoked", RevocationKind.REVOKED],
  ["rotated", RevocationKind.ROTATED],
  ["expiry_shortened", RevocationKind.EXPIRY_SHORTENED],
]);

function position(cursor: string): readonly [bigint, bigint] {
  const dot = cursor.indexOf(".");
  return [BigInt(cursor.slice(0, dot)), BigInt(cursor.slice(dot + 1))];
}

/** Whether log position `a` lies after `b`. */
function after(a: string, b: string): boolean {
  const [at, as] = position(a);
  const [bt, bs] = position(b);
  return at > bt || (at === bt && as > bs);
}

function message(e: TokenEvent, kind: RevocationKind): WatchMessage {
  return {
    event: {
      tokenId: e.tokenId,
      orgId: e.orgId,
      reason: e.reason,
      time: timestampFromDate(e.time),
      cursor: e.cursor,
      kind,
      ...(e.validUntil === null ? {} : { validUntil: timestampFromDate(e.validUntil) }),
    },
  };
}

/** Resolves after `ms`, or at once when the client goes away. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/**
 * The watcher's own token, held for the life of its stream: the stream ends with the error
 * an admin call would get the moment the token is revoked, expires, ends a rotation's grace,
 * or loses `tokens:watch` or the peer's address. Opening the stream was its one use: uses
 * spent elsewhere later do not end it (they are not token changes the log carries).
 */
class WatcherToken {
  constructor(
    private record: CompiledRecord,
    private readonly clientIp: string,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** Throws the admin error when the held token would be refused now. */
  check(nowMs: number): void {
    const demand = { requiredPermissions: [TOKENS_WATCH], clientIp: this.clientIp, orgId: "" };
    const code = decide(this.record, demand, nowMs, 0);
    if (code !== VerifyCode.VALID) throw denial(code, TOKENS_WATCH, undefined);
  }

  /** Takes the token as it is now stored (after an event about it); gone reads as NOT_FOUND. */
  replace(stored: CompiledRecord | undefined): void {
    if (stored === undefined) throw denial(VerifyCode.NOT_FOUND, TOKENS_WATCH, undefined);
    this.record = stored;
  }
}

/**
 * WatchRevocations: streams revocations, rotation cut-overs and shortened expiries of the
 * caller's org (every org for a platform caller) from the durable `token_events` log, polled
 * every `pollMs`. The caller's bearer token needs `tokens:watch`. Each event carries its log
 * position; a request with that cursor resumes right after it, on any instance and across
 * restarts, with nothing missed or repeated (the log hands out only final entries, in order).
 * An empty cursor starts from now.
 */
export function createWatchHandler(deps: WatchDeps): Pick<Handlers, "watchRevocations"> {
  const { verifier, sql } = deps;
  const pollMs = deps.pollMs ?? 250;
  const storage = async <T>(pending: Promise<T>): Promise<T> => {
    try {
      return await pending;
    } catch (err) {
      throw unavailable("token event log", err);
    }
  };
  /** Judges the watcher's token as stored now (after an event about it, or at the start). */
  const reread = async (own: WatcherToken, secretHash: Uint8Array): Promise<void> => {
    const stored = await storage(loadTokenByHash(sql, secretHash, Date.now()));
    own.replace(stored === undefined ? undefined : compileRecord(stored));
    own.check(Date.now());
  };
  return {
    async *watchRevocations(req, ctx) {
      const bearer = bearerToken(ctx);
      const record = await verifyPresented(verifier, ctx, bearer, TOKENS_WATCH, "admin");
      const caller = callerFrom(record, ctx);
      const own = new WatcherToken(compileRecord(record), ctx.peerAddress);
      if (req.cursor !== "" && !isCursor(req.cursor)) {
        throw invalidArgument([
          { field: "cursor", description: "must be a cursor from an earlier RevocationEvent" },
        ]);
      }
      const head = await storage(headCursor(sql));
      if (req.cursor !== "" && after(req.cursor, head)) {
        throw invalidArgument([
          { field: "cursor", description: "lies beyond the end of the revocation log" },
        ]);
      }
      // The authentication may have used a record up to a second old, and a change committed
      // before `head` is not in the stream: judge the token as stored now, so that only
      // changes after `head` are left to the events.
      await reread(own, hashToken(bearer));
      let cursor = req.cursor === "" ? head : req.cursor;
      const orgId = caller.isPlatform ? undefined : caller.orgId;
      while (!ctx.signal.aborted) {
        own.check(Date.now());
        const events = await storage(readEvents(sql, cursor, { orgId, limit: PAGE }));
        for (const e of events) {
          cursor = e.cursor;
          const kind = STREAMED.get(e.kind);
          if (kind !== undefined) yield message(e, kind);
          if (e.tokenId === own.id) await reread(own, e.secretHash);
        }
        if (events.length < PAGE) await pause(pollMs, ctx.signal);
      }
    },
  };
}
