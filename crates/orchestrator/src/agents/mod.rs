//! The orchestrator's agent side (`protocol.md`, `orchestrator.md` §9–§13): the `/ws`
//! endpoint with its handshake and per-connection task ([`connection`]), the in-memory
//! [`Registry`] of connected agents and their slots, dispatch from the queue
//! ([`dispatch`]), the agents' reports ([`reports`]), DAG progression ([`progress`]),
//! liveness and reconnection ([`liveness`]) and cancellation ([`cancel`]).
//!
//! The registry is the only in-memory state and is never the source of truth for a job:
//! every status lives in the store and is written through the state machine. The registry
//! knows which connection holds which job, so frames can be routed and slots counted.

mod cancel;
mod connection;
mod dispatch;
mod liveness;
mod progress;
mod registry;
mod reports;

pub use cancel::{CancelOptions, cancel_job, cancel_job_with, cancel_run, cancel_run_with};
pub use connection::ws_handler;
pub use registry::Registry;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::AppState;

impl AppState {
    /// The connected agents.
    pub fn agents(&self) -> &Registry {
        &self.inner.agents
    }

    /// Asks the dispatcher for a pass: new queue rows, a freed slot, a new agent.
    pub fn wake_dispatch(&self) {
        self.inner.dispatch_wake.notify_one();
    }
}

/// Starts the dispatcher and the liveness sweeper on `tracker`, and makes agent
/// connections stop (close 1001) when `cancel` fires. Call once per server, after
/// [`recover_at_start`].
pub fn spawn_tasks(state: &AppState, tracker: &TaskTracker, cancel: &CancellationToken) {
    state.agents().attach(tracker.clone(), cancel.clone());
    tracker.spawn(dispatch::run_dispatcher(state.clone(), cancel.clone()));
    tracker.spawn(liveness::run_sweeper(state.clone(), cancel.clone()));
}

/// An agent token was revoked: closes its connected agents with 4010 and moves their jobs
/// as on a disconnect. Returns how many agents were closed.
pub async fn close_agents_of_token(state: &AppState, token_id: &str) -> usize {
    liveness::token_revoked(state, token_id).await
}

/// Start-up recovery (`orchestrator.md` §10): every dispatch held by an agent that is not
/// connected (at start: all of them) enters recovery with a fresh deadline, so its agent
/// can reclaim it when it reconnects. Runs before the listener accepts agents.
pub async fn recover_at_start(state: &AppState) -> Result<(), kici_store::Error> {
    liveness::recover_unconnected(state).await
}
