//! The service benchmarks of issues 4 and 5: a release `kici orchestrator` (and `kici agent`)
//! started as processes on 127.0.0.1, driven over HTTP and a real WebSocket.
//!
//! - `orchestrator-sqlite`, `orchestrator-postgres`: idle RSS of a freshly started
//!   orchestrator, then webhook → `job.dispatch` latency with one idle simulated agent (a
//!   WebSocket client in this process that acks and finishes every job at once).
//! - `claim`: `cargo bench -p kici-store --bench claim` (claim+ack throughput of simulated
//!   agents on the store), its lines parsed.
//! - `agent-loop`: one release `kici agent` against an orchestrator on SQLite; webhook → run
//!   complete for the hello-world workflow and for a 6-job pipeline, and the agent's memory;
//!   before it, the idle memory of `kici-agent` (the agent-only binary).
//!
//! Every process is started by this module, stopped by its pid (SIGTERM, SIGKILL after a
//! grace), and every PostgreSQL database is created fresh and dropped afterwards.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};
use tungstenite::Message;

use crate::bench::{Fixture, create_fixture};

/// Webhooks of the dispatch-latency benchmark (after [`DISPATCH_WARMUPS`]).
const DISPATCH_SAMPLES: usize = 300;
const DISPATCH_WARMUPS: usize = 20;
/// Pause between two webhooks, so every webhook meets an idle orchestrator and agent.
const DISPATCH_GAP: Duration = Duration::from_millis(20);
/// How long a process sits idle before its memory is read.
const IDLE_WAIT: Duration = Duration::from_secs(3);
/// Poll interval while waiting for a run to finish (the figure is the run's `completedAt`,
/// so the interval only bounds how soon the next run starts).
const RUN_POLL: Duration = Duration::from_millis(10);
/// A run or a dispatch taking longer than this is a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before each measured pipeline run (see where it is used).
const PIPELINE_GAP: Duration = Duration::from_millis(300);

/// Concurrent jobs of the benchmark agent (the pipeline's matrix is 4 wide).
const AGENT_MAX_JOBS: u32 = 4;
const SOURCE: &str = "bench";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Orchestrator(Backend),
    Claim,
    AgentLoop,
}

pub struct Scenario {
    pub name: &'static str,
    pub group: &'static str,
    /// What it measures, for `--list`.
    pub what: &'static str,
    kind: Kind,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "orchestrator-sqlite",
        group: "issue-4",
        what: "kici orchestrator on SQLite: idle RSS, webhook → job.dispatch to an idle agent",
        kind: Kind::Orchestrator(Backend::Sqlite),
    },
    Scenario {
        name: "orchestrator-postgres",
        group: "issue-4",
        what: "kici orchestrator on PostgreSQL: idle RSS, webhook → job.dispatch to an idle agent",
        kind: Kind::Orchestrator(Backend::Postgres),
    },
    Scenario {
        name: "claim",
        group: "issue-4",
        what: "cargo bench -p kici-store --bench claim: claim+ack throughput, 8 simulated agents",
        kind: Kind::Claim,
    },
    Scenario {
        name: "agent-loop",
        group: "issue-5",
        what: "kici orchestrator (SQLite) + kici agent: webhook → run complete, agent RSS (also of kici-agent)",
        kind: Kind::AgentLoop,
    },
];

/// One row of a section's table.
pub struct Figure {
    pub name: String,
    pub how: String,
    pub result: String,
    pub goal: String,
    /// `None`: no goal.
    pub met: Option<bool>,
}

pub struct Measured {
    pub figures: Vec<Figure>,
    /// Markdown paragraphs under the table (profiles, explanations).
    pub notes: Vec<String>,
}

pub enum ScenarioOutcome {
    Measured(Measured),
    Skipped(String),
    Failed(String),
}

pub struct Ctx<'a> {
    pub kici: &'a Path,
    pub root: &'a Path,
    pub scratch: &'a Path,
    /// Runs per workflow in `agent-loop` (`--runs`).
    pub runs: usize,
}

pub fn run(scenario: &Scenario, ctx: &Ctx<'_>) -> ScenarioOutcome {
    let result = match scenario.kind {
        Kind::Orchestrator(backend) => orchestrator_scenario(ctx, backend),
        Kind::Claim => claim_scenario(ctx),
        Kind::AgentLoop => agent_loop_scenario(ctx),
    };
    match result {
        Ok(Some(measured)) => ScenarioOutcome::Measured(measured),
        Ok(None) => ScenarioOutcome::Skipped(format!(
            "PostgreSQL unreachable at {} (psql)",
            postgres_base()
        )),
        Err(e) => ScenarioOutcome::Failed(format!("{e:#}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Milliseconds, sorted.
struct Stats(Vec<f64>);

impl Stats {
    fn new(mut values: Vec<f64>) -> Stats {
        values.sort_by(f64::total_cmp);
        Stats(values)
    }

    /// Nearest-rank percentile.
    fn pct(&self, p: f64) -> f64 {
        let n = self.0.len();
        let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n);
        self.0[rank - 1]
    }

    fn median(&self) -> f64 {
        let n = self.0.len();
        if n % 2 == 1 {
            self.0[n / 2]
        } else {
            (self.0[n / 2 - 1] + self.0[n / 2]) / 2.0
        }
    }

    fn min(&self) -> f64 {
        self.0[0]
    }

    fn max(&self) -> f64 {
        self.0[self.0.len() - 1]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------------------------
// Processes

/// `VmRSS`, `VmHWM` and `Threads` of a process, from /proc/<pid>/status.
#[derive(Clone, Copy, Debug)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
    /// `RssAnon`: heap and stacks; the rest of `VmRSS` is mostly the binary's mapped code.
    anon_kib: u64,
    threads: u64,
}

impl Mem {
    fn read(pid: u32) -> Result<Mem> {
        let text = fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("/proc/{pid}/status without {name}"))
        };
        Ok(Mem {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
            anon_kib: field("RssAnon:")?,
            threads: field("Threads:")?,
        })
    }

    fn rss_mib(self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    fn hwm_mib(self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }

    fn anon_mib(self) -> f64 {
        self.anon_kib as f64 / 1024.0
    }
}

/// A `kici` command with no inherited `KICI_*` variable (unknown ones are an error).
fn kici_command(kici: &Path) -> Command {
    let mut command = Command::new(kici);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KICI_") {
            command.env_remove(key);
        }
    }
    command
}

/// SIGTERM to `child`, SIGKILL when it has not exited after `grace`.
fn stop_child(child: &mut Child, grace: Duration) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(pid, Signal::SIGKILL);
    let _ = child.wait();
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

fn tail_file(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// HTTP (HTTP/1.1, one connection per request, as a webhook sender does)

struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {}: not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("{method} {path}: reading the response"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("{method} {path}: no HTTP header in the response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{method} {path}: bad status line"))?;
    let mut body = raw[split + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunked body")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(data.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// The orchestrator process

struct Orchestrator {
    child: Child,
    addr: SocketAddr,
    admin: String,
    log: PathBuf,
}

impl Orchestrator {
    /// Starts `kici orchestrator` on 127.0.0.1 (a free port) and waits for `/ready`.
    fn start(kici: &Path, dir: &Path, database_url: Option<&str>) -> Result<Orchestrator> {
        fs::create_dir_all(dir)?;
        let log = dir.join("orchestrator.log");
        let admin = format!("kadm_{}", random_hex(32)?);
        let out = fs::File::create(&log)?;
        let mut command = kici_command(kici);
        command
            .arg("orchestrator")
            .env("KICI_BIND", "127.0.0.1")
            .env("KICI_PORT", "0")
            .env("KICI_DATA_DIR", dir.join("data"))
            .env("KICI_BOOTSTRAP_ADMIN_TOKEN", &admin)
            .env("KICI_AGENT_AUTH", "token")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if let Some(level) = std::env::var_os("XTASK_BENCH_LOG_LEVEL") {
            // For a profile from the logs (with XTASK_BENCH_KEEP), e.g. `info,sqlx=debug`.
            command.env("KICI_LOG_LEVEL", level);
        }
        if let Some(url) = database_url {
            command
                .env("KICI_DATABASE_URL", url)
                .env("KICI_SECRET_KEY", random_hex(32)?);
        }
        let child = command.spawn().context("starting kici orchestrator")?;
        let mut orchestrator = Orchestrator {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin,
            log,
        };
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(status) = orchestrator.child.try_wait()? {
                bail!(
                    "kici orchestrator exited ({status}):\n{}",
                    tail_file(&orchestrator.log, 20)
                );
            }
            if let Some(addr) = listening_addr(&fs::read_to_string(&orchestrator.log)?) {
                orchestrator.addr = addr;
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "kici orchestrator did not say where it listens:\n{}",
                tail_file(&orchestrator.log, 20)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        loop {
            if http(orchestrator.addr, "GET", "/ready", &[], b"").is_ok_and(|r| r.status == 200) {
                return Ok(orchestrator);
            }
            ensure!(
                Instant::now() < deadline,
                "/ready did not answer 200:\n{}",
                tail_file(&orchestrator.log, 20)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An admin API call that must succeed; returns the JSON answer (`null` when empty).
    fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let auth = format!("Bearer {}", self.admin);
        let text = body.map(Value::to_string).unwrap_or_default();
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let response = http(
            self.addr,
            method,
            &format!("/api/v1/admin/{path}"),
            &headers,
            text.as_bytes(),
        )?;
        ensure!(
            (200..300).contains(&response.status),
            "{method} /api/v1/admin/{path}: HTTP {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        if response.body.is_empty() {
            Ok(Value::Null)
        } else {
            response.json()
        }
    }

    /// Posts a push of `push.repo` to the local source with a fresh delivery id; fails
    /// unless it is accepted (202, not a duplicate).
    fn webhook(&self, push: &Push, delivery: &str) -> Result<()> {
        let body = json!({
            "ref": "refs/heads/main",
            "before": push.before,
            "after": push.after,
            "repository": {"full_name": push.repo, "default_branch": "main"},
            "sender": {"login": "kici-bench"},
        })
        .to_string();
        let response = http(
            self.addr,
            "POST",
            &format!("/webhook/default/generic/{SOURCE}"),
            &[
                ("content-type", "application/json"),
                ("x-event-type", "push"),
                ("x-delivery-id", delivery),
            ],
            body.as_bytes(),
        )?;
        ensure!(
            response.status == 202,
            "webhook: HTTP {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        Ok(())
    }

    /// A new agent token and the local source over `sources` (repositories at
    /// `<sources>/<owner>/<name>`).
    fn prepare(&self, sources: &Path) -> Result<String> {
        let created = self.api(
            "POST",
            "agent-tokens",
            Some(&json!({"label": "kici-bench"})),
        )?;
        let token = created["token"]
            .as_str()
            .context("POST agent-tokens: no token")?
            .to_string();
        self.api(
            "POST",
            "sources",
            Some(&json!({"type": "local", "name": SOURCE, "config": {"path": sources}})),
        )?;
        Ok(token)
    }

    fn stop(mut self) {
        stop_child(&mut self.child, Duration::from_secs(15));
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

/// The address in `kici orchestrator listening on A` (plain logs) or in the JSON log line
/// with `"local_addr":"A"`.
fn listening_addr(log: &str) -> Option<SocketAddr> {
    for line in log.lines() {
        if let Some(rest) = line.split("listening on ").nth(1)
            && let Some(addr) = rest.split_whitespace().next()
            && let Ok(addr) = addr.parse()
        {
            return Some(addr);
        }
        if let Some(rest) = line.split("\"local_addr\":\"").nth(1)
            && let Some(addr) = rest.split('"').next()
            && let Ok(addr) = addr.parse()
        {
            return Some(addr);
        }
    }
    None
}

/// A fresh PostgreSQL database (psql), dropped on drop.
struct PgDatabase {
    base: String,
    name: String,
}

fn postgres_base() -> String {
    std::env::var("KICI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES.into())
        .trim_end_matches('/')
        .to_string()
}

fn psql(base: &str, sql: &str) -> Result<()> {
    let output = Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .context("running psql")?;
    ensure!(
        output.status.success(),
        "psql -c {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl PgDatabase {
    /// `None` when PostgreSQL is unreachable.
    fn create() -> Result<Option<PgDatabase>> {
        let base = postgres_base();
        if psql(&base, "SELECT 1").is_err() {
            return Ok(None);
        }
        let name = format!("kici_bench_{}", random_hex(8)?);
        psql(&base, &format!("CREATE DATABASE {name}"))?;
        Ok(Some(PgDatabase { base, name }))
    }

    fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.base,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const PIPELINE_JOBS: usize = 6;

/// A repository under `<scratch>/sources/acme/` and the push that names its last commit.
struct Push {
    repo: String,
    before: String,
    after: String,
}

fn source_repo(ctx: &Ctx<'_>, fixture: Fixture) -> Result<Push> {
    let owner = ctx.scratch.join("sources/acme");
    let existing = owner.join(fixture.dir_name());
    let dir = if existing.join(".git").exists() {
        existing
    } else {
        create_fixture(fixture, &owner, ctx.kici)?
    };
    let rev = |rev: &str| -> Result<String> {
        let output = Command::new("git")
            .args(["rev-parse", rev])
            .current_dir(&dir)
            .output()?;
        ensure!(output.status.success(), "git rev-parse {rev} failed");
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("fixture directory name")?;
    Ok(Push {
        repo: format!("acme/{name}"),
        before: rev("HEAD~1")?,
        after: rev("HEAD")?,
    })
}

// ---------------------------------------------------------------------------------------------
// The simulated agent: a WebSocket client that takes every job and finishes it at once

struct SimAgent {
    /// When each `job.dispatch` arrived, with its run id.
    dispatches: mpsc::Receiver<(Instant, String)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

fn ws_send(ws: &mut Socket, frame: Value) -> Result<()> {
    ws.send(Message::text(frame.to_string()))
        .context("WebSocket send")
}

/// The next text frame as JSON with the moment it was read, before parsing (`None` on a read
/// timeout).
fn ws_recv(ws: &mut Socket) -> Result<Option<(Instant, Value)>> {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                let at = Instant::now();
                let frame =
                    serde_json::from_str(text.as_str()).context("a frame that is not JSON")?;
                return Ok(Some((at, frame)));
            }
            Ok(Message::Close(frame)) => bail!("the orchestrator closed the socket: {frame:?}"),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e).context("WebSocket read"),
        }
    }
}

impl SimAgent {
    fn connect(addr: SocketAddr, token: &str) -> Result<SimAgent> {
        let (mut ws, _) =
            tungstenite::connect(format!("ws://{addr}/ws")).context("WebSocket connect")?;
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = ws.get_mut() {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        }
        ws_send(
            &mut ws,
            json!({"type": "auth.request", "token": token, "protocolVersion": 1}),
        )?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        let expect = |ws: &mut Socket, kind: &str| -> Result<()> {
            loop {
                ensure!(Instant::now() < deadline, "no {kind} in time");
                if let Some((_, frame)) = ws_recv(ws)? {
                    ensure!(frame["type"] == kind, "expected {kind}, got {frame}");
                    return Ok(());
                }
            }
        };
        expect(&mut ws, "auth.success")?;
        ws_send(
            &mut ws,
            json!({"type": "agent.register", "messageId": "register-1", "agentId": "bench-sim",
                "labels": ["kici:os:linux", "kici:arch:x64"], "maxConcurrency": 4}),
        )?;
        expect(&mut ws, "register.ack")?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || sim_agent_loop(ws, &tx, &stopped));
        Ok(SimAgent {
            dispatches: rx,
            stop,
            thread: Some(thread),
        })
    }

    fn finish(mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => bail!("the simulated agent panicked"),
            None => Ok(()),
        }
    }
}

fn sim_agent_loop(
    mut ws: Socket,
    tx: &mpsc::Sender<(Instant, String)>,
    stop: &AtomicBool,
) -> Result<()> {
    let mut message = 0u64;
    let mut next_id = || {
        message += 1;
        format!("sim-{message}")
    };
    let mut heartbeat = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if heartbeat.elapsed() > Duration::from_secs(20) {
            ws_send(
                &mut ws,
                json!({"type": "heartbeat", "timestamp": now_ms() as u64}),
            )?;
            heartbeat = Instant::now();
        }
        let Some((at, frame)) = ws_recv(&mut ws)? else {
            continue;
        };
        if frame["type"] != "job.dispatch" {
            continue;
        }
        let (run, job) = (frame["runId"].clone(), frame["jobId"].clone());
        let _ = tx.send((at, run.as_str().unwrap_or_default().to_string()));
        let t = now_ms() as u64;
        ws_send(
            &mut ws,
            json!({"type": "job.ack", "messageId": next_id(), "runId": run, "jobId": job, "timestamp": t}),
        )?;
        ws_send(
            &mut ws,
            json!({"type": "job.status", "messageId": next_id(), "runId": run, "jobId": job,
                "state": "running", "timestamp": t, "data": {}}),
        )?;
        ws_send(
            &mut ws,
            json!({"type": "job.status", "messageId": next_id(), "runId": run, "jobId": job,
                "state": "success", "timestamp": t, "data": {"durationMs": 0}}),
        )?;
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario: the orchestrator on one backend

fn orchestrator_scenario(ctx: &Ctx<'_>, backend: Backend) -> Result<Option<Measured>> {
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match PgDatabase::create()? {
            Some(db) => Some(db),
            None => return Ok(None),
        },
    };
    let push = source_repo(ctx, Fixture::Hello)?;
    let dir = ctx
        .scratch
        .join(format!("orchestrator-{}", backend.name().to_lowercase()));
    let url = database.as_ref().map(PgDatabase::url);
    let orchestrator = Orchestrator::start(ctx.kici, &dir, url.as_deref())?;
    std::thread::sleep(IDLE_WAIT);
    let idle = Mem::read(orchestrator.pid())?;

    let token = orchestrator.prepare(&ctx.scratch.join("sources"))?;
    let agent = SimAgent::connect(orchestrator.addr, &token)?;
    let mut latencies = Vec::new();
    let mut accepted = Vec::new();
    let mut runs = std::collections::BTreeSet::new();
    let nonce = random_hex(4)?;
    for i in 0..DISPATCH_WARMUPS + DISPATCH_SAMPLES {
        let sent = Instant::now();
        orchestrator.webhook(&push, &format!("bench-{nonce}-{i}"))?;
        let answered = sent.elapsed();
        let (at, run) = agent.dispatches.recv_timeout(STEP_TIMEOUT).map_err(|_| {
            anyhow!(
                "no job.dispatch for webhook {i}:\n{}",
                tail_file(&orchestrator.log, 20)
            )
        })?;
        ensure!(runs.insert(run.clone()), "run {run} dispatched twice");
        if i >= DISPATCH_WARMUPS {
            latencies.push(ms(at.duration_since(sent)));
            accepted.push(ms(answered));
        }
        std::thread::sleep(DISPATCH_GAP);
    }
    // The same without `before` (a new branch): no changed-files diff (`git diff`) to make.
    let fresh = Push {
        before: "0".repeat(40),
        ..push
    };
    let mut no_diff = Vec::new();
    for i in 0..DISPATCH_SAMPLES / 3 {
        let sent = Instant::now();
        orchestrator.webhook(&fresh, &format!("bench-{nonce}-fresh-{i}"))?;
        let (at, _) = agent
            .dispatches
            .recv_timeout(STEP_TIMEOUT)
            .map_err(|_| anyhow!("no job.dispatch for webhook fresh-{i}"))?;
        no_diff.push(ms(at.duration_since(sent)));
        std::thread::sleep(DISPATCH_GAP);
    }
    agent.finish()?;
    let after = Mem::read(orchestrator.pid())?;
    orchestrator.stop();
    drop(database);

    let name = backend.name();
    let latency = Stats::new(latencies);
    let accepted = Stats::new(accepted);
    let rss_goal = match backend {
        Backend::Sqlite => 15.0,
        Backend::Postgres => 25.0,
    };
    let figures = vec![
        Figure {
            name: format!("webhook → `job.dispatch`, {name}"),
            how: format!(
                "local-source push webhook (fresh delivery id each) until the idle simulated \
                 agent reads `job.dispatch`; {DISPATCH_SAMPLES} samples after \
                 {DISPATCH_WARMUPS} warm-ups, {} ms apart",
                DISPATCH_GAP.as_millis()
            ),
            result: format!(
                "p50 **{}**, p99 {}, min {}, max {}",
                fmt_ms(latency.median()),
                fmt_ms(latency.pct(99.0)),
                fmt_ms(latency.min()),
                fmt_ms(latency.max())
            ),
            goal: "p50 ≤ 3 ms".into(),
            met: Some(latency.median() <= 3.0),
        },
        Figure {
            name: format!("… of which webhook → 202, {name}"),
            how: "the same requests: from sending to reading the whole answer (delivery stored)"
                .into(),
            result: format!(
                "p50 {}, p99 {}",
                fmt_ms(accepted.median()),
                fmt_ms(accepted.pct(99.0))
            ),
            goal: "—".into(),
            met: None,
        },
        Figure {
            name: format!("… the same push without `before`, {name}"),
            how: format!(
                "`before` all zeros (a new branch), so no `git diff` for changed files; {} \
                 samples",
                no_diff.len()
            ),
            result: format!(
                "p50 {}, p99 {}",
                fmt_ms(Stats::new(no_diff.clone()).median()),
                fmt_ms(Stats::new(no_diff).pct(99.0))
            ),
            goal: "—".into(),
            met: None,
        },
        Figure {
            name: format!("idle RSS, {name}"),
            how: format!(
                "`VmRSS` (`VmHWM`) of `kici orchestrator` {} s after `/ready`, before any \
                 request",
                IDLE_WAIT.as_secs()
            ),
            result: format!(
                "**{:.1} MiB** (HWM {:.1} MiB; anonymous {:.1} MiB, the rest file-backed), \
                 threads: {}; after the webhooks {:.1} MiB (HWM {:.1} MiB, anonymous {:.1} MiB)",
                idle.rss_mib(),
                idle.hwm_mib(),
                idle.anon_mib(),
                idle.threads,
                after.rss_mib(),
                after.hwm_mib(),
                after.anon_mib()
            ),
            goal: format!("≤ {rss_goal} MiB"),
            met: Some(idle.rss_mib() <= rss_goal),
        },
    ];
    Ok(Some(Measured {
        figures,
        notes: Vec::new(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Scenario: the store's claim benchmark

fn claim_scenario(ctx: &Ctx<'_>) -> Result<Option<Measured>> {
    eprintln!("    cargo bench -p kici-store --bench claim");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["bench", "-p", "kici-store", "--bench", "claim"])
        .current_dir(ctx.root)
        .stdin(Stdio::null())
        .output()
        .context("running cargo bench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "cargo bench -p kici-store --bench claim failed ({}):\n{}\n{}",
        output.status,
        stdout,
        crate::bench::tail(&String::from_utf8_lossy(&output.stderr), 20)
    );
    let mut figures = Vec::new();
    let mut skipped = Vec::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let backend = match words.first() {
            Some(&"sqlite") => Backend::Sqlite,
            Some(&"postgres") => Backend::Postgres,
            _ => continue,
        };
        if words.get(1) == Some(&"SKIPPED:") {
            skipped.push(line.trim().to_string());
            continue;
        }
        let label = words.get(1).copied().unwrap_or_default();
        let rate: f64 = words
            .iter()
            .position(|w| *w == "jobs/s")
            .and_then(|i| words.get(i.wrapping_sub(1)))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("cannot read the rate in `{line}`"))?;
        let setup = line
            .split_once(label)
            .and_then(|(_, rest)| rest.split(':').next())
            .unwrap_or_default()
            .trim();
        let goal = backend == Backend::Postgres && label == "claim+ack";
        figures.push(Figure {
            name: format!("{label}, {}", backend.name()),
            how: format!("{setup}, each claim and each ack its own transaction"),
            result: format!("**{rate:.0} jobs/s**"),
            goal: if goal {
                "≥ 2,000 jobs/s (2 cores)".into()
            } else {
                "—".into()
            },
            met: goal.then_some(rate >= 2000.0),
        });
    }
    ensure!(
        !figures.is_empty(),
        "no figures in the output of the claim benchmark:\n{stdout}"
    );
    let mut notes = skipped;
    notes.push(
        "The claim benchmark enqueues 5,000 jobs (runs of 100), then 8 simulated agents \
         (tasks on one store, each with its own connections) loop `claim_next` + \
         `ack_dispatch` until the queue is empty; the second row also writes START and \
         SUCCEED, the whole status traffic of a job. Every claim and every ack is its own \
         committed transaction. `KICI_BENCH_JOBS`, `KICI_BENCH_AGENTS` and \
         `KICI_BENCH_VERBOSE=1` (per-call times of agent 0) vary it.\n"
            .into(),
    );
    Ok(Some(Measured { figures, notes }))
}

// ---------------------------------------------------------------------------------------------
// Scenario: orchestrator + real agent

/// A `kici agent` process.
struct AgentProcess {
    child: Child,
    log: PathBuf,
}

impl AgentProcess {
    fn start(
        program: &Path,
        args: &[&str],
        id: &str,
        dir: &Path,
        url: &str,
        token: &str,
    ) -> Result<AgentProcess> {
        fs::create_dir_all(dir)?;
        let log = dir.join("agent.log");
        let out = fs::File::create(&log)?;
        let child = kici_command(program)
            .args(args)
            .env("KICI_ORCHESTRATOR_URL", url)
            .env("KICI_AGENT_TOKEN", token)
            .env("KICI_AGENT_ID", id)
            .env("KICI_MAX_CONCURRENT_JOBS", AGENT_MAX_JOBS.to_string())
            .env("KICI_WORK_DIR", dir.join("work"))
            .env("KICI_STATE_DIR", dir.join("state"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(AgentProcess { child, log })
    }
}

/// Waits until the orchestrator lists agent `id` as connected.
fn wait_registered(orchestrator: &Orchestrator, agent: &mut AgentProcess, id: &str) -> Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(status) = agent.child.try_wait()? {
            bail!(
                "agent {id} exited ({status}):\n{}",
                tail_file(&agent.log, 20)
            );
        }
        let agents = orchestrator.api("GET", "agents", None)?;
        let list = agents
            .get("items")
            .or(agents.get("agents"))
            .unwrap_or(&agents);
        let connected = list.as_array().is_some_and(|all| {
            all.iter()
                .any(|a| a["agentId"] == id && a["connected"] == true)
        });
        if connected {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "agent {id} did not register:\n{}",
            tail_file(&agent.log, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

/// One run, from the webhook to its `completedAt`, with the phases the run detail shows
/// (milliseconds after the webhook was sent).
struct RunTiming {
    accepted: f64,
    created: f64,
    first_job_started: f64,
    first_step_started: f64,
    last_step_completed: f64,
    last_job_completed: f64,
    completed: f64,
    observed: f64,
}

fn agent_loop_scenario(ctx: &Ctx<'_>) -> Result<Option<Measured>> {
    let hello = source_repo(ctx, Fixture::Hello)?;
    let pipeline = source_repo(ctx, Fixture::Pipeline)?;
    let dir = ctx.scratch.join("agent-loop");
    let orchestrator = Orchestrator::start(ctx.kici, &dir.join("orchestrator"), None)?;
    let token = orchestrator.prepare(&ctx.scratch.join("sources"))?;
    let url = format!("ws://{}/ws", orchestrator.addr);
    // `kici-agent` (the agent-only binary) first: its idle memory, then it leaves.
    let alone_program = ctx.kici.with_file_name("kici-agent");
    let alone_idle = if alone_program.is_file() {
        let mut alone = AgentProcess::start(
            &alone_program,
            &[],
            "bench-agent-alone",
            &dir.join("agent-alone"),
            &url,
            &token,
        )?;
        wait_registered(&orchestrator, &mut alone, "bench-agent-alone")?;
        std::thread::sleep(IDLE_WAIT);
        let idle = Mem::read(alone.child.id())?;
        stop_child(&mut alone.child, Duration::from_secs(10));
        Some(idle)
    } else {
        None
    };
    let mut agent = AgentProcess::start(
        ctx.kici,
        &["agent"],
        "bench-agent",
        &dir.join("agent"),
        &url,
        &token,
    )?;
    wait_registered(&orchestrator, &mut agent, "bench-agent")?;
    std::thread::sleep(IDLE_WAIT);
    let agent_pid = agent.child.id();
    let idle = Mem::read(agent_pid)?;

    let nonce = random_hex(4)?;
    let mut delivery = 0usize;
    let mut one_run = |push: &Push, jobs: usize| -> Result<RunTiming> {
        delivery += 1;
        run_once(
            &orchestrator,
            push,
            jobs,
            &format!("bench-{nonce}-{delivery}"),
        )
        .with_context(|| format!("agent log:\n{}", tail_file(&agent.log, 20)))
    };
    for _ in 0..2 {
        one_run(&hello, 1)?;
    }
    let mut hello_runs = Vec::new();
    for _ in 0..ctx.runs {
        hello_runs.push(one_run(&hello, 1)?);
    }
    let after_hello = Mem::read(agent_pid)?;
    for _ in 0..2 {
        one_run(&pipeline, PIPELINE_JOBS)?;
    }
    let mut pipeline_runs = Vec::new();
    for _ in 0..ctx.runs {
        // Back to back, the pipeline's ≈ 40 frames per run outrun the orchestrator's
        // per-agent rate limit (protocol.md §15: 200 frames, refilled at 100/s) and the runs
        // would measure that limit; a short pause lets the bucket refill between runs.
        std::thread::sleep(PIPELINE_GAP);
        pipeline_runs.push(one_run(&pipeline, PIPELINE_JOBS)?);
    }
    let after_pipeline = Mem::read(agent_pid)?;
    let orchestrator_mem = Mem::read(orchestrator.pid())?;
    stop_child(&mut agent.child, Duration::from_secs(10));
    drop(agent);
    orchestrator.stop();

    let hello_total = Stats::new(hello_runs.iter().map(|r| r.completed).collect());
    let pipeline_total = Stats::new(pipeline_runs.iter().map(|r| r.completed).collect());
    let runs = ctx.runs;
    let figures = vec![
        Figure {
            name: "webhook → run complete, hello world".into(),
            how: format!(
                "the README's hello-world workflow (1 job, 1 step `echo`); push webhook until \
                 the run's `completedAt`; {runs} runs after 2 warm-ups, one at a time"
            ),
            result: format!(
                "median **{}**, p90 {}, min {}",
                fmt_ms(hello_total.median()),
                fmt_ms(hello_total.pct(90.0)),
                fmt_ms(hello_total.min())
            ),
            goal: "≤ 30 ms".into(),
            met: Some(hello_total.median() <= 30.0),
        },
        Figure {
            name: "webhook → run complete, 6-job pipeline".into(),
            how: format!(
                "build → test (matrix of 4) → report, 1 `echo` step each, one agent with \
                 {AGENT_MAX_JOBS} slots; {runs} runs after 2 warm-ups, 0.3 s apart (the per-agent rate limit of protocol.md §15 refills meanwhile)"
            ),
            result: format!(
                "median **{}**, p90 {}, min {}",
                fmt_ms(pipeline_total.median()),
                fmt_ms(pipeline_total.pct(90.0)),
                fmt_ms(pipeline_total.min())
            ),
            goal: "≤ 150 ms".into(),
            met: Some(pipeline_total.median() <= 150.0),
        },
        match &alone_idle {
            Some(alone) => Figure {
                name: "agent idle RSS, `kici-agent`".into(),
                how: format!(
                    "`VmRSS` of `kici-agent` (the agent-only binary), registered, {} s idle, \
                     before any job",
                    IDLE_WAIT.as_secs()
                ),
                result: format!(
                    "**{:.1} MiB** (HWM {:.1} MiB; anonymous {:.1} MiB), threads: {}",
                    alone.rss_mib(),
                    alone.hwm_mib(),
                    alone.anon_mib(),
                    alone.threads
                ),
                goal: "≤ 8 MiB".into(),
                met: Some(alone.rss_mib() <= 8.0),
            },
            None => Figure {
                name: "agent idle RSS, `kici-agent`".into(),
                how: "not measured: no `kici-agent` next to the measured `kici`".into(),
                result: "—".into(),
                goal: "≤ 8 MiB".into(),
                met: Some(false),
            },
        },
        Figure {
            name: "agent idle RSS, `kici agent`".into(),
            how: format!(
                "`VmRSS` of `kici agent` (the binary with every role), registered, {} s idle, \
                 before any job",
                IDLE_WAIT.as_secs()
            ),
            result: format!(
                "{:.1} MiB (HWM {:.1} MiB; anonymous {:.1} MiB), threads: {}",
                idle.rss_mib(),
                idle.hwm_mib(),
                idle.anon_mib(),
                idle.threads
            ),
            goal: "—".into(),
            met: None,
        },
        Figure {
            name: "agent peak RSS, hello world".into(),
            how: "`VmHWM` of the `kici agent` process after the hello-world runs (job steps' \
                  bash children are separate processes, not counted)"
                .into(),
            result: format!(
                "**{:.1} MiB** (RSS afterwards {:.1} MiB, anonymous {:.1} MiB)",
                after_hello.hwm_mib(),
                after_hello.rss_mib(),
                after_hello.anon_mib()
            ),
            goal: "≤ 30 MiB".into(),
            met: Some(after_hello.hwm_mib() <= 30.0),
        },
        Figure {
            name: "agent peak RSS, pipeline".into(),
            how: format!(
                "`VmHWM` after the pipeline runs too (up to {AGENT_MAX_JOBS} jobs at once)"
            ),
            result: format!(
                "{:.1} MiB (RSS afterwards {:.1} MiB, threads: {}); orchestrator RSS {:.1} MiB",
                after_pipeline.hwm_mib(),
                after_pipeline.rss_mib(),
                after_pipeline.threads,
                orchestrator_mem.rss_mib()
            ),
            goal: "—".into(),
            met: None,
        },
    ];
    let notes = vec![
        phase_table("hello world", &hello_runs),
        phase_table("6-job pipeline", &pipeline_runs),
    ];
    Ok(Some(Measured { figures, notes }))
}

/// Posts one push, waits for its run to end, and reads the phases from the run detail.
fn run_once(
    orchestrator: &Orchestrator,
    push: &Push,
    jobs: usize,
    delivery: &str,
) -> Result<RunTiming> {
    let before = orchestrator.api("GET", "runs?limit=1", None)?;
    let previous = before["items"][0]["runId"].as_str().map(String::from);
    let sent_ms = now_ms();
    let sent = Instant::now();
    orchestrator.webhook(push, delivery)?;
    let accepted = ms(sent.elapsed());
    let deadline = sent + STEP_TIMEOUT;
    let (run_id, observed) = loop {
        std::thread::sleep(RUN_POLL);
        let page = orchestrator.api("GET", "runs?limit=1", None)?;
        let top = &page["items"][0];
        if let Some(id) = top["runId"].as_str()
            && previous.as_deref() != Some(id)
            && top.get("completedAt").is_some_and(|c| !c.is_null())
        {
            break (id.to_string(), ms(sent.elapsed()));
        }
        ensure!(
            Instant::now() < deadline,
            "the run did not finish in time: {page}"
        );
    };
    let detail = orchestrator.api("GET", &format!("runs/{run_id}"), None)?;
    ensure!(
        detail["status"] == "success",
        "run {run_id} ended {}: {detail}",
        detail["status"]
    );
    let list = detail["jobs"].as_array().context("run without jobs")?;
    ensure!(
        list.len() == jobs,
        "run {run_id}: {} jobs, expected {jobs}",
        list.len()
    );
    let at = |v: &Value| v.as_f64().map(|t| t - sent_ms);
    let steps: Vec<&Value> = list
        .iter()
        .filter_map(|j| j["steps"].as_array())
        .flatten()
        .collect();
    let times = |rows: &[&Value], key: &str| -> Vec<f64> {
        rows.iter().filter_map(|row| at(&row[key])).collect()
    };
    let jobs: Vec<&Value> = list.iter().collect();
    let min = |v: Vec<f64>| v.into_iter().fold(f64::NAN, f64::min);
    let max = |v: Vec<f64>| v.into_iter().fold(f64::NAN, f64::max);
    Ok(RunTiming {
        accepted,
        created: at(&detail["createdAt"]).unwrap_or(f64::NAN),
        first_job_started: min(times(&jobs, "startedAt")),
        first_step_started: min(times(&steps, "startedAt")),
        last_step_completed: max(times(&steps, "completedAt")),
        last_job_completed: max(times(&jobs, "completedAt")),
        completed: at(&detail["completedAt"]).context("run without completedAt")?,
        observed,
    })
}

/// A phase's name and its time in a run.
type Phase = (&'static str, fn(&RunTiming) -> f64);

/// Medians of each phase, as a Markdown table.
fn phase_table(what: &str, runs: &[RunTiming]) -> String {
    let median = |f: fn(&RunTiming) -> f64| {
        let values: Vec<f64> = runs.iter().map(f).filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            "—".to_string()
        } else {
            fmt_ms(Stats::new(values).median())
        }
    };
    let rows: [Phase; 8] = [
        ("webhook answered (202)", |r| r.accepted),
        ("run `createdAt`", |r| r.created),
        ("first job `startedAt`", |r| r.first_job_started),
        ("first step `startedAt`", |r| r.first_step_started),
        ("last step `completedAt`", |r| r.last_step_completed),
        ("last job `completedAt`", |r| r.last_job_completed),
        ("run `completedAt` (the figure)", |r| r.completed),
        ("seen complete by polling", |r| r.observed),
    ];
    let mut out = format!(
        "Phases of the {what} runs (median ms after the webhook was sent; timestamps are the \
         orchestrator's, whole milliseconds):\n\n| phase | median |\n|---|---:|\n"
    );
    for (name, f) in rows {
        let _ = writeln!(out, "| {name} | {} |", median(f));
    }
    out
}
