//! The agent's configuration (`agent.md` §2) and the facts it reports about its host
//! (`protocol.md` §5.2, §9.1). The binary parses `KICI_*` into an [`AgentConfig`]; this crate
//! never reads the environment for configuration.

use std::path::PathBuf;
use std::time::Duration;

use kici_engine::protocol::Secret;
use kici_engine::protocol::limits::{
    DEFAULT_JOB_HEARTBEAT_INTERVAL_MS, DEFAULT_MAX_RECONNECT_DELAY_MS, HEARTBEAT_INTERVAL_MS,
};
use kici_engine::protocol::reliability::{OUTBOX_MAX_LOG_BYTES, OUTBOX_MAX_LOG_CHUNKS};

/// Everything [`crate::run`] needs. `Debug` is safe to log: the token prints as a mask.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `KICI_ORCHESTRATOR_URL`, used verbatim (`ws://` or `wss://`). Never carries the token.
    pub orchestrator_url: String,
    /// `KICI_AGENT_TOKEN`; `None` is no-auth mode (`protocol.md` §3.2).
    pub token: Option<Secret>,
    pub agent_id: String,
    /// Labels from the configuration. The automatic `kici:os:*`, `kici:arch:*` and
    /// `kici:host:*` labels are added by [`AgentConfig::effective_labels`].
    pub labels: Vec<String>,
    /// Slots (`KICI_MAX_CONCURRENT_JOBS`), at least 1.
    pub max_concurrent_jobs: u32,
    /// Parent of the per-job directories and of the outbox spill file.
    pub work_dir: PathBuf,
    /// Connection `heartbeat` period; also the WebSocket Ping period.
    pub heartbeat_interval: Duration,
    /// `job.heartbeat` period per running job, unless `register.ack` overrides it.
    pub job_heartbeat_interval: Duration,
    /// Upper bound of the reconnect backoff.
    pub max_reconnect_delay: Duration,
    /// Nothing received for this long: the connection is considered dead.
    pub silence_timeout: Duration,
    pub outbox: OutboxLimits,
    /// On [`crate::Control::Terminate`]: how long running jobs may still finish on their own
    /// before they are cancelled gracefully (`KICI_AGENT_SHUTDOWN_GRACE_MS`).
    pub job_stop_grace: Duration,
    /// On terminate: the bound of the whole graceful cancel, after which jobs are force-killed
    /// (`KICI_AGENT_SHUTDOWN_CANCEL_MS`).
    pub shutdown_cancel_timeout: Duration,
    /// `KICI_DEFAULT_STEP_TIMEOUT_MS`.
    pub default_step_timeout: Duration,
    /// `KICI_RUNNER_MEMORY_LIMIT_MB`: QuickJS heap limit per job.
    pub memory_limit_mb: usize,
    /// The host name reported in `agent.register` and `kici:host:*`.
    pub hostname: String,
    /// The kici version reported in `agent.register`.
    pub version: String,
}

/// Limits of the `seq-ack` outbox (`protocol.md` §12).
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Frame bytes kept in memory; frames beyond this are written to a spill file under the
    /// work directory until they are acknowledged.
    pub memory_bytes: usize,
    /// Unacknowledged `log.chunk` frames before the oldest are dropped.
    pub max_log_chunks: usize,
    /// Unacknowledged `log.chunk` bytes before the oldest are dropped.
    pub max_log_bytes: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            // Small on purpose: an idle agent should stay within a few MiB, and a long outage
            // belongs on disk.
            memory_bytes: 512 * 1024,
            max_log_chunks: OUTBOX_MAX_LOG_CHUNKS,
            max_log_bytes: OUTBOX_MAX_LOG_BYTES,
        }
    }
}

impl AgentConfig {
    /// A configuration with the spec's defaults for everything but the three facts an agent
    /// cannot guess.
    pub fn new(
        orchestrator_url: impl Into<String>,
        agent_id: impl Into<String>,
        work_dir: PathBuf,
    ) -> Self {
        AgentConfig {
            orchestrator_url: orchestrator_url.into(),
            token: None,
            agent_id: agent_id.into(),
            labels: Vec::new(),
            max_concurrent_jobs: 1,
            work_dir,
            heartbeat_interval: Duration::from_millis(HEARTBEAT_INTERVAL_MS),
            job_heartbeat_interval: Duration::from_millis(DEFAULT_JOB_HEARTBEAT_INTERVAL_MS),
            max_reconnect_delay: Duration::from_millis(DEFAULT_MAX_RECONNECT_DELAY_MS),
            silence_timeout: Duration::from_millis(
                kici_engine::protocol::limits::AGENT_SILENCE_TIMEOUT_MS,
            ),
            outbox: OutboxLimits::default(),
            job_stop_grace: Duration::from_secs(10),
            shutdown_cancel_timeout: Duration::from_secs(60),
            default_step_timeout: kici_executor::DEFAULT_STEP_TIMEOUT,
            memory_limit_mb: 1024,
            hostname: local_hostname(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Configured labels followed by the automatic ones, without duplicates.
    pub fn effective_labels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for label in self
            .labels
            .iter()
            .cloned()
            .chain(auto_labels(&self.hostname))
        {
            if !out.contains(&label) {
                out.push(label);
            }
        }
        out
    }
}

/// The self-reported labels of `protocol.md` §9.1 for this process's OS and architecture.
pub fn auto_labels(hostname: &str) -> Vec<String> {
    let mut labels = Vec::new();
    match std::env::consts::OS {
        "linux" => labels.push("kici:os:linux".to_string()),
        "macos" => {
            labels.push("kici:os:macos".to_string());
            labels.push("kici:os:darwin".to_string());
        }
        "windows" => {
            labels.push("kici:os:windows".to_string());
            labels.push("kici:os:win32".to_string());
        }
        other => labels.push(format!("kici:os:{other}")),
    }
    match std::env::consts::ARCH {
        "x86_64" => {
            labels.push("kici:arch:x64".to_string());
            labels.push("kici:arch:amd64".to_string());
        }
        "aarch64" => labels.push("kici:arch:arm64".to_string()),
        other => labels.push(format!("kici:arch:{other}")),
    }
    if !hostname.is_empty() {
        labels.push(format!("kici:host:{hostname}"));
    }
    labels
}

/// `platform` of `agent.register`: Node's names, as the reference reported them.
pub(crate) fn platform() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    }
}

/// `arch` of `agent.register`: Node's names.
pub(crate) fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The kernel's host name; `localhost` when it cannot be read.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Total memory in MiB from `/proc/meminfo`, when available.
pub(crate) fn total_memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The real uid of this process, from `/proc/self/status` (gate 0 of `protocol.md` §3.3).
pub(crate) fn running_as_uid() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
