//! A small hand-written Prometheus registry (`orchestrator.md` §20): counters with fixed
//! label names, rendered in the text exposition format. Gauges that mirror the database
//! (queue depth) are read at scrape time by the `/metrics` handler.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The orchestrator's counters. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
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
