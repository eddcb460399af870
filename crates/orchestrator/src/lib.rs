//! The orchestrator server (`orchestrator.md`): webhook ingress into the durable inbox, the
//! inbox processor that turns deliveries into runs and jobs, health, readiness and metrics.
//!
//! Shape: [`Config`] → [`Orchestrator::start`] → [`Handle`]; [`api::app`] builds the axum
//! router from an [`api::AppState`] so handlers are tested with `oneshot`. Every HTTP
//! refusal is an [`ApiError`], turned into a response in one place.
//!
//! **Invariant:** this crate runs no user code (it never links `kici-runtime` or
//! `kici-executor`) and holds no SQL (that is `kici-store`).

pub mod agents;
pub mod api;
pub mod config;
pub mod error;
pub mod events;
pub mod git;
pub mod lock_cache;
pub mod lock_source;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod provider;
pub mod secrets;
pub mod server;
pub mod source;
pub mod startup;

pub use api::{AppState, app};
pub use config::{
    AgentAuth, AgentsConfig, Config, InboxConfig, LockSourceConfig, SourceConfig, SourceKind,
};
pub use error::{ApiError, Error};
pub use server::{Handle, Orchestrator};
pub use source::{Source, Sources};

/// Wall-clock time in Unix milliseconds; the store takes time as an argument.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
