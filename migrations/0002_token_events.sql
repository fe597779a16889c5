-- latchkey schema, version 2: a version per token record and a durable, ordered log of the
-- changes that end or narrow a token. Both are maintained by triggers on `tokens`, so every
-- writer (admin service, bootstrap, CLI break-glass, a DBA's UPDATE) is covered and the log
-- entry commits in the same transaction as the change. See docs/storage.md.

-- Bumped by every change that a verifier acts on (grants, limits, expiry, revocation,
-- rotation). Usage columns (use_count, last_used_*) do not bump it: they change on every
-- flush and no cached decision depends on them. Caches keep the version they read and refuse
-- to replace a newer record with an older one.
ALTER TABLE tokens ADD COLUMN version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION latchkey_tokens_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.name, NEW.org_id, NEW.team_id, NEW.owner_id, NEW.role, NEW.permissions,
      NEW.allowed_cidrs, NEW.metadata, NEW.max_uses, NEW.rate_limits, NEW.max_concurrent,
      NEW.expire_time, NEW.revoke_time, NEW.replaced_by)
     IS DISTINCT FROM
     (OLD.name, OLD.org_id, OLD.team_id, OLD.owner_id, OLD.role, OLD.permissions,
      OLD.allowed_cidrs, OLD.metadata, OLD.max_uses, OLD.rate_limits, OLD.max_concurrent,
      OLD.expire_time, OLD.revoke_time, OLD.replaced_by) THEN
    NEW.version := OLD.version + 1;
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER tokens_bump_version BEFORE UPDATE ON tokens
  FOR EACH ROW EXECUTE FUNCTION latchkey_tokens_bump_version();

-- The token change log: one row per token whose record changed in a way verifiers must hear
-- of (kind 'revoked', 'rotated', 'expiry_shortened', 'updated'). It carries revocations to
-- every instance even when Redis is down (instances poll it) and backs WatchRevocations.
--
-- Order: `seq` comes from a sequence, and sequence values are handed out before commit, so a
-- reader that only asked for `seq > cursor` could pass over a row that commits later with a
-- smaller seq. Rows therefore also record their transaction id (`txid`), and readers take
-- only rows whose transaction is older than every transaction still running
-- (`txid < pg_snapshot_xmin(pg_current_snapshot())`): such rows can no longer appear behind
-- the cursor. Cursor = (txid, seq), compared as a pair. A long-running transaction delays
-- events (never loses them).
CREATE TABLE token_events (
  seq          bigserial   PRIMARY KEY,
  txid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
  time         timestamptz NOT NULL DEFAULT clock_timestamp(),
  token_id     text        NOT NULL,
  org_id       text        NOT NULL,
  kind         text        NOT NULL,
  reason       text        NOT NULL DEFAULT '',
  version      bigint      NOT NULL,
  secret_hash  bytea       NOT NULL
);

CREATE INDEX token_events_order_idx ON token_events (txid, seq);
CREATE INDEX token_events_org_order_idx ON token_events (org_id, txid, seq);

CREATE FUNCTION latchkey_tokens_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  k text;
  why text := '';
BEGIN
  IF NEW.version = OLD.version THEN
    RETURN NULL;
  END IF;
  IF OLD.revoke_time IS NULL AND NEW.revoke_time IS NOT NULL THEN
    k := CASE WHEN NEW.replaced_by IS NOT NULL AND OLD.replaced_by IS NULL
              THEN 'rotated' ELSE 'revoked' END;
    why := coalesce(NEW.revoke_reason, '');
  ELSIF OLD.replaced_by IS NULL AND NEW.replaced_by IS NOT NULL THEN
    k := 'rotated';
    why := 'rotated';
  ELSIF NEW.expire_time IS DISTINCT FROM OLD.expire_time
        AND (OLD.expire_time IS NULL OR NEW.expire_time < OLD.expire_time) THEN
    k := 'expiry_shortened';
    why := 'expiry shortened';
  ELSE
    k := 'updated';
  END IF;
  INSERT INTO token_events (token_id, org_id, kind, reason, version, secret_hash)
  VALUES (NEW.id, NEW.org_id, k, why, NEW.version, NEW.secret_hash);
  RETURN NULL;
END $$;

CREATE TRIGGER tokens_log_change AFTER UPDATE ON tokens
  FOR EACH ROW EXECUTE FUNCTION latchkey_tokens_log_change();
