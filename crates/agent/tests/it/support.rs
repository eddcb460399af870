//! Test harness: real git repositories with a compiled lock, and a WebSocket server on
//! 127.0.0.1 that plays the orchestrator's side of the agent protocol.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use kici_agent::{AgentConfig, AgentError, Control, Exit};
use kici_engine::lock::LockFile;
use kici_engine::protocol::{
    AgentMessage, AgentRegister, AuthSuccess, FramesAck, JobDispatch, OrchestratorMessage,
    RegisterAck, Secret,
};

/// Upper bound of every wait in these tests (debug build on a loaded 2-core machine).
pub const WAIT: Duration = Duration::from_secs(60);
pub const TOKEN: &str = "kat_test-agent-token-0123456789";

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A git repository with one workflow file and its compiled lock, committed.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub lock: LockFile,
    pub sha: String,
}

impl Repo {
    pub fn new(workflow: &str) -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        let wf = dir.path().join(".kici/workflows");
        std::fs::create_dir_all(&wf).expect("mkdir");
        std::fs::write(wf.join("ci.ts"), workflow).expect("write workflow");
        let compilation = kici_compiler::compile::compile(
            &kici_compiler::compile::CompileRequest::new(dir.path()),
        );
        let text = compilation
            .lock_text
            .unwrap_or_else(|| panic!("workflow does not compile: {:?}", compilation.diagnostics));
        std::fs::write(dir.path().join(".kici/kici.lock.json"), &text).expect("write lock");
        let lock: LockFile = serde_json::from_str(&text).expect("lock parses");
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "init"]);
        let sha = git(dir.path(), &["rev-parse", "HEAD"]);
        Repo { dir, lock, sha }
    }

    /// Commits `text` as the workflow file without recompiling the lock (drift).
    pub fn commit_workflow_edit(&mut self, text: &str) {
        std::fs::write(self.dir.path().join(".kici/workflows/ci.ts"), text).expect("write");
        git(self.dir.path(), &["commit", "-q", "-am", "edit"]);
        self.sha = git(self.dir.path(), &["rev-parse", "HEAD"]);
    }

    /// Commits `count` small files, so that checking the commit out takes a while.
    pub fn commit_files(&mut self, count: usize) {
        let dir = self.dir.path().join("bulk");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..count {
            std::fs::write(dir.join(format!("f{i}.txt")), format!("{i}\n")).expect("write");
        }
        git(self.dir.path(), &["add", "-A"]);
        git(self.dir.path(), &["commit", "-q", "-m", "bulk"]);
        self.sha = git(self.dir.path(), &["rev-parse", "HEAD"]);
    }

    pub fn url(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// A `job.dispatch` of the first job of the first workflow, as the orchestrator builds it.
    pub fn dispatch(&self, job_id: &str) -> JobDispatch {
        let workflow = &self.lock.workflows[0];
        let job = workflow.jobs[0].as_static().expect("static job");
        let mut config = serde_json::to_value(job).expect("job json");
        let extra = json!({
            "baseJobName": job.name,
            "workflowName": workflow.name,
            "source": {"file": workflow.source.file, "exportName": workflow.source.export},
            "contentHash": workflow.content_hash,
            "resolvedHashFiles": workflow.resolved_hash_files.clone().unwrap_or_default(),
            "event": {"type": "push", "targetBranch": "main", "sha": self.sha, "payload": {}},
            "provider": "local",
            "env": {"KICI_RUN_ID": "run-1", "KICI_JOB_ID": job_id},
            "checkout": true,
            "attempt": 1,
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
            c.extend(e);
        }
        serde_json::from_value(json!({
            "messageId": format!("dispatch-{job_id}"),
            "runId": "run-1",
            "jobId": job_id,
            "repoUrl": self.url(),
            "ref": "refs/heads/main",
            "sha": self.sha,
            "lockFileUrl": "",
            "timestamp": 1,
            "jobConfig": config,
        }))
        .expect("dispatch decodes")
    }
}

/// The fake orchestrator's listener.
pub struct Orchestrator {
    listener: TcpListener,
    pub url: String,
}

impl Orchestrator {
    pub async fn start() -> Orchestrator {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
        Orchestrator { listener, url }
    }

    pub async fn accept(&self) -> Peer {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (tcp, _) = tokio::time::timeout_at(deadline, self.listener.accept())
                .await
                .expect("the agent connects in time")
                .expect("accept");
            // A connection that waited in the backlog for longer than the agent's connect
            // timeout was abandoned by the agent: take the next one.
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                return Peer { ws };
            }
        }
    }

    /// A connection attempt within `wait`, if the agent makes one.
    pub async fn try_accept(&self, wait: Duration) -> Option<TcpStream> {
        tokio::time::timeout(wait, self.listener.accept())
            .await
            .ok()
            .map(|r| r.expect("accept").0)
    }
}

/// One agent connection, seen from the orchestrator.
pub struct Peer {
    ws: WebSocketStream<TcpStream>,
}

/// What the orchestrator saw last of a connection.
#[derive(Debug)]
pub enum Received {
    Frame(AgentMessage),
    Closed(Option<u16>),
}

impl Peer {
    pub async fn next(&mut self) -> Received {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame from the agent in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let frame = kici_engine::protocol::decode_agent_frame(text.as_str())
                        .unwrap_or_else(|e| panic!("invalid agent frame {text}: {e}"));
                    return Received::Frame(frame);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Received::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Received::Closed(None),
            }
        }
    }

    /// The next frame; fails on a close.
    pub async fn frame(&mut self) -> AgentMessage {
        match self.next().await {
            Received::Frame(f) => f,
            Received::Closed(code) => {
                panic!("connection closed ({code:?}) while a frame was expected")
            }
        }
    }

    /// The next frame that is not a heartbeat, `agent.status` or `job.heartbeat`.
    pub async fn job_frame(&mut self) -> AgentMessage {
        loop {
            let f = self.frame().await;
            if !matches!(
                f,
                AgentMessage::Heartbeat(_)
                    | AgentMessage::AgentStatus(_)
                    | AgentMessage::JobHeartbeat(_)
                    | AgentMessage::ConfigAck(_)
            ) {
                return f;
            }
        }
    }

    pub async fn send(&mut self, message: OrchestratorMessage) {
        self.ws
            .send(Message::text(message.encode()))
            .await
            .expect("send to the agent");
    }

    /// Closes the connection with `code`.
    pub async fn close(&mut self, code: u16, reason: &str) {
        use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
        let _ = self
            .ws
            .send(Message::Close(Some(CloseFrame {
                code: code.into(),
                reason: reason.to_string().into(),
            })))
            .await;
        // Read until the agent answers the close or goes away.
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(m)) = self.ws.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    pub async fn ack(&mut self, up_to: u64) {
        self.send(OrchestratorMessage::FramesAck(FramesAck { up_to }))
            .await;
    }

    pub async fn dispatch(&mut self, dispatch: JobDispatch) {
        self.send(OrchestratorMessage::JobDispatch(Box::new(dispatch)))
            .await;
    }

    /// Token auth, registration with `seq-ack`, `config.ack`. Returns the registration.
    pub async fn handshake(&mut self, acked_seq: u64) -> AgentRegister {
        match self.frame().await {
            AgentMessage::AuthRequest(auth) => {
                assert_eq!(auth.token.expose(), TOKEN);
                assert_eq!(auth.protocol_version, 1);
            }
            other => panic!("expected auth.request, got {other:?}"),
        }
        self.send(OrchestratorMessage::AuthSuccess(AuthSuccess {
            connection_id: "conn-1".into(),
        }))
        .await;
        let register = match self.frame().await {
            AgentMessage::AgentRegister(r) => *r,
            other => panic!("expected agent.register, got {other:?}"),
        };
        self.send(OrchestratorMessage::RegisterAck(RegisterAck {
            agent_id: register.agent_id.clone(),
            labels: register.labels.clone(),
            scaler_managed: false,
            pending_dispatch: None,
            capabilities: Some(vec!["seq-ack".into()]),
            acked_seq: Some(acked_seq),
            job_heartbeat_interval_ms: None,
        }))
        .await;
        register
    }
}

/// A running agent and the way to stop it.
pub struct Agent {
    pub control: mpsc::Sender<Control>,
    pub handle: tokio::task::JoinHandle<Result<Exit, AgentError>>,
    pub work_dir: tempfile::TempDir,
}

impl Agent {
    pub fn start(url: &str, labels: &[&str]) -> Agent {
        Agent::start_with(url, labels, |_| {})
    }

    /// Like [`Agent::start`], with `configure` applied to the configuration last.
    pub fn start_with(
        url: &str,
        labels: &[&str],
        configure: impl FnOnce(&mut AgentConfig),
    ) -> Agent {
        Agent::start_in(
            tempfile::tempdir().expect("work dir"),
            url,
            labels,
            configure,
        )
    }

    /// Like [`Agent::start_with`], in a work directory the test prepared.
    pub fn start_in(
        work_dir: tempfile::TempDir,
        url: &str,
        labels: &[&str],
        configure: impl FnOnce(&mut AgentConfig),
    ) -> Agent {
        let mut config = AgentConfig::new(url, "agent-test", work_dir.path().to_path_buf());
        config.token = Some(Secret::new(TOKEN));
        config.labels = labels.iter().map(|l| l.to_string()).collect();
        config.max_reconnect_delay = Duration::from_secs(2);
        configure(&mut config);
        let (control, rx) = mpsc::channel(4);
        let handle = tokio::spawn(kici_agent::run(config, rx));
        Agent {
            control,
            handle,
            work_dir,
        }
    }

    pub async fn stop(self, how: Control) -> Result<Exit, AgentError> {
        self.control.send(how).await.expect("agent still running");
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("the agent exits in time")
            .expect("the agent task does not panic")
    }

    pub fn work_path(&self) -> PathBuf {
        self.work_dir.path().to_path_buf()
    }

    /// Waits for `run` to return on its own.
    pub async fn finished(self) -> Result<Exit, AgentError> {
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("the agent exits in time")
            .expect("the agent task does not panic")
    }
}

/// Names of the entries of `dir` that start with `prefix`, sorted.
pub fn work_entries(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Polls `check` every 20 ms until it holds; fails after [`WAIT`].
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Command lines of the processes that mention `marker` (zombies have none).
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == me || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&raw).replace('\0', " ");
        if text.contains(marker) {
            found.push(format!("{name}: {text}"));
        }
    }
    found
}

/// A marker no other test or run shares.
pub fn unique_marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("kici-{tag}-{}-{nanos}", std::process::id())
}

/// Collects job frames until the job's terminal `job.status`, acknowledging as it goes.
pub async fn until_terminal(peer: &mut Peer) -> Vec<AgentMessage> {
    let mut frames = Vec::new();
    loop {
        let f = peer.job_frame().await;
        if let Some(seq) = f.seq() {
            peer.ack(seq).await;
        }
        let terminal = matches!(&f, AgentMessage::JobStatus(s) if s.state.is_terminal());
        frames.push(f);
        if terminal {
            return frames;
        }
    }
}

/// Every log line of `frames` for `step_index`, in order.
pub fn lines_of(frames: &[AgentMessage], step_index: i64) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f {
            AgentMessage::LogChunk(c) if c.step_index == step_index => Some(c.lines.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}
