//! The orchestrator's per-connection rate limiter (`protocol.md` §15): two token buckets,
//! messages and bytes, checked together. Ours: instead of dropping a frame the caller stops
//! reading for the returned wait, so nothing is lost.

use super::limits::{
    RATE_BYTES_CAPACITY, RATE_BYTES_PER_SEC, RATE_MESSAGES_CAPACITY, RATE_MESSAGES_PER_SEC,
};

/// The limiter's answer for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Both buckets had room and were debited.
    Admit,
    /// Stop reading for this long, then ask again with the same frame.
    WaitMs(u64),
    /// Larger than the byte bucket could ever hold: close with 4003.
    TooLarge,
}

/// Both buckets of one connection. Time is an argument (milliseconds on any monotonic clock).
#[derive(Debug)]
pub struct RateLimiter {
    messages: f64,
    bytes: f64,
    last_ms: u64,
}

impl RateLimiter {
    /// Full buckets at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        RateLimiter {
            messages: RATE_MESSAGES_CAPACITY as f64,
            bytes: RATE_BYTES_CAPACITY as f64,
            last_ms: now_ms,
        }
    }

    /// Whether a frame of `frame_bytes` (UTF-8 length) may be processed at `now_ms`.
    /// `heartbeat` frames are exempt and must not be passed here.
    pub fn admit(&mut self, frame_bytes: usize, now_ms: u64) -> Admission {
        if frame_bytes > RATE_BYTES_CAPACITY {
            return Admission::TooLarge;
        }
        self.refill(now_ms);
        let need_bytes = frame_bytes as f64;
        if self.messages >= 1.0 && self.bytes >= need_bytes {
            self.messages -= 1.0;
            self.bytes -= need_bytes;
            return Admission::Admit;
        }
        let wait_messages = (1.0 - self.messages).max(0.0) * 1000.0 / RATE_MESSAGES_PER_SEC as f64;
        let wait_bytes = (need_bytes - self.bytes).max(0.0) * 1000.0 / RATE_BYTES_PER_SEC as f64;
        // At least 1 ms so a caller looping on the answer always makes progress.
        let wait = wait_messages.max(wait_bytes).ceil().max(1.0);
        Admission::WaitMs(wait as u64)
    }

    fn refill(&mut self, now_ms: u64) {
        // A clock that goes backwards refills nothing rather than panicking or draining.
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.last_ms = self.last_ms.max(now_ms);
        self.messages = (self.messages + elapsed * RATE_MESSAGES_PER_SEC as f64 / 1000.0)
            .min(RATE_MESSAGES_CAPACITY as f64);
        self.bytes = (self.bytes + elapsed * RATE_BYTES_PER_SEC as f64 / 1000.0)
            .min(RATE_BYTES_CAPACITY as f64);
    }
}
