-- latchkey schema, version 5: concurrency-slot leases (AcquireSlot / RenewSlot / ReleaseSlot).
--
-- A lease is a row; the slots in use of a token are its rows whose expire_time lies ahead.
-- AcquireSlot takes a row lock on the token (SELECT … FOR NO KEY UPDATE) and counts and inserts
-- in the same transaction, so concurrent acquires on every instance queue on that one row and
-- never exceed max_concurrent. A lease never outlives its token: acquire and renew clamp its end
-- to the token's expire_time, and the trigger below ends the leases of a token that is revoked
-- or whose expiry is shortened (UpdateToken, rotation's grace period), in the same transaction.
CREATE TABLE slot_leases (
  id           text        PRIMARY KEY,              -- `lse_` + ULID (random, not monotonic)
  token_id     text        NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
  holder       text        NOT NULL DEFAULT '',
  acquire_time timestamptz NOT NULL DEFAULT now(),
  expire_time  timestamptz NOT NULL
);

-- Counting a token's live leases, and sweeping its expired ones, under the token's lock.
CREATE INDEX slot_leases_token_idx ON slot_leases (token_id, expire_time);

CREATE FUNCTION latchkey_tokens_end_leases() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.revoke_time IS NOT NULL AND OLD.revoke_time IS NULL THEN
    DELETE FROM slot_leases WHERE token_id = NEW.id;
  ELSIF NEW.expire_time IS NOT NULL
        AND (OLD.expire_time IS NULL OR NEW.expire_time < OLD.expire_time) THEN
    UPDATE slot_leases SET expire_time = NEW.expire_time
    WHERE token_id = NEW.id AND expire_time > NEW.expire_time;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER tokens_end_leases AFTER UPDATE OF revoke_time, expire_time ON tokens
  FOR EACH ROW EXECUTE FUNCTION latchkey_tokens_end_leases();
