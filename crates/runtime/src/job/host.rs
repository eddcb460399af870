//! What the job runtime needs from the machine it runs on: a log sink and a way to start
//! commands. The executor implements [`JobHost`] (process groups, masking, the log sink), so
//! this crate never spawns a process or decides where a log line goes.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// Identifies where output belongs: one step attempt, one hook, or the prepare log. Chosen by
/// the executor; [`PREPARE_SCOPE`] is output produced outside any step.
pub type ScopeId = u64;

/// Module top level, rule checks and dynamic values log here (sdk.md §20, step index −1).
pub const PREPARE_SCOPE: ScopeId = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// `$` stdout, `console.log/info/debug`, `ctx.log.info/debug`, `process.stdout.write`.
    Stdout,
    /// `$` stderr, `console.warn/error`, `ctx.log.warn/error`, `process.stderr.write`.
    Stderr,
}

/// One `$` command, ready to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub scope: ScopeId,
    /// The command as the user built it (without the `set -euo pipefail;` prefix).
    pub command: String,
    pub cwd: PathBuf,
    /// The complete environment of the command.
    pub env: Vec<(String, String)>,
    /// stdin content; `None` means `/dev/null`.
    pub input: Option<Vec<u8>>,
    /// Capture without logging.
    pub quiet: bool,
}

/// How a command ended.
#[derive(Debug, Clone, Default)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    /// The last 64 KiB of stderr for the failure message (`sdk.md` §18.3), complete even when
    /// `stderr` was cut at the capture limit.
    pub stderr_tail: String,
    /// stdout and stderr interleaved in arrival order.
    pub stdall: String,
    /// `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// `SIGTERM`, `SIGKILL`, …
    pub signal: Option<String>,
    pub duration_ms: u64,
}

/// A running command: its completion and a way to stop its process group.
pub struct RunningCommand {
    pub done: Pin<Box<dyn Future<Output = CommandOutput> + Send>>,
    /// Sends the signal (by name, e.g. `SIGTERM`) to the command's process group; a
    /// `SIGTERM` is followed by `SIGKILL` after the host's grace period.
    pub kill: Arc<dyn Fn(&str) + Send + Sync>,
}

/// The executor's side of a job runtime.
pub trait JobHost: Send + Sync + 'static {
    /// One line of output (no trailing newline) of the given scope. The host masks it.
    fn log(&self, scope: ScopeId, stream: LogStream, line: &str);
    /// Starts a command in its own process group; `Err` is a message for the step (e.g. bash
    /// not found).
    fn spawn(&self, spec: CommandSpec) -> Result<RunningCommand, String>;
    /// A secret value became known to the step (e.g. `secrets.get`); the host masks it from
    /// now on. Secrets given at start are already known.
    fn add_secret(&self, _value: &str) {}
}
