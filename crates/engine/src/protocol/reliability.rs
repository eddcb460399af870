//! The `seq-ack` reliability extension (`protocol.md` §12, ours): capability negotiation,
//! duplicate filtering and the agent outbox limits.

/// The capability both sides list to enable sequenced, acknowledged frames.
pub const CAPABILITY_SEQ_ACK: &str = "seq-ack";

/// The orchestrator acknowledges at most this often while reliable frames arrive (and
/// immediately after a terminal `job.status`).
pub const ACK_INTERVAL_MS: u64 = 250;

/// Unacknowledged `log.chunk` frames an agent keeps before dropping the oldest.
pub const OUTBOX_MAX_LOG_CHUNKS: usize = 10_000;
/// Bytes of unacknowledged `log.chunk` frames an agent keeps before dropping the oldest.
pub const OUTBOX_MAX_LOG_BYTES: usize = 64 * 1024 * 1024;

/// `seq-ack` is on for a connection only when both the registration and its ack list it.
pub fn seq_ack_enabled(
    agent_capabilities: &[String],
    orchestrator_capabilities: &[String],
) -> bool {
    let has = |caps: &[String]| caps.iter().any(|c| c == CAPABILITY_SEQ_ACK);
    has(agent_capabilities) && has(orchestrator_capabilities)
}

/// What the orchestrator does with an incoming frame, given the last `seq` it applied for
/// the sending agent instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqDecision {
    /// Apply it; afterwards `lastApplied` becomes `seq` (when the frame has one).
    Apply,
    /// Already applied before a reconnect: drop it, but still acknowledge.
    Duplicate,
}

/// Frames without `seq` (non-reliable frames, or an agent without `seq-ack`) are always
/// applied; gaps are allowed because dropped log chunks leave holes.
pub fn seq_decision(seq: Option<u64>, last_applied: u64) -> SeqDecision {
    match seq {
        Some(seq) if seq <= last_applied => SeqDecision::Duplicate,
        _ => SeqDecision::Apply,
    }
}

/// The single-line chunk an agent sends before the next chunk of a step whose older chunks
/// it dropped from a full outbox.
pub fn dropped_lines_marker(dropped_lines: u64) -> String {
    format!("[{dropped_lines} log lines dropped while the orchestrator was unreachable]")
}

/// Allocates `seq` values for one agent process: strictly increasing from 1, continuing
/// across reconnects (so it lives as long as the process, not the connection).
#[derive(Debug)]
pub struct SeqCounter {
    last: u64,
}

impl SeqCounter {
    pub fn new() -> Self {
        SeqCounter { last: 0 }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.last = self.last.saturating_add(1);
        self.last
    }

    /// The last value handed out (0 before the first).
    pub fn last(&self) -> u64 {
        self.last
    }
}

impl Default for SeqCounter {
    fn default() -> Self {
        Self::new()
    }
}
