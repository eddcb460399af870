//! The orchestrator's settings (`orchestrator.md` §19). A plain struct: reading `KICI_*`
//! variables, flags and config files is the binary's job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kici_engine::protocol::Secret;

/// Everything [`crate::Orchestrator::start`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `KICI_BIND`:`KICI_PORT`; 127.0.0.1:4000 by default.
    pub bind: SocketAddr,
    /// `KICI_DATA_DIR`: SQLite file, large inbox bodies, logs.
    pub data_dir: PathBuf,
    /// `KICI_DATABASE_URL`; `None` = `sqlite://<data_dir>/kici.db`.
    pub database_url: Option<String>,
    /// `KICI_AUTO_MIGRATE`.
    pub auto_migrate: bool,
    /// `KICI_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    pub inbox: InboxConfig,
    /// `KICI_QUEUE_MAX_DEPTH`.
    pub queue_max_depth: i64,
    /// `KICI_QUEUE_TIMEOUT_MS`; `None` = queued jobs never expire.
    pub queue_timeout: Option<Duration>,
    /// Webhook sources. v1 keeps them in the configuration until the store has a sources API.
    pub sources: Vec<SourceConfig>,
    /// This node's name in inbox leases.
    pub node_id: String,
}

/// Inbox processing (`orchestrator.md` §3.3).
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// `KICI_INBOX_WORKERS`.
    pub workers: usize,
    /// `KICI_INBOX_MAX_ATTEMPTS`: the attempt after which an item is dead-lettered.
    pub max_attempts: i64,
    /// How long a claimed item stays leased.
    pub lease: Duration,
    /// Workers poll this often when no insert woke them.
    pub poll_interval: Duration,
    /// Overrides the spec's backoff (`5 s · 2^(n-1)`, jittered) with a fixed delay; tests
    /// use it to see retries in milliseconds.
    pub fixed_retry_delay: Option<Duration>,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            workers: 4,
            max_attempts: 8,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            fixed_retry_delay: None,
        }
    }
}

impl Config {
    /// Defaults with the given data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 4000)),
            data_dir: data_dir.into(),
            database_url: None,
            auto_migrate: true,
            db_max_connections: 10,
            inbox: InboxConfig::default(),
            queue_max_depth: 1000,
            queue_timeout: Some(Duration::from_secs(3600)),
            sources: Vec::new(),
            node_id: "orchestrator".to_string(),
        }
    }

    /// The database URL actually used (`orchestrator.md` §1).
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => kici_store::sqlite_url(&self.data_dir.join("kici.db")),
        }
    }
}

/// A webhook source (`orchestrator.md` §4.3).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique per org; `^[a-z0-9][a-z0-9-]{0,62}$`.
    pub name: String,
    /// `default` in v1.
    pub org_id: String,
    pub kind: SourceKind,
    /// Where the lock of the source's repositories is read.
    pub lock: LockSourceConfig,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A GitHub App (`POST /webhook/:orgId/github`, routing key `github:<appId>`).
    GitHubApp {
        app_id: String,
        webhook_secret: Secret,
        /// The previous secret, accepted during a rotation.
        previous_webhook_secret: Option<Secret>,
    },
}

/// Which [`crate::lock_source::LockSource`] serves a source.
#[derive(Debug, Clone)]
pub enum LockSourceConfig {
    /// `local-file`: repositories on disk at `<base>/<owner>/<name>`; the lock is read at the
    /// event's commit with git.
    LocalFile { base: PathBuf },
}
