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
    updated_at_ms   BIGINT NOT NULL,
    paused_at_ms    BIGINT          -- since when its scheduled pulls are paused; NULL: not paused
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
    started_order      BIGSERIAL NOT NULL, -- insertion order: ties of started_at_ms list newest first
    host               TEXT,               -- the lease owner that ran it
    lease_generation   BIGINT              -- the lease claim it ran under: its fencing token
);
CREATE INDEX runs_by_integration ON runs(integration_id, started_at_ms);
-- The runs going on, few among many: the sweep of runs whose lease lapsed reads only these.
CREATE INDEX runs_running ON runs(integration_id) WHERE status = 'running';

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
    id              TEXT PRIMARY KEY
                    DEFAULT ('evt_' || substr(md5(gen_random_uuid()::TEXT), 1, 24)),
    seq             BIGSERIAL NOT NULL,  -- write order: orders events of one millisecond
    type            TEXT NOT NULL,
    integration_id  TEXT,            -- kept after the integration is deleted
    connector       TEXT,
    created_at_ms   BIGINT NOT NULL
                    DEFAULT (floor(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT),
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

-- The webhook outbox's triggers, as SQLite's (its migrations 9 and 11): each event is written
-- in the transaction of the state change it reports, whichever code makes the change, with
-- one delivery per endpoint it goes to. Bodies are built with `json_build_object` (json, not
-- jsonb): the stored text is exactly what every delivery sends and signs.

-- Writes one event of `kind` whose body is {type, timestamp, data}; the timestamp (RFC 3339,
-- UTC, milliseconds) and `created_at_ms` are one instant.
CREATE FUNCTION sluice_write_event(kind TEXT, integration TEXT, connector TEXT, data JSON)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    at TIMESTAMPTZ := clock_timestamp();
BEGIN
    INSERT INTO webhook_events (type, integration_id, connector, created_at_ms, body) VALUES (
        kind, integration, connector,
        floor(extract(epoch FROM at) * 1000)::BIGINT,
        json_build_object('type', kind,
            'timestamp', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'data', data)::TEXT);
END $$;

-- An event goes to the host-wide endpoints, its integration's, and for a connector's event
-- (no integration) those of the integrations using that connector.
CREATE FUNCTION sluice_fan_out() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (event_id, endpoint_id, state, next_attempt_at_ms)
    SELECT NEW.id, e.id, 'pending', NEW.created_at_ms FROM webhook_endpoints e
    WHERE e.integration_id IS NULL
       OR e.integration_id = NEW.integration_id
       OR (NEW.integration_id IS NULL AND e.integration_id IN
            (SELECT id FROM integrations WHERE connector = NEW.connector));
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION sluice_fan_out();

CREATE FUNCTION sluice_integration_connected() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sluice_write_event('integration.connected', NEW.id, NEW.connector,
        json_build_object('integration_id', NEW.id, 'name', NEW.name,
            'connector', NEW.connector, 'previous_state', OLD.state));
    RETURN NULL;
END $$;
CREATE TRIGGER integration_connected_event AFTER UPDATE OF state ON integrations
    FOR EACH ROW WHEN (NEW.state = 'active' AND OLD.state != 'active')
    EXECUTE FUNCTION sluice_integration_connected();

CREATE FUNCTION sluice_integration_needs_reauthorization() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sluice_write_event('integration.needs_reauthorization', NEW.id, NEW.connector,
        json_build_object('integration_id', NEW.id, 'name', NEW.name,
            'connector', NEW.connector, 'reason', NEW.state_reason));
    RETURN NULL;
END $$;
CREATE TRIGGER integration_needs_reauthorization_event AFTER UPDATE OF state ON integrations
    FOR EACH ROW WHEN (NEW.state = 'needs-reauthorization'
                       AND OLD.state != 'needs-reauthorization')
    EXECUTE FUNCTION sluice_integration_needs_reauthorization();

-- Also a notification on channel `sluice_connector_activated` (payload: the connector's
-- name), sent when the transaction commits, so other hosts reload that connector at once.
CREATE FUNCTION sluice_connector_version_activated() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sluice_write_event('connector.version_activated', NULL, NEW.name,
        json_build_object('connector', NEW.name, 'version', NEW.version,
            'sha256', NEW.sha256, 'contract', NEW.contract));
    PERFORM pg_notify('sluice_connector_activated', NEW.name);
    RETURN NULL;
END $$;
CREATE TRIGGER connector_version_activated_event AFTER UPDATE OF active_since_ms
    ON connector_versions
    FOR EACH ROW WHEN (NEW.active_since_ms IS NOT NULL AND OLD.active_since_ms IS NULL)
    EXECUTE FUNCTION sluice_connector_version_activated();

-- Where the change feed stood when a run started, so its end event can name the feed
-- cursors a consumer reads the run's changes between.
CREATE FUNCTION sluice_run_started() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    NEW.feed_cursor_from := COALESCE(
        (SELECT last_seq FROM change_feeds WHERE integration_id = NEW.integration_id), 0);
    RETURN NEW;
END $$;
CREATE TRIGGER run_started_feed_cursor BEFORE INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION sluice_run_started();

-- Each stream of a run that ended, with its change counts (never record contents): its
-- outcomes in their order, or for a run closed after its process died (no outcomes) the
-- streams it committed pages of, with the run's status, by name compared bytewise as SQLite
-- orders them.
CREATE FUNCTION sluice_run_streams(run runs) RETURNS JSON LANGUAGE plpgsql AS $$
BEGIN
    IF json_typeof(run.streams_json::JSON) = 'array' THEN
        RETURN COALESCE((
            SELECT json_agg(json_build_object(
                'stream', o.value ->> 'stream',
                'status', o.value ->> 'status',
                'added', COALESCE(c.added, 0),
                'updated', COALESCE(c.updated, 0),
                'deleted', COALESCE(c.deleted, 0)) ORDER BY o.n)
            FROM json_array_elements(run.streams_json::JSON) WITH ORDINALITY AS o(value, n)
            LEFT JOIN run_changes c
                ON c.run_id = run.id AND c.stream = o.value ->> 'stream'), '[]'::JSON);
    END IF;
    RETURN COALESCE((
        SELECT json_agg(json_build_object('stream', c.stream,
            'status', run.status, 'added', c.added, 'updated', c.updated,
            'deleted', c.deleted) ORDER BY c.stream COLLATE "C")
        FROM run_changes c WHERE c.run_id = run.id), '[]'::JSON);
END $$;

-- A run's end: `sync.completed` when it succeeded, else `sync.failed`, with the feed cursors
-- before and after it (as text: a feed cursor is opaque to consumers).
CREATE FUNCTION sluice_run_ended() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    kind TEXT := CASE NEW.status WHEN 'succeeded' THEN 'sync.completed' ELSE 'sync.failed' END;
    connector TEXT;
BEGIN
    SELECT i.connector INTO connector FROM integrations i WHERE i.id = NEW.integration_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM sluice_write_event(kind, NEW.integration_id, connector,
        json_build_object('integration_id', NEW.integration_id,
            'connector', connector, 'connector_version', NEW.connector_version,
            'run_id', NEW.id, 'trigger', NEW.trigger, 'full', NEW."full",
            'status', NEW.status, 'error', NEW.error,
            'started_at_ms', NEW.started_at_ms, 'ended_at_ms', NEW.ended_at_ms,
            'records', NEW.records,
            'changes', json_build_object(
                'after', COALESCE(NEW.feed_cursor_from, 0)::TEXT,
                'through', COALESCE((SELECT last_seq FROM change_feeds
                    WHERE integration_id = NEW.integration_id), 0)::TEXT),
            'streams', sluice_run_streams(NEW)));
    RETURN NULL;
END $$;
CREATE TRIGGER run_ended_event AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status != 'running')
    EXECUTE FUNCTION sluice_run_ended();

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
    due_at_ms       BIGINT NOT NULL,
    failures        INTEGER NOT NULL DEFAULT 0,  -- consecutive failed pulls: the backoff's step
    health_due_at_ms BIGINT                      -- next token health check; NULL: not scheduled yet
);
CREATE INDEX run_leases_due ON run_leases(due_at_ms);
-- The health-check claim's scan, and its scheduling of the checks not scheduled yet (NULL).
CREATE INDEX run_leases_health_due ON run_leases(health_due_at_ms);

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

-- A shorter interval brings a later due time into the new interval, so that an integration
-- made with the default interval and then set to pull every minute does not wait for the
-- first one.
CREATE FUNCTION run_lease_for_new_interval() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE run_leases
       SET due_at_ms = LEAST(due_at_ms,
                             sluice_now_ms() + (random() * NEW.interval_s * 1000)::bigint)
     WHERE integration_id = NEW.id;
    RETURN NEW;
END $$;
CREATE TRIGGER integrations_run_lease_interval AFTER UPDATE OF interval_s ON integrations
    FOR EACH ROW WHEN (NEW.interval_s < OLD.interval_s)
    EXECUTE FUNCTION run_lease_for_new_interval();
