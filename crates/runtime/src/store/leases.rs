//! Run leases: which host may run an integration's pull when several hosts share one
//! PostgreSQL database.
//!
//! Threat: two hosts pulling one integration at once, or a host that stalled (paused,
//! partitioned, slow) waking up and committing pages after another host took over, so that
//! pages are applied twice or a newer checkpoint is overwritten by an older one.
//!
//! Rule: a host runs an integration only under a lease, a row per integration with an owner,
//! an expiry and a generation that rises with every claim. Hosts claim due integrations with
//! `FOR UPDATE SKIP LOCKED`, so each is claimed by one host and none waits for another.
//! A holder keeps its lease alive with heartbeats before it expires; a lease that expired can
//! be claimed by anyone, with the next generation. Every page commit checks, inside its own
//! transaction, that the run it commits for still holds an unexpired lease ([`fence`]);
//! otherwise zero rows match, the transaction rolls back and the run stops. All times are the
//! database's clock, so hosts whose clocks disagree still agree on expiry.
//!
//! A SQLite store belongs to one host, where processes exclude each other with OS file locks
//! (`crate::locks`): leases exist only on PostgreSQL.

use super::*;

/// A host's hold on one integration's runs, until it expires unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The integration.
    pub integration_id: String,
    /// Who holds it: a host's name, unique among the hosts sharing the database.
    pub owner: String,
    /// Rises with every claim: the fencing token.
    pub generation: i64,
    /// When it expires unless renewed, in the database's milliseconds since the epoch.
    pub expires_at_ms: i64,
    /// The integration's consecutive failed pulls before this claim: the backoff's step.
    pub failures: u32,
}

/// When an integration whose lease is given up is next due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextDue {
    /// When it was due before: the hold was not a pull (a token health check).
    Unchanged,
    /// One interval from now, its failure count kept: a pull someone asked for.
    Interval,
    /// `delay` from now, after `failures` consecutive failed pulls (0: the last one did not
    /// fail): the scheduler's verdict on the pull that ended.
    After {
        /// From now, on the database's clock.
        delay: Duration,
        /// Consecutive failed pulls so far.
        failures: u32,
    },
}

/// How a lease holder's request ended when it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseLoss {
    /// It expired before the request.
    Expired,
    /// Another claim took it (a later generation), or the integration is gone.
    TakenOver,
}

const CLAIMED: &str =
    "RETURNING l.integration_id, l.owner, l.generation, l.expires_at_ms, l.failures";
/// What every claim writes, for owner `$1` and a lifetime of `$2` ms: the next generation
/// (the fencing token), no run bound yet.
const TAKE: &str = "generation = l.generation + 1, owner = $1, run_id = NULL,
    expires_at_ms = sluice_now_ms() + $2";
/// A lease nobody holds: never claimed, given up, or expired.
const FREE: &str = "(l.expires_at_ms IS NULL OR l.expires_at_ms < sluice_now_ms())";

/// A claim of up to `$3` free leases of integrations in state `$4` whose `due_column` has
/// come, soonest first, `filter` holding too; the claim also sets `also_set`. The clock read
/// as a subquery is computed once, before the scan, so the column's index bounds the scan:
/// an idle tick among 10,000 integrations reads none of their rows.
fn claim_due_sql(due_column: &str, filter: &str, also_set: &str) -> String {
    format!(
        "WITH due AS (
            SELECT l.integration_id FROM run_leases l
            JOIN integrations i ON i.id = l.integration_id
            WHERE i.state = $4 {filter}
              AND l.{due_column} <= (SELECT sluice_now_ms())
              AND {FREE}
            ORDER BY l.{due_column}
            LIMIT $3
            FOR UPDATE OF l SKIP LOCKED)
         UPDATE run_leases l SET {TAKE}{also_set}
         FROM due WHERE l.integration_id = due.integration_id
         {CLAIMED}"
    )
}

impl Store {
    /// Claims up to `limit` active, unpaused integrations that are due and not leased, for
    /// `owner`, for `ttl`. Another host claiming at the same moment skips the rows this one
    /// locked.
    pub fn claim_due_leases(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let pg = self.postgres("claim_due_leases")?;
        let sql = claim_due_sql("due_at_ms", "AND i.paused_at_ms IS NULL", "");
        let rows = pg::wait(pg.client()?.query(
            &sql,
            &[
                &owner,
                &millis(ttl),
                &(limit as i64),
                &IntegrationState::Active.as_str(),
            ],
        ))?;
        Ok(rows.iter().map(lease).collect())
    }

    /// Claims up to `limit` active integrations whose token health check is due and whose
    /// lease is free, for `owner`, for `ttl`, and schedules each one's next check `every`
    /// (± 10%) from now, so that hosts sharing the database check each token once per
    /// period between them. An integration seen for the first time gets its first check
    /// within one period, not at once, so that a host's start does not refresh every token.
    pub fn claim_due_health_checks(
        &self,
        owner: &str,
        ttl: Duration,
        every: Duration,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let pg = self.postgres("claim_due_health_checks")?;
        let client = pg.client()?;
        let every = millis(every) as f64;
        pg::wait(client.execute(
            "UPDATE run_leases SET health_due_at_ms = sluice_now_ms() + (random() * $1)::BIGINT
             WHERE health_due_at_ms IS NULL",
            &[&every],
        ))?;
        let sql = claim_due_sql(
            "health_due_at_ms",
            "",
            ", health_due_at_ms = sluice_now_ms() + ($5 * (0.9 + random() * 0.2))::BIGINT",
        );
        let rows = pg::wait(client.query(
            &sql,
            &[
                &owner,
                &millis(ttl),
                &(limit as i64),
                &IntegrationState::Active.as_str(),
                &every,
            ],
        ))?;
        Ok(rows.iter().map(lease).collect())
    }

    /// Claims integration `id` now, due or not ("pull now"), unless another lease on it has
    /// not expired.
    pub fn claim_lease(
        &self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let pg = self.postgres("claim_lease")?;
        let sql = format!(
            "UPDATE run_leases l SET {TAKE}
             WHERE l.integration_id = $3 AND {FREE}
             {CLAIMED}"
        );
        let row = pg::wait(pg.client()?.query_opt(&sql, &[&owner, &millis(ttl), &id]))?;
        Ok(row.as_ref().map(lease))
    }

    /// Extends `lease` to `ttl` from now. Refused once it expired or was taken over: the
    /// holder must stop.
    pub fn renew_lease(&self, lease: &mut Lease, ttl: Duration) -> Result<(), LeaseError> {
        let pg = self.postgres("renew_lease")?;
        let row = pg::wait(pg.client()?.query_opt(
            "UPDATE run_leases SET expires_at_ms = sluice_now_ms() + $4
             WHERE integration_id = $1 AND generation = $2 AND owner = $3
               AND expires_at_ms >= sluice_now_ms()
             RETURNING expires_at_ms",
            &[
                &lease.integration_id,
                &lease.generation,
                &lease.owner,
                &millis(ttl),
            ],
        ))
        .map_err(StoreError::from)?;
        match row {
            Some(row) => {
                lease.expires_at_ms = row.get(0);
                Ok(())
            }
            None => Err(self.lost(lease)?),
        }
    }

    /// Records the start of a run under `lease` and binds it, so that [`fence`] admits
    /// that run's page commits and no other's; its row names the host and the generation.
    /// One statement does both, so no run exists without the lease its commits need, even
    /// when its host dies at once. The same statement ends the integration's runs still
    /// marked `running` (their lease is gone, or this claim could not hold it) and, for a
    /// `full` run, deletes its checkpoints: a host that stalled after its claim lapsed must
    /// not end or reset the run of the host that took the lease over. Refused once the lease
    /// expired or was taken over, and then nothing is written.
    pub fn start_leased_run(
        &self,
        lease: &Lease,
        trigger: &str,
        full: bool,
        connector_version: &str,
    ) -> Result<String, LeaseError> {
        let pg = self.postgres("start_leased_run")?;
        let run_id = new_id("run");
        let started = pg::wait(pg.client()?.execute(
            "WITH bound AS (
                 UPDATE run_leases SET run_id = $3
                 WHERE integration_id = $1 AND generation = $2
                   AND expires_at_ms >= sluice_now_ms()
                 RETURNING owner, generation),
             orphans AS (
                 UPDATE runs SET status = $9, ended_at_ms = COALESCE(ended_at_ms, $7),
                     error = COALESCE(error,
                         'the host running it stopped renewing its lease before the run finished')
                 WHERE integration_id = $1 AND status = $8 AND EXISTS (SELECT 1 FROM bound)),
             reset AS (
                 DELETE FROM checkpoints
                 WHERE integration_id = $1 AND $5 AND EXISTS (SELECT 1 FROM bound))
             INSERT INTO runs (id, integration_id, trigger, \"full\", connector_version,
                 started_at_ms, status, host, lease_generation)
             SELECT $3, $1, $4, $5, $6, $7, $8, bound.owner, bound.generation FROM bound",
            &[
                &lease.integration_id,
                &lease.generation,
                &run_id,
                &trigger,
                &full,
                &connector_version,
                &now_ms(),
                &RunState::Running.as_str(),
                &RunState::Interrupted.as_str(),
            ],
        ))
        .map_err(StoreError::from)?;
        match started {
            1 => Ok(run_id),
            _ => Err(self.lost(lease)?),
        }
    }

    /// Gives `lease` up, with the integration next due as `next` says (on the database's
    /// clock). A lease already taken over is left to its new holder.
    pub fn release_lease(&self, lease: &Lease, next: NextDue) -> Result<(), LeaseError> {
        let pg = self.postgres("release_lease")?;
        const FREE: &str =
            "UPDATE run_leases l SET owner = NULL, run_id = NULL, expires_at_ms = NULL";
        const HELD: &str = "l.integration_id = $1 AND l.generation = $2";
        let client = pg.client()?;
        let released = pg::wait(async {
            match next {
                NextDue::Unchanged => {
                    let sql = format!("{FREE} WHERE {HELD}");
                    client
                        .execute(&sql, &[&lease.integration_id, &lease.generation])
                        .await
                }
                NextDue::Interval => {
                    let sql = format!(
                        "{FREE}, due_at_ms = sluice_now_ms() + i.interval_s * 1000
                         FROM integrations i WHERE i.id = l.integration_id AND {HELD}"
                    );
                    client
                        .execute(&sql, &[&lease.integration_id, &lease.generation])
                        .await
                }
                NextDue::After { delay, failures } => {
                    let sql = format!(
                        "{FREE}, due_at_ms = sluice_now_ms() + $3, failures = $4 WHERE {HELD}"
                    );
                    let failures = i32::try_from(failures).unwrap_or(i32::MAX);
                    client
                        .execute(
                            &sql,
                            &[
                                &lease.integration_id,
                                &lease.generation,
                                &millis(delay),
                                &failures,
                            ],
                        )
                        .await
                }
            }
        })
        .map_err(StoreError::from)?;
        match released {
            1 => Ok(()),
            _ => Err(LeaseError::Lost(LeaseLoss::TakenOver)),
        }
    }

    /// Marks `interrupted` the runs whose lease lapsed: it expired or was given up while
    /// they were `running`, or a later claim took it. Such a run can never commit again (the
    /// fence refuses it), and its host died or stalled; without this it would stay
    /// `running` until its integration's next run, which may never come (a paused
    /// integration). Returns how many runs it closed.
    pub fn close_runs_of_lapsed_leases(&self) -> Result<u64, StoreError> {
        let pg = self.postgres("close_runs_of_lapsed_leases")?;
        Ok(pg::wait(pg.client()?.execute(
            "UPDATE runs r SET status = $2, ended_at_ms = COALESCE(r.ended_at_ms, $1),
                 error = COALESCE(r.error,
                     'the host running it stopped renewing its lease before the run finished')
             FROM run_leases l
             WHERE r.status = $3 AND l.integration_id = r.integration_id
               AND (l.expires_at_ms IS NULL OR l.expires_at_ms < sluice_now_ms()
                    OR l.generation > r.lease_generation)",
            &[
                &now_ms(),
                &RunState::Interrupted.as_str(),
                &RunState::Running.as_str(),
            ],
        ))?)
    }

    /// The database's clock, in milliseconds since the epoch: leases and due times are on it.
    pub fn database_now_ms(&self) -> Result<i64, StoreError> {
        match &self.db {
            Db::Sqlite(_) => Ok(now_ms()),
            Db::Postgres(pg) => {
                Ok(pg::wait(pg.client()?.query_one("SELECT sluice_now_ms()", &[]))?.get(0))
            }
        }
    }

    /// Why `lease` no longer holds.
    fn lost(&self, lease: &Lease) -> Result<LeaseError, StoreError> {
        let pg = self.postgres("lease")?;
        let generation: Option<i64> = pg::wait(pg.client()?.query_opt(
            "SELECT generation FROM run_leases WHERE integration_id = $1",
            &[&lease.integration_id],
        ))?
        .map(|r| r.get(0));
        Ok(LeaseError::Lost(match generation {
            Some(g) if g == lease.generation => LeaseLoss::Expired,
            _ => LeaseLoss::TakenOver,
        }))
    }

    /// The PostgreSQL database, for an operation `what` that exists only there.
    fn postgres(&self, what: &'static str) -> Result<&pg::Pg, StoreError> {
        match &self.db {
            Db::Postgres(pg) => Ok(pg),
            Db::Sqlite(_) => Err(StoreError::OnlyOnPostgres(what)),
        }
    }
}

/// Why a lease holder's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lease no longer holds: the holder must stop.
    #[error("the run lease was lost ({0:?}): another host may run this integration now")]
    Lost(LeaseLoss),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks, inside a page commit's transaction `tx`, that run `run_id` still holds an
/// unexpired lease on `integration_id`, and keeps the lease row from being claimed until the
/// transaction ends. Zero rows: [`StoreError::LeaseLost`], and the caller rolls back.
pub(super) async fn fence(
    tx: &tokio_postgres::Transaction<'_>,
    integration_id: &str,
    run_id: &str,
) -> Result<(), StoreError> {
    let held = tx
        .query_opt(
            "SELECT 1 FROM run_leases
             WHERE integration_id = $1 AND run_id = $2 AND expires_at_ms >= sluice_now_ms()
             FOR SHARE",
            &[&integration_id, &run_id],
        )
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost {
            integration: integration_id.to_string(),
            run: run_id.to_string(),
        }),
    }
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn lease(row: &tokio_postgres::Row) -> Lease {
    Lease {
        integration_id: row.get(0),
        owner: row.get(1),
        generation: row.get(2),
        expires_at_ms: row.get(3),
        failures: u32::try_from(row.get::<_, i32>(4)).unwrap_or(0),
    }
}
