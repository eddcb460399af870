//! What `step.status` and `log.chunk` carry for a step: the failed command's exit code
//! (protocol.md §7.3) and the per-step log cap (protocol.md §11).

use kici_agent::Control;
use kici_engine::protocol::{AgentMessage, ReportedJobState, StepState};

use crate::support::{Agent, Orchestrator, Repo, lines_of, until_terminal};

fn workflow(steps: &str) -> String {
    format!(
        r#"import {{ workflow, job, step, push }} from '@kici-dev/sdk';

export default workflow('ci', {{
  on: push({{ branches: ['main'] }}),
  jobs: [
    job('build', {{
      runsOn: 'kici:os:linux',
      steps: [
{steps}
      ],
    }}),
  ],
}});
"#
    )
}

fn terminal_step(
    frames: &[AgentMessage],
    index: i64,
) -> Box<kici_engine::protocol::StepStatusReport> {
    frames
        .iter()
        .find_map(|f| match f {
            AgentMessage::StepStatus(s)
                if s.step_index == index && s.state != StepState::Running =>
            {
                Some(s.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no terminal step.status for step {index}"))
}

#[tokio::test]
async fn a_failed_command_reports_its_exit_code() {
    let repo = Repo::new(&workflow(
        r#"        step('tolerated', { continueOnError: true, run: async ({ $ }) => { await $`echo trying; exit 3`; } }),
        step('thrown', { continueOnError: true, run: async () => { throw new Error('exit code: 9 is not a command'); } }),
        step('missing', async ({ $ }) => { await $`kici-no-such-command`; }),"#,
    ));
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(repo.dispatch("job-exit")).await;
    let frames = until_terminal(&mut peer).await;

    let data = |i| terminal_step(&frames, i).data.clone().expect("data");
    let tolerated = data(0);
    assert_eq!(tolerated.exit_code, Some(3), "{tolerated:?}");
    assert_eq!(tolerated.continued_on_error, Some(true));
    let thrown = data(1);
    assert_eq!(thrown.exit_code, None, "no command failed: {thrown:?}");
    let missing = data(2);
    assert_eq!(missing.exit_code, Some(127), "{missing:?}");
    assert_eq!(terminal_step(&frames, 2).state, StepState::Failed);
    let AgentMessage::JobStatus(done) = frames.last().expect("frames") else {
        panic!("no job.status");
    };
    assert_eq!(done.state, ReportedJobState::Failed);
    agent.stop(Control::Drain).await.expect("agent result");
}

#[tokio::test]
async fn the_per_step_log_cap_truncates_with_the_marker() {
    let repo = Repo::new(&workflow(
        r#"        step('chatty', async ({ $ }) => { await $`for i in $(seq 1 500); do echo line-$i; done`; }),
        step('after', async ({ $ }) => { await $`echo after-1; echo after-2`; }),"#,
    ));
    let cap: u64 = 1000;
    let mut dispatch = repo.dispatch("job-cap");
    dispatch.max_log_size_bytes = Some(cap);
    let orch = Orchestrator::start().await;
    let agent = Agent::start(&orch.url, &[]);
    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    peer.dispatch(dispatch).await;
    let frames = until_terminal(&mut peer).await;

    let lines = lines_of(&frames, 0);
    let marker = format!("[TRUNCATED: log output exceeded {cap} bytes]");
    let (last, kept) = lines.split_last().expect("lines");
    assert_eq!(last, &marker, "the marker ends the step's log: {lines:?}");
    assert!(!kept.contains(&marker), "one marker only");
    // Lines are kept until the running total reaches the cap, in order.
    let expected: Vec<String> = (1..=kept.len()).map(|i| format!("line-{i}")).collect();
    assert_eq!(kept, expected.as_slice());
    let streamed: u64 = kept.iter().map(|l| l.len() as u64).sum();
    assert!(streamed >= cap && streamed - (kept.last().map_or(0, |l| l.len()) as u64) < cap);
    let done = terminal_step(&frames, 0);
    assert_eq!(done.state, StepState::Success);
    assert_eq!(done.log_bytes_streamed, Some(streamed));
    // The cap is per step: the next step logs normally.
    assert_eq!(lines_of(&frames, 1), vec!["after-1", "after-2"]);
    agent.stop(Control::Drain).await.expect("agent result");
}
