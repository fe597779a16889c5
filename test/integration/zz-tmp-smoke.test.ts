import { execFileSync } from "node:child_process";
import { it } from "vitest";
import { startAdminHarness } from "../helpers/admin-harness.js";

it("buf curl smoke", async () => {
  const h = await startAdminHarness();
  const LK = `http://${h.address}/latchkey.v1.TokenAdminService`;
  let token = h.bootstrapSecret;
  const call = (m: string, body: string) => {
    try {
      return execFileSync("npx", ["buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect", "-H", `authorization: Bearer ${token}`, "-d", body, `${LK}/${m}`], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      const err = e as { stderr: string; stdout: string };
      return `ERR ${err.stdout} ${err.stderr}`;
    }
  };
  const out: string[] = [];
  const admin = JSON.parse(call("CreateToken", '{"name":"ops admin","type":"TOKEN_TYPE_CICD","permissions":["*"],"ttl":"7776000s","requestId":"bootstrap-ops-admin-1"}'));
  out.push(JSON.stringify(admin).slice(0, 200));
  const boot = token;
  token = admin.secret;
  const alice = JSON.parse(call("CreateToken", '{"name":"MacBook Pro - Development","type":"TOKEN_TYPE_PERSONAL","ownerId":"alice","role":"deployer","allowedCidrs":["10.20.0.0/16","2001:db8::/32"],"metadata":{"redaction_tier":"strict","region":"eu-west"},"ttl":"2592000s"}'));
  const id = alice.token.id;
  out.push(call("CreateToken", '{"name": "payments deploys", "type": "TOKEN_TYPE_TEAM", "teamId": "payments", "permissions": ["deploy:read", "deploy:write"]}').slice(0, 100));
  out.push(call("CreateToken", '{"name": "one-off export", "type": "TOKEN_TYPE_EPHEMERAL", "permissions": ["exports:create"], "ttl": "3600s"}').slice(0, 100));
  out.push(call("CreateToken", '{"name": "too long", "type": "TOKEN_TYPE_CICD", "permissions": ["x:y"], "ttl": "9000000s"}'));
  out.push(call("GetToken", `{"id":"${id}"}`).slice(0, 100));
  out.push(call("ListTokens", '{"type": "TOKEN_TYPE_PERSONAL", "ownerId": "alice", "state": "TOKEN_STATE_ACTIVE"}').slice(0, 100));
  out.push(call("ListTokens", '{"unusedSince": "2026-01-01T00:00:00Z"}').slice(0, 100));
  out.push(call("ListTokens", '{"neverUsed": true, "pageSize": 1}').slice(-200));
  out.push(call("UpdateToken", `{"token": {"id": "${id}", "name": "alice laptop", "metadata": {"redaction_tier": "relaxed"}, "expireTime": "${new Date(Date.now() + 7 * 86400000).toISOString().replace(/\.\d+Z/, "Z")}"}, "updateMask": "name,metadata,expireTime"}`));
  const rot = JSON.parse(call("RotateToken", `{"id": "${id}", "gracePeriod": "3600s"}`));
  out.push(JSON.stringify({ new: rot.token.id, from: rot.token.rotatedFrom, old: rot.previous.expireTime }));
  out.push(call("RotateToken", `{"id": "${id}"}`));
  const ids = JSON.stringify(JSON.parse(call("ListTokens", '{"type": "TOKEN_TYPE_TEAM"}')).tokens.map((t: { id: string }) => t.id));
  out.push(call("BatchUpdateTokens", `{"ids": ${ids}, "metadata": {"redaction_tier": "strict", "legacy": ""}}`).slice(0, 200));
  out.push(call("RevokeToken", `{"id": "${rot.token.id}", "reason": "laptop lost"}`).slice(0, 100));
  out.push(call("BatchRevokeTokens", '{"filter": {"teamId": "payments"}, "dryRun": true}').slice(0, 100));
  out.push(call("BatchRevokeTokens", '{"filter": {"teamId": "payments"}, "reason": "team dissolved"}').slice(0, 100));
  out.push(call("ListAuditEvents", `{"tokenId": "${id}"}`).slice(0, 300));
  out.push(call("ListAuditEvents", '{"action": "token.revoke", "startTime": "2026-01-01T00:00:00Z", "pageSize": 100}').slice(0, 100));
  out.push(call("ListAuditEvents", '{"decision": "AUDIT_DECISION_DENY"}').slice(0, 100));
  token = boot;
  out.push(call("CreateToken", '{"orgId": "acme", "name": "acme admin", "type": "TOKEN_TYPE_CICD", "permissions": ["*"]}').slice(0, 100));
  out.push(call("ListTokens", '{"orgId": "acme"}').slice(0, 100));
  console.log(out.join("\n---\n"));
  await h.close();
}, 120_000);
