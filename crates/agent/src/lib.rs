//! The KiCI agent: dials the orchestrator over WebSocket, authenticates and registers
//! (`protocol.md` §3), takes dispatched jobs (§6), fetches the exact commit, checks the lock's
//! content hash, runs each job with `kici-executor` on its own thread, and ships statuses and
//! logs through a sequenced outbox that survives reconnects (§12–§13).
//!
//! The binary maps configuration and signals onto [`AgentConfig`] and [`Control`] and calls
//! [`run`]; this crate reads no `KICI_*` variables, installs no tracing subscriber and never
//! exits the process. It must never depend on the store or the orchestrator.

mod agent;
mod clone;
mod config;
mod job;
mod outbox;

pub use agent::run;
pub use config::{AgentConfig, OutboxLimits, auto_labels, local_hostname};

/// What the binary asks of a running agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM/SIGINT: take no new work, give running jobs [`AgentConfig::job_stop_grace`],
    /// then cancel them gracefully (bounded by [`AgentConfig::shutdown_cancel_timeout`]),
    /// deliver their final statuses and exit. A second `Terminate` force-kills at once.
    Terminate,
    /// SIGUSR1: take no new work (dispatches are rejected with `draining`), let running jobs
    /// finish, then exit.
    Drain,
}

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A drain finished: every running job completed.
    Drained,
    /// A terminate finished; `force_killed` jobs had to be killed without their hooks
    /// (the binary exits 1 when it is non-zero).
    Terminated { force_killed: usize },
}

/// Why the agent stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `auth.failure` or close 4010: the orchestrator refused this agent for good
    /// (`protocol.md` §13); reconnecting would not help.
    #[error("the orchestrator refused the agent: {reason}")]
    AuthRejected { reason: String },
    #[error("invalid orchestrator URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("work directory {path}: {source}")]
    WorkDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `n` random characters from `[a-z0-9]`.
pub(crate) fn random_lower_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Random bytes from the OS; falls back to clock-derived bytes if the OS source fails, which
/// only weakens uniqueness of directory names and ids, never a secret.
pub(crate) fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
}
