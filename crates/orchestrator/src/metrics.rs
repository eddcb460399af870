//! A small hand-written Prometheus registry (`orchestrator.md` §20): counters with fixed
//! label names, rendered in the text exposition format. Gauges that mirror the database
//! (queue depth) are read at scrape time by the `/metrics` handler.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The orchestrator's counters. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    /// `kici_orch_webhooks_received_total{source, event}`.
    webhooks_received: LabelledCounter,
    /// `kici_orch_dedup_hits_total`.
    dedup_hits: AtomicU64,
    /// `kici_orch_webhooks_rejected_total{reason}` (ours: 400/401/404 answers).
    webhooks_rejected: LabelledCounter,
    /// `kici_orch_webhooks_processed_total{result}`.
    webhooks_processed: LabelledCounter,
    /// `kici_orch_inbox_dead_total`.
    inbox_dead: AtomicU64,
    /// `kici_orch_lockfile_fetch_errors_total` (ours).
    lock_fetch_errors: AtomicU64,
    /// `kici_orch_agents_active`: connected, registered agents.
    agents_active: AtomicU64,
    /// `kici_orch_executions_total{status}`: jobs by the terminal status they reached.
    executions: LabelledCounter,
    /// `kici_orch_execution_duration_seconds`: job wall time, start to terminal.
    execution_duration: Histogram,
    /// `kici_orch_dispatch_latency_seconds` (ours): how long a job waited in the queue
    /// before its dispatch frame was sent.
    dispatch_latency: Histogram,
    /// `kici_orch_steps_total{status}`.
    steps: LabelledCounter,
    /// `kici_orch_log_chunks_received_total`.
    log_chunks: AtomicU64,
    /// `kici_orch_log_bytes_stored_total`.
    log_bytes: AtomicU64,
    /// `kici_orch_invalid_transitions_total{entity}`.
    invalid_transitions: LabelledCounter,
    /// `kici_orch_dispatch_ack_timeouts_total`.
    ack_timeouts: AtomicU64,
    /// `kici_orch_stale_runs_detected_total`.
    stale_jobs: AtomicU64,
}

/// A histogram with fixed upper bounds (seconds), observed in milliseconds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default)]
struct HistogramState {
    /// Cumulative per bound, rendered as `le` buckets.
    counts: Vec<u64>,
    count: u64,
    sum_seconds: f64,
}

const DISPATCH_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];
const DURATION_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            state: Mutex::new(HistogramState {
                counts: vec![0; bounds.len()],
                ..HistogramState::default()
            }),
        }
    }

    fn observe_ms(&self, ms: u64) {
        let seconds = ms as f64 / 1000.0;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (bound, count) in self.bounds.iter().zip(state.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        state.count += 1;
        state.sum_seconds += seconds;
    }

    fn count(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (bound, count) in self.bounds.iter().zip(&state.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", state.count);
        let _ = writeln!(out, "{name}_sum {}", state.sum_seconds);
        let _ = writeln!(out, "{name}_count {}", state.count);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            webhooks_received: LabelledCounter::default(),
            dedup_hits: AtomicU64::default(),
            webhooks_rejected: LabelledCounter::default(),
            webhooks_processed: LabelledCounter::default(),
            inbox_dead: AtomicU64::default(),
            lock_fetch_errors: AtomicU64::default(),
            agents_active: AtomicU64::default(),
            executions: LabelledCounter::default(),
            execution_duration: Histogram::new(DURATION_BUCKETS),
            dispatch_latency: Histogram::new(DISPATCH_BUCKETS),
            steps: LabelledCounter::default(),
            log_chunks: AtomicU64::default(),
            log_bytes: AtomicU64::default(),
            invalid_transitions: LabelledCounter::default(),
            ack_timeouts: AtomicU64::default(),
            stale_jobs: AtomicU64::default(),
        }
    }
}

/// A counter family keyed by its label values, in a fixed label order.
#[derive(Debug, Default)]
struct LabelledCounter {
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl LabelledCounter {
    fn inc(&self, labels: &[&str]) {
        // A poisoned lock only means another thread panicked mid-increment; the map is
        // still usable.
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        *values
            .entry(labels.iter().map(|l| (*l).to_string()).collect())
            .or_insert(0) += 1;
    }

    fn get(&self, labels: &[&str]) -> u64 {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let key: Vec<String> = labels.iter().map(|l| (*l).to_string()).collect();
        values.get(&key).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label_names: &[&str]) {
        header(out, name, help, "counter");
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        for (labels, value) in values.iter() {
            let rendered: Vec<String> = label_names
                .iter()
                .zip(labels)
                .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {value}", rendered.join(","));
        }
    }
}

impl Metrics {
    pub fn webhook_received(&self, source: &str, event: &str) {
        self.webhooks_received.inc(&[source, event]);
    }

    pub fn dedup_hit(&self) {
        self.dedup_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn webhook_rejected(&self, reason: &str) {
        self.webhooks_rejected.inc(&[reason]);
    }

    /// `result`: `matched`, `skipped`, `error` or `dead`.
    pub fn webhook_processed(&self, result: &str) {
        self.webhooks_processed.inc(&[result]);
    }

    pub fn inbox_dead(&self) {
        self.inbox_dead.fetch_add(1, Ordering::Relaxed);
        self.webhook_processed("dead");
    }

    pub fn lock_fetch_error(&self) {
        self.lock_fetch_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_agents_connected(&self, n: usize) {
        self.agents_active
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A job reached the terminal `status`.
    pub fn job_finished(&self, status: &str) {
        self.executions.inc(&[status]);
    }

    pub fn observe_job_duration(&self, ms: u64) {
        self.execution_duration.observe_ms(ms);
    }

    pub fn observe_dispatch_latency(&self, ms: u64) {
        self.dispatch_latency.observe_ms(ms);
    }

    pub fn step_finished(&self, status: &str) {
        self.steps.inc(&[status]);
    }

    /// A `log.chunk` arrived; `stored` is false for a duplicate.
    pub fn log_chunk_received(&self, stored: bool, bytes: usize) {
        self.log_chunks.fetch_add(1, Ordering::Relaxed);
        if stored {
            self.log_bytes
                .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }

    /// `entity`: `job`, `step` or `run`.
    pub fn invalid_transition(&self, entity: &str) {
        self.invalid_transitions.inc(&[entity]);
    }

    pub fn dispatch_ack_timeout(&self) {
        self.ack_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stale_job(&self) {
        self.stale_jobs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn agents_connected(&self) -> u64 {
        self.agents_active.load(Ordering::Relaxed)
    }

    pub fn jobs_finished(&self, status: &str) -> u64 {
        self.executions.get(&[status])
    }

    pub fn invalid_transitions(&self, entity: &str) -> u64 {
        self.invalid_transitions.get(&[entity])
    }

    pub fn dispatches_observed(&self) -> u64 {
        self.dispatch_latency.count()
    }

    pub fn received(&self, source: &str, event: &str) -> u64 {
        self.webhooks_received.get(&[source, event])
    }

    pub fn dedup_hits(&self) -> u64 {
        self.dedup_hits.load(Ordering::Relaxed)
    }

    pub fn processed(&self, result: &str) -> u64 {
        self.webhooks_processed.get(&[result])
    }

    /// The exposition text; `queue_depth` is `None` when the database did not answer.
    pub fn render(&self, queue_depth: Option<i64>) -> String {
        let mut out = String::new();
        self.webhooks_received.render(
            &mut out,
            "kici_orch_webhooks_received_total",
            "Webhook deliveries stored in the inbox.",
            &["source", "event"],
        );
        scalar(
            &mut out,
            "kici_orch_dedup_hits_total",
            "Deliveries answered as duplicates.",
            "counter",
            self.dedup_hits(),
        );
        self.webhooks_rejected.render(
            &mut out,
            "kici_orch_webhooks_rejected_total",
            "Webhook deliveries refused before storage.",
            &["reason"],
        );
        self.webhooks_processed.render(
            &mut out,
            "kici_orch_webhooks_processed_total",
            "Inbox items processed, by result.",
            &["result"],
        );
        scalar(
            &mut out,
            "kici_orch_inbox_dead_total",
            "Inbox items moved to the dead-letter state.",
            "counter",
            self.inbox_dead.load(Ordering::Relaxed),
        );
        scalar(
            &mut out,
            "kici_orch_lockfile_fetch_errors_total",
            "Lock fetches that failed and were retried.",
            "counter",
            self.lock_fetch_errors.load(Ordering::Relaxed),
        );
        self.render_agents(&mut out);
        if let Some(depth) = queue_depth {
            header(
                &mut out,
                "kici_orch_dispatch_queue_depth",
                "Dispatch queue rows by status.",
                "gauge",
            );
            let _ = writeln!(
                out,
                "kici_orch_dispatch_queue_depth{{status=\"pending\"}} {depth}"
            );
        }
        out
    }
}

impl Metrics {
    fn render_agents(&self, out: &mut String) {
        scalar(
            out,
            "kici_orch_agents_active",
            "Connected, registered agents.",
            "gauge",
            self.agents_active.load(Ordering::Relaxed),
        );
        self.executions.render(
            out,
            "kici_orch_executions_total",
            "Jobs by the terminal status they reached.",
            &["status"],
        );
        self.execution_duration.render(
            out,
            "kici_orch_execution_duration_seconds",
            "Job wall time from start to terminal status.",
        );
        self.dispatch_latency.render(
            out,
            "kici_orch_dispatch_latency_seconds",
            "Time a job waited in the queue before its dispatch was sent.",
        );
        self.steps.render(
            out,
            "kici_orch_steps_total",
            "Steps by terminal status.",
            &["status"],
        );
        scalar(
            out,
            "kici_orch_log_chunks_received_total",
            "Log chunks received from agents.",
            "counter",
            self.log_chunks.load(Ordering::Relaxed),
        );
        scalar(
            out,
            "kici_orch_log_bytes_stored_total",
            "Log bytes stored.",
            "counter",
            self.log_bytes.load(Ordering::Relaxed),
        );
        self.invalid_transitions.render(
            out,
            "kici_orch_invalid_transitions_total",
            "Status writes refused by the state machine.",
            &["entity"],
        );
        scalar(
            out,
            "kici_orch_dispatch_ack_timeouts_total",
            "Dispatches not acknowledged in time.",
            "counter",
            self.ack_timeouts.load(Ordering::Relaxed),
        );
        scalar(
            out,
            "kici_orch_stale_runs_detected_total",
            "Running jobs timed out for lack of heartbeats.",
            "counter",
            self.stale_jobs.load(Ordering::Relaxed),
        );
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn scalar(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

/// Label value escaping of the text format: backslash, double quote, newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels_and_escapes() {
        let m = Metrics::default();
        m.webhook_received("direct", "push");
        m.webhook_received("direct", "push");
        m.webhook_received("direct", "we\"ird");
        m.dedup_hit();
        let text = m.render(Some(3));
        assert!(
            text.contains(
                "kici_orch_webhooks_received_total{source=\"direct\",event=\"push\"} 2\n"
            )
        );
        assert!(text.contains("event=\"we\\\"ird\"} 1\n"));
        assert!(text.contains("kici_orch_dedup_hits_total 1\n"));
        assert!(text.contains("kici_orch_dispatch_queue_depth{status=\"pending\"} 3\n"));
        assert!(text.contains("# TYPE kici_orch_inbox_dead_total counter\n"));
    }
}
