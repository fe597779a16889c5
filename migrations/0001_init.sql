-- latchkey schema, version 1. See docs/storage.md for the reasoning behind every index.

-- One row per issued token. The secret itself is never stored: secret_hash is SHA-256 of the
-- whole token string. Ids are ULID-based (`tok_` + 26 Crockford base32 characters), so their
-- order is creation order and keyset pagination needs only the id.
CREATE TABLE tokens (
  id              text        PRIMARY KEY,
  secret_hash     bytea       NOT NULL,
  display_hint    text        NOT NULL,
  name            text        NOT NULL,
  type            smallint    NOT NULL,            -- latchkey.v1.TokenType number
  org_id          text        NOT NULL,
  team_id         text        NOT NULL DEFAULT '',
  owner_id        text        NOT NULL DEFAULT '',
  created_by      text        NOT NULL DEFAULT '',
  role            text        NOT NULL DEFAULT '',
  permissions     text[]      NOT NULL DEFAULT '{}',
  allowed_cidrs   cidr[]      NOT NULL DEFAULT '{}',
  metadata        jsonb       NOT NULL DEFAULT '{}',
  max_uses        bigint,                          -- NULL: unlimited
  use_count       bigint      NOT NULL DEFAULT 0,
  rate_limits     jsonb       NOT NULL DEFAULT '[]', -- [{name, limit, window_ms}]
  max_concurrent  integer     NOT NULL DEFAULT 0,
  create_time     timestamptz NOT NULL DEFAULT now(),
  update_time     timestamptz NOT NULL DEFAULT now(),
  expire_time     timestamptz,                     -- NULL: never
  last_used_time  timestamptz,
  last_used_ip    inet,
  revoke_time     timestamptz,
  revoked_by      text,
  revoke_reason   text,
  rotated_from    text,
  replaced_by     text,
  request_id      text,                            -- idempotency key of CreateToken
  CONSTRAINT tokens_secret_hash_key UNIQUE (secret_hash),
  CONSTRAINT tokens_secret_hash_len CHECK (octet_length(secret_hash) = 32),
  CONSTRAINT tokens_use_count_nonneg CHECK (use_count >= 0),
  CONSTRAINT tokens_max_uses_pos CHECK (max_uses IS NULL OR max_uses > 0)
) WITH (
  -- Every verification flush rewrites the usage columns (use_count, last_used_*). None of
  -- them is indexed, so those updates can be HOT (no index writes) if the page has room for
  -- the new row version: leave 20% of each page free for that. Dead versions are pruned on
  -- page access; vacuum a little earlier than the default 20% of the table.
  fillfactor = 80,
  autovacuum_vacuum_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.05
);

-- Listing inside an org, newest first (every List and batch filter starts with org_id).
CREATE INDEX tokens_org_id_idx ON tokens (org_id, id DESC);
-- Team- and owner-scoped listing.
CREATE INDEX tokens_org_team_idx ON tokens (org_id, team_id, id DESC) WHERE team_id <> '';
CREATE INDEX tokens_org_owner_idx ON tokens (org_id, owner_id, id DESC) WHERE owner_id <> '';
-- No index on last_used_time: it changes on every use, and an index on it (even a partial
-- one, whose predicate column counts too) would turn every usage flush into a non-HOT update
-- writing all six indexes. "unused_since" / "never used" filters walk tokens_org_id_idx and
-- filter rows instead (see docs/storage.md).
-- Idempotent CreateToken: one token per (creator, request_id).
CREATE UNIQUE INDEX tokens_request_id_key ON tokens (created_by, request_id)
  WHERE request_id IS NOT NULL;

-- Append-only audit trail, partitioned by month (see docs/storage.md). Rows are never
-- updated; old partitions are detached and dropped or archived as a whole.
CREATE TABLE audit_events (
  id          text        NOT NULL,                -- `aud_` + ULID
  time        timestamptz NOT NULL,
  org_id      text        NOT NULL,
  actor_id    text        NOT NULL DEFAULT '',
  action      text        NOT NULL,
  token_id    text        NOT NULL DEFAULT '',
  decision    smallint    NOT NULL,                -- latchkey.v1.AuditDecision number
  code        text        NOT NULL DEFAULT '',
  client_ip   text        NOT NULL DEFAULT '',
  method      text        NOT NULL DEFAULT '',
  path        text        NOT NULL DEFAULT '',
  request_id  text        NOT NULL DEFAULT '',
  details     jsonb,
  PRIMARY KEY (time, id)
) PARTITION BY RANGE (time);

CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

CREATE INDEX audit_events_org_time_idx ON audit_events (org_id, time DESC, id DESC);
CREATE INDEX audit_events_org_token_idx ON audit_events (org_id, token_id, time DESC)
  WHERE token_id <> '';
CREATE INDEX audit_events_org_actor_idx ON audit_events (org_id, actor_id, time DESC)
  WHERE actor_id <> '';

-- Creates the monthly partition that holds `at`, if missing. Called at start and daily, for
-- this month and the next. Fails with check_violation when the DEFAULT partition already holds
-- rows of that month (the caller logs and skips; see docs/storage.md).
CREATE FUNCTION latchkey_ensure_audit_partition(at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  lo timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  hi timestamptz := lo + interval '1 month';
  part text := 'audit_events_' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
  IF to_regclass(part) IS NULL THEN
    BEGIN
      EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                     part, lo, hi);
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
      NULL;  -- another instance created it after our check: that is what we wanted
    END;
  END IF;
END $$;

-- Server-wide settings shared by every instance (e.g. the page-token signing key).
CREATE TABLE settings (
  key   text  PRIMARY KEY,
  value bytea NOT NULL
);
