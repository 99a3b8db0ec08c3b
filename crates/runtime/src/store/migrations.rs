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
    // 8: where a grant's tokens are revoked (the OAuth plan's revoke URL when it was stored),
    // so they can still be revoked after the integration's plan stopped being OAuth.
    r#"
ALTER TABLE tokens ADD COLUMN revoke_url TEXT;
"#,
];
