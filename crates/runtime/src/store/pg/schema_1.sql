-- The PostgreSQL store's schema: the tables of SQLite's migrations 1-11 as they stand after
-- migration 11, with PostgreSQL's types (BIGINT for integers and times in milliseconds,
-- BYTEA for sealed values and record bodies, BOOLEAN for flags).
-- Not yet released: until `--database postgres://` ships, this file may still change.

CREATE TABLE integrations (
    id              TEXT PRIMARY KEY,
    seq             BIGSERIAL NOT NULL UNIQUE,   -- creation order: the list is newest first
    name            TEXT NOT NULL,
    connector       TEXT NOT NULL,
    settings_json   TEXT NOT NULL,
    interval_s      BIGINT NOT NULL,
    client_id       TEXT,
    client_secret   BYTEA,          -- sealed; never clear text
    state           TEXT NOT NULL,
    state_reason    TEXT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE oauth_states (
    state           TEXT PRIMARY KEY,
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    verifier        BYTEA NOT NULL,      -- sealed PKCE verifier
    redirect_uri    TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    token_url       TEXT
);

CREATE TABLE tokens (
    integration_id      TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    flow                TEXT NOT NULL,
    access_token        BYTEA NOT NULL,   -- sealed
    refresh_token       BYTEA,            -- sealed
    token_url           TEXT NOT NULL,
    instance_url        TEXT,
    scopes              TEXT NOT NULL,
    obtained_at_ms      BIGINT NOT NULL,
    generation          BIGINT NOT NULL,
    health              TEXT,
    health_checked_ms   BIGINT,
    provider_fields     TEXT NOT NULL DEFAULT '{}',
    revoke_url          TEXT
);

CREATE TABLE entered_credentials (
    integration_id  TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    username        TEXT,
    secret          BYTEA NOT NULL,      -- sealed: the API key or the password
    stored_at_ms    BIGINT NOT NULL
);

CREATE TABLE checkpoints (
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    stream          TEXT COLLATE "C" NOT NULL,   -- listed in byte order, as on SQLite
    checkpoint      TEXT,
    status          TEXT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (integration_id, stream)
);

CREATE TABLE records (
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    -- Byte order, as SQLite compares: keyset pages and key listings order the same on both.
    stream          TEXT COLLATE "C" NOT NULL,
    key             TEXT COLLATE "C" NOT NULL,
    version         BIGINT NOT NULL,
    deleted         BOOLEAN NOT NULL,
    cursor          TEXT NOT NULL,
    json            BYTEA NOT NULL,
    run_id          TEXT,
    updated_at_ms   BIGINT NOT NULL,
    seq             BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (integration_id, stream, key)
);
CREATE INDEX records_by_seq ON records(integration_id, seq);

CREATE TABLE change_feeds (
    integration_id  TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    last_seq        BIGINT NOT NULL,
    pruned_through  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE runs (
    id                 TEXT PRIMARY KEY,
    integration_id     TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    trigger            TEXT NOT NULL,
    "full"             BOOLEAN NOT NULL,
    connector_version  TEXT NOT NULL,
    started_at_ms      BIGINT NOT NULL,
    ended_at_ms        BIGINT,
    status             TEXT NOT NULL,
    records            BIGINT NOT NULL DEFAULT 0,
    api_calls          BIGINT NOT NULL DEFAULT 0,
    streams_json       TEXT NOT NULL DEFAULT '{}',
    error              TEXT,
    feed_cursor_from   BIGINT,
    started_order      BIGSERIAL NOT NULL  -- insertion order: ties of started_at_ms list newest first
);
CREATE INDEX runs_by_integration ON runs(integration_id, started_at_ms);

CREATE TABLE run_pages (
    run_id             TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq                BIGINT NOT NULL,
    stream             TEXT NOT NULL,
    rows               BIGINT NOT NULL,
    connector_version  BIGINT NOT NULL,
    committed_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_changes (
    run_id          TEXT NOT NULL,
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    stream          TEXT NOT NULL,
    added           BIGINT NOT NULL DEFAULT 0,
    updated         BIGINT NOT NULL DEFAULT 0,
    deleted         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, stream)
);

CREATE TABLE connector_versions (
    name            TEXT NOT NULL,
    version         BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    contract        TEXT NOT NULL,
    installed_at_ms BIGINT NOT NULL,
    active_since_ms BIGINT,
    wasm            BYTEA NOT NULL,
    manifest_json   TEXT,
    PRIMARY KEY (name, version)
);

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    integration_id  TEXT REFERENCES integrations(id) ON DELETE CASCADE,  -- NULL: host-wide
    secret          BYTEA NOT NULL,   -- sealed signing secret
    created_at_ms   BIGINT NOT NULL
);

CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    integration_id  TEXT,            -- kept after the integration is deleted
    connector       TEXT,
    created_at_ms   BIGINT NOT NULL,
    body            TEXT NOT NULL    -- the exact bytes every delivery sends and signs
);
CREATE INDEX webhook_events_by_time ON webhook_events(created_at_ms);

CREATE TABLE webhook_deliveries (
    event_id            TEXT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    endpoint_id         TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    state               TEXT NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms  BIGINT NOT NULL,
    last_attempt_at_ms  BIGINT,
    last_status         BIGINT,
    last_error          TEXT,
    delivered_at_ms     BIGINT,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at_ms);

-- Run leases (store/leases.rs): which host may run an integration's pull. One row per
-- integration, made with it. Times are the database's clock (`sluice_now_ms`).
CREATE FUNCTION sluice_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

CREATE TABLE run_leases (
    integration_id  TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    generation      BIGINT NOT NULL DEFAULT 0,   -- rises with every claim: the fencing token
    owner           TEXT,                        -- NULL: not leased
    run_id          TEXT,                        -- the run whose page commits it admits
    expires_at_ms   BIGINT,
    due_at_ms       BIGINT NOT NULL
);
CREATE INDEX run_leases_due ON run_leases(due_at_ms);

-- A new integration is first due at a random point of its first interval, so that many
-- integrations made at once do not all start at once.
CREATE FUNCTION run_lease_for_new_integration() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_leases (integration_id, due_at_ms)
    VALUES (NEW.id, sluice_now_ms() + (random() * NEW.interval_s * 1000)::bigint);
    RETURN NEW;
END $$;
CREATE TRIGGER integrations_run_lease AFTER INSERT ON integrations
    FOR EACH ROW EXECUTE FUNCTION run_lease_for_new_integration();
