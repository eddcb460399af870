//! Per-source sliding-window rate limit of the generic route (`orchestrator.md` §4.2 step 3):
//! at most `rpm` accepted requests in any 60 s window; a refused request learns when the
//! oldest counted request leaves the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Request times per source, in memory (single node; a restart forgets them).
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// Counts a request for `key`; `Err(seconds)` when the limit is spent, with the seconds
    /// until a slot frees (at least 1). `rpm = 0` means unlimited.
    pub fn check(&self, key: &str, rpm: u32, now: Instant) -> Result<(), u64> {
        if rpm == 0 {
            return Ok(());
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let window = windows.entry(key.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() >= rpm as usize {
            let oldest = window.front().copied().unwrap_or(now);
            let wait = WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        window.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_the_window_slides() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        assert!(limiter.check("s", 2, t0).is_ok());
        assert!(limiter.check("s", 2, t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(limiter.check("s", 2, t0 + Duration::from_secs(20)), Err(40));
        assert!(limiter.check("other", 2, t0).is_ok());
        assert!(limiter.check("s", 2, t0 + Duration::from_secs(60)).is_ok());
        assert!(limiter.check("s", 0, t0).is_ok());
    }
}
