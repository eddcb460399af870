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
    /// `KICI_SECRET_KEY`: the master key (64 hex digits or base64 of 32 bytes). `None`:
    /// `<data_dir>/secret.key`, generated on first start (SQLite only; PostgreSQL needs a
    /// key, §15.1).
    pub secret_key: Option<Secret>,
    /// `KICI_BOOTSTRAP_ADMIN_TOKEN`: the owner token created on first start; `None` = a
    /// generated one, shown once through [`crate::Handle::bootstrap_admin_token`].
    pub bootstrap_admin_token: Option<Secret>,
    /// `KICI_LOCKFILE_CACHE_MAX` (500 entries; 0 disables the cache).
    pub lock_cache_max: usize,
    /// `KICI_LOCKFILE_CACHE_TTL_MS` (1 h).
    pub lock_cache_ttl: Duration,
    /// `KICI_TRUSTED_PROXIES`: IPs or CIDR ranges allowed to set `X-Forwarded-For`.
    pub trusted_proxies: Vec<String>,
    /// `KICI_WEBHOOK_PUBLIC_URL`: base of the webhook URLs the API shows; `None` =
    /// `http://<bind>`.
    pub webhook_public_url: Option<String>,
    /// The agent side: authentication mode, dispatch and liveness timers (`protocol.md`
    /// §3, §6, §10, §13; `orchestrator.md` §9.3, §10).
    pub agents: AgentsConfig,
}

/// `KICI_AGENT_AUTH` (`protocol.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAuth {
    /// `token` (default): every connection presents an agent token.
    Token,
    /// `none`: agents register without a token; refused unless the listener is bound to a
    /// loopback address or `allow_remote` is set.
    None { allow_remote: bool },
}

/// Agent connections, dispatch and liveness. Defaults are the spec's; tests shorten them.
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    /// `KICI_AGENT_AUTH` (+ `KICI_AGENT_AUTH_NONE_ALLOW_REMOTE`).
    pub auth: AgentAuth,
    /// No `auth.request` within this → close 4002 (5 s).
    pub auth_timeout: Duration,
    /// No `agent.register` within this after auth (or open) → close 4002 (10 s).
    pub registration_timeout: Duration,
    /// Connection silent this long → logged unhealthy (90 s).
    pub heartbeat_unhealthy_after: Duration,
    /// Connection silent this long → close 4004 (180 s).
    pub heartbeat_timeout: Duration,
    /// `KICI_DISPATCH_ACK_TIMEOUT_MS` (10 s, at least 1 s). Applied to the store's queue
    /// limits by [`crate::Orchestrator::start`].
    pub dispatch_ack_timeout: Duration,
    /// `KICI_AGENT_MAX_RECONNECT_DELAY_MS` (60 s); the recovery window is twice this.
    pub max_reconnect_delay: Duration,
    /// `KICI_JOB_HEARTBEAT_INTERVAL_MS` (60 s), also sent to agents in `register.ack`.
    pub job_heartbeat_interval: Duration,
    /// `KICI_STALE_DETECTOR_THRESHOLD_MULTIPLIER` (2).
    pub stale_threshold_multiplier: u32,
    /// `KICI_STALE_DETECTOR_SCAN_INTERVAL_MS` (60 s).
    pub stale_scan_interval: Duration,
    /// `KICI_QUEUE_DRAIN_INTERVAL_MS` (5 s): the periodic dispatch pass.
    pub queue_drain_interval: Duration,
    /// Ack-deadline and recovery-deadline sweeps (10 s).
    pub sweep_interval: Duration,
    /// Queue-expiry sweep (60 s).
    pub queue_expiry_interval: Duration,
    /// A forced cancel the agent does not answer within this ends the job `cancelled`
    /// anyway (§13 step 3, 60 s).
    pub forced_cancel_timeout: Duration,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            auth: AgentAuth::Token,
            auth_timeout: Duration::from_secs(5),
            registration_timeout: Duration::from_secs(10),
            heartbeat_unhealthy_after: Duration::from_secs(90),
            heartbeat_timeout: Duration::from_secs(180),
            dispatch_ack_timeout: Duration::from_secs(10),
            max_reconnect_delay: Duration::from_secs(60),
            job_heartbeat_interval: Duration::from_secs(60),
            stale_threshold_multiplier: 2,
            stale_scan_interval: Duration::from_secs(60),
            queue_drain_interval: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(10),
            queue_expiry_interval: Duration::from_secs(60),
            forced_cancel_timeout: Duration::from_secs(60),
        }
    }
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
            secret_key: None,
            bootstrap_admin_token: None,
            lock_cache_max: 500,
            lock_cache_ttl: Duration::from_secs(3600),
            trusted_proxies: Vec::new(),
            webhook_public_url: None,
            agents: AgentsConfig::default(),
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
    /// A universal-git forge (`POST /webhook/:orgId/generic/:name`).
    Git(Box<crate::provider::GitSettings>),
    /// A generic JSON webhook (registration dispatch, §8.2).
    Generic(Box<crate::provider::GenericSettings>),
    /// Repositories on the orchestrator's disk (§4.4).
    Local(Box<crate::provider::LocalSettings>),
}

/// Which [`crate::lock_source::LockSource`] serves a source.
#[derive(Debug, Clone)]
pub enum LockSourceConfig {
    /// `local-file`: repositories on disk at `<base>/<owner>/<name>`; the lock is read at the
    /// event's commit with git.
    LocalFile { base: PathBuf },
}
