//! The agent side over real sockets: a real orchestrator on 127.0.0.1:0 and WebSocket
//! clients that speak the protocol as an agent does (handshake, dispatch, acks, statuses,
//! logs, reconnects, cancel). Each function runs on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kici_engine::state::{RunStatus, State};
use kici_orchestrator::{AppState, Handle, Orchestrator, Sources};
use kici_store::{AgentTokenKind, NewAgentToken, Store, StoreOptions};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::harness::{SECRET, TestDb, TestRepo, config, delivery, push_body, send};

crate::harness::backend_tests!(in agents;
    handshake_refuses_what_the_spec_refuses,
    push_runs_to_success_with_logs_outputs_and_needs,
    failed_upstream_skips_dependants,
    ack_timeout_requeues_to_another_agent,
    reconnect_reclaims_a_running_job,
    agent_that_never_returns_fails_its_job,
    cancel_of_a_running_run_sends_job_cancel,
);

const WAIT: Duration = Duration::from_secs(15);

/// A running orchestrator with one agent token.
struct Env {
    handle: Handle,
    token: String,
    _repo: TestRepo,
    repo_head: String,
    repo_first: String,
}

impl Env {
    async fn start(
        db: &TestDb,
        tune: impl FnOnce(&mut kici_orchestrator::Config, &mut StoreOptions),
    ) -> Env {
        let repo = TestRepo::new();
        let mut config = config(&repo.base);
        config.agents.queue_drain_interval = Duration::from_millis(200);
        config.agents.sweep_interval = Duration::from_millis(100);
        config.agents.auth_timeout = Duration::from_millis(500);
        // PostgreSQL requires a configured secret key (`orchestrator.md` §15.1).
        config.secret_key = Some(kici_engine::protocol::Secret::new("ab".repeat(32)));
        let mut options = StoreOptions::default();
        tune(&mut config, &mut options);
        let store = Store::connect(&db.url, options).await.expect("store");
        store.migrate(1).await.expect("migrate");
        let (_, token) = store
            .create_agent_token(
                &NewAgentToken {
                    label: Some("test".into()),
                    labels: None,
                    mandatory_labels: Vec::new(),
                    privileged_root: false,
                    kind: AgentTokenKind::Static,
                    bound_agent_id: None,
                    max_uses: None,
                    expires_at: None,
                },
                1,
            )
            .await
            .expect("token");
        let sources = Sources::from_config(&config.sources);
        let handle = Orchestrator::start_with(config, store, sources, CancellationToken::new())
            .await
            .expect("start");
        Env {
            handle,
            token,
            repo_head: repo.head.clone(),
            repo_first: repo.first.clone(),
            _repo: repo,
        }
    }

    fn state(&self) -> &AppState {
        self.handle.state()
    }

    fn store(&self) -> &Store {
        self.handle.state().store()
    }

    async fn connect(&self) -> Client {
        let url = format!("ws://{}/ws", self.handle.local_addr());
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Client { ws }
    }

    /// Authenticates and registers `agent_id`; returns the client and `register.ack`.
    async fn agent(&self, agent_id: &str, extra: Value) -> (Client, Value) {
        let mut client = self.connect().await;
        client
            .send(json!({"type": "auth.request", "token": self.token, "protocolVersion": 1}))
            .await;
        assert_eq!(client.recv().await["type"], "auth.success");
        let mut register = json!({
            "type": "agent.register", "messageId": format!("register-{agent_id}"),
            "agentId": agent_id, "labels": ["kici:os:linux", "kici:arch:x64"],
            "maxConcurrency": 4,
        });
        if let (Value::Object(r), Value::Object(e)) = (&mut register, extra) {
            r.extend(e);
        }
        client.send(register).await;
        let ack = client.recv_type("register.ack").await;
        (client, ack)
    }

    /// Posts the signed push of the test repository and waits for its run.
    async fn push(&self) -> String {
        let body = push_body(&self.repo_first, &self.repo_head, "main");
        let (status, _) = send(self.state(), delivery("push", "push-1", body, SECRET)).await;
        assert_eq!(status.as_u16(), 202);
        let store = self.store().clone();
        eventually("a run", || {
            let store = store.clone();
            async move {
                let runs = store.list_runs(None, None, 10).await.ok()?;
                runs.first().map(|r| r.run_id.clone())
            }
        })
        .await
    }

    async fn job(&self, run_id: &str, name: &str) -> kici_store::Job {
        self.store()
            .list_jobs(run_id)
            .await
            .expect("jobs")
            .into_iter()
            .find(|j| j.job_name == name)
            .unwrap_or_else(|| panic!("job {name}"))
    }

    async fn wait_job(&self, run_id: &str, name: &str, status: State) -> kici_store::Job {
        let store = self.store().clone();
        let (run, name2) = (run_id.to_string(), name.to_string());
        eventually(&format!("job {name} {status}"), || {
            let (store, run, name) = (store.clone(), run.clone(), name2.clone());
            async move {
                let jobs = store.list_jobs(&run).await.ok()?;
                jobs.into_iter()
                    .find(|j| j.job_name == name && j.status == status)
            }
        })
        .await
    }

    async fn wait_run(&self, run_id: &str, status: RunStatus) {
        let store = self.store().clone();
        let run = run_id.to_string();
        eventually(&format!("run {status}"), || {
            let (store, run) = (store.clone(), run.clone());
            async move {
                let found = store.get_run(&run).await.ok()??;
                (found.status == status).then_some(())
            }
        })
        .await;
    }

    async fn stop(self) {
        tokio::time::timeout(WAIT, self.handle.shutdown())
            .await
            .expect("shutdown in time");
    }
}

/// Polls `probe` until it yields a value (never sleeps longer than 20 ms at a time).
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A WebSocket client playing the agent.
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the server said last: a frame, or a close with its code.
#[derive(Debug)]
enum Got {
    Frame(Value),
    Closed(Option<u16>),
}

impl Client {
    async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    async fn next(&mut self) -> Got {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Got::Frame(serde_json::from_str(text.as_str()).expect("JSON frame"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Got::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return Got::Closed(None),
            }
        }
    }

    async fn recv(&mut self) -> Value {
        match self.next().await {
            Got::Frame(v) => v,
            Got::Closed(code) => panic!("connection closed ({code:?}) while a frame was expected"),
        }
    }

    /// The next frame of `kind`, skipping `frames.ack`.
    async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
            assert_eq!(frame["type"], "frames.ack", "expected {kind}, got {frame}");
        }
    }

    /// Reads until the server closes; returns the close code.
    async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Got::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    async fn status(&mut self, d: &Value, state: &str, seq: u64, data: Value) {
        self.send(
            json!({"type": "job.status", "messageId": format!("s-{seq}"), "runId": d["runId"],
            "jobId": d["jobId"], "state": state, "timestamp": 1, "data": data, "seq": seq}),
        )
        .await;
    }

    async fn step(&mut self, d: &Value, index: i64, state: &str, seq: u64) {
        self.send(
            json!({"type": "step.status", "messageId": format!("st-{seq}"), "runId": d["runId"],
            "jobId": d["jobId"], "stepIndex": index, "stepName": "compile", "state": state,
            "timestamp": 1, "step_type": "step", "seq": seq}),
        )
        .await;
    }

    async fn log(&mut self, d: &Value, index: i64, lines: &[&str], seq: u64) {
        self.send(
            json!({"type": "log.chunk", "messageId": format!("l-{seq}"), "runId": d["runId"],
            "jobId": d["jobId"], "stepIndex": index, "lines": lines, "timestamp": 1, "seq": seq}),
        )
        .await;
    }

    async fn ack(&mut self, d: &Value, seq: u64) {
        self.send(
            json!({"type": "job.ack", "messageId": format!("a-{seq}"), "runId": d["runId"],
            "jobId": d["jobId"], "timestamp": 1, "seq": seq}),
        )
        .await;
    }

    /// Runs a dispatched job to `outcome` with one step and one log line.
    async fn run_job(&mut self, d: &Value, outcome: &str, seq: &mut u64, data: Value) {
        let mut next = || {
            *seq += 1;
            *seq
        };
        self.ack(d, next()).await;
        self.status(d, "running", next(), json!({})).await;
        self.step(d, 0, "running", next()).await;
        self.log(d, 0, &["hello"], next()).await;
        self.step(
            d,
            0,
            if outcome == "success" {
                "success"
            } else {
                "failed"
            },
            next(),
        )
        .await;
        self.status(d, outcome, next(), data).await;
    }
}

fn caps() -> Value {
    json!({"capabilities": ["seq-ack"], "instanceId": "inst-1"})
}

/// Collects `n` dispatches, keyed by job name.
async fn dispatches(client: &mut Client, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(client.recv_type("job.dispatch").await);
    }
    out.sort_by_key(|d| {
        d["jobConfig"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    out
}

pub async fn handshake_refuses_what_the_spec_refuses(db: &TestDb) {
    let env = Env::start(db, |_, _| {}).await;

    let mut bad = env.connect().await;
    bad.send(json!({"type": "auth.request", "token": "kat_wrong", "protocolVersion": 1}))
        .await;
    let failure = bad.recv().await;
    assert_eq!(failure["type"], "auth.failure");
    assert_eq!(failure["reason"], "Invalid or expired token");
    assert_eq!(bad.closed().await, Some(4010));

    let mut wrong_first = env.connect().await;
    wrong_first
        .send(json!({"type": "heartbeat", "timestamp": 1}))
        .await;
    assert_eq!(wrong_first.recv().await["type"], "auth.failure");
    assert_eq!(wrong_first.closed().await, Some(4010));

    let mut old = env.connect().await;
    old.send(json!({"type": "auth.request", "token": env.token, "protocolVersion": 0}))
        .await;
    assert_eq!(old.recv().await["type"], "auth.failure");
    assert_eq!(old.closed().await, Some(4005));

    let mut silent = env.connect().await;
    assert_eq!(silent.closed().await, Some(4002), "auth timeout");

    let mut reserved = env.connect().await;
    reserved
        .send(json!({"type": "auth.request", "token": env.token, "protocolVersion": 1}))
        .await;
    assert_eq!(reserved.recv().await["type"], "auth.success");
    reserved
        .send(
            json!({"type": "agent.register", "messageId": "r", "agentId": "sneaky",
            "labels": ["kici:privileged:scaler"]}),
        )
        .await;
    assert_eq!(reserved.closed().await, Some(4010));

    let mut unregistered = env.connect().await;
    unregistered
        .send(json!({"type": "auth.request", "token": env.token, "protocolVersion": 1}))
        .await;
    assert_eq!(unregistered.recv().await["type"], "auth.success");
    unregistered
        .send(json!({"type": "heartbeat", "timestamp": 1}))
        .await;
    assert_eq!(unregistered.recv().await["type"], "error");
    assert_eq!(unregistered.closed().await, Some(4003));

    let (mut agent, ack) = env
        .agent("good-01", json!({"labels": ["linux", "kici:os:linux"]}))
        .await;
    assert_eq!(ack["agentId"], "good-01");
    assert_eq!(ack["labels"], json!(["linux", "kici:os:linux"]));
    assert_eq!(ack["scalerManaged"], false);
    let agents = env.state().agents().agents();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].max_concurrency, 4);
    eventually("agents gauge", || async {
        (env.state().metrics().agents_connected() == 1).then_some(())
    })
    .await;
    agent.send_raw("{not json").await;
    assert_eq!(agent.recv().await["type"], "error");
    assert_eq!(agent.closed().await, Some(4003));
    eventually("agent removed", || async {
        env.state().agents().agents().is_empty().then_some(())
    })
    .await;
    env.stop().await;
}

pub async fn push_runs_to_success_with_logs_outputs_and_needs(db: &TestDb) {
    let env = Env::start(db, |_, _| {}).await;
    let (mut agent, ack) = env.agent("runner-01", caps()).await;
    assert_eq!(ack["ackedSeq"], 0);
    assert_eq!(ack["capabilities"], json!(["seq-ack"]));
    let run_id = env.push().await;

    // build (20), build (22) and lint are ready; test waits for both builds.
    let ds = dispatches(&mut agent, 3).await;
    let names: Vec<&str> = ds
        .iter()
        .map(|d| d["jobConfig"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["build (20)", "build (22)", "lint"]);
    let build = &ds[0];
    assert_eq!(build["ref"], "refs/heads/main");
    assert_eq!(build["sha"], env.repo_head.as_str());
    assert!(
        build["repoUrl"].as_str().unwrap().ends_with("acme/widgets"),
        "{build}"
    );
    assert_eq!(build["jobConfig"]["workflowName"], "ci");
    assert_eq!(build["jobConfig"]["baseJobName"], "build");
    assert_eq!(build["jobConfig"]["matrixValues"], json!({"node": "20"}));
    assert_eq!(build["jobConfig"]["source"]["exportName"], "#default");
    assert_eq!(build["jobConfig"]["attempt"], 1);
    assert_eq!(build["jobConfig"]["env"]["KICI_RUN_ID"], run_id.as_str());

    let mut seq = 0;
    agent
        .run_job(
            &ds[0],
            "success",
            &mut seq,
            json!({"outputs": {"compile": {"version": "1.2.3"}}}),
        )
        .await;
    agent.run_job(&ds[1], "success", &mut seq, json!({})).await;
    // A chunk resent after a reconnect (same seq) is stored once.
    seq += 1;
    agent.log(&ds[2], 0, &["lint says hi"], seq).await;
    agent.log(&ds[2], 0, &["lint says hi"], seq).await;
    agent.run_job(&ds[2], "success", &mut seq, json!({})).await;

    let test = agent.recv_type("job.dispatch").await;
    assert_eq!(test["jobConfig"]["name"], "test");
    assert_eq!(
        test["jobConfig"]["needs"],
        json!(["build (20)", "build (22)"])
    );
    assert_eq!(
        test["upstreamJobOutputs"],
        json!({"build (20)": {"version": "1.2.3"}})
    );
    assert_eq!(
        test["upstreamJobStatuses"],
        json!({"build (20)": "success", "build (22)": "success"})
    );
    agent.run_job(&test, "success", &mut seq, json!({})).await;
    env.wait_run(&run_id, RunStatus::Success).await;

    let lint = env.job(&run_id, "lint").await;
    let page = env
        .store()
        .read_step_log(&lint.job_id, 0, 0, 100)
        .await
        .expect("log");
    let texts: Vec<&str> = page.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["lint says hi", "hello"]);
    let steps = env.store().list_steps(&lint.job_id).await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].status.as_str(), "success");
    let build = env.job(&run_id, "build (20)").await;
    assert_eq!(build.outputs, Some(json!({"version": "1.2.3"})));
    assert_eq!(build.agent_id.as_deref(), Some("runner-01"));

    // A report the machine refuses (running after success) is counted, not written.
    seq += 1;
    agent.status(&ds[2], "running", seq, json!({})).await;
    eventually("invalid transition counted", || async {
        (env.state().metrics().invalid_transitions("job") == 1).then_some(())
    })
    .await;
    assert_eq!(env.job(&run_id, "lint").await.status, State::Success);
    assert_eq!(env.state().metrics().jobs_finished("success"), 4);
    env.stop().await;
}

pub async fn failed_upstream_skips_dependants(db: &TestDb) {
    let env = Env::start(db, |_, _| {}).await;
    let (mut agent, _) = env.agent("runner-01", json!({})).await;
    let run_id = env.push().await;
    let ds = dispatches(&mut agent, 3).await;
    let mut seq = 0;
    agent
        .run_job(
            &ds[0],
            "failed",
            &mut seq,
            json!({"error": "compile error"}),
        )
        .await;
    let test = env.wait_job(&run_id, "test", State::Skipped).await;
    assert_eq!(
        test.skip_reason.as_deref(),
        Some("upstream build (20) (failed)")
    );
    agent.run_job(&ds[1], "success", &mut seq, json!({})).await;
    agent.run_job(&ds[2], "success", &mut seq, json!({})).await;
    env.wait_run(&run_id, RunStatus::Failed).await;
    let build = env.job(&run_id, "build (20)").await;
    assert_eq!(build.error_message.as_deref(), Some("compile error"));
    env.stop().await;
}

pub async fn ack_timeout_requeues_to_another_agent(db: &TestDb) {
    let env = Env::start(db, |_, options| options.queue.ack_timeout_ms = 500).await;
    let (mut silent, _) = env.agent("a-silent", json!({"maxConcurrency": 3})).await;
    let run_id = env.push().await;
    let first = dispatches(&mut silent, 3).await;
    assert_eq!(first[2]["jobConfig"]["attempt"], 1);
    // No job.ack: the dispatch is lost, the agent dropped with 4031, the jobs requeued.
    assert_eq!(silent.closed().await, Some(4031));
    let (mut other, _) = env.agent("b-other", json!({"maxConcurrency": 3})).await;
    let mut again = Vec::new();
    while again.len() < 3 {
        let d = other.recv_type("job.dispatch").await;
        other.ack(&d, again.len() as u64 + 1).await;
        again.push(d);
    }
    again.sort_by_key(|d| {
        d["jobConfig"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(again[2]["jobConfig"]["name"], "lint");
    assert_eq!(again[2]["jobConfig"]["attempt"], 2);
    let lint = env.job(&run_id, "lint").await;
    assert_eq!(lint.dispatch_attempts, 1);
    assert_eq!(lint.status, State::Queued);
    env.stop().await;
}

pub async fn reconnect_reclaims_a_running_job(db: &TestDb) {
    let env = Env::start(db, |_, _| {}).await;
    let (mut agent, _) = env.agent("runner-01", caps()).await;
    let run_id = env.push().await;
    let ds = dispatches(&mut agent, 3).await;
    let lint = &ds[2];
    agent.ack(lint, 1).await;
    agent.status(lint, "running", 2, json!({})).await;
    agent.step(lint, 0, "running", 3).await;
    env.wait_job(&run_id, "lint", State::Running).await;
    drop(agent);

    let recovering = env.wait_job(&run_id, "lint", State::Recovering).await;
    assert_eq!(recovering.agent_id.as_deref(), Some("runner-01"));
    let job_ref = json!([{"jobId": lint["jobId"], "runId": lint["runId"]}]);
    let (mut back, ack) = env
        .agent(
            "runner-01",
            json!({"capabilities": ["seq-ack"], "instanceId": "inst-1", "inFlightJobs": job_ref}),
        )
        .await;
    assert_eq!(ack["ackedSeq"], 3, "the frames applied before the drop");
    env.wait_job(&run_id, "lint", State::Running).await;
    // Replayed frames at or below ackedSeq are ignored; new ones apply.
    back.step(lint, 0, "running", 3).await;
    back.log(lint, 0, &["after reconnect"], 4).await;
    back.step(lint, 0, "success", 5).await;
    back.status(lint, "success", 6, json!({})).await;
    env.wait_job(&run_id, "lint", State::Success).await;
    let job = env.job(&run_id, "lint").await;
    let page = env
        .store()
        .read_step_log(&job.job_id, 0, 0, 10)
        .await
        .expect("log");
    let texts: Vec<&str> = page.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[0].starts_with("--- agent reconnected after "),
        "{texts:?}"
    );
    assert_eq!(texts[1], "after reconnect");
    env.stop().await;
}

pub async fn agent_that_never_returns_fails_its_job(db: &TestDb) {
    let env = Env::start(db, |config, _| {
        config.agents.max_reconnect_delay = Duration::from_millis(150);
    })
    .await;
    let (mut agent, _) = env.agent("runner-01", json!({})).await;
    let run_id = env.push().await;
    let ds = dispatches(&mut agent, 3).await;
    let lint = &ds[2];
    agent.ack(lint, 1).await;
    agent.status(lint, "running", 2, json!({})).await;
    env.wait_job(&run_id, "lint", State::Running).await;
    drop(agent);
    let failed = env.wait_job(&run_id, "lint", State::Failed).await;
    assert_eq!(
        failed.error_message.as_deref(),
        Some("agent disconnected and did not reconnect within the recovery window")
    );
    // The dispatched-but-not-started builds fail too rather than run twice.
    env.wait_job(&run_id, "build (20)", State::Failed).await;
    env.wait_run(&run_id, RunStatus::Failed).await;
    env.stop().await;
}

pub async fn cancel_of_a_running_run_sends_job_cancel(db: &TestDb) {
    let env = Env::start(db, |_, _| {}).await;
    let (mut agent, _) = env.agent("runner-01", json!({})).await;
    let run_id = env.push().await;
    let ds = dispatches(&mut agent, 3).await;
    let lint = &ds[2];
    agent.ack(lint, 1).await;
    agent.status(lint, "running", 2, json!({})).await;
    env.wait_job(&run_id, "lint", State::Running).await;

    let answer = kici_orchestrator::agents::cancel_run(env.state(), &run_id, "tester")
        .await
        .expect("cancel");
    assert_eq!(
        serde_json::to_value(&answer).unwrap()["status"],
        "cancelling"
    );
    // The builds were dispatched but not started: force-cancelled on the agent at once.
    let mut cancels = Vec::new();
    while cancels.len() < 3 {
        let frame = agent.recv_type("job.cancel").await;
        cancels.push((
            frame["jobId"].as_str().unwrap().to_string(),
            frame["force"].clone(),
        ));
    }
    let lint_cancel = cancels
        .iter()
        .find(|(id, _)| id == lint["jobId"].as_str().unwrap());
    assert_eq!(
        lint_cancel.map(|c| c.1.clone()),
        Some(Value::Null),
        "graceful"
    );
    assert_eq!(env.job(&run_id, "lint").await.status, State::Cancelling);
    assert_eq!(env.job(&run_id, "test").await.status, State::Cancelled);
    assert_eq!(
        env.job(&run_id, "build (22)").await.status,
        State::Cancelled
    );

    agent.status(lint, "cancelled", 3, json!({})).await;
    env.wait_run(&run_id, RunStatus::Cancelled).await;
    let run = env.store().get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(run.cancelled_by.as_deref(), Some("tester"));
    let again = kici_orchestrator::agents::cancel_run(env.state(), &run_id, "tester").await;
    assert_eq!(again.expect_err("terminal").status().as_u16(), 409);
    env.stop().await;
}
