//! The `seq-ack` outbox (`protocol.md` §12): every reliable frame gets the next `seq` when it
//! is created and stays here until the orchestrator acknowledges it, so frames produced while
//! disconnected are replayed in order after re-registration.
//!
//! Frame texts live in memory up to a small budget; beyond it they are appended to a spill
//! file under the work directory and read back when sent. Status frames are never dropped;
//! when the log limits are exceeded the oldest `log.chunk` frames are, and the next chunk of
//! the same step is preceded by a one-line marker saying how many lines were lost.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use kici_engine::protocol::reliability::{SeqCounter, dropped_lines_marker};
use kici_engine::protocol::{AgentMessage, LogChunk};

use crate::config::OutboxLimits;

/// Where a frame's text is.
#[derive(Debug)]
enum Body {
    Memory(String),
    Spilled { offset: u64, len: usize },
}

/// Which step a log chunk belongs to, and how many lines it holds (for the drop marker).
#[derive(Debug, Clone)]
struct LogMeta {
    run_id: String,
    job_id: String,
    step_index: i64,
    lines: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    bytes: usize,
    log: Option<LogMeta>,
    body: Body,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Outbox {
    limits: OutboxLimits,
    seq: SeqCounter,
    entries: VecDeque<Entry>,
    /// Highest `seq` written to the current connection.
    sent_up_to: u64,
    /// Bytes of frame text held in memory.
    memory_bytes: usize,
    log_chunks: usize,
    log_bytes: usize,
    /// Lines dropped per `(jobId, stepIndex)` since the last chunk of that step was queued.
    dropped: HashMap<(String, i64), (String, u64)>,
    spill_path: PathBuf,
    spill: Option<File>,
    spill_len: u64,
    next_marker_id: u64,
}

impl Outbox {
    pub(crate) fn new(limits: OutboxLimits, spill_path: PathBuf) -> Self {
        Outbox {
            limits,
            seq: SeqCounter::new(),
            entries: VecDeque::new(),
            sent_up_to: 0,
            memory_bytes: 0,
            log_chunks: 0,
            log_bytes: 0,
            dropped: HashMap::new(),
            spill_path,
            spill: None,
            spill_len: 0,
            next_marker_id: 0,
        }
    }

    /// Stamps `message` with the next `seq`, queues it, and returns that `seq`.
    pub(crate) fn push(&mut self, message: AgentMessage) -> u64 {
        if let AgentMessage::LogChunk(chunk) = &message
            && let Some((run_id, lost)) = self
                .dropped
                .remove(&(chunk.job_id.clone(), chunk.step_index))
        {
            self.next_marker_id += 1;
            let marker = LogChunk {
                message_id: format!("{}-dropped-{}", chunk.message_id, self.next_marker_id),
                run_id,
                job_id: chunk.job_id.clone(),
                step_index: chunk.step_index,
                lines: vec![dropped_lines_marker(lost)],
                timestamp: chunk.timestamp,
                seq: None,
            };
            self.push_one(AgentMessage::LogChunk(marker));
        }
        self.push_one(message)
    }

    fn push_one(&mut self, mut message: AgentMessage) -> u64 {
        let seq = self.seq.next_seq();
        message.set_seq(seq);
        let log = match &message {
            AgentMessage::LogChunk(c) => Some(LogMeta {
                run_id: c.run_id.clone(),
                job_id: c.job_id.clone(),
                step_index: c.step_index,
                lines: c.lines.len() as u64,
            }),
            _ => None,
        };
        let text = message.encode();
        let bytes = text.len();
        let body = if self.memory_bytes + bytes > self.limits.memory_bytes {
            match self.spill_write(&text) {
                Ok((offset, len)) => Body::Spilled { offset, len },
                Err(error) => {
                    // A full or read-only disk must not lose a status: keep it in memory.
                    tracing::warn!(%error, path = %self.spill_path.display(), "outbox spill failed; keeping the frame in memory");
                    self.memory_bytes += bytes;
                    Body::Memory(text)
                }
            }
        } else {
            self.memory_bytes += bytes;
            Body::Memory(text)
        };
        if log.is_some() {
            self.log_chunks += 1;
            self.log_bytes += bytes;
        }
        self.entries.push_back(Entry {
            seq,
            bytes,
            log,
            body,
        });
        self.enforce_log_limits();
        seq
    }

    /// Drops the oldest log chunks while the log limits are exceeded.
    fn enforce_log_limits(&mut self) {
        while self.log_chunks > self.limits.max_log_chunks
            || self.log_bytes > self.limits.max_log_bytes
        {
            let Some(pos) = self.entries.iter().position(|e| e.log.is_some()) else {
                return;
            };
            let Some(entry) = self.entries.remove(pos) else {
                return;
            };
            if let Some(meta) = &entry.log {
                let slot = self
                    .dropped
                    .entry((meta.job_id.clone(), meta.step_index))
                    .or_insert_with(|| (meta.run_id.clone(), 0));
                slot.1 += meta.lines;
            }
            self.forget(&entry);
        }
    }

    fn forget(&mut self, entry: &Entry) {
        if matches!(entry.body, Body::Memory(_)) {
            self.memory_bytes -= entry.bytes;
        }
        if entry.log.is_some() {
            self.log_chunks -= 1;
            self.log_bytes -= entry.bytes;
        }
    }

    fn spill_write(&mut self, text: &str) -> std::io::Result<(u64, usize)> {
        if self.spill.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&self.spill_path)?;
            self.spill = Some(file);
            self.spill_len = 0;
        }
        let offset = self.spill_len;
        if let Some(file) = self.spill.as_mut() {
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(text.as_bytes())?;
        }
        self.spill_len += text.len() as u64;
        Ok((offset, text.len()))
    }

    /// Everything with `seq <= up_to` was applied by the orchestrator.
    pub(crate) fn ack(&mut self, up_to: u64) {
        while self.entries.front().is_some_and(|e| e.seq <= up_to) {
            if let Some(entry) = self.entries.pop_front() {
                self.forget(&entry);
            }
        }
        if self
            .entries
            .iter()
            .all(|e| matches!(e.body, Body::Memory(_)))
            && self.spill.is_some()
        {
            // Nothing refers to the spill file any more: give the disk space back.
            self.spill = None;
            self.spill_len = 0;
            if let Err(error) = std::fs::remove_file(&self.spill_path) {
                tracing::debug!(%error, "removing the outbox spill file");
            }
        }
    }

    /// A new connection starts after `acked` (`register.ack.ackedSeq`): drop what it applied
    /// and send the rest again.
    pub(crate) fn reset_for_connection(&mut self, acked: u64) {
        self.ack(acked);
        self.sent_up_to = acked;
    }

    /// The next frame not yet written to the current connection, in `seq` order.
    pub(crate) fn next_unsent(&mut self) -> Option<(u64, String)> {
        let sent = self.sent_up_to;
        let entry = self.entries.iter().find(|e| e.seq > sent)?;
        let seq = entry.seq;
        let text = match &entry.body {
            Body::Memory(text) => text.clone(),
            Body::Spilled { offset, len } => {
                let (offset, len) = (*offset, *len);
                match self.spill_read(offset, len) {
                    Ok(text) => text,
                    Err(error) => {
                        // The frame is gone; skipping it leaves a gap, which the protocol
                        // tolerates, instead of wedging the outbox.
                        tracing::error!(%error, seq, "reading a spilled outbox frame failed");
                        self.sent_up_to = seq;
                        return self.next_unsent();
                    }
                }
            }
        };
        Some((seq, text))
    }

    /// `seq` was written to the connection.
    pub(crate) fn mark_sent(&mut self, seq: u64) {
        self.sent_up_to = self.sent_up_to.max(seq);
    }

    fn spill_read(&mut self, offset: u64, len: usize) -> std::io::Result<String> {
        let Some(file) = self.spill.as_mut() else {
            return Err(std::io::Error::other("spill file is not open"));
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf)?;
        String::from_utf8(buf).map_err(std::io::Error::other)
    }

    /// Highest `seq` written to the current connection.
    pub(crate) fn sent_up_to(&self) -> u64 {
        self.sent_up_to
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `seq` is still waiting for an acknowledgement.
    pub(crate) fn is_pending(&self, seq: u64) -> bool {
        self.entries.front().is_some_and(|e| e.seq <= seq)
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.spill.take().is_some() {
            let _ = std::fs::remove_file(&self.spill_path);
        }
    }
}
