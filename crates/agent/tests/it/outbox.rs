//! The outbox while the orchestrator is unreachable: spilling to disk, replay after
//! reconnect, and dropped log lines (protocol.md §12).

use std::path::Path;

use kici_agent::{Control, OutboxLimits};
use kici_engine::protocol::{AgentMessage, ReportedJobState, StepState};

use crate::support::{Agent, Orchestrator, Peer, Repo, lines_of, wait_until, work_entries};

const LINES: usize = 2000;

/// One step that waits for `gate` to exist, then prints `line-1` … `line-2000`.
fn gated(gate: &Path) -> String {
    r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('ci', {
  on: push({ branches: ['main'] }),
  jobs: [
    job('build', {
      runsOn: 'kici:os:linux',
      steps: [
        step('gated', async ({ $ }) => { await $`while [ ! -e GATE ]; do sleep 0.05; done; for i in $(seq 1 2000); do echo line-$i; done`; }),
      ],
    }),
  ],
});
"#
    .replace("GATE", &gate.to_string_lossy())
}

fn job_dirs(work: &Path) -> Vec<String> {
    work_entries(work, "kici-")
        .into_iter()
        .filter(|n| !n.starts_with("kici-outbox-"))
        .collect()
}

/// Applies and acknowledges frames until the step runs; returns them.
async fn until_step_runs(peer: &mut Peer) -> Vec<AgentMessage> {
    let mut applied = Vec::new();
    loop {
        let f = peer.job_frame().await;
        let seq = f.seq().expect("sequenced");
        peer.ack(seq).await;
        let running = matches!(&f, AgentMessage::StepStatus(s) if s.state == StepState::Running);
        applied.push(f);
        if running {
            return applied;
        }
    }
}

/// Runs the gated job with the connection cut while it prints; returns every frame the
/// orchestrator applied (acknowledging as it goes) and whether a spill file existed.
async fn run_through_an_outage(limits: OutboxLimits) -> (Vec<AgentMessage>, Vec<String>) {
    let gate_dir = tempfile::tempdir().expect("gate dir");
    let gate = gate_dir.path().join("go");
    let repo = Repo::new(&gated(&gate));
    let orch = Orchestrator::start().await;
    let agent = Agent::start_with(&orch.url, &[], |c| c.outbox = limits);
    let work = agent.work_path();
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-outage")).await;
    let mut applied = until_step_runs(&mut peer).await;
    let mut last_applied = applied.last().and_then(AgentMessage::seq).expect("seq");

    // The orchestrator goes away; the job prints everything and finishes meanwhile.
    drop(peer);
    std::fs::write(&gate, "").expect("open the gate");
    wait_until("the job finishes while disconnected", || {
        job_dirs(&work).is_empty()
    })
    .await;
    let spilled = work_entries(&work, "kici-outbox-");

    let mut peer = orch.accept().await;
    let register = peer.handshake(last_applied).await;
    assert!(
        register
            .completed_jobs
            .unwrap_or_default()
            .iter()
            .any(|j| j.job_id == "job-outage"),
        "the finished job is reported as completed"
    );
    loop {
        let f = peer.job_frame().await;
        let seq = f.seq().expect("sequenced");
        assert!(seq > last_applied, "seq {seq} replayed twice");
        last_applied = seq;
        peer.ack(seq).await;
        let terminal = matches!(&f, AgentMessage::JobStatus(s) if s.state.is_terminal());
        applied.push(f);
        if terminal {
            break;
        }
    }
    let AgentMessage::JobStatus(done) = applied.last().expect("frames") else {
        panic!("no job.status");
    };
    assert_eq!(done.state, ReportedJobState::Success, "{done:?}");
    wait_until(
        "the spill file is removed once everything is acknowledged",
        || work_entries(&work, "kici-outbox-").is_empty(),
    )
    .await;
    agent.stop(Control::Drain).await.expect("agent result");
    (applied, spilled)
}

#[tokio::test]
async fn an_outage_spills_to_disk_and_replays_every_line_exactly_once() {
    let limits = OutboxLimits {
        memory_bytes: 4096,
        ..OutboxLimits::default()
    };
    let (applied, spilled) = run_through_an_outage(limits).await;
    assert_eq!(
        spilled.len(),
        1,
        "one spill file under the work dir: {spilled:?}"
    );
    assert!(spilled[0].ends_with(".spill"), "{spilled:?}");
    let seqs: Vec<u64> = applied.iter().filter_map(AgentMessage::seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps, no duplicates: {seqs:?}"
    );
    let expected: Vec<String> = (1..=LINES).map(|i| format!("line-{i}")).collect();
    assert_eq!(lines_of(&applied, 0), expected);
}

/// `[<N> log lines dropped while the orchestrator was unreachable]`.
fn dropped_count(line: &str) -> Option<usize> {
    line.strip_prefix('[')?
        .strip_suffix(" log lines dropped while the orchestrator was unreachable]")?
        .parse()
        .ok()
}

#[tokio::test]
async fn an_outage_beyond_the_log_limits_drops_the_oldest_lines_with_a_marker() {
    let limits = OutboxLimits {
        max_log_chunks: 5,
        ..OutboxLimits::default()
    };
    let (applied, _) = run_through_an_outage(limits).await;
    let lines = lines_of(&applied, 0);
    let mut kept = Vec::new();
    let mut dropped = 0;
    let mut markers = 0;
    for line in &lines {
        if let Some(n) = dropped_count(line) {
            dropped += n;
            markers += 1;
        } else {
            let n: usize = line
                .strip_prefix("line-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line}"));
            kept.push(n);
        }
    }
    assert!(markers >= 1, "no dropped-lines marker in {lines:?}");
    assert!(
        kept.windows(2).all(|w| w[1] > w[0]),
        "kept lines out of order or duplicated: {kept:?}"
    );
    assert_eq!(
        kept.len() + dropped,
        LINES,
        "every line is either delivered or counted as dropped ({markers} markers)"
    );
    assert_eq!(kept.last(), Some(&LINES), "the newest lines are kept");
    // Statuses are never dropped.
    assert!(applied.iter().any(
        |f| matches!(f, AgentMessage::StepStatus(s) if s.step_index == 0 && s.state == StepState::Success)
    ));
}
