//! In-process change notifications (run, job, step, log) for live followers such as the SSE
//! endpoint. A notification names what changed; followers read the current rows from the
//! store, so a lagging subscriber loses nothing but repeated wake-ups.

use tokio::sync::broadcast;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Run {
        run_id: String,
    },
    Job {
        run_id: String,
        job_id: String,
    },
    Step {
        run_id: String,
        job_id: String,
        step_index: i64,
    },
    /// New log lines were stored for the step.
    Log {
        run_id: String,
        job_id: String,
        step_index: i64,
    },
}

impl Change {
    pub fn run_id(&self) -> &str {
        match self {
            Change::Run { run_id }
            | Change::Job { run_id, .. }
            | Change::Step { run_id, .. }
            | Change::Log { run_id, .. } => run_id,
        }
    }
}

/// A bounded broadcast of [`Change`]s. Publishing never blocks; a subscriber that falls more
/// than the capacity behind sees `Lagged` and re-reads everything it follows.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Change>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(4096)
    }
}

impl EventBus {
    pub fn new(capacity: usize) -> EventBus {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventBus { sender }
    }

    pub fn publish(&self, change: Change) {
        // No subscribers is the common case and not an error.
        let _ = self.sender.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
