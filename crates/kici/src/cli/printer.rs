//! The live output of runs (`cli.md` §6.2, §6.3), shared by `kici run local`, `kici run
//! remote` and `kici up`: job events as prefixed lines, and the execution summary.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use kici_executor::junit::{self, RunResult};
use kici_executor::{JobEvent, LogSink, LogStream, SkipReason, Status};

use super::GlobalArgs;
use super::output::Style;

/// Prints job events live: `[job] line`, `[job › step] line` inside parallel groups.
///
/// Step output can be millions of lines; writing each with its own flush costs a syscall per
/// line. Lines go into a buffer instead, which is flushed at every status event and by a
/// ticker thread every [`FLUSH_EVERY`], so output stays live without the per-line cost.
pub struct Printer {
    pub style: Style,
    quiet: bool,
    out: Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>,
}

const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl Printer {
    pub fn new(global: &GlobalArgs) -> Self {
        // stdout for humans, stderr with --json, nothing with --quiet.
        let to_stderr = global.json;
        let color = !global.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && if to_stderr {
                std::io::stderr().is_terminal()
            } else {
                std::io::stdout().is_terminal()
            };
        let sink: Box<dyn Write + Send> = if to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        let out = Arc::new(Mutex::new(BufWriter::with_capacity(64 * 1024, sink)));
        let ticker = Arc::downgrade(&out);
        std::thread::spawn(move || {
            // Ends when the printer is gone.
            while let Some(out) = ticker.upgrade() {
                if let Ok(mut out) = out.lock() {
                    let _ = out.flush();
                }
                drop(out);
                std::thread::sleep(FLUSH_EVERY);
            }
        });
        Printer {
            style: Style { color },
            quiet: global.quiet,
            out,
        }
    }

    /// A status line: written and flushed at once.
    pub fn write(&self, text: &str) {
        self.write_line(text, true);
    }

    /// Everything buffered so far, before output that bypasses the printer.
    pub fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }

    fn write_line(&self, text: &str, flush: bool) {
        if self.quiet {
            return;
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{text}");
            if flush {
                let _ = out.flush();
            }
        }
    }

    pub fn info(&self, text: &str) {
        self.write(text);
    }

    fn prefix(&self, job: &str, step: Option<&str>, parallel: bool) -> String {
        let label = match step {
            Some(s) if parallel => format!("[{job} › {s}]"),
            _ => format!("[{job}]"),
        };
        self.style.paint("36", &label)
    }

    pub fn job_line(&self, job: &str, text: &str) {
        self.write(&format!("{} {text}", self.prefix(job, None, false)));
    }

    pub fn rule_line(&self, job: Option<&str>, what: &str, r: &kici_runtime::job::RuleResult) {
        let verdict = if r.passed {
            self.style.ok("passed")
        } else {
            let detail = r
                .error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            self.style.fail(&format!("failed{detail}"))
        };
        let text = format!("{what} rule \"{}\": {verdict}", r.label);
        match job {
            Some(j) => self.job_line(j, &text),
            None => self.write(&text),
        }
    }
}

impl LogSink for Printer {
    fn emit(&self, job: &str, event: JobEvent) {
        match event {
            JobEvent::Started => self.job_line(job, "Starting..."),
            JobEvent::Rule { step, result } => {
                let what = if step.is_some() { "step" } else { "job" };
                self.rule_line(Some(job), what, &result)
            }
            JobEvent::StepStarted { step, parallel } => self.write(&format!(
                "{} -> {step}",
                self.prefix(job, Some(&step), parallel)
            )),
            JobEvent::Line {
                step,
                parallel,
                stream,
                text,
            } => {
                let text = if stream == LogStream::Stderr
                    && self.style.color
                    && text.starts_with("[error]")
                {
                    self.style.paint("31", &text)
                } else {
                    text
                };
                self.write_line(
                    &format!("{} {text}", self.prefix(job, step.as_deref(), parallel)),
                    false,
                )
            }
            JobEvent::StepFinished {
                step,
                parallel,
                result,
            } => {
                let p = self.prefix(job, Some(&step), parallel);
                let line = match result.status {
                    Status::Success => self.style.ok(&format!("{step} ({}ms)", result.duration_ms)),
                    Status::Failed if result.continued_on_error => self.style.paint(
                        "33",
                        &format!(
                            "✗ {step}: {} (continued on error)",
                            result.error.unwrap_or_default()
                        ),
                    ),
                    Status::Failed => self
                        .style
                        .fail(&format!("{step}: {}", result.error.unwrap_or_default())),
                    Status::Skipped => format!(
                        "- {step} skipped{}",
                        result
                            .skip_reason
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ),
                    Status::Cancelled => format!("- {step} cancelled"),
                };
                self.write(&format!("{p} {line}"))
            }
            JobEvent::HookFinished { hook } => {
                if hook.status != Status::Success {
                    self.job_line(
                        job,
                        &self.style.fail(&format!(
                            "{}: {}",
                            hook.name,
                            hook.error.unwrap_or_default()
                        )),
                    );
                }
            }
            JobEvent::Finished {
                status,
                duration_ms,
                error,
            } => {
                let text = match status {
                    Status::Success => self.style.ok(&format!("Complete ({duration_ms}ms)")),
                    Status::Skipped => format!("Skipped ({duration_ms}ms)"),
                    Status::Cancelled => format!("Cancelled ({duration_ms}ms)"),
                    Status::Failed => self.style.fail(&format!(
                        "Failed ({duration_ms}ms){}",
                        error.map(|e| format!(": {e}")).unwrap_or_default()
                    )),
                };
                self.job_line(job, &text)
            }
        }
    }
}

fn marker(status: Status) -> &'static str {
    match status {
        Status::Success => "[ok]",
        Status::Failed => "[fail]",
        Status::Skipped => "[skip]",
        Status::Cancelled => "[cancel]",
    }
}

fn rule_line(r: &junit::RuleResult) -> String {
    let verdict = if r.passed {
        "✓ passed".to_string()
    } else {
        format!(
            "✗ failed{}",
            r.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )
    };
    format!("    rule \"{}\": {verdict}\n", r.label)
}

/// The human summary (cli.md §6.3).
pub fn render_summary(report: &RunResult, style: &Style) -> String {
    let overall = report.overall_status();
    let mut s = String::from("\n=== EXECUTION SUMMARY ===\n\n");
    let status_text = overall.as_str().to_uppercase();
    let painted = match overall {
        Status::Success => style.paint("32;1", &status_text),
        Status::Failed | Status::Cancelled => style.paint("31;1", &status_text),
        Status::Skipped => style.paint("33;1", &status_text),
    };
    s.push_str(&format!("Status: {painted}\n"));
    for w in &report.workflows {
        s.push_str(&format!("\nWorkflow: {} ({}ms)\n", w.name, w.duration_ms));
        for r in &w.rule_results {
            s.push_str(&rule_line(r));
        }
        for j in &w.jobs {
            let mut line = format!("  {} {} ({}ms)", marker(j.status), j.name, j.duration_ms);
            if j.status == Status::Skipped {
                let reason = j.error.as_deref().or(j.skip_reason.map(SkipReason::as_str));
                if let Some(reason) = reason {
                    line.push_str(&format!(" — skipped: {reason}"));
                }
            } else if let Some(e) = &j.error {
                line.push_str(&format!(" — {}", e.lines().next().unwrap_or("")));
            }
            s.push_str(&line);
            s.push('\n');
            for r in &j.rule_results {
                s.push_str(&rule_line(r));
            }
            for st in &j.steps {
                s.push_str(&format!(
                    "    {} {} ({}ms)\n",
                    marker(st.status),
                    st.name,
                    st.duration_ms
                ));
            }
        }
    }
    s.push_str(&format!(
        "\nTotal duration: {}ms\n",
        report.summary.total_duration_ms
    ));
    s
}
