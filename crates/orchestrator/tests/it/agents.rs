//! The agent side over real sockets: a real orchestrator on 127.0.0.1:0 and WebSocket
//! clients that speak the protocol as an agent does (handshake, dispatch, acks, statuses,
//! logs, reconnects, cancel). Each function runs on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kici_engine::state::{RunStatus, State};
use kici_orchestrator::{AppState, Handle, Orchestrator, Sources};
use kici_store::{AgentTokenKind, NewAdminToken, NewAgentToken, Store, StoreOptions};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::harness::{SECRET, TestDb, TestRepo, ci_push_lock, config, delivery, push_body, send};

crate::harness::backend_tests!(in agents;
    handshake_refuses_what_the_spec_refuses,
    push_runs_to_success_with_logs_outputs_and_needs,
    failed_upstream_skips_dependants,
    ack_timeout_requeues_to_another_agent,
    reconnect_reclaims_a_running_job,
    agent_that_never_returns_fails_its_job,
    cancel_of_a_running_run_sends_job_cancel,
    unanswered_forced_cancel_ends_the_job_cancelled,
    revoking_a_token_closes_its_agents_with_4010,
    fail_fast_skips_and_cancels_matrix_siblings,
    runs_on_pick_any_spreads_over_agents,
    queue_expiry_says_when_no_agent_matches,
    agent_pings_are_answered,
    lost_progression_is_recovered_by_the_sweep,
    acknowledged_dispatch_that_never_starts_goes_stale,
    max_parallel_holds_downstream_of_needs,
);

const WAIT: Duration = Duration::from_secs(15);

/// A running orchestrator with one agent token.
struct Env {
    handle: Handle,
    token: String,
    token_id: String,
    _repo: TestRepo,
    repo_head: String,
    repo_first: String,
}

impl Env {
    async fn start(
        db: &TestDb,
        tune: impl FnOnce(&mut kici_orchestrator::Config, &mut StoreOptions),
    ) -> Env {
        Self::start_with_lock(db, crate::harness::LOCK, tune).await
    }

    /// [`Env::start`] on a repository whose lock is `lock`.
    async fn start_with_lock(
        db: &TestDb,
        lock: &str,
        tune: impl FnOnce(&mut kici_orchestrator::Config, &mut StoreOptions),
    ) -> Env {
        let repo = TestRepo::with_lock(lock);
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
        let (record, token) = store
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
            token_id: record.id,
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
        let token = self.token.clone();
        self.agent_with(&token, agent_id, extra).await
    }

    /// [`Env::agent`] with another agent token.
    async fn agent_with(&self, token: &str, agent_id: &str, extra: Value) -> (Client, Value) {
        let mut client = self.connect().await;
        client
            .send(json!({"type": "auth.request", "token": token, "protocolVersion": 1}))
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
        self.push_delivery("push-1", 1).await
    }

    /// Posts the push again under another delivery id; waits for the `nth` run.
    async fn push_delivery(&self, delivery_id: &str, nth: usize) -> String {
        let body = push_body(&self.repo_first, &self.repo_head, "main");
        let (status, _) = send(self.state(), delivery("push", delivery_id, body, SECRET)).await;
        assert_eq!(status.as_u16(), 202);
        let store = self.store().clone();
        eventually("a run", || {
            let store = store.clone();
            async move {
                let runs = store.list_runs(None, None, 10).await.ok()?;
                (runs.len() >= nth).then(|| runs[0].run_id.clone())
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
    // `failFast` defaults to false (sdk.md §4): the sibling ran to its end.
    assert_eq!(env.job(&run_id, "build (22)").await.status, State::Success);
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

pub async fn unanswered_forced_cancel_ends_the_job_cancelled(db: &TestDb) {
    let env = Env::start(db, |config, _| {
        config.agents.forced_cancel_timeout = Duration::from_millis(300);
    })
    .await;
    let (mut agent, _) = env.agent("runner-01", json!({})).await;
    let run_id = env.push().await;
    let ds = dispatches(&mut agent, 3).await;
    let lint = &ds[2];
    agent.ack(lint, 1).await;
    agent.status(lint, "running", 2, json!({})).await;
    env.wait_job(&run_id, "lint", State::Running).await;

    let options = kici_orchestrator::agents::CancelOptions {
        force: true,
        reason: None,
    };
    kici_orchestrator::agents::cancel_run_with(env.state(), &run_id, "tester", &options)
        .await
        .expect("cancel");
    loop {
        let frame = agent.recv_type("job.cancel").await;
        if frame["jobId"] == lint["jobId"] {
            assert_eq!(frame["force"], true);
            break;
        }
    }
    assert_eq!(env.job(&run_id, "lint").await.status, State::Cancelling);
    // The agent never answers: the job ends cancelled after the timeout, and so does the run.
    env.wait_job(&run_id, "lint", State::Cancelled).await;
    env.wait_run(&run_id, RunStatus::Cancelled).await;
    let job = env.job(&run_id, "lint").await;
    assert!(
        job.error_message
            .as_deref()
            .is_some_and(|e| e.contains("forced cancel")),
        "{:?}",
        job.error_message
    );
    // A late report changes nothing.
    agent.status(lint, "success", 3, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.job(&run_id, "lint").await.status, State::Cancelled);
    env.stop().await;
}

/// A lock whose `ci` workflow has one matrix `build` (four children, `failFast`,
/// `maxParallel: 3`) and `after` needing it.
fn fail_fast_lock() -> String {
    ci_push_lock(
        r#"
        {"_type": "static", "name": "build",
         "runsOn": [{"kind": "exact", "value": "kici:os:linux"}],
         "needs": [], "maxParallel": 3, "failFast": true,
         "matrix": {"_type": "static", "values": {"node": ["20", "22", "24", "26"]}},
         "steps": [{"name": "compile", "hasOutputs": false}]},
        {"_type": "static", "name": "after", "needs": ["build"],
         "steps": [{"name": "report", "hasOutputs": false}]}
"#,
    )
}

/// A lock whose `ci` workflow has a matrix `spread` with `runsOnPick: any` and a matrix
/// `det` with the default `deterministic` pick.
fn pick_any_lock() -> String {
    ci_push_lock(
        r#"
        {"_type": "static", "name": "spread",
         "runsOn": [{"kind": "exact", "value": "kici:os:linux"}], "runsOnPick": "any",
         "needs": [],
         "matrix": {"_type": "static", "values": {"shard": ["1", "2", "3", "4"]}},
         "steps": [{"name": "work", "hasOutputs": false}]},
        {"_type": "static", "name": "det",
         "runsOn": [{"kind": "exact", "value": "kici:os:linux"}], "runsOnPick": "deterministic",
         "needs": [],
         "matrix": {"_type": "static", "values": {"shard": ["1", "2"]}},
         "steps": [{"name": "work", "hasOutputs": false}]}
"#,
    )
}

fn names(ds: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = ds
        .iter()
        .map(|d| {
            d["jobConfig"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

pub async fn revoking_a_token_closes_its_agents_with_4010(db: &TestDb) {
    let env = Env::start(db, |_, _| {}).await;
    let (_, other_token) = env
        .store()
        .create_agent_token(
            &NewAgentToken {
                label: Some("other".into()),
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
    let (_, admin) = env
        .store()
        .create_admin_token(
            &NewAdminToken {
                label: "ops".into(),
                role: "owner".into(),
                expires_at: None,
            },
            1,
        )
        .await
        .expect("admin token");
    let (mut doomed, _) = env.agent("runner-01", json!({})).await;
    let run_id = env.push().await;
    let ds = dispatches(&mut doomed, 3).await;
    let lint = &ds[2];
    doomed.ack(lint, 1).await;
    doomed.status(lint, "running", 2, json!({})).await;
    env.wait_job(&run_id, "lint", State::Running).await;
    let (mut kept, _) = env.agent_with(&other_token, "runner-02", json!({})).await;

    let revoke = |id: &str| {
        axum::http::Request::delete(format!("/api/v1/admin/agent-tokens/{id}"))
            .header("authorization", format!("Bearer {admin}"))
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let (status, body) = send(env.state(), revoke(&env.token_id)).await;
    assert_eq!(status.as_u16(), 204, "{body}");
    assert_eq!(doomed.closed().await, Some(4010));
    let connected: Vec<String> = env
        .state()
        .agents()
        .agents()
        .into_iter()
        .map(|a| a.agent_id)
        .collect();
    assert_eq!(
        connected,
        ["runner-02"],
        "removed at once, the other token's agent stays"
    );
    // The running job takes the disconnect path: recovery, not an immediate failure.
    let recovering = env.wait_job(&run_id, "lint", State::Recovering).await;
    assert_eq!(recovering.agent_id.as_deref(), Some("runner-01"));
    // The revoked token no longer authenticates; the other agent still talks.
    let mut again = env.connect().await;
    again
        .send(json!({"type": "auth.request", "token": env.token, "protocolVersion": 1}))
        .await;
    assert_eq!(again.recv().await["type"], "auth.failure");
    assert_eq!(again.closed().await, Some(4010));
    kept.send(json!({"type": "heartbeat", "timestamp": 1}))
        .await;
    assert!(env.state().agents().is_connected("runner-02"));
    let (status, _) = send(env.state(), revoke(&env.token_id)).await;
    assert_eq!(status.as_u16(), 404, "already revoked");
    env.stop().await;
}

pub async fn fail_fast_skips_and_cancels_matrix_siblings(db: &TestDb) {
    let env = Env::start_with_lock(db, &fail_fast_lock(), |_, _| {}).await;
    let (mut agent, _) = env.agent("runner-01", json!({"maxConcurrency": 8})).await;
    let run_id = env.push().await;
    // maxParallel 3: the fourth child waits (wave-gated).
    let ds = dispatches(&mut agent, 3).await;
    assert_eq!(names(&ds), ["build (20)", "build (22)", "build (24)"]);
    let (b20, b22, b24) = (&ds[0], &ds[1], &ds[2]);
    agent.ack(b22, 1).await;
    agent.status(b22, "running", 2, json!({})).await;
    agent.ack(b24, 3).await;
    env.wait_job(&run_id, "build (22)", State::Running).await;

    let mut seq = 10;
    agent
        .run_job(b20, "failed", &mut seq, json!({"error": "boom"}))
        .await;
    // Running sibling: graceful job.cancel; dispatched, unstarted sibling: force.
    let mut cancels = Vec::new();
    while cancels.len() < 2 {
        let frame = agent.recv_type("job.cancel").await;
        cancels.push((
            frame["jobId"].as_str().unwrap().to_string(),
            frame["force"].clone(),
        ));
    }
    cancels.sort_by_key(|(id, _)| id != b22["jobId"].as_str().unwrap());
    assert_eq!(
        cancels[0],
        (b22["jobId"].as_str().unwrap().to_string(), Value::Null)
    );
    assert_eq!(
        cancels[1],
        (b24["jobId"].as_str().unwrap().to_string(), json!(true))
    );
    env.wait_job(&run_id, "build (22)", State::Cancelling).await;
    for name in ["build (24)", "build (26)"] {
        let job = env.wait_job(&run_id, name, State::Skipped).await;
        assert_eq!(job.skip_reason.as_deref(), Some("fail_fast"), "{name}");
    }
    let after = env.wait_job(&run_id, "after", State::Skipped).await;
    assert_eq!(
        after.skip_reason.as_deref(),
        Some("upstream build (20) (failed)")
    );
    agent.status(b22, "cancelled", 20, json!({})).await;
    env.wait_run(&run_id, RunStatus::Failed).await;
    assert_eq!(
        env.job(&run_id, "build (22)").await.status,
        State::Cancelled
    );
    // The skipped fourth child was never dispatched.
    assert_eq!(env.job(&run_id, "build (26)").await.dispatch_attempts, 0);
    assert!(env.job(&run_id, "build (26)").await.agent_id.is_none());
    env.stop().await;
}

pub async fn runs_on_pick_any_spreads_over_agents(db: &TestDb) {
    let env = Env::start_with_lock(db, &pick_any_lock(), |_, _| {}).await;
    let (mut a, _) = env.agent("agent-a", json!({"maxConcurrency": 4})).await;
    let (mut b, _) = env.agent("agent-b", json!({"maxConcurrency": 4})).await;
    env.push().await;
    let to_a = dispatches(&mut a, 4).await;
    let to_b = dispatches(&mut b, 2).await;
    // `deterministic`: the smallest agent id; `any`: the least recently dispatched-to.
    assert_eq!(
        names(&to_a),
        ["det (1)", "det (2)", "spread (1)", "spread (3)"]
    );
    assert_eq!(names(&to_b), ["spread (2)", "spread (4)"]);
    // The reassigned dispatches are b's: its acks settle them.
    for (n, d) in to_b.iter().enumerate() {
        b.ack(d, n as u64 + 1).await;
    }
    let store = env.store().clone();
    let job_id = to_b[0]["jobId"].as_str().unwrap().to_string();
    eventually("ack settled", || {
        let (store, job_id) = (store.clone(), job_id.clone());
        async move {
            let entry = store.get_queue_entry(&job_id).await.ok()??;
            (entry.agent_id.as_deref() == Some("agent-b") && entry.ack_deadline.is_none())
                .then_some(())
        }
    })
    .await;
    env.stop().await;
}

pub async fn queue_expiry_says_when_no_agent_matches(db: &TestDb) {
    let env = Env::start(db, |config, _| {
        config.queue_timeout = Some(Duration::from_millis(300));
        config.agents.queue_expiry_interval = Duration::from_millis(100);
    })
    .await;
    const EXPIRED: &str = "Queue timeout expired (job was never dispatched to an agent)";
    // Only a macOS agent: the Linux builds can never be dispatched.
    let (mut mac, _) = env
        .agent("mac-01", json!({"labels": ["kici:os:darwin"]}))
        .await;
    let run_id = env.push().await;
    let lint = mac.recv_type("job.dispatch").await;
    assert_eq!(lint["jobConfig"]["name"], "lint");
    mac.ack(&lint, 1).await;
    let build = env
        .wait_job(&run_id, "build (20)", State::TimedOutStale)
        .await;
    assert_eq!(
        build.error_message.as_deref(),
        Some(format!("{EXPIRED}; no connected agent matches [kici:os:linux]").as_str())
    );
    let row = env
        .store()
        .get_queue_entry(&build.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status.as_str(), "expired");
    env.wait_job(&run_id, "test", State::Skipped).await;

    // A matching agent is connected but draining: the job expires without the suffix.
    let (mut penguin, _) = env.agent("penguin-01", json!({})).await;
    penguin
        .send(
            json!({"type": "agent.status", "messageId": "st", "agentId": "penguin-01",
            "activeJobs": 0, "draining": true}),
        )
        .await;
    eventually("draining", || async {
        env.state()
            .agents()
            .agents()
            .iter()
            .any(|a| a.agent_id == "penguin-01" && a.draining)
            .then_some(())
    })
    .await;
    let second = env.push_delivery("push-2", 2).await;
    assert_ne!(second, run_id);
    let build = env
        .wait_job(&second, "build (22)", State::TimedOutStale)
        .await;
    assert_eq!(build.error_message.as_deref(), Some(EXPIRED));
    env.stop().await;
}

pub async fn agent_pings_are_answered(db: &TestDb) {
    let env = Env::start(db, |_, _| {}).await;
    let (mut agent, _) = env.agent("runner-01", json!({})).await;
    // protocol.md §2/§10: the agent pings every 30 s and reconnects when nothing comes back.
    agent
        .ws
        .send(Message::Ping(b"are-you-there".to_vec().into()))
        .await
        .expect("ping");
    let pong = loop {
        match tokio::time::timeout(WAIT, agent.ws.next()).await {
            Ok(Some(Ok(Message::Pong(payload)))) => break payload,
            Ok(Some(Ok(Message::Text(_)))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"are-you-there");
    assert!(env.state().agents().is_connected("runner-01"));
    env.stop().await;
}

pub async fn lost_progression_is_recovered_by_the_sweep(db: &TestDb) {
    let env = Env::start(db, |config, _| {
        config.agents.stale_scan_interval = Duration::from_millis(100);
    })
    .await;
    let (mut agent, _) = env.agent("runner-01", json!({})).await;
    let run_id = env.push().await;
    let ds = dispatches(&mut agent, 3).await;
    let mut seq = 1;
    // Acknowledged, so no ack-timeout sweep comes near it.
    agent.ack(&ds[2], seq).await;
    agent.run_job(&ds[0], "success", &mut seq, json!({})).await;
    agent.run_job(&ds[1], "success", &mut seq, json!({})).await;
    let test = agent.recv_type("job.dispatch").await;
    agent.run_job(&test, "success", &mut seq, json!({})).await;
    env.wait_job(&run_id, "test", State::Success).await;
    // The last job ends in the store without the progression that normally follows (a
    // crash or a store error between the two): the sweep still finishes the run.
    let lint = env.job(&run_id, "lint").await;
    env.store()
        .transition_job(
            &lint.job_id,
            kici_engine::state::Event::Fail,
            &kici_store::JobUpdate {
                error_message: Some("lost".into()),
                ..kici_store::JobUpdate::default()
            },
            1,
        )
        .await
        .expect("fail lint");
    env.wait_run(&run_id, RunStatus::Failed).await;
    env.stop().await;
}

pub async fn acknowledged_dispatch_that_never_starts_goes_stale(db: &TestDb) {
    let env = Env::start(db, |config, _| {
        config.agents.job_heartbeat_interval = Duration::from_millis(150);
        config.agents.stale_scan_interval = Duration::from_millis(100);
    })
    .await;
    let (mut agent, _) = env.agent("runner-01", json!({})).await;
    let run_id = env.push().await;
    let ds = dispatches(&mut agent, 3).await;
    let lint = &ds[2];
    // Acknowledged, then silence: no `running` ever comes (a lost frame).
    agent.ack(lint, 1).await;
    let cancel = agent.recv_type("job.cancel").await;
    assert_eq!(cancel["jobId"], lint["jobId"]);
    assert_eq!(cancel["force"], true);
    let job = env.wait_job(&run_id, "lint", State::TimedOutStale).await;
    assert!(
        job.error_message
            .as_deref()
            .is_some_and(|m| m.starts_with("job never started")),
        "{job:?}"
    );
    env.stop().await;
}

/// `prep`, then a matrix `build` (two children, `maxParallel: 1`) that needs it.
fn wave_lock() -> String {
    ci_push_lock(
        r#"
        {"_type": "static", "name": "prep", "needs": [],
         "steps": [{"name": "setup", "hasOutputs": false}]},
        {"_type": "static", "name": "build", "needs": ["prep"], "maxParallel": 1,
         "matrix": {"_type": "static", "values": {"node": ["20", "22"]}},
         "steps": [{"name": "compile", "hasOutputs": false}]}
"#,
    )
}

pub async fn max_parallel_holds_downstream_of_needs(db: &TestDb) {
    let env = Env::start_with_lock(db, &wave_lock(), |_, _| {}).await;
    let (mut agent, _) = env.agent("runner-01", json!({"maxConcurrency": 8})).await;
    let run_id = env.push().await;
    let prep = agent.recv_type("job.dispatch").await;
    assert_eq!(prep["jobConfig"]["name"], "prep");
    let mut seq = 0;
    agent.run_job(&prep, "success", &mut seq, json!({})).await;
    let first = agent.recv_type("job.dispatch").await;
    assert_eq!(first["jobConfig"]["name"], "build (20)");
    env.wait_job(&run_id, "build (20)", State::Queued).await;
    assert_eq!(env.job(&run_id, "build (22)").await.status, State::Pending);
    agent.run_job(&first, "success", &mut seq, json!({})).await;
    let second = agent.recv_type("job.dispatch").await;
    assert_eq!(second["jobConfig"]["name"], "build (22)");
    agent.run_job(&second, "success", &mut seq, json!({})).await;
    env.wait_run(&run_id, RunStatus::Success).await;
    env.stop().await;
}
