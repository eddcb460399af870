//! The executor's side of the job runtime ([`kici_runtime::job::JobHost`]): commands through
//! [`crate::process`] in their own process groups, every line masked and sent to the caller's
//! [`LogSink`], and the process groups of each scope remembered so that a timeout or a cancel
//! can kill them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kici_runtime::job::{CommandOutput, CommandSpec, JobHost, LogStream, RunningCommand, ScopeId};
use nix::sys::signal::Signal;

use crate::mask::Masker;
use crate::process::{self, KillHandle, Stream};
use crate::{JobEvent, LogSink};

/// Capacity of the per-command line channel: a slow sink slows the command, not memory.
const LINE_CHANNEL: usize = 256;

#[derive(Default)]
struct ScopeInfo {
    step: Option<String>,
    parallel: bool,
    kills: Vec<KillHandle>,
}

pub(crate) struct ExecHost {
    job: String,
    sink: Arc<dyn LogSink>,
    masker: Mutex<Masker>,
    scopes: Mutex<HashMap<ScopeId, ScopeInfo>>,
    next_scope: AtomicU64,
    kill_grace: Duration,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn signal_from_name(name: &str) -> Signal {
    name.parse::<Signal>().unwrap_or(Signal::SIGTERM)
}

impl ExecHost {
    pub fn new(job: String, sink: Arc<dyn LogSink>, masker: Masker, kill_grace: Duration) -> Self {
        Self {
            job,
            sink,
            masker: Mutex::new(masker),
            scopes: Mutex::new(HashMap::new()),
            next_scope: AtomicU64::new(1),
            kill_grace,
        }
    }

    pub fn masker(&self) -> Masker {
        guard(&self.masker).clone()
    }

    pub fn mask(&self, text: &str) -> String {
        self.masker().mask(text).into_owned()
    }

    /// A new scope whose output is attributed to `step` (`None`: the job's own log).
    pub fn open_scope(&self, step: Option<&str>, parallel: bool) -> ScopeId {
        let id = self.next_scope.fetch_add(1, Ordering::Relaxed);
        guard(&self.scopes).insert(
            id,
            ScopeInfo {
                step: step.map(str::to_string),
                parallel,
                kills: Vec::new(),
            },
        );
        id
    }

    pub fn close_scope(&self, scope: ScopeId) {
        guard(&self.scopes).remove(&scope);
    }

    /// SIGTERM (then SIGKILL after the grace period) or SIGKILL at once to every process
    /// group the scope started.
    pub fn kill_scope(&self, scope: ScopeId, force: bool) {
        if let Some(info) = guard(&self.scopes).get(&scope) {
            for k in &info.kills {
                if force {
                    k.kill_now();
                } else {
                    k.terminate();
                }
            }
        }
    }

    pub fn kill_everything(&self, force: bool) {
        for info in guard(&self.scopes).values() {
            for k in &info.kills {
                if force {
                    k.kill_now();
                } else {
                    k.terminate();
                }
            }
        }
    }

    fn step_of(&self, scope: ScopeId) -> (Option<String>, bool) {
        guard(&self.scopes)
            .get(&scope)
            .map(|i| (i.step.clone(), i.parallel))
            .unwrap_or((None, false))
    }

    pub fn emit(&self, event: JobEvent) {
        self.sink.emit(&self.job, event);
    }

    /// A line of the job's own output (not produced by user code), masked.
    pub fn line(&self, step: Option<&str>, stream: LogStream, text: &str) {
        self.emit(JobEvent::Line {
            step: step.map(str::to_string),
            parallel: false,
            stream,
            text: self.mask(text),
        });
    }
}

impl JobHost for ExecHost {
    fn log(&self, scope: ScopeId, stream: LogStream, line: &str) {
        let (step, parallel) = self.step_of(scope);
        let text = self.mask(line);
        self.emit(JobEvent::Line {
            step,
            parallel,
            stream,
            text,
        });
    }

    fn spawn(&self, spec: CommandSpec) -> Result<RunningCommand, String> {
        let masker = self.masker();
        let mut command = process::CommandSpec::new(spec.command, spec.cwd)
            .env(spec.env)
            .masker(masker)
            .kill_grace(self.kill_grace);
        if let Some(input) = spec.input {
            command = command.input(input);
        }
        let forwarder = if spec.quiet {
            None
        } else {
            let (tx, mut rx) = tokio::sync::mpsc::channel(LINE_CHANNEL);
            command = command.lines(tx);
            let (step, parallel) = self.step_of(spec.scope);
            let sink = self.sink.clone();
            let job = self.job.clone();
            Some(tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    sink.emit(
                        &job,
                        JobEvent::Line {
                            step: step.clone(),
                            parallel,
                            stream: match line.stream {
                                Stream::Stdout => LogStream::Stdout,
                                Stream::Stderr => LogStream::Stderr,
                            },
                            text: line.text,
                        },
                    );
                }
            }))
        };
        let running = process::spawn(command).map_err(|e| e.to_string())?;
        let kill = running.kill_handle();
        if let Some(info) = guard(&self.scopes).get_mut(&spec.scope) {
            info.kills.push(kill.clone());
        }
        let done = async move {
            let result = running.wait().await;
            if let Some(f) = forwarder {
                let _ = f.await;
            }
            match result {
                Ok(out) => CommandOutput {
                    stdout: out.stdout_text(),
                    stderr: out.stderr_text(),
                    stderr_tail: out.stderr_tail_text(),
                    stdall: out.combined_text(),
                    exit_code: out.exit_code,
                    signal: out.signal_name().map(str::to_string),
                    duration_ms: out.duration.as_millis() as u64,
                },
                Err(e) => CommandOutput {
                    stderr: e.to_string(),
                    stderr_tail: e.to_string(),
                    stdall: e.to_string(),
                    exit_code: Some(1),
                    ..CommandOutput::default()
                },
            }
        };
        Ok(RunningCommand {
            done: Box::pin(done),
            kill: Arc::new(move |signal: &str| {
                kill.signal(signal_from_name(signal));
            }),
        })
    }

    fn add_secret(&self, value: &str) {
        let mut masker = guard(&self.masker);
        *masker = masker.with_secrets([(String::new(), value.to_string())]);
    }
}
