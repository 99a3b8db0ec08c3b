//! Runs: one row per pull, with its per-stream outcome and the pages each version served.

use super::*;

/// One run, as recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// Its id.
    pub id: String,
    /// The integration.
    pub integration_id: String,
    /// `cli`, `schedule`, `api`, `demo`.
    pub trigger: String,
    /// Whether checkpoints were reset first.
    pub full: bool,
    /// The connector version that served it (label).
    pub connector_version: String,
    /// Start (ms).
    pub started_at_ms: i64,
    /// End (ms), if finished.
    pub ended_at_ms: Option<i64>,
    /// Where it stands.
    pub status: RunState,
    /// Records committed.
    pub records: i64,
    /// Provider API calls used.
    pub api_calls: i64,
    /// Per-stream status.
    pub streams: serde_json::Value,
    /// The failure, if any.
    pub error: Option<String>,
}

/// One committed page of a run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunPage {
    /// Its place in the run, from 1.
    pub seq: u32,
    /// The stream.
    pub stream: String,
    /// Rows in the page.
    pub rows: u64,
    /// The number of the connector version that served it.
    pub connector_version: u32,
    /// When it committed (ms).
    pub committed_at_ms: i64,
}

impl Store {
    /// Records the start of a run and returns its id.
    pub fn start_run(
        &self,
        id: &str,
        trigger: &str,
        full: bool,
        connector_version: &str,
    ) -> Result<String, StoreError> {
        let run_id = new_id("run");
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => {
                let client = pg.client()?;
                pg::wait(client.execute(
                    "INSERT INTO runs (id, integration_id, trigger, \"full\", connector_version,
                         started_at_ms, status) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &run_id,
                        &id,
                        &trigger,
                        &full,
                        &connector_version,
                        &now_ms(),
                        &RunState::Running.as_str(),
                    ],
                ))?;
                return Ok(run_id);
            }
        };
        conn.execute(
            "INSERT INTO runs (id, integration_id, trigger, full, connector_version, started_at_ms,
                 status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                run_id,
                id,
                trigger,
                full,
                connector_version,
                now_ms(),
                RunState::Running
            ],
        )?;
        Ok(run_id)
    }

    /// Records the end of a run, unless it ended already: a run that another process closed
    /// as orphaned (its host stalled past its lease, and a new run took over) stays as that
    /// process recorded it, so that its end never follows the next run's start.
    pub fn finish_run(
        &self,
        run_id: &str,
        status: RunState,
        streams: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => {
                let client = pg.client()?;
                pg::wait(client.execute(
                    "UPDATE runs SET ended_at_ms = $2, status = $3, streams_json = $4, error = $5
                     WHERE id = $1 AND status = $6",
                    &[
                        &run_id,
                        &now_ms(),
                        &status.as_str(),
                        &streams.to_string(),
                        &error,
                        &RunState::Running.as_str(),
                    ],
                ))?;
                return Ok(());
            }
        };
        conn.execute(
            "UPDATE runs SET ended_at_ms = ?2, status = ?3, streams_json = ?4, error = ?5
             WHERE id = ?1 AND status = ?6",
            params![
                run_id,
                now_ms(),
                status,
                streams.to_string(),
                error,
                RunState::Running
            ],
        )?;
        Ok(())
    }

    /// Marks runs left `running` by a crashed process as `interrupted`. Call it only while
    /// holding the integration's run claim, so that no run of it is going on.
    pub fn close_orphan_runs(&self, id: &str) -> Result<(), StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => {
                let client = pg.client()?;
                pg::wait(client.execute(
                    "UPDATE runs SET status = $3, ended_at_ms = COALESCE(ended_at_ms, $2),
                         error = COALESCE(error,
                             'the process running it ended before the run finished')
                     WHERE integration_id = $1 AND status = $4",
                    &[
                        &id,
                        &now_ms(),
                        &RunState::Interrupted.as_str(),
                        &RunState::Running.as_str(),
                    ],
                ))?;
                return Ok(());
            }
        };
        conn.execute(
            "UPDATE runs SET status = ?3, ended_at_ms = COALESCE(ended_at_ms, ?2),
                 error = COALESCE(error, 'the process running it ended before the run finished')
             WHERE integration_id = ?1 AND status = ?4",
            params![id, now_ms(), RunState::Interrupted, RunState::Running],
        )?;
        Ok(())
    }

    /// The latest runs of an integration, newest first.
    pub fn runs(&self, id: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => return pg_runs(pg, id, limit),
        };
        let mut stmt = conn.prepare(
            "SELECT id, integration_id, trigger, full, connector_version, started_at_ms, ended_at_ms,
                 status, records, api_calls, streams_json, error
             FROM runs WHERE integration_id = ?1 ORDER BY started_at_ms DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![id, limit as i64], |r| {
            let streams: String = r.get(10)?;
            Ok(RunRecord {
                id: r.get(0)?,
                integration_id: r.get(1)?,
                trigger: r.get(2)?,
                full: r.get(3)?,
                connector_version: r.get(4)?,
                started_at_ms: r.get(5)?,
                ended_at_ms: r.get(6)?,
                status: r.get(7)?,
                records: r.get(8)?,
                api_calls: r.get(9)?,
                streams: serde_json::from_str(&streams).unwrap_or(serde_json::Value::Null),
                error: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The committed pages of a run, in order, with the connector version that served each.
    pub fn run_pages(&self, run_id: &str) -> Result<Vec<RunPage>, StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => return pg_run_pages(pg, run_id),
        };
        let mut stmt = conn.prepare(
            "SELECT seq, stream, rows, connector_version, committed_at_ms FROM run_pages
             WHERE run_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok(RunPage {
                seq: r.get(0)?,
                stream: r.get(1)?,
                rows: r.get(2)?,
                connector_version: r.get(3)?,
                committed_at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn pg_runs(pg: &pg::Pg, id: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
    let client = pg.client()?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // `started_order` breaks ties of one millisecond as SQLite's rowid does: later first.
    let rows = pg::wait(client.query(
        "SELECT id, integration_id, trigger, \"full\", connector_version, started_at_ms,
             ended_at_ms, status, records, api_calls, streams_json, error
         FROM runs WHERE integration_id = $1
         ORDER BY started_at_ms DESC, started_order DESC LIMIT $2",
        &[&id, &limit],
    ))?;
    rows.iter()
        .map(|r| {
            let streams: &str = r.try_get(10)?;
            Ok(RunRecord {
                id: r.try_get(0)?,
                integration_id: r.try_get(1)?,
                trigger: r.try_get(2)?,
                full: r.try_get(3)?,
                connector_version: r.try_get(4)?,
                started_at_ms: r.try_get(5)?,
                ended_at_ms: r.try_get(6)?,
                status: RunState::parse(r.try_get(7)?)?,
                records: r.try_get(8)?,
                api_calls: r.try_get(9)?,
                streams: serde_json::from_str(streams).unwrap_or(serde_json::Value::Null),
                error: r.try_get(11)?,
            })
        })
        .collect()
}

fn pg_run_pages(pg: &pg::Pg, run_id: &str) -> Result<Vec<RunPage>, StoreError> {
    let client = pg.client()?;
    let rows = pg::wait(client.query(
        "SELECT seq, stream, rows, connector_version, committed_at_ms FROM run_pages
         WHERE run_id = $1 ORDER BY seq",
        &[&run_id],
    ))?;
    let number = |r: &tokio_postgres::Row, at: usize| -> Result<i64, StoreError> {
        Ok(r.try_get::<_, i64>(at)?)
    };
    let out_of_range = |what: &str, n: i64| StoreError::Corrupt(format!("run page {what} {n}"));
    rows.iter()
        .map(|r| {
            let seq = number(r, 0)?;
            let rows = number(r, 2)?;
            let version = number(r, 3)?;
            Ok(RunPage {
                seq: u32::try_from(seq).map_err(|_| out_of_range("number", seq))?,
                stream: r.try_get(1)?,
                rows: u64::try_from(rows).map_err(|_| out_of_range("row count", rows))?,
                connector_version: u32::try_from(version)
                    .map_err(|_| out_of_range("connector version", version))?,
                committed_at_ms: r.try_get(4)?,
            })
        })
        .collect()
}
