//! A throw-away KiCI cluster made of the real binaries: `kici orchestrator` on a per-test
//! database (SQLite file or fresh PostgreSQL database, `kici_testkit::db`), `kici agent`s, a
//! local source over git repositories in a temp directory, a pausable TCP proxy, and scans of
//! `/proc` for processes a test left behind. Every process is killed when its handle drops;
//! every wait is bounded and fails the test with the processes' output.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kici_testkit::db::TestDatabase;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::support::{KICI, KICI_AGENT, git_command};

/// The repository every cluster serves, at `<repos>/acme/widgets`.
pub const REPO: &str = "acme/widgets";
/// The local source's name.
pub const SOURCE: &str = "disk";
/// The HMAC secret of the local source's webhook verification.
pub const HOOK_SECRET: &str = "e2e-hook-secret-5f2d0c";

/// Which database the orchestrator runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend (modules `sqlite` and `postgres`) from bodies
/// `fn(Backend)`; attributes such as `#[ignore = "…"]` go on both.
macro_rules! on_both_backends {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                $(#[$attr])*
                fn $name() {
                    super::$name(crate::cluster::Backend::Sqlite);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                $(#[$attr])*
                fn $name() {
                    super::$name(crate::cluster::Backend::Postgres);
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// 16 random lowercase hex characters (std only: randomly keyed SipHash of the clock).
pub fn random_hex() -> String {
    let mut out = String::new();
    for i in 0..2u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        hasher.write_u64(i);
        hasher.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(16);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// A background process whose stdout and stderr are collected as they arrive; SIGKILLed and
/// reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, mut command: Command) -> Proc {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for mut stream in streams {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    output
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&text);
                }
            }));
        }
        Proc {
            name: name.to_string(),
            child,
            output,
            readers,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far (stdout and stderr interleaved).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn signal(&self, signal: Signal) {
        if self.status.is_none() {
            let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid"));
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// The exit status once the process ended, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status);
        }
        self.status
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let status = self.wait(Duration::from_secs(10));
        assert!(status.is_some(), "{} survived SIGKILL", self.name);
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Readers end at EOF; a grandchild that inherited the pipes could hold them open,
        // so do not wait for them.
        self.readers.clear();
    }
}

/// A `kici` command with a clean `KICI_*` environment and no user git configuration.
pub fn kici_command(cwd: &Path, args: &[&str]) -> Command {
    program_command(KICI, cwd, args)
}

/// [`kici_command`] for another of the package's binaries.
pub fn program_command(program: &str, cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args).current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("KICI_")) {
            command.env_remove(&name);
        }
    }
    command
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("KICI_LOG_FORMAT", "plain")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("CI");
    command
}

/// Runs a short `kici` command to completion (bounded); panics unless it exits 0.
pub fn kici_ok(cwd: &Path, args: &[&str]) -> String {
    let mut proc = Proc::spawn(&format!("kici {args:?}"), kici_command(cwd, args));
    let status = proc.wait(Duration::from_secs(60));
    proc.join_readers();
    let out = proc.output();
    match status {
        Some(s) if s.success() => out,
        Some(s) => panic!("kici {args:?} exited with {s}\n{out}"),
        None => panic!("kici {args:?} did not finish within 60 s\n{out}"),
    }
}

// ---------------------------------------------------------------------------------------------
// /proc scans
// ---------------------------------------------------------------------------------------------

/// A live (non-zombie) process whose command line or environment contains `needle`, other
/// than this test process: `(pid, command line)`.
pub fn processes_containing(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") || stat.contains(") X ") {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let hit = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        if hit(&cmdline) || hit(&environ) {
            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, shown));
        }
    }
    found
}

/// Command lines (argv) of every live process, with their pids.
pub fn all_command_lines() -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            found.push((pid, String::from_utf8_lossy(&bytes).replace('\0', " ")));
        }
    }
    found
}

/// SIGKILLs every process that carries `marker` (cleanup after a failed assertion).
pub fn kill_marked(marker: &str) {
    for (pid, _) in processes_containing(marker) {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// A small blocking HTTP client; every answer is `(status, body as JSON or as a string)`.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Http {
    pub fn new(base: String, token: Option<String>) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Http { agent, base, token }
    }

    fn finish(
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), String> {
        let response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    pub fn try_get(&self, path: &str) -> Result<(u16, Value), String> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        Self::finish(request.call())
    }

    pub fn try_post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Value), String> {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Self::finish(request.send(&body[..]))
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// One orchestrator (restartable on the same database and port), its agents, and a local
/// source over `<dir>/repos`.
pub struct Cluster {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    database: Option<TestDatabase>,
    pub db_url: String,
    pub port: u16,
    pub admin_token: String,
    pub secret_key: String,
    /// Unique to this cluster: put it into every step command so that `/proc` scans find
    /// (and cleanup kills) the job's processes.
    pub marker: String,
    pub orchestrator: Option<Proc>,
    /// Output of earlier orchestrator incarnations (for failure reports).
    past_output: String,
    extra_env: Vec<(String, String)>,
    pub agents: Vec<Agent>,
    pub api: Http,
    passed: bool,
}

impl Cluster {
    /// A cluster on `backend` (not started); `None` when PostgreSQL is unreachable outside
    /// CI (`kici_testkit::db` explains it loudly).
    pub fn new(backend: Backend) -> Option<Cluster> {
        let database = match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => block_on(TestDatabase::postgres())?,
        };
        let dir = tempfile::Builder::new()
            .prefix("kici-e2e-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let admin_token = format!(
            "kadm_{}{}{}{}",
            random_hex(),
            random_hex(),
            random_hex(),
            random_hex()
        );
        let secret_key = format!(
            "{}{}{}{}",
            random_hex(),
            random_hex(),
            random_hex(),
            random_hex()
        );
        let marker = format!("kici-e2e-marker-{}", random_hex());
        let api = Http::new(
            format!("http://127.0.0.1:{port}"),
            Some(admin_token.clone()),
        );
        std::fs::create_dir_all(dir.path().join("repos/acme")).expect("repos dir");
        Some(Cluster {
            backend,
            db_url: database.url.clone(),
            database: Some(database),
            dir,
            port,
            admin_token,
            secret_key,
            marker,
            orchestrator: None,
            past_output: String::new(),
            extra_env: Vec::new(),
            agents: Vec::new(),
            api,
            passed: false,
        })
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The repository directory of [`REPO`].
    pub fn repo_dir(&self) -> PathBuf {
        self.path("repos").join(REPO)
    }

    /// An orchestrator setting for every (re)start.
    pub fn orchestrator_env(&mut self, key: &str, value: &str) -> &mut Self {
        self.extra_env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts `kici orchestrator` and waits for `/ready`.
    pub fn start(&mut self) {
        assert!(self.orchestrator.is_none(), "already running");
        let data = self.path("data");
        let mut command = kici_command(self.dir.path(), &["orchestrator"]);
        command
            .env("HOME", self.dir.path())
            .env("KICI_BIND", "127.0.0.1")
            .env("KICI_PORT", self.port.to_string())
            .env("KICI_DATA_DIR", &data)
            .env("KICI_DATABASE_URL", &self.db_url)
            .env("KICI_SECRET_KEY", &self.secret_key)
            .env("KICI_BOOTSTRAP_ADMIN_TOKEN", &self.admin_token)
            .env("KICI_LOG_LEVEL", "info,sqlx=warn")
            .env("KICI_QUEUE_DRAIN_INTERVAL_MS", "200")
            .env("KICI_DISPATCH_ACK_TIMEOUT_MS", "3000");
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        let mut proc = Proc::spawn("orchestrator", command);
        let health = Http::new(format!("http://127.0.0.1:{}", self.port), None);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = proc.exited() {
                panic!(
                    "the orchestrator exited with {status} while starting\n{}",
                    proc.output()
                );
            }
            if matches!(health.try_get("/ready"), Ok((200, _))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the orchestrator was not ready within 30 s\n{}",
                proc.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.orchestrator = Some(proc);
    }

    /// `kill -9` of the orchestrator (no shutdown of any kind).
    pub fn kill9_orchestrator(&mut self) {
        let mut proc = self.orchestrator.take().expect("orchestrator running");
        proc.kill9();
        self.past_output.push_str(&proc.output());
        self.past_output
            .push_str("\n--- (orchestrator killed with SIGKILL) ---\n");
    }

    /// The orchestrator's `ws://` URL.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Everything the processes of this cluster printed, for failure messages.
    pub fn dump(&self) -> String {
        let mut out = format!(
            "=== backend {:?}, dir {}\n",
            self.backend,
            self.dir.path().display()
        );
        out.push_str("=== orchestrator:\n");
        out.push_str(&self.past_output);
        if let Some(proc) = &self.orchestrator {
            out.push_str(&proc.output());
        }
        for agent in &self.agents {
            out.push_str(&format!("=== agent {}:\n", agent.id));
            out.push_str(&agent.proc.output());
        }
        out
    }

    // --- REST ----------------------------------------------------------------------------

    #[track_caller]
    pub fn get(&self, path: &str) -> Value {
        match self.api.try_get(path) {
            Ok((200, value)) => value,
            Ok((status, value)) => panic!("GET {path} → {status}: {value}\n{}", self.dump()),
            Err(e) => panic!("GET {path}: {e}\n{}", self.dump()),
        }
    }

    #[track_caller]
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.api
            .try_post(path, &[], body.to_string().into_bytes())
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.dump()))
    }

    /// A new agent token (`kat_…`).
    pub fn agent_token(&self) -> String {
        let (status, body) = self.post("/api/v1/admin/agent-tokens", json!({"label": "e2e"}));
        assert!(
            status == 200 || status == 201,
            "agent token: {status} {body}"
        );
        body["token"].as_str().expect("token").to_string()
    }

    /// The local source over `<dir>/repos`, verified with HMAC-SHA256 ([`HOOK_SECRET`]).
    pub fn add_signed_local_source(&self) {
        let (status, body) = self.post(
            "/api/v1/admin/sources",
            json!({
                "type": "local",
                "name": SOURCE,
                "config": {
                    "path": self.path("repos").display().to_string(),
                    "verification": {"method": "hmac_sha256"}
                },
                "secrets": {"verificationSecret": HOOK_SECRET}
            }),
        );
        assert_eq!(status, 201, "create source: {body}\n{}", self.dump());
    }

    /// A signed push delivery of `sha` on `main`; returns `(status, answer)`.
    pub fn push_webhook(&self, sha: &str, delivery: &str) -> (u16, Value) {
        let body = json!({
            "ref": "refs/heads/main",
            "before": "0000000000000000000000000000000000000000",
            "after": sha,
            "repository": {"full_name": REPO, "default_branch": "main"},
            "sender": {"login": "tester"}
        })
        .to_string()
        .into_bytes();
        let signature = format!(
            "sha256={}",
            hex(&kici_engine::signature::hmac_sha256(
                HOOK_SECRET.as_bytes(),
                &body
            ))
        );
        self.api
            .try_post(
                &format!("/webhook/default/generic/{SOURCE}"),
                &[
                    ("x-event-type", "push"),
                    ("x-delivery-id", delivery),
                    ("x-signature-256", &signature),
                ],
                body,
            )
            .unwrap_or_else(|e| panic!("webhook: {e}\n{}", self.dump()))
    }

    /// Polls `probe` every 100 ms until it returns `Some`, failing the test with `what` and
    /// every process's output after `timeout`.
    #[track_caller]
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Cluster) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The runs of the orchestrator (summaries).
    pub fn runs(&self) -> Vec<Value> {
        self.get("/api/v1/admin/runs")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The one run, once it exists.
    #[track_caller]
    pub fn wait_for_run(&self, timeout: Duration) -> String {
        self.wait_for("a run", timeout, |c| {
            c.runs()
                .first()
                .and_then(|r| r["runId"].as_str())
                .map(str::to_string)
        })
    }

    pub fn run_detail(&self, run_id: &str) -> Value {
        self.get(&format!("/api/v1/admin/runs/{run_id}"))
    }

    /// Waits until the run is terminal; returns its detail.
    #[track_caller]
    pub fn wait_for_terminal_run(&self, run_id: &str, timeout: Duration) -> Value {
        self.wait_for("the run to end", timeout, |c| {
            let detail = c.run_detail(run_id);
            matches!(
                detail["status"].as_str(),
                Some("success" | "failed" | "cancelled" | "skipped")
            )
            .then_some(detail)
        })
    }

    /// A job of the run detail by name.
    #[track_caller]
    pub fn job<'a>(&self, detail: &'a Value, name: &str) -> &'a Value {
        detail["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
            .unwrap_or_else(|| panic!("no job {name:?} in {detail:#}"))
    }

    /// Every stored line of one step's log, in order.
    pub fn step_log(&self, run_id: &str, job_id: &str, step: i64) -> Vec<String> {
        let mut lines = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self.get(&format!(
                "/api/v1/admin/runs/{run_id}/jobs/{job_id}/steps/{step}/logs?offset={offset}&limit=1000"
            ));
            let batch = page["lines"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for line in &batch {
                lines.push(line["text"].as_str().unwrap_or_default().to_string());
            }
            offset = page["nextOffset"]
                .as_u64()
                .unwrap_or(offset + batch.len() as u64);
        }
        lines
    }

    // --- agents --------------------------------------------------------------------------

    /// Starts `kici agent` against `url` (the orchestrator or a proxy) with `token`.
    pub fn start_agent(&mut self, url: &str, token: &str, extra: &[(&str, &str)]) -> usize {
        let command = kici_command(self.dir.path(), &["agent"]);
        self.spawn_agent(command, url, token, extra)
    }

    /// Starts the orchestrator with the signed local source and one connected `kici agent`
    /// (with `extra` variables); returns the agent's index.
    pub fn start_with_agent(&mut self, extra: &[(&str, &str)]) -> usize {
        self.start();
        self.add_signed_local_source();
        let token = self.agent_token();
        let url = self.ws_url();
        let agent = self.start_agent(&url, &token, extra);
        self.wait_for_agent(agent);
        agent
    }

    /// Starts the agent-only binary `kici-agent`, configured like [`Cluster::start_agent`].
    pub fn start_agent_alone(&mut self, url: &str, token: &str, extra: &[(&str, &str)]) -> usize {
        let command = program_command(KICI_AGENT, self.dir.path(), &[]);
        self.spawn_agent(command, url, token, extra)
    }

    fn spawn_agent(
        &mut self,
        mut command: Command,
        url: &str,
        token: &str,
        extra: &[(&str, &str)],
    ) -> usize {
        let id = format!("e2e-agent-{}", self.agents.len());
        let work = self.path(&format!("work/{id}"));
        let state = self.path(&format!("agent-state/{id}"));
        std::fs::create_dir_all(&work).expect("work dir");
        std::fs::create_dir_all(&state).expect("state dir");
        command
            .env("HOME", self.dir.path())
            .env("KICI_ORCHESTRATOR_URL", url)
            .env("KICI_AGENT_TOKEN", token)
            .env("KICI_AGENT_ID", &id)
            .env("KICI_LABELS", "e2e")
            .env("KICI_WORK_DIR", &work)
            .env("KICI_STATE_DIR", &state)
            .env("KICI_AGENT_PORT", "0")
            .env("KICI_AGENT_MAX_RECONNECT_DELAY_MS", "1000")
            .env("KICI_LOG_LEVEL", "info");
        for (k, v) in extra {
            command.env(k, v);
        }
        let proc = Proc::spawn(&id, command);
        self.agents.push(Agent {
            id,
            proc,
            work_dir: work,
        });
        self.agents.len() - 1
    }

    /// Waits until the orchestrator lists `agents[index]` as connected.
    #[track_caller]
    pub fn wait_for_agent(&self, index: usize) {
        let id = self.agents[index].id.clone();
        self.wait_for(
            &format!("agent {id} to connect"),
            Duration::from_secs(30),
            |c| {
                let agents = c.get("/api/v1/admin/agents");
                let list = agents
                    .as_array()
                    .cloned()
                    .or_else(|| agents["items"].as_array().cloned())
                    .unwrap_or_default();
                list.iter()
                    .any(|a| a["agentId"] == id.as_str() && a["connected"] == true)
                    .then_some(())
            },
        );
    }

    // --- repositories --------------------------------------------------------------------

    /// Creates [`REPO`] with `workflow` as `.kici/workflows/ci.ts` (plus `files`), compiles
    /// it with `kici compile`, commits, and returns the commit id.
    pub fn create_repo(&self, workflow: &str, files: &[(&str, &str)]) -> String {
        let repo = self.repo_dir();
        std::fs::create_dir_all(repo.join(".kici/workflows")).expect("repo dir");
        std::fs::write(repo.join(".kici/workflows/ci.ts"), workflow).expect("workflow");
        for (path, text) in files {
            let full = repo.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("dir");
            std::fs::write(full, text).expect("file");
        }
        git(&repo, &["init", "-q", "-b", "main"]);
        kici_ok(&repo, &["compile"]);
        assert!(
            repo.join(".kici/kici.lock.json").is_file(),
            "kici compile wrote no lock"
        );
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "workflow"]);
        git(&repo, &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Marks the test as passed: the PostgreSQL database is dropped (kept on failure).
    pub fn finish(mut self) {
        self.passed = true;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Agents first (so their job processes stop reporting), then whatever the jobs left.
        for agent in &mut self.agents {
            agent.proc.signal(Signal::SIGKILL);
        }
        self.agents.clear();
        kill_marked(&self.marker);
        self.orchestrator = None;
        if let Some(database) = self.database.take() {
            if self.passed {
                block_on(database.finish());
            } else if std::thread::panicking() {
                // Keep the database (a SQLite file lives in the database's own temp dir).
                std::mem::forget(database);
                eprintln!(
                    "(kept the database {} and the directory {} of the failed test)",
                    self.db_url,
                    self.dir.path().display()
                );
                let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
                let _ = dir.keep();
            }
        }
    }
}

/// `git` with a fixed identity and no user configuration; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir).args(args).output().expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A running `kici agent`.
pub struct Agent {
    pub id: String,
    pub proc: Proc,
    pub work_dir: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy that can cut connections
// ---------------------------------------------------------------------------------------------

/// Forwards `127.0.0.1:<port>` to a target. [`Proxy::cut`] closes every open connection and
/// refuses (accepts and closes) new ones until [`Proxy::restore`].
pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepter: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let down = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let accepter = {
            let (down, stop, open) = (Arc::clone(&down), Arc::clone(&stop), Arc::clone(&open));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let _ = client.set_nonblocking(false);
                    if down.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2))
                    else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    {
                        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                        for stream in [&client, &server] {
                            if let Ok(clone) = stream.try_clone() {
                                open.push(clone);
                            }
                        }
                    }
                    for (mut from, mut to) in [
                        (client.try_clone(), server.try_clone()),
                        (server.try_clone(), client.try_clone()),
                    ]
                    .into_iter()
                    .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                    {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16384];
                            loop {
                                match from.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        if to.write_all(&buf[..n]).is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    }
                }
            })
        };
        Proxy {
            port,
            down,
            stop,
            open,
            accepter: Some(accepter),
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(accepter) = self.accepter.take() {
            let _ = accepter.join();
        }
    }
}
