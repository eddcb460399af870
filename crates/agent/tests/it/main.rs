//! The agent library against a WebSocket server playing the orchestrator, with real git
//! repositories and compiled locks.

mod outbox;
mod shutdown;
mod startup;
mod steps;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use kici_agent::{Control, Exit};
use kici_engine::protocol::{
    AgentMessage, JobCancel, OrchestratorMessage, RejectReason, ReportedJobState, StepState,
    StepType,
};

use support::{Agent, Orchestrator, Repo, lines_of, until_terminal};

const HELLO: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('ci', {
  on: push({ branches: ['main'] }),
  jobs: [
    job('build', {
      runsOn: 'kici:os:linux',
      steps: [
        step('hello', async ({ $ }) => { await $`for i in $(seq 1 120); do echo line-$i; done`; }),
        step('version', async () => ({ version: '1.2.3' })),
      ],
    }),
  ],
});
"#;

fn expected_lines(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("line-{i}")).collect()
}

#[tokio::test]
async fn handshake_registers_with_auto_labels_then_drains() {
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &["linux-large"]);
    let mut peer = orch.accept().await;
    let register = peer.handshake(0).await;
    assert_eq!(register.agent_id, "agent-test");
    let host = kici_agent::local_hostname();
    for label in [
        "linux-large".to_string(),
        "kici:os:linux".to_string(),
        "kici:arch:x64".to_string(),
        "kici:arch:amd64".to_string(),
        format!("kici:host:{host}"),
    ] {
        assert!(
            register.labels.contains(&label),
            "{label} missing from {:?}",
            register.labels
        );
    }
    assert_eq!(
        register.labels[0], "linux-large",
        "configured labels come first"
    );
    assert_eq!(register.max_concurrency, Some(1));
    assert_eq!(register.capabilities, Some(vec!["seq-ack".to_string()]));
    assert_eq!(register.platform.as_deref(), Some("linux"));
    assert!(
        register
            .instance_id
            .as_deref()
            .is_some_and(|i| i.len() == 36)
    );
    assert!(register.in_flight_jobs.is_none());
    match peer.frame().await {
        AgentMessage::ConfigAck(ack) => assert_eq!(ack.agent_id, "agent-test"),
        other => panic!("expected config.ack, got {other:?}"),
    }
    let exit = agent.stop(Control::Drain).await.expect("agent result");
    assert_eq!(exit, Exit::Drained);
}

#[tokio::test]
async fn dispatch_runs_the_job_and_streams_every_line_in_order() {
    let repo = Repo::new(HELLO);
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-1")).await;
    let frames = until_terminal(&mut peer).await;

    let seqs: Vec<u64> = frames.iter().filter_map(AgentMessage::seq).collect();
    assert_eq!(seqs.len(), frames.len(), "every job frame is sequenced");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seqs without gaps: {seqs:?}"
    );
    assert!(matches!(&frames[0], AgentMessage::JobAck(a) if a.job_id == "job-1"));
    assert!(
        matches!(&frames[1], AgentMessage::JobStatus(s) if s.state == ReportedJobState::Running)
    );

    let steps: Vec<(i64, StepState)> = frames
        .iter()
        .filter_map(|f| match f {
            AgentMessage::StepStatus(s) => {
                assert_eq!(s.step_type, Some(StepType::Step));
                Some((s.step_index, s.state))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (0, StepState::Running),
            (0, StepState::Success),
            (1, StepState::Running),
            (1, StepState::Success),
        ]
    );
    assert_eq!(lines_of(&frames, 0), expected_lines(120));
    // The last chunk of step 0 precedes its terminal status.
    let last_chunk = frames
        .iter()
        .rposition(|f| matches!(f, AgentMessage::LogChunk(c) if c.step_index == 0));
    let done = frames.iter().position(|f| matches!(f, AgentMessage::StepStatus(s) if s.step_index == 0 && s.state == StepState::Success));
    assert!(last_chunk < done);
    let bytes: u64 = expected_lines(120).iter().map(|l| l.len() as u64).sum();
    assert!(frames.iter().any(|f| matches!(f, AgentMessage::StepStatus(s) if s.step_index == 0 && s.log_bytes_streamed == Some(bytes))));

    let AgentMessage::JobStatus(done) = frames.last().expect("frames") else {
        panic!("last frame is not job.status");
    };
    assert_eq!(done.state, ReportedJobState::Success, "{done:?}");
    let data = done.data.as_ref().expect("data");
    assert_eq!(
        data.outputs.as_ref().and_then(|o| o.get("version")),
        Some(&serde_json::json!({"version": "1.2.3"}))
    );
    assert_eq!(data.step_results.as_ref().map(Vec::len), Some(2));

    // The job directory goes right after the terminal status (which does not wait for it).
    let job_dirs = || -> Vec<String> {
        std::fs::read_dir(agent.work_path())
            .expect("work dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("kici-") && !n.starts_with("kici-outbox-"))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !job_dirs().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        job_dirs().is_empty(),
        "job directories left: {:?}",
        job_dirs()
    );
    assert_eq!(
        agent.stop(Control::Drain).await.expect("agent result"),
        Exit::Drained
    );
}

#[tokio::test]
async fn drift_fails_the_job_with_the_lock_message() {
    let mut repo = Repo::new(HELLO);
    repo.commit_workflow_edit(&HELLO.replace("line-$i", "changed-$i"));
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-drift")).await;
    let frames = until_terminal(&mut peer).await;
    let AgentMessage::JobStatus(done) = frames.last().expect("frames") else {
        panic!("no job.status");
    };
    assert_eq!(done.state, ReportedJobState::Failed);
    let error = done
        .data
        .as_ref()
        .and_then(|d| d.error.clone())
        .unwrap_or_default();
    assert!(
        error.starts_with("Lock file is out of date: workflow source changed without regenerating kici.lock.json (expected contentHash "),
        "{error}"
    );
    assert!(error.contains("file .kici/workflows/ci.ts"), "{error}");
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, AgentMessage::StepStatus(_))),
        "no step ran"
    );
    agent.stop(Control::Drain).await.expect("agent result");
}

const SLOW: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('ci', {
  on: push({ branches: ['main'] }),
  jobs: [
    job('build', {
      runsOn: 'kici:os:linux',
      steps: [
        step('slow', async ({ $ }) => { await $`for i in $(seq 1 60); do echo line-$i; sleep 0.05; done`; }),
      ],
    }),
  ],
});
"#;

#[tokio::test]
async fn a_cut_connection_replays_the_outbox_without_loss_or_duplicates() {
    let repo = Repo::new(SLOW);
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-cut")).await;

    // Apply frames until the first log chunk, acknowledge them, then cut the connection.
    let mut applied: Vec<AgentMessage> = Vec::new();
    let mut last_applied = 0;
    loop {
        let f = peer.job_frame().await;
        let seq = f.seq().expect("sequenced");
        assert!(seq > last_applied);
        last_applied = seq;
        let is_log = matches!(f, AgentMessage::LogChunk(_));
        applied.push(f);
        if is_log {
            break;
        }
    }
    peer.ack(last_applied).await;
    // Frames may already be in flight: the orchestrator has applied only what it saw.
    drop(peer);

    let mut peer = orch.accept().await;
    let register = peer.handshake(last_applied).await;
    let in_flight = register.in_flight_jobs.unwrap_or_default();
    assert!(
        in_flight.iter().any(|j| j.job_id == "job-cut"),
        "{in_flight:?}"
    );
    let mut replayed_seqs = BTreeSet::new();
    loop {
        let f = peer.job_frame().await;
        let seq = f.seq().expect("sequenced");
        assert!(
            seq > last_applied,
            "seq {seq} was already applied (last {last_applied})"
        );
        assert!(replayed_seqs.insert(seq));
        last_applied = seq;
        peer.ack(seq).await;
        let terminal = matches!(&f, AgentMessage::JobStatus(s) if s.state.is_terminal());
        applied.push(f);
        if terminal {
            break;
        }
    }
    let seqs: Vec<u64> = applied.iter().filter_map(AgentMessage::seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps: {seqs:?}"
    );
    assert_eq!(lines_of(&applied, 0), expected_lines(60));
    let AgentMessage::JobStatus(done) = applied.last().expect("frames") else {
        panic!("no job.status");
    };
    assert_eq!(done.state, ReportedJobState::Success);
    agent.stop(Control::Drain).await.expect("agent result");
}

const SLEEPY: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('ci', {
  on: push({ branches: ['main'] }),
  jobs: [
    job('build', {
      runsOn: 'kici:os:linux',
      steps: [step('wait', async ({ $ }) => { await $`echo started; sleep 2`; })],
    }),
  ],
});
"#;

#[tokio::test]
async fn cancel_stops_a_running_job() {
    let repo = Repo::new(&SLEEPY.replace("sleep 2", "sleep 60"));
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-cancel")).await;
    loop {
        let f = peer.job_frame().await;
        if matches!(&f, AgentMessage::StepStatus(s) if s.state == StepState::Running) {
            break;
        }
    }
    let started = std::time::Instant::now();
    peer.send(OrchestratorMessage::JobCancel(JobCancel {
        message_id: "c1".into(),
        run_id: "run-1".into(),
        job_id: "job-cancel".into(),
        reason: "user".into(),
        force: None,
    }))
    .await;
    let frames = until_terminal(&mut peer).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancel took {:?}",
        started.elapsed()
    );
    let states: Vec<ReportedJobState> = frames
        .iter()
        .filter_map(|f| match f {
            AgentMessage::JobStatus(s) => Some(s.state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![ReportedJobState::Cancelling, ReportedJobState::Cancelled]
    );
    agent.stop(Control::Drain).await.expect("agent result");
}

#[tokio::test]
async fn drain_rejects_new_work_and_finishes_running_jobs() {
    let repo = Repo::new(SLEEPY);
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-a")).await;
    loop {
        let f = peer.job_frame().await;
        if matches!(&f, AgentMessage::StepStatus(s) if s.state == StepState::Running) {
            break;
        }
    }
    agent.control.send(Control::Drain).await.expect("control");
    // agent.status carries draining: true.
    loop {
        if let AgentMessage::AgentStatus(s) = peer.frame().await {
            assert_eq!(s.draining, Some(true));
            break;
        }
    }
    peer.dispatch(repo.dispatch("job-b")).await;
    let mut rejected = false;
    let mut finished = None;
    while finished.is_none() {
        let f = peer.job_frame().await;
        if let Some(seq) = f.seq() {
            peer.ack(seq).await;
        }
        match f {
            AgentMessage::JobReject(r) => {
                assert_eq!(r.job_id, "job-b");
                assert_eq!(r.reason, RejectReason::Draining);
                rejected = true;
            }
            AgentMessage::JobAck(a) => panic!("accepted {a:?} while draining"),
            AgentMessage::JobStatus(s) if s.state.is_terminal() => finished = Some(s),
            _ => {}
        }
    }
    assert!(rejected);
    let done = finished.expect("terminal");
    assert_eq!(done.job_id, "job-a");
    assert_eq!(done.state, ReportedJobState::Success);
    let exit = tokio::time::timeout(support::WAIT, agent.handle)
        .await
        .expect("exits")
        .expect("no panic")
        .expect("ok");
    assert_eq!(exit, Exit::Drained);
    // The intentional close is 1000.
    loop {
        match peer.next().await {
            support::Received::Closed(code) => {
                assert_eq!(code, Some(1000));
                break;
            }
            support::Received::Frame(_) => {}
        }
    }
}

const SHOW_CONFIG: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('ci', {
  on: push({ branches: ['main'] }),
  jobs: [
    job('build', {
      runsOn: 'kici:os:linux',
      steps: [step('show', async ({ $ }) => { await $`cat .git/config; env`; })],
    }),
  ],
});
"#;

/// Scans every process's command line until `stop` is set; returns the git command lines seen
/// and any command line containing one of `needles`.
fn scan_cmdlines(
    needles: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut git_seen = 0;
        let mut leaks = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(entries) = std::fs::read_dir("/proc") {
                for entry in entries.flatten() {
                    let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
                    let git_at_work = ["fetch", "clone", "checkout"]
                        .iter()
                        .any(|verb| text.contains(verb));
                    if git_at_work && text.contains("git") {
                        git_seen += 1;
                    }
                    if needles.iter().any(|n| text.contains(n.as_str())) {
                        leaks.push(text);
                    }
                }
            }
        }
        (git_seen, leaks)
    })
}

#[tokio::test]
async fn the_clone_token_never_reaches_argv_git_config_or_logs() {
    clone_token_never_leaks(false).await;
}

/// The same through the `git init` + `git fetch` path that remote URLs take (a `file://`
/// URL is fetched like a remote one).
#[tokio::test]
async fn the_clone_token_never_leaks_through_a_fetch_either() {
    clone_token_never_leaks(true).await;
}

async fn clone_token_never_leaks(file_url: bool) {
    use base64::Engine as _;
    let mut repo = Repo::new(SHOW_CONFIG);
    // A local checkout is one `git checkout` of a few milliseconds, too short for the
    // /proc scan to be sure to see it; thousands of files make it last.
    repo.commit_files(3000);
    let secret = "ghs_CloneTokenThatMustNotLeak42";
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{secret}"));
    let mut dispatch = repo.dispatch("job-token");
    if file_url {
        dispatch.repo_url = format!("file://{}", repo.url());
    }
    dispatch.source_auth = Some(
        serde_json::from_value(serde_json::json!({"kind": "basic", "secret": secret}))
            .expect("git auth"),
    );
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scanner = scan_cmdlines(vec![secret.to_string(), basic.clone()], stop.clone());
    peer.dispatch(dispatch).await;
    let frames = until_terminal(&mut peer).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (git_seen, leaks) = scanner.join().expect("scanner");
    assert!(git_seen > 0, "the scan never saw the clone's git processes");
    assert!(leaks.is_empty(), "token in a command line: {leaks:?}");

    let lines = lines_of(&frames, 0);
    assert!(
        lines.iter().any(|l| l.contains("[remote \"origin\"]")),
        "the step printed .git/config: {lines:?}"
    );
    for line in &lines {
        assert!(
            !line.contains(secret) && !line.contains(&basic),
            "leak in the job: {line}"
        );
        assert!(
            !line.contains("GIT_CONFIG"),
            "git's credential config reached the job: {line}"
        );
        assert!(
            !line.contains(support::TOKEN),
            "agent token reached the job: {line}"
        );
    }
    let AgentMessage::JobStatus(done) = frames.last().expect("frames") else {
        panic!("no job.status");
    };
    assert_eq!(done.state, ReportedJobState::Success, "{done:?}");
    agent.stop(Control::Drain).await.expect("agent result");
}
