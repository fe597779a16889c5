-- latchkey schema, version 6: every token change log entry says until when the token stays
-- valid after the change, so that a WatchRevocations client learns when a rotated token's
-- grace ends or to when an expiry was shortened (RevocationEvent.valid_until), as of the
-- change itself rather than as the token is when the entry is read. NULL: no end (a change
-- that left the token without expiry) or an entry written before this version.
ALTER TABLE token_events ADD COLUMN valid_until timestamptz;

CREATE OR REPLACE FUNCTION latchkey_tokens_log_change() RETURNS trigger
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
  INSERT INTO token_events (token_id, org_id, kind, reason, version, secret_hash, valid_until)
  VALUES (NEW.id, NEW.org_id, k, why, NEW.version, NEW.secret_hash,
          CASE WHEN NEW.revoke_time IS NOT NULL THEN NEW.revoke_time ELSE NEW.expire_time END);
  RETURN NULL;
END $$;
