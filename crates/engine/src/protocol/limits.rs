//! Numbers of the protocol that both tiers must agree on: frame sizes, string limits, rate
//! limits (§15), timers (§3, §6, §10, §13) and the reconnect backoff. Configurable values
//! are the defaults; the tiers take the configured value as an argument.

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

// --- frame sizes (§2, §14, §15) ---

/// Transport limit, both directions, after decompression.
pub const MAX_FRAME_BYTES: usize = 25 * MIB;
/// An agent frame above this closes the connection with 4003 (`message too large`).
pub const MAX_AGENT_MESSAGE_BYTES: usize = 4 * MIB;
/// What the orchestrator actually accepts from an agent: a frame larger than the byte
/// bucket's capacity could never be admitted by the rate limiter, and §15 closes on it
/// like on an oversized frame, so the bucket capacity (2 MiB) is the effective limit.
pub const AGENT_FRAME_LIMIT_BYTES: usize = if RATE_BYTES_CAPACITY < MAX_AGENT_MESSAGE_BYTES {
    RATE_BYTES_CAPACITY
} else {
    MAX_AGENT_MESSAGE_BYTES
};
/// What an agent accepts from the orchestrator (`job.dispatch` carries the event payload).
pub const ORCHESTRATOR_FRAME_LIMIT_BYTES: usize = MAX_FRAME_BYTES;
/// permessage-deflate threshold.
pub const COMPRESSION_THRESHOLD_BYTES: usize = 128;

// --- string limits applied by the orchestrator (§16) ---

pub const MAX_ID_CHARS: usize = 128;
pub const MAX_STEP_NAME_CHARS: usize = 256;
/// `error` texts longer than this are truncated (not refused), ending in
/// [`TRUNCATED_SUFFIX`].
pub const MAX_ERROR_BYTES: usize = 64 * KIB;
pub const MAX_LOG_LINE_BYTES: usize = 64 * KIB;
pub const TRUNCATED_SUFFIX: &str = "… [truncated]";

/// `text` limited to [`MAX_ERROR_BYTES`] including the suffix; `None` when it fits.
pub fn truncate_error(text: &str) -> Option<String> {
    if text.len() <= MAX_ERROR_BYTES {
        return None;
    }
    let head = super::close::truncate_utf8(text, MAX_ERROR_BYTES - TRUNCATED_SUFFIX.len());
    Some(format!("{head}{TRUNCATED_SUFFIX}"))
}

// --- rate limits (§15) ---

pub const RATE_MESSAGES_CAPACITY: u64 = 200;
pub const RATE_MESSAGES_PER_SEC: u64 = 100;
/// UTF-8 bytes of the frame text (ours; the reference counted UTF-16 units).
pub const RATE_BYTES_CAPACITY: usize = 2 * MIB;
pub const RATE_BYTES_PER_SEC: usize = 512 * KIB;
/// Reads throttled continuously for longer than this close the connection with 4003.
pub const RATE_THROTTLE_CLOSE_AFTER_MS: u64 = 60_000;

// --- handshake (§3) ---

pub const AUTH_TIMEOUT_MS: u64 = 5_000;
pub const REGISTRATION_TIMEOUT_MS: u64 = 10_000;

// --- heartbeats and liveness (§10) ---

/// Agent → orchestrator `heartbeat` period.
pub const HEARTBEAT_INTERVAL_MS: u64 = 30_000;
pub const HEARTBEAT_CHECK_INTERVAL_MS: u64 = 30_000;
/// Silence after which the orchestrator logs the agent as unhealthy.
pub const HEARTBEAT_UNHEALTHY_AFTER_MS: u64 = 90_000;
/// Silence after which the orchestrator closes with 4004.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 180_000;
/// Agent WebSocket Ping period (ours).
pub const PING_INTERVAL_MS: u64 = 30_000;
/// Agent side: nothing received for this long → close and reconnect (ours).
pub const AGENT_SILENCE_TIMEOUT_MS: u64 = 90_000;
/// `KICI_JOB_HEARTBEAT_INTERVAL_MS` default.
pub const DEFAULT_JOB_HEARTBEAT_INTERVAL_MS: u64 = 60_000;
/// `KICI_STALE_DETECTOR_THRESHOLD_MULTIPLIER` default.
pub const DEFAULT_STALE_THRESHOLD_MULTIPLIER: u64 = 2;

/// A running job is stale when its last job heartbeat is older than this.
pub fn stale_threshold_ms(job_heartbeat_interval_ms: u64, multiplier: u64) -> u64 {
    job_heartbeat_interval_ms.saturating_mul(multiplier)
}

// --- dispatch (§6) ---

/// `KICI_DISPATCH_ACK_TIMEOUT_MS` default.
pub const DEFAULT_DISPATCH_ACK_TIMEOUT_MS: u64 = 10_000;
pub const MIN_DISPATCH_ACK_TIMEOUT_MS: u64 = 1_000;
/// A requeue that would reach this many dispatch attempts fails the job instead.
pub const DISPATCH_ATTEMPT_BUDGET: u32 = 5;
/// Frames about a job that finished less than this long ago still pass the ownership check.
pub const OWNERSHIP_GRACE_MS: u64 = 30_000;
/// Agent-side wait for `job.concurrency.ack` before the job fails.
pub const CONCURRENCY_REPORT_TIMEOUT_MS: u64 = 30_000;

/// The configured ack timeout, raised to the minimum.
pub fn dispatch_ack_timeout_ms(configured: u64) -> u64 {
    configured.max(MIN_DISPATCH_ACK_TIMEOUT_MS)
}

// --- reconnection (§13) ---

/// `KICI_AGENT_MAX_RECONNECT_DELAY_MS` default.
pub const DEFAULT_MAX_RECONNECT_DELAY_MS: u64 = 60_000;
pub const RECONNECT_BASE_DELAY_MS: u64 = 1_000;
pub const RECONNECT_FACTOR: f64 = 1.5;
/// Jitter is uniform in `[0, RECONNECT_MAX_JITTER)` of the un-jittered delay.
pub const RECONNECT_MAX_JITTER: f64 = 0.5;
/// After `register.ack`, a job listed in `completedJobs` waits this long for its replayed
/// terminal status before it is failed.
pub const COMPLETED_JOB_REPLAY_WINDOW_MS: u64 = 30_000;

/// The delay before reconnect attempt `attempt` (0 for the first attempt after a drop):
/// `min(1000 · 1.5^attempt · (1 + 0.5 · random), max_delay)`. `random` is a uniform sample
/// from `[0, 1)` supplied by the caller (the engine has no randomness); values outside that
/// range, and NaN, are clamped into it.
pub fn reconnect_delay_ms(attempt: u32, random: f64, max_delay_ms: u64) -> u64 {
    let random = if random.is_nan() {
        0.0
    } else {
        random.clamp(0.0, 1.0)
    };
    // `powi` overflows to infinity for large attempts; `min` then settles on the cap.
    let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
    let delay = RECONNECT_BASE_DELAY_MS as f64
        * RECONNECT_FACTOR.powi(exponent)
        * (1.0 + RECONNECT_MAX_JITTER * random);
    if delay >= max_delay_ms as f64 {
        max_delay_ms
    } else {
        // In range and non-negative, so the conversion neither saturates nor wraps.
        delay as u64
    }
}

/// How long the orchestrator keeps a disconnected static agent's jobs in `recovering`:
/// twice the agents' maximum reconnect delay (120 s by default).
pub fn recovery_window_ms(max_reconnect_delay_ms: u64) -> u64 {
    max_reconnect_delay_ms.saturating_mul(2)
}

// --- cancellation (§8, orchestrator.md §13) ---

pub const DEFAULT_GRACE_PERIOD_SECS: u64 = 30;
pub const MAX_GRACE_PERIOD_SECS: u64 = 300;
/// Per cancel hook.
pub const CANCEL_HOOK_TIMEOUT_MS: u64 = 5 * 60_000;
/// After a forced cancel with no report from the agent, the orchestrator cancels the job
/// itself.
pub const FORCED_CANCEL_REPORT_TIMEOUT_MS: u64 = 60_000;
