//! `Control::Terminate` (agent.md §16) and the permanent stop on `auth.failure` / 4010
//! (protocol.md §13).

use std::time::{Duration, Instant};

use kici_agent::{AgentError, Control, Exit};
use kici_engine::protocol::{
    AgentMessage, AuthFailure, OrchestratorMessage, ReportedJobState, StepState,
};

use crate::support::{
    Agent, Orchestrator, Repo, processes_with, unique_marker, until_terminal, wait_until,
};

/// A job whose only step runs until it is killed: a shell that ignores SIGTERM and carries
/// `marker` in its command line, with cancel hooks on the step and the job.
fn endless(marker: &str) -> String {
    r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('ci', {
  on: push({ branches: ['main'] }),
  jobs: [
    job('build', {
      runsOn: 'kici:os:linux',
      onCancel: async ({ log }) => log.info('HOOK job onCancel'),
      steps: [
        step('long', {
          onCancel: async ({ log }) => log.info('HOOK step onCancel'),
          run: async ({ $ }) => { await $`echo started; sh -c 'trap "" TERM; while :; do sleep 0.1; done; echo MARKER'`; },
        }),
      ],
    }),
  ],
});
"#
    .replace("MARKER", marker)
}

/// Waits until the job's step runs and its marked process exists.
async fn until_step_runs(peer: &mut crate::support::Peer, marker: &str) {
    loop {
        let f = peer.job_frame().await;
        if let Some(seq) = f.seq() {
            peer.ack(seq).await;
        }
        if matches!(&f, AgentMessage::StepStatus(s) if s.state == StepState::Running) {
            break;
        }
    }
    wait_until("the step's process starts", || {
        !processes_with(marker).is_empty()
    })
    .await;
}

async fn assert_no_survivors(marker: &str) {
    // SIGKILL has been sent by the time the terminal status leaves; allow for reaping.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of the job survived: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_lines(frames: &[AgentMessage]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f {
            AgentMessage::LogChunk(c) => Some(c.lines.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn job_states(frames: &[AgentMessage]) -> Vec<ReportedJobState> {
    frames
        .iter()
        .filter_map(|f| match f {
            AgentMessage::JobStatus(s) => Some(s.state),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn terminate_waits_the_grace_then_cancels_gracefully_and_leaves_no_process() {
    let marker = unique_marker("terminate");
    let repo = Repo::new(&endless(&marker));
    let orch = Orchestrator::start().await;
    let grace = Duration::from_millis(700);
    let agent = Agent::start_with(&orch.url, &[], |c| c.job_stop_grace = grace);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-term")).await;
    until_step_runs(&mut peer, &marker).await;

    let asked = Instant::now();
    agent
        .control
        .send(Control::Terminate)
        .await
        .expect("control");
    let mut frames = Vec::new();
    let mut cancelling_after = None;
    loop {
        let f = peer.job_frame().await;
        if let Some(seq) = f.seq() {
            peer.ack(seq).await;
        }
        if matches!(&f, AgentMessage::JobStatus(s) if s.state == ReportedJobState::Cancelling) {
            cancelling_after = Some(asked.elapsed());
        }
        let terminal = matches!(&f, AgentMessage::JobStatus(s) if s.state.is_terminal());
        frames.push(f);
        if terminal {
            break;
        }
    }
    let waited = cancelling_after.expect("job.status cancelling");
    assert!(
        waited >= grace,
        "cancelled after {waited:?}, before the grace of {grace:?}"
    );
    assert_eq!(
        job_states(&frames),
        vec![ReportedJobState::Cancelling, ReportedJobState::Cancelled]
    );
    let lines = all_lines(&frames);
    for hook in ["HOOK step onCancel", "HOOK job onCancel"] {
        assert!(
            lines.iter().any(|l| l.contains(hook)),
            "{hook} did not run: {lines:?}"
        );
    }
    assert!(frames.iter().any(|f| matches!(f, AgentMessage::StepStatus(s) if s.step_index == 0 && s.state == StepState::Cancelled)));

    let exit = agent.finished().await.expect("agent result");
    assert_eq!(exit, Exit::Terminated { force_killed: 0 });
    assert_no_survivors(&marker).await;
}

#[tokio::test]
async fn a_second_terminate_force_kills_at_once() {
    let marker = unique_marker("terminate2");
    let repo = Repo::new(&endless(&marker));
    let orch = Orchestrator::start().await;
    let agent = Agent::start_with(&orch.url, &[], |c| {
        c.job_stop_grace = Duration::from_secs(120);
    });
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-force")).await;
    until_step_runs(&mut peer, &marker).await;

    agent
        .control
        .send(Control::Terminate)
        .await
        .expect("control");
    // The first terminate is in effect once agent.status says draining.
    loop {
        if let AgentMessage::AgentStatus(s) = peer.frame().await
            && s.draining == Some(true)
        {
            break;
        }
    }
    let asked = Instant::now();
    agent
        .control
        .send(Control::Terminate)
        .await
        .expect("control");
    let frames = until_terminal(&mut peer).await;
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "force-kill took {:?}",
        asked.elapsed()
    );
    assert_eq!(
        job_states(&frames),
        vec![ReportedJobState::Cancelling, ReportedJobState::Cancelled]
    );
    let lines = all_lines(&frames);
    assert!(
        !lines.iter().any(|l| l.contains("HOOK")),
        "a forced kill skips the hooks: {lines:?}"
    );
    let exit = agent.finished().await.expect("agent result");
    assert_eq!(exit, Exit::Terminated { force_killed: 1 });
    assert_no_survivors(&marker).await;
}

/// The agent must not dial again within this long (first backoff is 1–1.5 s).
const NO_RECONNECT: Duration = Duration::from_secs(4);

fn assert_rejected(result: Result<Exit, AgentError>, reason: &str) {
    match result {
        Err(AgentError::AuthRejected { reason: got }) => assert_eq!(got, reason),
        other => panic!("expected AuthRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn auth_failure_stops_the_agent_for_good() {
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    assert!(matches!(peer.frame().await, AgentMessage::AuthRequest(_)));
    peer.send(OrchestratorMessage::AuthFailure(AuthFailure {
        reason: "token revoked".into(),
    }))
    .await;
    let result = agent.finished().await;
    assert_rejected(result, "token revoked");
    assert!(
        orch.try_accept(NO_RECONNECT).await.is_none(),
        "the agent reconnected after auth.failure"
    );
}

#[tokio::test]
async fn close_4010_after_registration_stops_the_agent_for_good() {
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.close(4010, "token expired").await;
    let result = agent.finished().await;
    assert_rejected(result, "token expired");
    assert!(
        orch.try_accept(NO_RECONNECT).await.is_none(),
        "the agent reconnected after close 4010"
    );
}

#[tokio::test]
async fn close_4010_during_the_handshake_stops_the_agent_for_good() {
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    assert!(matches!(peer.frame().await, AgentMessage::AuthRequest(_)));
    peer.close(4010, "agent auth failed").await;
    let result = agent.finished().await;
    assert_rejected(result, "agent auth failed");
    assert!(
        orch.try_accept(NO_RECONNECT).await.is_none(),
        "the agent reconnected after close 4010"
    );
}
