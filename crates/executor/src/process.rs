//! Running one shell command the way zx 8's `$` does (`sdk.md` §18), with the process-group
//! discipline of `agent.md` §8.
//!
//! * The command runs as `bash -c 'set -euo pipefail;<cmd>'` ([`Shell::Zx`]) or
//!   `<program> -c '<cmd>'` ([`Shell::Plain`], init entries with their own `shell`).
//! * It is the leader of a **new process group**, so a timeout or a kill reaches everything it
//!   started, grandchildren included: SIGTERM to the group, then SIGKILL after a grace period
//!   (default 5 s) if any member is still alive.
//! * The environment is exactly [`CommandSpec::env`]; nothing is inherited. stdin is
//!   `/dev/null` unless [`CommandSpec::input`] is given.
//! * stdout and stderr are read as they arrive: captured raw (bounded, see
//!   [`CommandSpec::capture_limit`]) and, when a line sink is given, split into masked
//!   [`OutputLine`]s sent in arrival order (sdk.md §18.5).
//! * Like zx (which resolves on the child's `close`), the result is ready when the shell has
//!   exited **and** both pipes are closed; a background process that keeps the pipes open keeps
//!   the command running until it exits or the timeout fires.
//!
//! The process is driven by a task spawned on the current tokio runtime, so it makes progress
//! (and streams lines) whether or not anybody awaits [`RunningProcess::wait`] yet — commands
//! start immediately, as in zx.
//!
//! ```ignore
//! let (tx, mut rx) = tokio::sync::mpsc::channel(256);
//! let spec = CommandSpec::new("make test", workspace)
//!     .env(env)
//!     .timeout(Duration::from_secs(60))
//!     .masker(masker)
//!     .lines(tx);
//! let proc = process::spawn(spec)?;
//! announce(proc.pgid());                     // proc.spawned
//! let killer = proc.kill_handle();           // for .kill(), ctx.signal, step timeouts
//! let out = proc.wait().await?;
//! if !out.ok() { return Err(out.zx_message(Some(".kici/workflows/ci.ts:12:14"))) }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::mask::{LineBuffer, Masker};

/// Time between SIGTERM and SIGKILL (`agent.md` §8).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// Default cap of each captured buffer (stdout, stderr, combined).
pub const DEFAULT_CAPTURE_LIMIT: usize = 16 * 1024 * 1024;

/// How much of the end of stderr goes into a failure message (`sdk.md` §18.3).
pub const STDERR_TAIL_BYTES: usize = 64 * 1024;

/// How often a surviving group is polled while waiting out the grace period.
const GROUP_POLL: Duration = Duration::from_millis(50);

const READ_BUFFER: usize = 64 * 1024;

/// Which shell runs the command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Shell {
    /// `bash -c 'set -euo pipefail;<cmd>'`, `bash` looked up on the command's `PATH`.
    #[default]
    Zx,
    /// `<program> -c '<cmd>'`, the command passed unchanged.
    Plain(String),
}

/// Everything needed to run one command. Build with [`CommandSpec::new`] and the setters.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// The command text (for [`Shell::Zx`], without the `set -euo pipefail;` prefix).
    pub command: String,
    pub shell: Shell,
    pub cwd: PathBuf,
    /// The complete environment of the command; the caller's own environment is not
    /// inherited.
    pub env: BTreeMap<String, String>,
    /// Bytes written to stdin, then stdin is closed. `None`: stdin is `/dev/null`.
    pub input: Option<Vec<u8>>,
    /// Kill the group (SIGTERM, then SIGKILL after `kill_grace`) after this long.
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    /// Maximum bytes kept of each of stdout, stderr and combined; the rest is counted and
    /// dropped, and the `*_truncated` flags of the result say so.
    pub capture_limit: usize,
    /// Applied to streamed lines only: the captured output is what the step code gets back
    /// and stays raw.
    pub masker: Masker,
    /// Where complete lines go as they arrive. `None` (`quiet`): nothing is streamed.
    /// The channel is bounded on purpose: a slow consumer slows the command down instead of
    /// growing memory. The receiver must therefore be drained or dropped — one that is kept
    /// but never read stalls the command (a timeout still kills it). If the receiver is
    /// dropped, output is still captured.
    pub lines: Option<mpsc::Sender<OutputLine>>,
    /// Maximum length of one streamed line (longer ones are split, `protocol.md` §11).
    pub max_line_bytes: usize,
}

impl CommandSpec {
    /// A zx command in `cwd` with an empty environment and the defaults.
    pub fn new(command: impl Into<String>, cwd: impl Into<PathBuf>) -> Self {
        CommandSpec {
            command: command.into(),
            shell: Shell::Zx,
            cwd: cwd.into(),
            env: BTreeMap::new(),
            input: None,
            timeout: None,
            kill_grace: DEFAULT_KILL_GRACE,
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            masker: Masker::empty(),
            lines: None,
            max_line_bytes: crate::mask::DEFAULT_MAX_LINE_BYTES,
        }
    }

    pub fn shell(mut self, shell: Shell) -> Self {
        self.shell = shell;
        self
    }

    /// Replaces the whole environment.
    pub fn env<K: Into<String>, V: Into<String>>(
        mut self,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }

    /// Adds or replaces one variable.
    pub fn var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn input(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.input = Some(input.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.capture_limit = bytes;
        self
    }

    pub fn masker(mut self, masker: Masker) -> Self {
        self.masker = masker;
        self
    }

    pub fn lines(mut self, sink: mpsc::Sender<OutputLine>) -> Self {
        self.lines = Some(sink);
        self
    }

    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// The program and its arguments as they are executed.
    pub fn argv(&self) -> (String, Vec<String>) {
        match &self.shell {
            Shell::Zx => (
                "bash".to_owned(),
                vec![
                    "-c".to_owned(),
                    kici_engine::shell::full_command(&self.command),
                ],
            ),
            Shell::Plain(program) => (program.clone(), vec!["-c".to_owned(), self.command.clone()]),
        }
    }
}

/// The pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One complete (masked) output line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: Stream,
    /// Without the line terminator; invalid UTF-8 replaced by U+FFFD.
    pub text: String,
    /// When the line was read, Unix epoch milliseconds.
    pub at_ms: u64,
}

/// Why we killed the process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// [`CommandSpec::timeout`] elapsed.
    Timeout,
    /// A [`KillHandle`] asked for it.
    Requested,
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutput {
    /// Raw captured stdout (first [`CommandSpec::capture_limit`] bytes).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// stdout and stderr interleaved in arrival order (zx's `stdall`).
    pub combined: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub combined_truncated: bool,
    /// Total bytes the command wrote to each stream, kept or not.
    pub stdout_total: u64,
    pub stderr_total: u64,
    /// The last [`STDERR_TAIL_BYTES`] of stderr, complete even when `stderr` was truncated.
    pub stderr_tail: Vec<u8>,
    /// `None` when the shell was killed by a signal.
    pub exit_code: Option<i32>,
    /// The signal that killed the shell, if any.
    pub signal: Option<i32>,
    /// Set when we sent the kill (timeout or request), whatever the exit status says.
    pub killed: Option<KillReason>,
    /// The shell's pid, which is also the process group id.
    pub pid: i32,
    pub duration: Duration,
}

impl ProcessOutput {
    /// `exitCode === 0`.
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn combined_text(&self) -> String {
        String::from_utf8_lossy(&self.combined).into_owned()
    }

    /// [`ProcessOutput::stderr_tail`] as text: the real end of stderr even when the capture
    /// was truncated, without a character cut in half at its start.
    pub fn stderr_tail_text(&self) -> String {
        let cut = if self.stderr_total > self.stderr_tail.len() as u64 {
            self.stderr_tail
                .iter()
                .take(3)
                .take_while(|b| (*b & 0xc0) == 0x80)
                .count()
        } else {
            0
        };
        String::from_utf8_lossy(&self.stderr_tail[cut..]).into_owned()
    }

    /// `"SIGTERM"` etc. for [`ProcessOutput::signal`].
    pub fn signal_name(&self) -> Option<&'static str> {
        self.signal.map(signal_name)
    }

    /// zx's failure `message` (`sdk.md` §18.3): the last 64 KiB of stderr, the call site of
    /// the `$` in the original `.ts` (`file:line:col`, omitted when unknown), the exit code with
    /// its meaning, or `null` and the signal.
    pub fn zx_message(&self, call_site: Option<&str>) -> String {
        let mut msg = self.stderr_tail_text();
        msg.push('\n');
        if let Some(site) = call_site {
            msg.push_str("    at ");
            msg.push_str(site);
        }
        match (self.exit_code, self.signal) {
            (Some(code), _) => {
                msg.push_str(&format!("\n    exit code: {code}"));
                if let Some(meaning) = exit_code_meaning(code) {
                    msg.push_str(&format!(" ({meaning})"));
                }
            }
            (None, signal) => {
                msg.push_str("\n    exit code: null");
                if let Some(sig) = signal {
                    msg.push_str(&format!("\n    signal: {}", signal_name(sig)));
                }
            }
        }
        msg
    }
}

/// zx's table of exit-code meanings (`sdk.md` §18.4).
pub fn exit_code_meaning(code: i32) -> Option<&'static str> {
    Some(match code {
        2 => "Misuse of shell builtins",
        126 => "Invoked command cannot execute",
        127 => "Command not found",
        128 => "Invalid exit argument",
        129 => "Hangup",
        130 => "Interrupt",
        131 => "Quit and dump core",
        132 => "Illegal instruction",
        133 => "Trace/breakpoint trap",
        134 => "Process aborted",
        137 => "Kill (terminate immediately)",
        139 => "Segmentation violation",
        141 => "Write to pipe with no one reading",
        143 => "Termination (request to terminate)",
        _ => return None,
    })
}

/// `"SIGTERM"` for 15; `"SIGUNKNOWN"` for numbers the platform does not name.
pub fn signal_name(signal: i32) -> &'static str {
    match Signal::try_from(signal) {
        Ok(s) => s.as_str(),
        Err(_) => "SIGUNKNOWN",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("process::spawn was called outside a tokio runtime")]
    NoRuntime,
    #[error("working directory {} does not exist", .0.display())]
    CwdNotFound(PathBuf),
    #[error("failed to start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to wait for process {pid}: {source}")]
    Wait {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("process driver task for pid {pid} stopped unexpectedly: {message}")]
    Driver { pid: i32, message: String },
}

/// Starts the command. Must be called inside a tokio runtime (else [`ProcessError::NoRuntime`]).
pub fn spawn(spec: CommandSpec) -> Result<RunningProcess, ProcessError> {
    // tokio would panic on both the spawn of the child and of the driver task.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ProcessError::NoRuntime);
    }
    // Spawn reports a missing cwd as a bare ENOENT, indistinguishable from a missing bash.
    if !spec.cwd.is_dir() {
        return Err(ProcessError::CwdNotFound(spec.cwd));
    }
    let (program, args) = spec.argv();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env)
        .process_group(0)
        .stdin(if spec.input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = match child.id().and_then(|id| i32::try_from(id).ok()) {
        Some(pid) => pid,
        None => {
            return Err(ProcessError::Spawn {
                program,
                source: std::io::Error::other("the child has no pid"),
            });
        }
    };
    let (kill_tx, kill_rx) = mpsc::unbounded_channel();
    let driver = Driver {
        pid,
        started,
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        child,
        spec,
        kill_rx,
    };
    let task = tokio::spawn(driver.run());
    Ok(RunningProcess {
        pid,
        task,
        kill: KillHandle { pid, tx: kill_tx },
    })
}

/// Starts the command and waits for it.
pub async fn run(spec: CommandSpec) -> Result<ProcessOutput, ProcessError> {
    spawn(spec)?.wait().await
}

/// A started command.
#[derive(Debug)]
pub struct RunningProcess {
    pid: i32,
    task: JoinHandle<Result<ProcessOutput, ProcessError>>,
    kill: KillHandle,
}

impl RunningProcess {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The process group id (equal to the pid: the shell leads its own group). Announce it
    /// with `proc.spawned`.
    pub fn pgid(&self) -> i32 {
        self.pid
    }

    /// A cloneable handle that can kill the command while something else awaits it.
    pub fn kill_handle(&self) -> KillHandle {
        self.kill.clone()
    }

    /// Waits until the shell has exited and its output is read. Dropping the
    /// `RunningProcess` instead does **not** stop the command (zx: an un-awaited `$` still
    /// runs); use a [`KillHandle`] for that.
    pub async fn wait(self) -> Result<ProcessOutput, ProcessError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(ProcessError::Driver {
                pid: self.pid,
                message: e.to_string(),
            }),
        }
    }
}

/// Kills a running command's process group. Calls after the command finished do nothing.
#[derive(Debug, Clone)]
pub struct KillHandle {
    pid: i32,
    tx: mpsc::UnboundedSender<Signal>,
}

impl KillHandle {
    /// SIGTERM to the group, SIGKILL after the grace period if anything survives (zx
    /// `.kill()`, `ctx.signal`, step timeout). Returns false when the command had already
    /// finished.
    pub fn terminate(&self) -> bool {
        self.signal(Signal::SIGTERM)
    }

    /// SIGKILL to the group at once (forced cancel).
    pub fn kill_now(&self) -> bool {
        self.signal(Signal::SIGKILL)
    }

    /// `signal` to the group, then SIGKILL after the grace period if anything survives (zx
    /// `.kill(signal)`).
    pub fn signal(&self, signal: Signal) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        // Signal the group here rather than through the driver: the driver runs on the job's
        // runtime, which may stop (with its tasks) before it polls again, e.g. when a cancelled
        // job returns right after asking for the kill. The driver only arms the SIGKILL.
        kill_group(self.pid, signal);
        self.tx.send(signal).is_ok()
    }

    /// The process group this handle kills.
    pub fn pgid(&self) -> i32 {
        self.pid
    }
}

/// Sends `signal` to process group `pgid`; false when the group no longer exists.
///
/// For sweeps over groups whose [`RunningProcess`] is gone (`agent.md` §8). Beware that a
/// group id can be reused once every member of the group has exited.
pub fn kill_group(pgid: i32, signal: Signal) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), signal).is_ok()
}

/// Whether any process of group `pgid` still exists (zombies count until reaped).
pub fn group_alive(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None).is_ok()
}

/// SIGTERM to the group, then SIGKILL once `grace` has passed if it is still alive. Returns
/// when the group is gone or the SIGKILL was sent.
pub async fn terminate_group(pgid: i32, grace: Duration) {
    if !kill_group(pgid, Signal::SIGTERM) {
        return;
    }
    sigkill_after(pgid, Instant::now() + grace).await;
}

async fn sigkill_after(pgid: i32, at: Instant) {
    while group_alive(pgid) {
        let now = Instant::now();
        if now >= at {
            kill_group(pgid, Signal::SIGKILL);
            return;
        }
        tokio::time::sleep(GROUP_POLL.min(at - now)).await;
    }
}

struct Driver {
    pid: i32,
    started: Instant,
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    spec: CommandSpec,
    kill_rx: mpsc::UnboundedReceiver<Signal>,
}

impl Driver {
    async fn run(mut self) -> Result<ProcessOutput, ProcessError> {
        let pid = self.pid;
        if let (Some(mut stdin), Some(input)) = (self.stdin.take(), self.spec.input.take()) {
            // A separate task: a command that writes a lot before reading would otherwise
            // deadlock against us. A command that never reads stdin makes this fail with
            // EPIPE, which is not an error of the command.
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            });
        }
        let streaming = self.spec.lines.is_some();
        let mut reader = Reader {
            out: Capture::new(self.spec.capture_limit, false),
            err: Capture::new(self.spec.capture_limit, true),
            all: Capture::new(self.spec.capture_limit, false),
            out_lines: streaming.then(|| {
                LineBuffer::with_max_line_bytes(self.spec.masker.clone(), self.spec.max_line_bytes)
            }),
            err_lines: streaming.then(|| {
                LineBuffer::with_max_line_bytes(self.spec.masker.clone(), self.spec.max_line_bytes)
            }),
            sink: self.spec.lines.take(),
        };
        let deadline = self.spec.timeout.map(|t| self.started + t);
        let grace = self.spec.kill_grace;
        let mut status = None;
        let mut killed = None;
        let mut sigkill_at: Option<Instant> = None;
        {
            // Scoped: the futures borrow `reader` and the child until both are done.
            let io = reader.read_all(self.stdout.take(), self.stderr.take());
            let exit = self.child.wait();
            tokio::pin!(io, exit);
            let mut io_done = false;
            let mut kill_open = true;
            while !(io_done && status.is_some()) {
                tokio::select! {
                    () = &mut io, if !io_done => io_done = true,
                    s = &mut exit, if status.is_none() => {
                        status = Some(s.map_err(|source| ProcessError::Wait { pid, source })?);
                    }
                    () = sleep_until_opt(deadline), if killed.is_none() && deadline.is_some() => {
                        killed = Some(KillReason::Timeout);
                        kill_group(pid, Signal::SIGTERM);
                        sigkill_at = Some(Instant::now() + grace);
                    }
                    request = self.kill_rx.recv(), if kill_open => match request {
                        Some(signal) => {
                            // The handle has already signalled the group.
                            killed.get_or_insert(KillReason::Requested);
                            if signal != Signal::SIGKILL {
                                let at = Instant::now() + grace;
                                sigkill_at = Some(sigkill_at.map_or(at, |prev| prev.min(at)));
                            }
                        }
                        None => kill_open = false,
                    },
                    () = sleep_until_opt(sigkill_at), if sigkill_at.is_some() => {
                        kill_group(pid, Signal::SIGKILL);
                        sigkill_at = None;
                    }
                }
            }
        }
        let duration = self.started.elapsed();
        if let Some(at) = sigkill_at
            && group_alive(pid)
        {
            // The shell is gone but something it started ignores SIGTERM and no longer holds
            // our pipes: finish the kill without holding up the result.
            tokio::spawn(sigkill_after(pid, at));
        }
        let status = status.unwrap_or_default();
        let (exit_code, signal) = exit_parts(status);
        let Reader { out, err, all, .. } = reader;
        Ok(ProcessOutput {
            stdout_truncated: out.truncated(),
            stderr_truncated: err.truncated(),
            combined_truncated: all.truncated(),
            stdout_total: out.total,
            stderr_total: err.total,
            stderr_tail: err.tail_bytes(),
            stdout: out.head,
            stderr: err.head,
            combined: all.head,
            exit_code,
            signal,
            killed,
            pid,
            duration,
        })
    }
}

fn exit_parts(status: std::process::ExitStatus) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    (status.code(), status.signal())
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

struct Reader {
    out: Capture,
    err: Capture,
    all: Capture,
    out_lines: Option<LineBuffer>,
    err_lines: Option<LineBuffer>,
    sink: Option<mpsc::Sender<OutputLine>>,
}

impl Reader {
    /// Reads both pipes until both are closed, one chunk at a time in arrival order.
    async fn read_all(
        &mut self,
        stdout: Option<tokio::process::ChildStdout>,
        stderr: Option<tokio::process::ChildStderr>,
    ) {
        let mut out_pipe = stdout;
        let mut err_pipe = stderr;
        let mut out_buf = vec![0u8; READ_BUFFER];
        let mut err_buf = vec![0u8; READ_BUFFER];
        while out_pipe.is_some() || err_pipe.is_some() {
            // `read` is cancel-safe, so losing the race loses no data.
            tokio::select! {
                n = read_opt(&mut out_pipe, &mut out_buf), if out_pipe.is_some() => {
                    match n {
                        0 => {
                            out_pipe = None;
                            self.end(Stream::Stdout).await;
                        }
                        n => self.chunk(Stream::Stdout, &out_buf[..n]).await,
                    }
                }
                n = read_opt(&mut err_pipe, &mut err_buf), if err_pipe.is_some() => {
                    match n {
                        0 => {
                            err_pipe = None;
                            self.end(Stream::Stderr).await;
                        }
                        n => self.chunk(Stream::Stderr, &err_buf[..n]).await,
                    }
                }
            }
        }
    }

    async fn chunk(&mut self, stream: Stream, bytes: &[u8]) {
        match stream {
            Stream::Stdout => self.out.push(bytes),
            Stream::Stderr => self.err.push(bytes),
        }
        self.all.push(bytes);
        let buffer = match stream {
            Stream::Stdout => self.out_lines.as_mut(),
            Stream::Stderr => self.err_lines.as_mut(),
        };
        if let Some(buffer) = buffer {
            let mut lines = Vec::new();
            buffer.push(bytes, |l| lines.push(l));
            self.send(stream, lines).await;
        }
    }

    async fn end(&mut self, stream: Stream) {
        let buffer = match stream {
            Stream::Stdout => self.out_lines.as_mut(),
            Stream::Stderr => self.err_lines.as_mut(),
        };
        if let Some(last) = buffer.and_then(LineBuffer::finish_line) {
            self.send(stream, vec![last]).await;
        }
    }

    async fn send(&mut self, stream: Stream, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let at_ms = now_ms();
        for text in lines {
            let Some(sink) = &self.sink else { return };
            if sink
                .send(OutputLine {
                    stream,
                    text,
                    at_ms,
                })
                .await
                .is_err()
            {
                // Nobody listens any more; keep capturing.
                self.sink = None;
            }
        }
    }
}

/// Reads into `buf`; 0 means end of stream (errors too: a broken pipe ends the stream).
async fn read_opt<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> usize {
    match pipe {
        Some(p) => p.read(buf).await.unwrap_or(0),
        None => 0,
    }
}

/// A bounded capture: the first `limit` bytes, the total, and optionally a rolling tail.
struct Capture {
    head: Vec<u8>,
    limit: usize,
    total: u64,
    tail: Option<Vec<u8>>,
}

impl Capture {
    fn new(limit: usize, keep_tail: bool) -> Self {
        Capture {
            head: Vec::new(),
            limit,
            total: 0,
            tail: keep_tail.then(Vec::new),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total = self
            .total
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        let room = self.limit.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        if let Some(tail) = &mut self.tail {
            // Amortised: let the tail grow to twice its size before shifting it.
            tail.extend_from_slice(bytes);
            if tail.len() > 2 * STDERR_TAIL_BYTES {
                let cut = tail.len() - STDERR_TAIL_BYTES;
                tail.drain(..cut);
            }
        }
    }

    fn truncated(&self) -> bool {
        self.total > u64::try_from(self.head.len()).unwrap_or(u64::MAX)
    }

    fn tail_bytes(&self) -> Vec<u8> {
        let tail = self.tail.as_deref().unwrap_or(&self.head);
        let start = tail.len().saturating_sub(STDERR_TAIL_BYTES);
        tail[start..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_uses_the_zx_prefix() {
        let spec = CommandSpec::new("echo hi", "/");
        assert_eq!(
            spec.argv(),
            (
                "bash".to_owned(),
                vec!["-c".to_owned(), "set -euo pipefail;echo hi".to_owned()]
            )
        );
        let spec = spec.shell(Shell::Plain("sh".into()));
        assert_eq!(spec.argv().0, "sh");
        assert_eq!(spec.argv().1[1], "echo hi");
    }

    #[test]
    fn exit_code_meanings() {
        assert_eq!(exit_code_meaning(127), Some("Command not found"));
        assert_eq!(exit_code_meaning(1), None);
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(1000), "SIGUNKNOWN");
    }

    fn output(exit_code: Option<i32>, signal: Option<i32>, stderr: &str) -> ProcessOutput {
        ProcessOutput {
            stdout: Vec::new(),
            stderr: stderr.into(),
            combined: stderr.into(),
            stdout_truncated: false,
            stderr_truncated: false,
            combined_truncated: false,
            stdout_total: 0,
            stderr_total: stderr.len() as u64,
            stderr_tail: stderr.into(),
            exit_code,
            signal,
            killed: None,
            pid: 0,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn zx_message_shapes() {
        assert_eq!(
            output(Some(1), None, "oops\n").zx_message(Some(".kici/workflows/ci.ts:12:14")),
            "oops\n\n    at .kici/workflows/ci.ts:12:14\n    exit code: 1"
        );
        assert_eq!(
            output(Some(127), None, "").zx_message(Some("a.ts:1:1")),
            "\n    at a.ts:1:1\n    exit code: 127 (Command not found)"
        );
        assert_eq!(
            output(None, Some(15), "").zx_message(Some("a.ts:1:1")),
            "\n    at a.ts:1:1\n    exit code: null\n    signal: SIGTERM"
        );
        assert_eq!(
            output(Some(2), None, "x").zx_message(None),
            "x\n\n    exit code: 2 (Misuse of shell builtins)"
        );
    }

    #[test]
    fn stderr_tail_text_is_the_real_end_without_a_split_character() {
        let mut out = output(Some(1), None, "head only");
        // The capture kept the start; the tail is the true end and starts inside a `ü`.
        out.stderr_total = 1_000_000;
        out.stderr_tail = "xüend".as_bytes()[2..].to_vec();
        assert_eq!(out.stderr_text(), "head only");
        assert_eq!(out.stderr_tail_text(), "end");
        assert!(out.zx_message(None).starts_with("end\n"));
        // A complete stderr is never trimmed, even when it starts with a stray byte.
        let mut whole = output(Some(1), None, "");
        whole.stderr_tail = vec![0x80, b'a'];
        whole.stderr_total = 2;
        assert_eq!(whole.stderr_tail_text(), "\u{fffd}a");
    }

    #[test]
    fn capture_is_bounded_and_keeps_the_tail() {
        let mut c = Capture::new(10, true);
        for _ in 0..100_000 {
            c.push(b"0123456789abcdef");
        }
        assert_eq!(c.head, b"0123456789");
        assert!(c.truncated());
        assert_eq!(c.total, 1_600_000);
        let tail = c.tail_bytes();
        assert_eq!(tail.len(), STDERR_TAIL_BYTES);
        assert!(tail.ends_with(b"abcdef"));
        let mut small = Capture::new(100, false);
        small.push(b"abc");
        assert!(!small.truncated());
        assert_eq!(small.tail_bytes(), b"abc");
    }

    #[test]
    fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
        let err = spawn(CommandSpec::new("true", "/")).unwrap_err();
        assert!(matches!(err, ProcessError::NoRuntime));
    }

    #[test]
    fn group_helpers_refuse_dangerous_ids() {
        // killpg(0) and killpg(1) would hit our own group or everything.
        assert!(!group_alive(0));
        assert!(!group_alive(1));
        assert!(!kill_group(0, Signal::SIGTERM));
        assert!(!kill_group(-1, Signal::SIGTERM));
    }
}
