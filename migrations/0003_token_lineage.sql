-- latchkey schema, version 3: rotation lineages. Every token records the first token of the
-- rotation chain it belongs to (`lineage_id`; its own id for a token that was not made by
-- RotateToken), so that RevokeToken with revoke_lineage can end every still-valid token of a
-- chain in one statement, whichever id of it leaked. See docs/storage.md.

ALTER TABLE tokens ADD COLUMN lineage_id text;

-- Existing rows: walk each chain down from its root (rotated_from IS NULL). A row whose
-- predecessor no longer exists starts its own lineage.
WITH RECURSIVE chain(id, root) AS (
  SELECT id, id FROM tokens WHERE rotated_from IS NULL
     OR rotated_from NOT IN (SELECT id FROM tokens)
  UNION ALL
  SELECT t.id, c.root FROM tokens t JOIN chain c ON t.rotated_from = c.id
)
UPDATE tokens t SET lineage_id = chain.root FROM chain WHERE t.id = chain.id;
UPDATE tokens SET lineage_id = id WHERE lineage_id IS NULL;

-- New rows inherit the lineage of the token they were rotated from (or start their own), set
-- by the database so that every writer (admin service, bootstrap, seeding, a DBA's INSERT)
-- gets it right without knowing about it. An explicit value is kept.
CREATE FUNCTION latchkey_tokens_set_lineage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.lineage_id IS NULL AND NEW.rotated_from IS NOT NULL THEN
    SELECT lineage_id INTO NEW.lineage_id FROM tokens WHERE id = NEW.rotated_from;
  END IF;
  NEW.lineage_id := coalesce(NEW.lineage_id, NEW.id);
  RETURN NEW;
END $$;

CREATE TRIGGER tokens_set_lineage BEFORE INSERT ON tokens
  FOR EACH ROW EXECUTE FUNCTION latchkey_tokens_set_lineage();

ALTER TABLE tokens ALTER COLUMN lineage_id SET NOT NULL;

-- RevokeToken{revoke_lineage}: the members of one lineage.
CREATE INDEX tokens_lineage_idx ON tokens (lineage_id);
