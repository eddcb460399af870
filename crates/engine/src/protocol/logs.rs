//! Agent-side log batching rules (`protocol.md` §11): which lines go into which
//! `log.chunk`, and when. Time comes in as an argument; the caller owns the timer and
//! wraps each batch into a frame (`messageId`, `seq`, `timestamp`).

use super::limits::MAX_LOG_LINE_BYTES;

/// A batch is flushed when it holds this many lines...
pub const BATCH_MAX_LINES: usize = 50;
/// ...or this long after its first line arrived...
pub const BATCH_MAX_DELAY_MS: u64 = 100;
/// ...or when it reaches this many bytes (ours).
pub const BATCH_MAX_BYTES: usize = 256 * 1024;
/// `maxLogSizeBytes` default: the per-step cap.
pub const DEFAULT_MAX_LOG_SIZE_BYTES: u64 = 10 * 1024 * 1024;

/// The line that replaces the first line over the per-step cap.
pub fn truncation_marker(cap_bytes: u64) -> String {
    format!("[TRUNCATED: log output exceeded {cap_bytes} bytes]")
}

/// `line` cut into pieces of at most [`MAX_LOG_LINE_BYTES`] at character boundaries; an
/// empty line stays one empty piece.
pub fn split_line(line: &str) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(line.len() / MAX_LOG_LINE_BYTES + 1);
    let mut rest = line;
    loop {
        let piece = super::close::truncate_utf8(rest, MAX_LOG_LINE_BYTES);
        // A single character is at most 4 bytes, far below the limit, so every piece is
        // non-empty unless the whole line is empty, and the loop always advances.
        pieces.push(piece);
        rest = &rest[piece.len()..];
        if rest.is_empty() {
            return pieces;
        }
    }
}

/// The batch state of one `(jobId, stepIndex)`.
#[derive(Debug)]
pub struct StepLogBatcher {
    cap_bytes: u64,
    pending: Vec<String>,
    pending_bytes: usize,
    first_pending_at: Option<u64>,
    /// UTF-8 bytes of user lines sent (or queued to be sent), newlines excluded. This is both
    /// the running total the cap is checked against and `logBytesStreamed`.
    counted_bytes: u64,
    truncated: bool,
}

impl StepLogBatcher {
    pub fn new(cap_bytes: u64) -> Self {
        StepLogBatcher {
            cap_bytes,
            pending: Vec::new(),
            pending_bytes: 0,
            first_pending_at: None,
            counted_bytes: 0,
            truncated: false,
        }
    }

    /// Adds one line (without its newline) produced at `now_ms`. Returns the batches to send
    /// now, in order: an overdue batch first, then any batch this line filled.
    pub fn push(&mut self, line: &str, now_ms: u64) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        if self.truncated {
            return out;
        }
        if let Some(batch) = self.poll(now_ms) {
            out.push(batch);
        }
        for piece in split_line(line) {
            if self.counted_bytes >= self.cap_bytes {
                self.append(truncation_marker(self.cap_bytes), now_ms);
                self.truncated = true;
                out.extend(self.take());
                return out;
            }
            self.counted_bytes = self.counted_bytes.saturating_add(piece.len() as u64);
            self.append(piece.to_owned(), now_ms);
            if self.pending.len() >= BATCH_MAX_LINES || self.pending_bytes >= BATCH_MAX_BYTES {
                out.extend(self.take());
            }
        }
        out
    }

    /// When the pending batch is due, if there is one.
    pub fn deadline(&self) -> Option<u64> {
        self.first_pending_at
            .map(|t| t.saturating_add(BATCH_MAX_DELAY_MS))
    }

    /// The pending batch, if its deadline has passed at `now_ms`.
    pub fn poll(&mut self, now_ms: u64) -> Option<Vec<String>> {
        match self.deadline() {
            Some(deadline) if now_ms >= deadline => self.take(),
            _ => None,
        }
    }

    /// The remaining batch at step end, to send before the terminal `step.status`.
    pub fn finish(&mut self) -> Option<Vec<String>> {
        self.take()
    }

    /// `logBytesStreamed` for the terminal `step.status`.
    pub fn bytes_streamed(&self) -> u64 {
        self.counted_bytes
    }

    /// The cap was hit; later lines of the step are discarded.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    fn append(&mut self, line: String, now_ms: u64) {
        self.first_pending_at.get_or_insert(now_ms);
        self.pending_bytes += line.len();
        self.pending.push(line);
    }

    fn take(&mut self) -> Option<Vec<String>> {
        if self.pending.is_empty() {
            return None;
        }
        self.pending_bytes = 0;
        self.first_pending_at = None;
        Some(std::mem::take(&mut self.pending))
    }
}
