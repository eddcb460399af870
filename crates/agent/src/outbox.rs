//! The `seq-ack` outbox (`protocol.md` §12): every reliable frame gets the next `seq` when it
//! is created and stays here until the orchestrator acknowledges it, so frames produced while
//! disconnected are replayed in order after re-registration.
//!
//! Frame texts live in memory up to a small budget; beyond it they are appended to a spill
//! file under the work directory and read back when sent. Status frames are never dropped;
//! when the log limits are exceeded the oldest unsent `log.chunk` frames are. A dropped chunk
//! becomes a one-line marker saying how many lines were lost (keeping its `seq`), or is added
//! to the marker just before it of the same step, so the next chunk of that step is preceded
//! by one marker with the exact count, and the markers themselves stay few and small.

use std::collections::VecDeque;
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
    message_id: String,
    run_id: String,
    job_id: String,
    step_index: i64,
    timestamp: u64,
    /// Lines of the chunk; for a marker, the lines it stands for.
    lines: u64,
    /// A dropped-lines marker: not counted against the log limits, never dropped.
    marker: bool,
}

impl LogMeta {
    fn same_step(&self, other: &LogMeta) -> bool {
        self.step_index == other.step_index && self.job_id == other.job_id
    }
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
    /// Highest `seq` acknowledged.
    acked_up_to: u64,
    /// Unacknowledged `log.chunk` frames (markers not included) and their bytes.
    log_chunks: usize,
    log_bytes: usize,
    spill_path: PathBuf,
    spill: Option<File>,
    spill_len: u64,
}

impl Outbox {
    pub(crate) fn new(limits: OutboxLimits, spill_path: PathBuf) -> Self {
        Outbox {
            limits,
            seq: SeqCounter::new(),
            entries: VecDeque::new(),
            sent_up_to: 0,
            memory_bytes: 0,
            acked_up_to: 0,
            log_chunks: 0,
            log_bytes: 0,
            spill_path,
            spill: None,
            spill_len: 0,
        }
    }

    /// Stamps `message` with the next `seq`, queues it, and returns that `seq`.
    pub(crate) fn push(&mut self, mut message: AgentMessage) -> u64 {
        let seq = self.seq.next_seq();
        message.set_seq(seq);
        let log = match &message {
            AgentMessage::LogChunk(c) => Some(LogMeta {
                message_id: c.message_id.clone(),
                run_id: c.run_id.clone(),
                job_id: c.job_id.clone(),
                step_index: c.step_index,
                timestamp: c.timestamp,
                lines: c.lines.len() as u64,
                marker: false,
            }),
            _ => None,
        };
        let text = message.encode();
        let bytes = text.len();
        let body = self.store(text);
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

    /// Keeps `text` in memory within the budget, otherwise in the spill file.
    fn store(&mut self, text: String) -> Body {
        let bytes = text.len();
        if self.memory_bytes + bytes > self.limits.memory_bytes {
            match self.spill_write(&text) {
                Ok((offset, len)) => return Body::Spilled { offset, len },
                Err(error) => {
                    // A full or read-only disk must not lose a status: keep it in memory.
                    tracing::warn!(%error, path = %self.spill_path.display(), "outbox spill failed; keeping the frame in memory");
                }
            }
        }
        self.memory_bytes += bytes;
        Body::Memory(text)
    }

    /// Drops the oldest unsent log chunks while the log limits are exceeded. Chunks already
    /// written to the current connection are left alone: the orchestrator has probably
    /// applied them, and counting them as lost would be wrong.
    fn enforce_log_limits(&mut self) {
        while self.log_chunks > self.limits.max_log_chunks
            || self.log_bytes > self.limits.max_log_bytes
        {
            let sent = self.sent_up_to;
            let Some(pos) = self
                .entries
                .iter()
                .position(|e| e.seq > sent && e.log.as_ref().is_some_and(|m| !m.marker))
            else {
                return;
            };
            let Some(meta) = self.entries[pos].log.clone() else {
                return;
            };
            // Every unsent log entry before `pos` is a marker (`pos` is the oldest unsent
            // chunk), so a marker of the same step there directly precedes the lost lines.
            let absorber = (0..pos)
                .rev()
                .take_while(|i| self.entries[*i].seq > sent)
                .find(|i| {
                    self.entries[*i]
                        .log
                        .as_ref()
                        .is_some_and(|m| m.marker && m.same_step(&meta))
                });
            self.log_chunks -= 1;
            self.log_bytes -= self.entries[pos].bytes;
            match absorber {
                Some(at) => {
                    if let Some(entry) = self.entries.remove(pos) {
                        self.release_body(&entry);
                    }
                    if let Some(m) = self.entries[at].log.as_mut() {
                        m.lines += meta.lines;
                    }
                    self.rewrite_marker(at);
                }
                None => {
                    if let Some(m) = self.entries[pos].log.as_mut() {
                        m.marker = true;
                    }
                    self.rewrite_marker(pos);
                }
            }
        }
    }

    /// Replaces the text of the marker at `index` with one that states its current count.
    fn rewrite_marker(&mut self, index: usize) {
        let entry = &self.entries[index];
        let Some(meta) = entry.log.as_ref() else {
            return;
        };
        let text = AgentMessage::LogChunk(LogChunk {
            message_id: meta.message_id.clone(),
            run_id: meta.run_id.clone(),
            job_id: meta.job_id.clone(),
            step_index: meta.step_index,
            lines: vec![dropped_lines_marker(meta.lines)],
            timestamp: meta.timestamp,
            seq: Some(entry.seq),
        })
        .encode();
        let old = std::mem::replace(&mut self.entries[index].body, Body::Memory(String::new()));
        if matches!(old, Body::Memory(_)) {
            self.memory_bytes -= self.entries[index].bytes;
        }
        self.entries[index].bytes = text.len();
        // (A spilled body leaves its old bytes behind in the file until it is removed.)
        let body = self.store(text);
        self.entries[index].body = body;
    }

    /// Gives back the memory of an entry that leaves the outbox.
    fn release_body(&mut self, entry: &Entry) {
        if matches!(entry.body, Body::Memory(_)) {
            self.memory_bytes -= entry.bytes;
        }
    }

    fn forget(&mut self, entry: &Entry) {
        self.release_body(entry);
        if entry.log.as_ref().is_some_and(|m| !m.marker) {
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
        self.acked_up_to = self.acked_up_to.max(up_to);
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
        // Entries are in `seq` order: a binary search keeps a long replay linear overall.
        let entry = self
            .entries
            .get(self.entries.partition_point(|e| e.seq <= sent))?;
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

    /// The connection is gone: what it was given but did not acknowledge counts as unsent
    /// again (it is replayed after the next registration, and may be dropped meanwhile).
    pub(crate) fn connection_lost(&mut self) {
        self.sent_up_to = self.sent_up_to.min(self.acked_up_to);
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
