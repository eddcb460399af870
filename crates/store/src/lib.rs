//! Persistence for the orchestrator: the durable webhook inbox, runs, jobs and steps, the
//! dispatch queue, agent and admin tokens, and step logs — on SQLite or PostgreSQL, chosen
//! by URL, with the same behaviour (`orchestrator.md` §3, §6, §7, §9, §17, §21).
//!
//! # Backend choice: an enum over two pools, not sqlx's `Any` driver
//!
//! [`Store`] holds either SQLite pools or a `PgPool`. Most statements are written once and
//! run on both through the `on_backend!`/`in_tx!` macros, which expand the same code for
//! each concrete driver, so types are checked per backend and no `Any` value conversion
//! happens. Where the engines differ the code says so explicitly: the queue claim
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the database write lock on SQLite), the label
//! pre-filter (`unnest($n::text[])` against `json_each($n)`), and the FIFO sequence column.
//! `Any` would have forced the lowest common denominator on exactly those statements.
//!
//! # SQLite
//!
//! One file, WAL mode, `busy_timeout` 5 s, and a single writer connection (§1): writes queue
//! up inside the process instead of spinning in SQLite's busy handler; a separate pool of
//! read-only connections serves reads concurrently. Every write transaction starts with
//! `BEGIN IMMEDIATE`, so a transaction that reads and then writes can never fail to
//! upgrade its lock. Several processes (or several [`Store`]s on one file, as the race tests
//! do) still serialise correctly through the file lock.
//!
//! # Status writes
//!
//! Every job, run and step status write passes `kici_engine::state` first and is a
//! compare-and-set on the status that was read (`… WHERE id = $id AND status = $from`), so an
//! invalid transition is refused with nothing written and two writers cannot both move one
//! job (§6.2).
//!
//! Time is always an argument (`now`, Unix ms): the store never reads a clock, so the
//! orchestrator's tests control every deadline.
//!
//! Migrations are plain SQL files under `migrations/{sqlite,postgres}`, embedded with
//! `include_str!` and applied by [`Store::migrate`] under a lock; see [`migrate`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use kici_engine::state::{Event, InvalidTransition, RunEvent, RunStatus, State, StepStatus};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

pub mod agents;
pub mod inbox;
pub mod listing;
pub mod logs;
pub mod migrate;
mod ops;
pub mod queue;
pub mod runs;
pub mod sources;
pub mod tokens;

pub use agents::{DispatchedJob, StaleJob};
pub use inbox::{
    FailOutcome, InboxItem, InboxStatus, InsertOutcome, NewDelivery, inbox_backoff_ms, sha256_hex,
};
pub use listing::RunFilter;
pub use logs::{LogChunk, LogLine, LogPage};
pub use migrate::MigrationReport;
pub use queue::{AgentProfile, ClaimedJob, EnqueueSpec, QueueEntry, Requeue};
pub use runs::{
    CreateRunOutcome, Job, JobStart, JobTransition, JobUpdate, Need, NewJob, NewNeed, NewRun, Run,
    RunUpdate, Step, StepReport, StepWrite,
};
pub use sources::{
    NewSource, SYSTEM_ORG, SecretWrite, SourceRecord, StoredSecret, source_secret_scope,
};
pub use tokens::{
    AdminToken, AgentToken, AgentTokenKind, NewAdminToken, NewAgentToken, generate_token,
    hash_token,
};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "unsupported database URL {0:?}: expected sqlite://<path>, postgres://… or postgresql://…"
    )]
    UnsupportedUrl(String),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {applied} in the database, {embedded} in this binary)"
    )]
    MigrationChanged {
        version: i64,
        name: String,
        applied: String,
        embedded: String,
    },
    #[error(
        "the database schema is at version {found}, newer than this binary knows ({known}); upgrade kici"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("{entity} {id}: {source}")]
    InvalidTransition {
        entity: &'static str,
        id: String,
        source: InvalidTransition,
    },
    #[error("run {id}: invalid run transition {event:?} from {from}")]
    InvalidRunTransition {
        id: String,
        from: RunStatus,
        event: RunEvent,
    },
    #[error("step {job_id}/{step_index}: invalid step transition {from} -> {to}")]
    InvalidStepTransition {
        job_id: String,
        step_index: i64,
        from: StepStatus,
        to: StepStatus,
    },
    #[error("{event} is written by enqueue_job, which also creates the queue row")]
    EnqueueOutsideQueue { event: Event },
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    #[error("{entity} {id} already exists")]
    Conflict { entity: &'static str, id: String },
    #[error("dispatch queue full ({pending} pending jobs)")]
    QueueFull { pending: i64, max: i64 },
    #[error(
        "{entity} {id}: status kept changing under a concurrent writer; gave up after {attempts} attempts"
    )]
    Contended {
        entity: &'static str,
        id: String,
        attempts: u32,
    },
    #[error("corrupt value in column {column}: {message}")]
    Corrupt {
        column: &'static str,
        message: String,
    },
    #[error("invalid label pattern /{pattern}/{flags}: {message}")]
    LabelPattern {
        pattern: String,
        flags: String,
        message: String,
    },
    #[error("could not generate a random token: {0}")]
    Random(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

/// Queue limits (`orchestrator.md` §9.4, §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// `KICI_QUEUE_MAX_DEPTH`: enqueue fails when this many rows are `pending`.
    pub max_depth: i64,
    /// `KICI_DISPATCH_ACK_TIMEOUT_MS`.
    pub ack_timeout_ms: i64,
    /// A requeue that reaches this many dispatch attempts fails the job instead.
    pub max_dispatch_attempts: i64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_depth: 1000,
            ack_timeout_ms: 10_000,
            max_dispatch_attempts: 5,
        }
    }
}

/// Connection and behaviour settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// PostgreSQL pool size (`KICI_DB_MAX_CONNECTIONS`); SQLite's read pool size.
    pub max_connections: u32,
    /// SQLite `busy_timeout`.
    pub busy_timeout: Duration,
    pub queue: QueueLimits,
    /// `KICI_INBOX_MAX_ATTEMPTS`: the attempt after which an item is dead-lettered.
    pub inbox_max_attempts: i64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            busy_timeout: Duration::from_secs(5),
            queue: QueueLimits::default(),
            inbox_max_attempts: 8,
        }
    }
}

#[derive(Clone)]
enum Backend {
    Sqlite { write: SqlitePool, read: SqlitePool },
    Postgres(PgPool),
}

/// The store. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    options: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.kind())
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$pool` bound to the backend's pool (the writer on SQLite).
macro_rules! on_backend {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { write, .. } => {
                let $pool = write;
                $body
            }
            $crate::Backend::Postgres(pg) => {
                let $pool = pg;
                $body
            }
        }
    };
}

/// Like `on_backend!`, but SQLite reads go to the read-only pool.
macro_rules! on_reader {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { read, .. } => {
                let $pool = read;
                $body
            }
            $crate::Backend::Postgres(pg) => {
                let $pool = pg;
                $body
            }
        }
    };
}

/// Runs `$body` inside a write transaction bound to `$tx` and commits it when the body
/// evaluates to `Ok`. A `?` inside the body returns early and drops the transaction,
/// which rolls it back. SQLite transactions take the write lock up front (`BEGIN IMMEDIATE`).
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { write, .. } => {
                #[allow(unused_mut)]
                let mut $tx = write.begin_with("BEGIN IMMEDIATE").await?;
                let result: $crate::Result<_> = $body;
                if result.is_ok() {
                    $tx.commit().await?;
                }
                result
            }
            $crate::Backend::Postgres(pg) => {
                #[allow(unused_mut)]
                let mut $tx = pg.begin().await?;
                let result: $crate::Result<_> = $body;
                if result.is_ok() {
                    $tx.commit().await?;
                }
                result
            }
        }
    };
}

pub(crate) use {in_tx, on_backend, on_reader};

// Column lists as macros, so `concat!` can splice them into the static SQL that sqlx 0.9
// requires, and each list is written once next to its decoder's expectations.
#[macro_export]
#[doc(hidden)]
macro_rules! inbox_columns {
    () => {
        "id, org_id, routing_key, source_id, delivery_id, ingress, provider, event, action, headers, body, body_ref, body_sha256, body_size, received_at, status, attempts, next_attempt_at, lease_owner, lease_until, last_error, outcome, decisions, run_ids, processed_at"
    };
}
#[macro_export]
#[doc(hidden)]
macro_rules! run_columns {
    () => {
        "run_id, org_id, inbox_id, dispatch_key, workflow_name, status, provider, routing_key, repo_identifier, ref, sha, event, decision, matched_trigger, trust_tier, concurrency, workflow_timeout_ms, is_test_run, parent_run_id, triggered_by, cancelled_by, failure_reason, init_failure, created_at, started_at, completed_at, duration_ms, log_bytes"
    };
}
#[macro_export]
#[doc(hidden)]
macro_rules! job_columns {
    () => {
        "job_id, run_id, job_name, base_job_name, variant_kind, matrix_values, status, job_config, environments, runs_on, agent_id, dispatch_attempts, needs_satisfied, wave_gated, skip_reason, error_message, init_failure, outputs, last_heartbeat_at, created_at, started_at, completed_at, duration_ms, log_bytes"
    };
}
#[macro_export]
#[doc(hidden)]
macro_rules! step_columns {
    () => {
        "run_id, job_id, step_index, step_name, step_type, status, concurrency_kind, group_id, attempts, exit_code, error_message, secrets_accessed, log_bytes, started_at, completed_at, duration_ms"
    };
}
#[macro_export]
#[doc(hidden)]
macro_rules! queue_columns {
    () => {
        "id, run_id, org_id, workflow_name, job_name, status, pinned_agent_id, patterns, created_at, expires_at, agent_id, dispatched_at, ack_deadline, ack_agent_id, recovery_deadline, recovery_agent_id, dispatch_attempts, last_error"
    };
}

impl Store {
    /// Opens the database named by `url`: `sqlite://<path>` (created if missing),
    /// `sqlite::memory:` (tests), `postgres://…` or `postgresql://…`. Does not migrate.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Generic plans: our statements are few, prepared once per connection and
            // index-driven; without this PostgreSQL re-plans the queue statements on every
            // execution, which cost more than running them (measured: ~2 ms a claim).
            //
            // No bitmap scans: a queue fills faster than autovacuum re-analyses it, so the
            // cached plan of a claim is made from stale statistics ("a handful of pending
            // rows"), and with them the planner read, filtered and sorted every pending row
            // per claim (a bitmap heap scan) instead of walking the pending index to the first
            // match: claims slowed down linearly with the queue's depth.
            let connect = PgConnectOptions::from_str(url)?.options([
                ("plan_cache_mode", "force_generic_plan"),
                ("enable_bitmapscan", "off"),
            ]);
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .connect_with(connect)
                .await?;
            return Ok(Store {
                backend: Backend::Postgres(pool),
                options,
            });
        }
        if !url.starts_with("sqlite:") {
            return Err(Error::UnsupportedUrl(url.to_string()));
        }
        let base = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory {
            // Every connection to an in-memory database is a database of its own, so the
            // readers must share the writer's single connection.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base)
                .await?;
            return Ok(Store {
                backend: Backend::Sqlite {
                    write: pool.clone(),
                    read: pool,
                },
                options,
            });
        }
        let base = base
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.max_connections.clamp(1, 8))
            .connect_with(base.read_only(true))
            .await?;
        Ok(Store {
            backend: Backend::Sqlite { write, read },
            options,
        })
    }

    /// Opens (creating it if needed) the SQLite file at `path`.
    pub async fn open_sqlite(path: &Path, options: StoreOptions) -> Result<Store> {
        Store::connect(&sqlite_url(path), options).await
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite { .. } => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Whether the database answers (for `/ready`).
    pub async fn ping(&self) -> Result<()> {
        on_reader!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// `sqlite://<path>` for a file path (the default database is `<data dir>/kici.db`).
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Column access shared by both row types, with errors mapped to [`Error`].
pub(crate) trait RowExt {
    fn text(&self, column: &'static str) -> Result<String>;
    fn opt_text(&self, column: &'static str) -> Result<Option<String>>;
    fn int(&self, column: &'static str) -> Result<i64>;
    fn opt_int(&self, column: &'static str) -> Result<Option<i64>>;
    fn flag(&self, column: &'static str) -> Result<bool>;
    fn opt_bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>>;

    fn json(&self, column: &'static str) -> Result<Option<serde_json::Value>> {
        self.opt_text(column)?
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| Error::Corrupt {
                    column,
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    fn state(&self, column: &'static str) -> Result<State> {
        let text = self.text(column)?;
        State::parse(&text).ok_or_else(|| corrupt(column, &text))
    }
}

pub(crate) fn corrupt(column: &'static str, value: &str) -> Error {
    Error::Corrupt {
        column,
        message: format!("unknown value {value:?}"),
    }
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, column: &'static str) -> Result<String> {
                Ok(self.try_get::<String, _>(column)?)
            }
            fn opt_text(&self, column: &'static str) -> Result<Option<String>> {
                Ok(self.try_get::<Option<String>, _>(column)?)
            }
            fn int(&self, column: &'static str) -> Result<i64> {
                Ok(self.try_get::<i64, _>(column)?)
            }
            fn opt_int(&self, column: &'static str) -> Result<Option<i64>> {
                Ok(self.try_get::<Option<i64>, _>(column)?)
            }
            fn flag(&self, column: &'static str) -> Result<bool> {
                Ok(self.try_get::<bool, _>(column)?)
            }
            fn opt_bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>> {
                Ok(self.try_get::<Option<Vec<u8>>, _>(column)?)
            }
        }
    };
}

impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);

/// A fresh UUID v4 (run, job, inbox and token ids).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn to_json(value: &serde_json::Value) -> String {
    value.to_string()
}

pub(crate) fn opt_json(value: Option<&serde_json::Value>) -> Option<String> {
    value.map(to_json)
}

/// How many times a compare-and-set status write re-reads and retries before giving up.
pub(crate) const CAS_ATTEMPTS: u32 = 8;
