//! Versioned schema migrations. Each entry runs once, in order, in its own transaction, and
//! `PRAGMA user_version` records the last one applied. Never edit a released migration: add one.

/// The migrations, oldest first; index + 1 is the schema version.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
CREATE TABLE integrations (
    id              TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,
    name            TEXT NOT NULL,
    plugin          TEXT NOT NULL,
    settings_json   TEXT NOT NULL,
    interval_s      INTEGER NOT NULL,
    client_id       TEXT,
    client_secret   BLOB,          -- sealed; never clear text
    state           TEXT NOT NULL,
    state_reason    TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
CREATE UNIQUE INDEX integrations_seq ON integrations(seq);

CREATE TABLE tokens (
    integration_id      TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    flow                TEXT NOT NULL,
    access_token        BLOB NOT NULL,   -- sealed
    refresh_token       BLOB,            -- sealed
    token_url           TEXT NOT NULL,
    instance_url        TEXT NOT NULL,
    identity_url        TEXT,
    issued_at_ms        INTEGER,
    scopes              TEXT NOT NULL,
    obtained_at_ms      INTEGER NOT NULL,
    generation          INTEGER NOT NULL,
    health              TEXT,
    health_checked_ms   INTEGER
);

CREATE TABLE oauth_states (
    state           TEXT PRIMARY KEY,
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    verifier        BLOB NOT NULL,       -- sealed PKCE verifier
    redirect_uri    TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL
);

CREATE TABLE checkpoints (
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    stream          TEXT NOT NULL,
    checkpoint      TEXT,
    status          TEXT NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (integration_id, stream)
);

CREATE TABLE records (
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    stream          TEXT NOT NULL,
    key             TEXT NOT NULL,
    version         INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    cursor          TEXT NOT NULL,
    json            BLOB NOT NULL,
    run_id          TEXT,
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (integration_id, stream, key)
) WITHOUT ROWID;

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    trigger         TEXT NOT NULL,
    full            INTEGER NOT NULL,
    plugin_version  TEXT NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    ended_at_ms     INTEGER,
    status          TEXT NOT NULL,
    records         INTEGER NOT NULL DEFAULT 0,
    api_calls       INTEGER NOT NULL DEFAULT 0,
    streams_json    TEXT NOT NULL DEFAULT '{}',
    error           TEXT
);
CREATE INDEX runs_by_integration ON runs(integration_id, started_at_ms);

CREATE TABLE plugin_versions (
    name            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    contract        TEXT NOT NULL,
    installed_at_ms INTEGER NOT NULL,
    active_since_ms INTEGER,
    wasm            BLOB NOT NULL,
    PRIMARY KEY (name, version)
);
"#,
    // 2: which plugin version served each committed page of a run (a hot swap takes over
    // mid-run).
    r#"
CREATE TABLE run_pages (
    run_id          TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    stream          TEXT NOT NULL,
    rows            INTEGER NOT NULL,
    plugin_version  INTEGER NOT NULL,
    committed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"#,
    // 3: what a plugin version may reach, as approved at install (its `sluice:manifest`), and
    // the token endpoint an authorization was started with, so the callback does not ask the
    // connector again.
    r#"
ALTER TABLE plugin_versions ADD COLUMN manifest_json TEXT;
ALTER TABLE oauth_states ADD COLUMN token_url TEXT;
"#,
    // 4: one word for one thing: the component is a "connector" everywhere.
    r#"
ALTER TABLE plugin_versions RENAME TO connector_versions;
ALTER TABLE integrations RENAME COLUMN plugin TO connector;
ALTER TABLE runs RENAME COLUMN plugin_version TO connector_version;
ALTER TABLE run_pages RENAME COLUMN plugin_version TO connector_version;
"#,
    // 5: a token response's provider-specific fields are kept as name/value pairs, not as
    // columns named after one provider.
    r#"
ALTER TABLE tokens ADD COLUMN provider_fields TEXT NOT NULL DEFAULT '{}';
UPDATE tokens SET provider_fields = json_set(provider_fields, '$.instance_url', instance_url);
UPDATE tokens SET provider_fields = json_set(provider_fields, '$.id', identity_url)
    WHERE identity_url IS NOT NULL;
UPDATE tokens SET provider_fields =
        json_set(provider_fields, '$.issued_at', CAST(issued_at_ms AS TEXT))
    WHERE issued_at_ms IS NOT NULL;
ALTER TABLE tokens DROP COLUMN identity_url;
ALTER TABLE tokens DROP COLUMN issued_at_ms;
"#,
    // 6: settings are the connector's: the capability and every declared setting by name,
    // not fields named after one connector's settings.
    r#"
UPDATE integrations SET settings_json = json_object(
    'capability', json_extract(settings_json, '$.capability'),
    'values', json((
        SELECT json_group_object(name, value) FROM (
            SELECT 'environment' AS name,
                   json_extract(integrations.settings_json, '$.environment') AS value
            UNION ALL
            SELECT 'pull-by', json_extract(integrations.settings_json, '$.pull_by')
            UNION ALL
            SELECT 'domain', json_extract(integrations.settings_json, '$.domain')
            UNION ALL
            SELECT json_extract(pair.value, '$[0]'), json_extract(pair.value, '$[1]')
                FROM json_each(integrations.settings_json, '$.extra') AS pair
        ) WHERE value IS NOT NULL AND value != ''
    )))
WHERE json_type(settings_json, '$.values') IS NULL;
"#,
    // 7: a grant's instance URL is optional (a provider may name none), and API keys and
    // basic credentials a person enters are kept sealed beside the OAuth tokens.
    r#"
CREATE TABLE tokens_v6 (
    integration_id      TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    flow                TEXT NOT NULL,
    access_token        BLOB NOT NULL,   -- sealed
    refresh_token       BLOB,            -- sealed
    token_url           TEXT NOT NULL,
    instance_url        TEXT,
    scopes              TEXT NOT NULL,
    obtained_at_ms      INTEGER NOT NULL,
    generation          INTEGER NOT NULL,
    health              TEXT,
    health_checked_ms   INTEGER,
    provider_fields     TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO tokens_v6 (integration_id, flow, access_token, refresh_token, token_url,
        instance_url, scopes, obtained_at_ms, generation, health, health_checked_ms,
        provider_fields)
    SELECT integration_id, flow, access_token, refresh_token, token_url, instance_url, scopes,
        obtained_at_ms, generation, health, health_checked_ms, provider_fields FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v6 RENAME TO tokens;

CREATE TABLE entered_credentials (
    integration_id  TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    username        TEXT,
    secret          BLOB NOT NULL,      -- sealed: the API key or the password
    stored_at_ms    INTEGER NOT NULL
);
"#,
    // 8: the change feed. Every stored change carries its integration's sequence number,
    // assigned in the page's transaction; existing records are numbered in the order they
    // were last written (ties by stream and key). `change_feeds` holds each integration's
    // latest number and the newest number of a delete tombstone pruned after its retention.
    r#"
ALTER TABLE records ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE records SET seq = numbered.n
    FROM (SELECT integration_id AS i, stream AS s, key AS k,
                 ROW_NUMBER() OVER (PARTITION BY integration_id
                                    ORDER BY updated_at_ms, stream, key) AS n
          FROM records) AS numbered
    WHERE records.integration_id = numbered.i AND records.stream = numbered.s
      AND records.key = numbered.k;
CREATE INDEX records_by_seq ON records(integration_id, seq);
CREATE TABLE change_feeds (
    integration_id  TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    last_seq        INTEGER NOT NULL,
    pruned_through  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO change_feeds (integration_id, last_seq)
    SELECT id, COALESCE((SELECT MAX(seq) FROM records
                         WHERE records.integration_id = integrations.id), 0)
    FROM integrations;
"#,
    // 9: webhooks. Endpoints, and a transactional outbox: triggers write each event in the
    // transaction of the state change it reports (an integration connected or needing a new
    // login, a run ending, a connector version activated), with one delivery row per endpoint
    // it goes to. Per run and stream, the records a run added (new live keys, tombstones
    // brought back), updated and deleted (live records made tombstones), counted by triggers
    // in each page's transaction: summed over runs, added - deleted is the live count.
    r#"
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    integration_id  TEXT REFERENCES integrations(id) ON DELETE CASCADE,  -- NULL: host-wide
    secret          BLOB NOT NULL,   -- sealed signing secret
    created_at_ms   INTEGER NOT NULL
);

CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY DEFAULT ('evt_' || lower(hex(randomblob(12)))),
    type            TEXT NOT NULL,
    integration_id  TEXT,            -- kept after the integration is deleted
    connector       TEXT,
    created_at_ms   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    body            TEXT NOT NULL    -- the exact bytes every delivery sends and signs
);
CREATE INDEX webhook_events_by_time ON webhook_events(created_at_ms);

CREATE TABLE webhook_deliveries (
    event_id            TEXT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    endpoint_id         TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    state               TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms  INTEGER NOT NULL,
    last_attempt_at_ms  INTEGER,
    last_status         INTEGER,
    last_error          TEXT,
    delivered_at_ms     INTEGER,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at_ms);

CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON webhook_events BEGIN
    INSERT INTO webhook_deliveries (event_id, endpoint_id, state, next_attempt_at_ms)
    SELECT NEW.id, e.id, 'pending', NEW.created_at_ms FROM webhook_endpoints e
    WHERE e.integration_id IS NULL
       OR e.integration_id = NEW.integration_id
       OR (NEW.integration_id IS NULL AND e.integration_id IN
            (SELECT id FROM integrations WHERE connector = NEW.connector));
END;

CREATE TRIGGER integration_connected_event AFTER UPDATE OF state ON integrations
WHEN NEW.state = 'active' AND OLD.state != 'active' BEGIN
    INSERT INTO webhook_events (type, integration_id, connector, body) VALUES (
        'integration.connected', NEW.id, NEW.connector,
        json_object('type', 'integration.connected',
            'timestamp', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
            'data', json_object('integration_id', NEW.id, 'name', NEW.name,
                'connector', NEW.connector, 'previous_state', OLD.state)));
END;

CREATE TRIGGER integration_needs_reauthorization_event AFTER UPDATE OF state ON integrations
WHEN NEW.state = 'needs-reauthorization' AND OLD.state != 'needs-reauthorization' BEGIN
    INSERT INTO webhook_events (type, integration_id, connector, body) VALUES (
        'integration.needs_reauthorization', NEW.id, NEW.connector,
        json_object('type', 'integration.needs_reauthorization',
            'timestamp', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
            'data', json_object('integration_id', NEW.id, 'name', NEW.name,
                'connector', NEW.connector, 'reason', NEW.state_reason)));
END;

CREATE TRIGGER connector_version_activated_event AFTER UPDATE OF active_since_ms
ON connector_versions
WHEN NEW.active_since_ms IS NOT NULL AND OLD.active_since_ms IS NULL BEGIN
    INSERT INTO webhook_events (type, connector, body) VALUES (
        'connector.version_activated', NEW.name,
        json_object('type', 'connector.version_activated',
            'timestamp', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
            'data', json_object('connector', NEW.name, 'version', NEW.version,
                'sha256', NEW.sha256, 'contract', NEW.contract)));
END;

CREATE TABLE run_changes (
    run_id          TEXT NOT NULL,
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    stream          TEXT NOT NULL,
    added           INTEGER NOT NULL DEFAULT 0,
    updated         INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, stream)
) WITHOUT ROWID;

-- A new live key: added. (A delete of a key never stored removes nothing.)
CREATE TRIGGER records_count_insert AFTER INSERT ON records
WHEN NEW.run_id IS NOT NULL AND NEW.deleted = 0 BEGIN
    INSERT INTO run_changes (run_id, integration_id, stream, added)
    VALUES (NEW.run_id, NEW.integration_id, NEW.stream, 1)
    ON CONFLICT (run_id, stream) DO UPDATE SET added = added + 1;
END;

-- A known key: live to live is an update, tombstone to live an add, live to tombstone a
-- delete; a delete of a tombstone changes nothing.
CREATE TRIGGER records_count_update AFTER UPDATE ON records
WHEN NEW.run_id IS NOT NULL AND NOT (OLD.deleted != 0 AND NEW.deleted != 0) BEGIN
    INSERT INTO run_changes (run_id, integration_id, stream, added, updated, deleted)
    VALUES (NEW.run_id, NEW.integration_id, NEW.stream,
        OLD.deleted != 0 AND NEW.deleted = 0,
        OLD.deleted = 0 AND NEW.deleted = 0,
        OLD.deleted = 0 AND NEW.deleted != 0)
    ON CONFLICT (run_id, stream) DO UPDATE SET added = added + excluded.added,
        updated = updated + excluded.updated, deleted = deleted + excluded.deleted;
END;

-- Where the change feed stood when a run started, so its end event can name the feed
-- cursors a consumer reads the run's changes between.
ALTER TABLE runs ADD COLUMN feed_cursor_from INTEGER;
CREATE TRIGGER run_started_feed_cursor AFTER INSERT ON runs BEGIN
    UPDATE runs SET feed_cursor_from = COALESCE(
        (SELECT last_seq FROM change_feeds WHERE integration_id = NEW.integration_id), 0)
    WHERE id = NEW.id;
END;

-- A run's end: `sync.completed` when it succeeded, else `sync.failed`, with each stream's
-- outcome and change counts (never record contents), and the feed cursors before and after.
CREATE TRIGGER run_ended_event AFTER UPDATE OF status ON runs
WHEN OLD.status = 'running' AND NEW.status != 'running' BEGIN
    INSERT INTO webhook_events (type, integration_id, connector, body)
    SELECT t.type, NEW.integration_id, i.connector,
        json_object('type', t.type,
            'timestamp', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
            'data', json_object('integration_id', NEW.integration_id,
                'connector', i.connector, 'connector_version', NEW.connector_version,
                'run_id', NEW.id, 'trigger', NEW.trigger,
                'full', json(CASE WHEN NEW.full THEN 'true' ELSE 'false' END),
                'status', NEW.status, 'error', NEW.error,
                'started_at_ms', NEW.started_at_ms, 'ended_at_ms', NEW.ended_at_ms,
                'records', NEW.records,
                'changes', json_object(
                    'after', CAST(COALESCE(NEW.feed_cursor_from, 0) AS TEXT),
                    'through', CAST(COALESCE((SELECT last_seq FROM change_feeds
                        WHERE integration_id = NEW.integration_id), 0) AS TEXT)),
                'streams', json(CASE WHEN json_type(NEW.streams_json) = 'array' THEN (
                    SELECT json_group_array(json_object(
                        'stream', json_extract(o.value, '$.stream'),
                        'status', json_extract(o.value, '$.status'),
                        'added', COALESCE(c.added, 0),
                        'updated', COALESCE(c.updated, 0),
                        'deleted', COALESCE(c.deleted, 0)))
                    FROM json_each(NEW.streams_json) AS o
                    LEFT JOIN run_changes c
                        ON c.run_id = NEW.id AND c.stream = json_extract(o.value, '$.stream'))
                -- A run closed after its process died has no outcomes: the streams it
                -- committed pages of, with what those pages changed.
                ELSE (
                    SELECT json_group_array(json_object('stream', c.stream,
                        'status', NEW.status, 'added', c.added, 'updated', c.updated,
                        'deleted', c.deleted))
                    FROM run_changes c WHERE c.run_id = NEW.id)
                END)))
    FROM integrations i,
        (SELECT CASE NEW.status WHEN 'succeeded' THEN 'sync.completed'
                                ELSE 'sync.failed' END AS type) AS t
    WHERE i.id = NEW.integration_id;
END;
"#,
    // 10: where a grant's tokens are revoked (the OAuth plan's revoke URL when it was stored),
    // so they can still be revoked after the integration's plan stopped being OAuth.
    r#"
ALTER TABLE tokens ADD COLUMN revoke_url TEXT;
"#,
    // 11: a run's per-stream change counts are counted by the page commit (one lookup of the
    // page's keys) instead of a trigger per written row, which cost a third of a page's commit.
    r#"
DROP TRIGGER records_count_insert;
DROP TRIGGER records_count_update;
"#,
    // 12: an integration's scheduled pulls can be paused, and since when.
    r#"
ALTER TABLE integrations ADD COLUMN paused_at_ms INTEGER;
"#,
];
