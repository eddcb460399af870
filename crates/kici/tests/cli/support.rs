//! The harness: temporary git repositories and a bounded way to run the `kici` binary in them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub const KICI: &str = env!("CARGO_BIN_EXE_kici");
/// The agent-only binary (`kici agent` without the other roles).
pub const KICI_AGENT: &str = env!("CARGO_BIN_EXE_kici-agent");

/// How long one `kici` invocation may take before the test fails (generous: debug build on a
/// loaded 2-core machine; the real figures are milliseconds).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A minimal valid workflow file: `ci`, triggered by pushes to `main`.
pub const CI_WORKFLOW: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('ci', {
  on: push({ branches: ['main'] }),
  jobs: [
    job('build', {
      runsOn: 'kici:os:linux',
      steps: [step('compile', async ({ $ }) => { await $`true`; })],
    }),
  ],
});
"#;

/// A workflow file with an arbitrary name and a push trigger on every branch.
pub fn push_workflow(name: &str) -> String {
    format!(
        r#"import {{ workflow, job, step, push }} from '@kici-dev/sdk';

export default workflow('{name}', {{
  on: push(),
  jobs: [job('only', {{ runsOn: 'kici:os:linux', steps: [step('one', async () => {{}})] }})],
}});
"#
    )
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Output {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    /// The exit code; fails the test when the process died by a signal.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(code) => code,
            None => panic!(
                "kici {:?} was killed by a signal\n{}",
                self.args,
                self.dump()
            ),
        }
    }

    /// Asserts the exit code and that the process neither panicked nor died by a signal.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        self.assert_clean();
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code of kici {:?}\n{}",
            self.args,
            self.dump()
        );
        self
    }

    /// No panic message, no death by a signal.
    #[track_caller]
    pub fn assert_clean(&self) -> &Self {
        assert!(
            self.status.code().is_some(),
            "kici {:?} died by a signal\n{}",
            self.args,
            self.dump()
        );
        for text in [&self.stdout, &self.stderr] {
            assert!(
                !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
                "kici {:?} panicked\n{}",
                self.args,
                self.dump()
            );
        }
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr of kici {:?} lacks {needle:?}\n{}",
            self.args,
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout of kici {:?} lacks {needle:?}\n{}",
            self.args,
            self.dump()
        );
        self
    }

    /// stdout parsed as one JSON document (fails the test when stdout is anything else).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of kici {:?} is not pure JSON: {e}\n{}",
                self.args,
                self.dump()
            )
        })
    }

    pub fn dump(&self) -> String {
        format!(
            "--- status: {:?} after {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A temporary directory, usually a git repository with one commit per `commit` call.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// An empty git repository on branch `main`.
    pub fn new() -> Self {
        let repo = Self::plain();
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// A git repository with `.kici/workflows/ci.ts` ([`CI_WORKFLOW`]), committed.
    pub fn with_ci() -> Self {
        let repo = Self::new();
        repo.write(".kici/workflows/ci.ts", CI_WORKFLOW);
        repo.commit("initial");
        repo
    }

    /// A temporary directory that is not a git repository.
    pub fn plain() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kici-cli-test-")
            .tempdir()
            .expect("create a temporary directory");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, relative: &str) -> PathBuf {
        self.path().join(relative)
    }

    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) {
        let path = self.file(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {relative}: {e}"));
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.file(relative))
            .unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.file(relative).exists()
    }

    pub fn remove(&self, relative: &str) {
        std::fs::remove_file(self.file(relative)).unwrap_or_else(|e| panic!("rm {relative}: {e}"));
    }

    /// `git add -A && git commit`.
    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = git_command(self.path())
            .args(args)
            .output()
            .expect("run git");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `kici <args>` in the repository root.
    #[track_caller]
    pub fn kici(&self, args: &[&str]) -> Output {
        self.cmd(args).run()
    }

    /// A `kici` invocation to adjust before running it.
    pub fn cmd(&self, args: &[&str]) -> Kici {
        Kici::new(self.path(), args)
    }
}

/// git with a predictable identity and no user or system configuration.
pub fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "KiCI Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "KiCI Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    command
}

/// One invocation of the binary.
pub struct Kici {
    command: Command,
    args: Vec<String>,
    timeout: Duration,
}

impl Kici {
    pub fn new(cwd: &Path, args: &[&str]) -> Self {
        Self::program(KICI, cwd, args)
    }

    /// Another of the package's binaries (`KICI_AGENT`), run the same way.
    pub fn program(program: &str, cwd: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("KICI_LOAD_TIMEOUT_MS")
            .env_remove("KICI_DEBUG")
            .env_remove("CI")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Self {
            command,
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs to completion; fails the test when the process outlives its timeout.
    #[track_caller]
    pub fn run(self) -> Output {
        let Self {
            mut command,
            args,
            timeout,
        } = self;
        let started = Instant::now();
        let mut child = command.spawn().expect("spawn kici");
        let (stdout, stderr) = capture(&mut child);
        let status = wait_with_deadline(&mut child, timeout);
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kici {args:?} did not finish within {timeout:?}\n--- stdout:\n{}\n--- stderr:\n{}",
                join(stdout),
                join(stderr)
            );
        };
        Output {
            args,
            status,
            stdout: join(stdout),
            stderr: join(stderr),
            elapsed: started.elapsed(),
        }
    }

    /// Starts the process in the background (for `watch`).
    pub fn spawn(self) -> Running {
        let Self {
            mut command, args, ..
        } = self;
        let mut child = command.spawn().expect("spawn kici");
        let (stdout, stderr) = capture(&mut child);
        Running {
            child,
            args,
            stdout: Some(stdout),
            stderr: Some(stderr),
            started: Instant::now(),
        }
    }
}

/// A background `kici` process; killed when dropped.
pub struct Running {
    child: Child,
    args: Vec<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

impl Running {
    /// Whether the process has already exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends `signal` (e.g. `INT`, `TERM`) and waits for the process to end.
    #[track_caller]
    pub fn stop(mut self, signal: &str, timeout: Duration) -> Output {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
        let status = wait_with_deadline(&mut self.child, timeout);
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("kici {:?} ignored SIG{signal} for {timeout:?}", self.args);
        };
        Output {
            args: std::mem::take(&mut self.args),
            status,
            stdout: self.stdout.take().map(join).unwrap_or_default(),
            stderr: self.stderr.take().map(join).unwrap_or_default(),
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn capture(child: &mut Child) -> (JoinHandle<String>, JoinHandle<String>) {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let stdout = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = out.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let stderr = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = err.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    (stdout, stderr)
}

fn join(handle: JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `condition` every 25 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Parses the first `file:line:col` in `text` that names `file`; `None` when there is none.
pub fn position_of(text: &str, file: &str) -> Option<(u32, u32)> {
    let start = text.find(&format!("{file}:"))? + file.len() + 1;
    let mut parts = text[start..].splitn(3, ':');
    let line = parts.next()?.parse().ok()?;
    let column = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((line, column))
}
