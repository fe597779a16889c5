import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { mint } from "../../domain/mint.js";
import { ConflictError, LatchkeyError } from "../../errors.js";
import type { CreateTokenRequest } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import type { TokenRow } from "../../store/token-repo.js";
import { type CallContext, callerOf } from "../context.js";
import { auditFor, isoOrNull, requestIdOf, tokenSummary } from "./audit-rows.js";
import { planCreate } from "./create-plan.js";
import type { AdminDeps, Handlers } from "./deps.js";
import { tokenMessage } from "./mappers.js";

/** The earlier answer to a repeated request_id, or ALREADY_EXISTS if it was for another token. */
function idempotentAnswer(row: TokenRow, req: CreateTokenRequest, nowMs: number) {
  // A rotation's successor carries its request_id too: it is never a CreateToken answer.
  if (row.name !== req.name || row.type !== req.type || row.rotated_from !== null) {
    throw new LatchkeyError(
      Code.AlreadyExists,
      "REQUEST_ID_REUSED",
      "this request_id was already used by the caller for a different token or call",
      { metadata: { token_id: row.id } },
    );
  }
  return { token: tokenMessage(row, nowMs), secret: "" };
}

/**
 * CreateToken: plans the token (input, scope, escalation), answers a repeated request_id with
 * the earlier token (no secret), and otherwise mints one and writes it with its audit row in
 * one transaction. A concurrent retry that wins the request_id race gets its answer too.
 */
export function createToken(deps: AdminDeps): Handlers["createToken"] {
  return async (req: CreateTokenRequest, ctx: CallContext) => {
    const caller = callerOf(ctx);
    const nowMs = deps.now();
    const plan = planCreate(req, caller, nowMs, deps);
    if (plan.requestId !== "") {
      const earlier = await deps.tokens.findByRequestId(caller.tokenId, plan.requestId);
      if (earlier !== undefined) return idempotentAnswer(earlier, req, nowMs);
    }
    const { secret, ...minted } = mint(deps.prefix, req.type);
    const at = new Date(nowMs);
    const frame = { caller, ctx, at, requestId: requestIdOf(plan.requestId, ctx) };
    try {
      const row = await deps.tokens.create(
        {
          ...minted,
          name: req.name,
          type: req.type,
          orgId: plan.org,
          teamId: plan.teamId,
          ownerId: plan.ownerId,
          createdBy: caller.tokenId,
          role: plan.role,
          permissions: plan.permissions,
          allowedCidrs: plan.cidrs,
          metadata: req.metadata,
          maxUses: plan.maxUses,
          rateLimits: req.rateLimits.map((r) => ({
            name: r.name,
            limit: Number(r.limit),
            window_ms: r.window === undefined ? 0 : durationMs(r.window),
          })),
          maxConcurrent: req.maxConcurrent,
          createTime: at,
          expireTime: plan.expireMs === null ? null : new Date(plan.expireMs),
          requestId: plan.requestId === "" ? null : plan.requestId,
        },
        (row) => [
          auditFor(frame, "token.create", row, {
            ...tokenSummary(row),
            role: row.role,
            permissions: row.permissions,
            allowed_cidrs: row.allowed_cidrs,
            metadata: { ...row.metadata },
            expire_time: isoOrNull(row.expire_time),
            max_uses: row.max_uses,
          }),
        ],
      );
      return { token: tokenMessage(row, nowMs), secret };
    } catch (err) {
      if (plan.requestId !== "" && err instanceof ConflictError) {
        // A concurrent retry with the same request_id won the race: answer with its token.
        const earlier = await deps.tokens.findByRequestId(caller.tokenId, plan.requestId);
        if (earlier !== undefined) return idempotentAnswer(earlier, req, nowMs);
      }
      throw err;
    }
  };
}
