//! Acceptance tests of the whole system made of the real binaries (`cluster.rs`): the durable
//! inbox across `kill -9` (orchestrator.md §3), a signed webhook through planning, dispatch,
//! execution and log storage (issue 5), faults (agent and orchestrator killed, the agent's
//! connection cut, SIGTERM and SIGUSR1: orchestrator.md §10, agent.md §15–§16, protocol.md
//! §13) and where credentials must never appear (agent.md §5, §11). Every test runs on SQLite
//! and on PostgreSQL, with shortened timeouts.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::cluster::{Backend, Cluster, Proxy, on_both_backends, processes_containing};

on_both_backends!(
    webhook_survives_kill9_while_its_lock_fetch_is_failing,
    webhook_survives_kill9_while_it_is_being_processed,
    signed_webhook_runs_needs_matrix_outputs_and_continue_on_error,
    matrix_job_outputs_reach_the_downstream_job,
    the_agent_only_binary_runs_jobs_like_kici_agent,
    agent_killed_mid_step_fails_the_job_within_the_recovery_window,
    cut_connection_while_a_step_finishes_loses_no_log_line,
    orchestrator_killed_mid_job_and_restarted_completes_the_run,
    agent_sigterm_cancels_the_job_and_leaves_no_process,
    agent_sigusr1_drains_the_job_and_leaves_no_process,
    no_token_reaches_argv_logs_api_or_workspace,
);

const SHORT: Duration = Duration::from_secs(20);

/// A one-job workflow whose only step runs `script` (bash) on the `e2e` agents.
fn one_step_workflow(script: &str) -> String {
    format!(
        r#"import {{ workflow, job, step, push }} from '@kici-dev/sdk';

export default workflow('e2e', {{
  on: push({{ branches: ['main'] }}),
  jobs: [
    job('work', {{
      runsOn: 'e2e',
      steps: [step('main', async ({{ $ }}) => {{ await $`{script}`; }})],
    }}),
  ],
}});
"#
    )
}

fn cluster(backend: Backend) -> Option<Cluster> {
    Cluster::new(backend)
}

/// The inbox item of a 202 answer.
fn inbox_id(answer: &Value) -> String {
    answer["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no inbox id in {answer}"))
        .to_string()
}

fn inbox_item(c: &Cluster, id: &str) -> Value {
    c.get(&format!("/api/v1/admin/inbox/{id}"))
}

/// Waits until the one step of `work` has printed `line` (as stored by the orchestrator).
fn wait_for_log_line(c: &Cluster, run_id: &str, line: &str) -> String {
    c.wait_for(&format!("log line {line:?}"), SHORT, |c| {
        let detail = c.run_detail(run_id);
        let job = detail["jobs"].as_array()?.first()?.clone();
        let job_id = job["jobId"].as_str()?.to_string();
        c.step_log(run_id, &job_id, 0)
            .iter()
            .any(|l| l == line)
            .then_some(job_id)
    })
}

/// `expected` occur in `log` in this order, each exactly once (other lines may surround them).
#[track_caller]
fn assert_lines_once_in_order(log: &[String], expected: &[String], what: &str) {
    let mut last = None;
    for line in expected {
        let positions: Vec<usize> = log
            .iter()
            .enumerate()
            .filter(|(_, l)| *l == line)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            positions.len(),
            1,
            "{what}: line {line:?} is stored {} times; log:\n{}",
            positions.len(),
            log.join("\n")
        );
        if let Some(prev) = last {
            assert!(
                positions[0] > prev,
                "{what}: line {line:?} is out of order; log:\n{}",
                log.join("\n")
            );
        }
        last = Some(positions[0]);
    }
}

fn step_statuses(job: &Value) -> Vec<(String, String)> {
    job["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_string(),
                        s["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// 1. Durable inbox (issue 4)
// ---------------------------------------------------------------------------------------------

/// A delivery answered with 202 is in the database: the lock fetch keeps failing (the
/// repository is not there yet), the orchestrator is killed with SIGKILL, the repository
/// appears, the orchestrator restarts on the same database, and the run is created.
fn webhook_survives_kill9_while_its_lock_fetch_is_failing(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let sha = c.create_repo(&one_step_workflow("true"), &[]);
    // Hide the repository: every lock fetch fails (retryable, never "no lock").
    let hidden = c.path("hidden-repo");
    std::fs::rename(c.repo_dir(), &hidden).expect("hide repo");
    c.start();
    c.add_signed_local_source();
    let (status, answer) = c.push_webhook(&sha, "delivery-retry-1");
    assert_eq!(status, 202, "{answer}\n{}", c.dump());
    let id = inbox_id(&answer);
    // Deterministic: the first attempt has failed and the item waits for its retry.
    c.wait_for("the first attempt to fail", SHORT, |c| {
        let item = inbox_item(c, &id);
        (item["status"] == "retry" && item["attempts"].as_u64() >= Some(1)).then_some(())
    });
    assert!(c.runs().is_empty(), "no run before the repository exists");
    c.kill9_orchestrator();
    std::fs::rename(&hidden, c.repo_dir()).expect("restore repo");
    c.start();
    let run_id = c.wait_for_run(Duration::from_secs(30));
    let detail = c.run_detail(&run_id);
    assert_eq!(detail["sha"], sha.as_str());
    assert_eq!(detail["workflowName"], "e2e");
    c.wait_for("the inbox item to be done", SHORT, |c| {
        (inbox_item(c, &id)["status"] == "done").then_some(())
    });
    assert_eq!(c.runs().len(), 1, "exactly one run");
    c.finish();
}

/// The same, but the orchestrator dies while the item is leased (`processing`): its lock
/// fetch hangs on a FIFO in place of the repository's `.git/HEAD`. After the restart the
/// orphaned lease must be recovered and the run created.
fn webhook_survives_kill9_while_it_is_being_processed(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let sha = c.create_repo(&one_step_workflow("true"), &[]);
    let head = c.repo_dir().join(".git/HEAD");
    let head_text = std::fs::read_to_string(&head).expect("HEAD");
    std::fs::remove_file(&head).expect("rm HEAD");
    let made = std::process::Command::new("mkfifo")
        .arg(&head)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    c.start();
    c.add_signed_local_source();
    let (status, answer) = c.push_webhook(&sha, "delivery-processing-1");
    assert_eq!(status, 202, "{answer}\n{}", c.dump());
    let id = inbox_id(&answer);
    c.wait_for("the item to be leased", SHORT, |c| {
        (inbox_item(c, &id)["status"] == "processing").then_some(())
    });
    c.kill9_orchestrator();
    // Release the orphaned `git` blocked on the FIFO, then put HEAD back.
    {
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut fifo) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&head)
        {
            use std::io::Write;
            let _ = fifo.write_all(head_text.as_bytes());
        }
    }
    std::fs::remove_file(&head).expect("rm fifo");
    std::fs::write(&head, &head_text).expect("restore HEAD");
    c.start();
    let run_id = c.wait_for_run(Duration::from_secs(30));
    assert_eq!(c.run_detail(&run_id)["sha"], sha.as_str());
    assert_eq!(c.runs().len(), 1, "exactly one run");
    c.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. Signed webhook → run → statuses and logs (issue 5)
// ---------------------------------------------------------------------------------------------

const PIPELINE: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

const build = job('build', {
  runsOn: 'e2e',
  matrix: ['linux', 'mac'],
  steps: [
    step('compile', async ({ $, matrix, log }) => {
      const os = matrix!.value!;
      for (let i = 1; i <= 3; i++) {
        await $`echo ${`BUILD-${os}-${i}`}`;
      }
      log.info(`LOGGED-${os}`);
      return { artifact: `app-${os}` };
    }),
  ],
});

const version = job('version', {
  runsOn: 'e2e',
  steps: [
    step('tag', async ({ $ }) => ({ version: (await $`echo 1.2.3`).stdout.trim() })),
    step('flaky', {
      continueOnError: true,
      run: async ({ $ }) => { await $`echo FLAKY-BEFORE; exit 3`; },
    }),
    step('after-flaky', async ({ $ }) => { await $`printf 'AFTER-1\nAFTER-2\n'`; }),
  ],
});

const publish = job('publish', {
  runsOn: 'e2e',
  needs: [build, version],
  steps: [
    step('publish', async ({ jobOutputs, needs, log, $ }) => {
      const v = jobOutputs(version) as any;
      log.info(`PUBLISH ${v.tag.version} ${needs.version.status}`);
      await $`seq -f ${'SEQ-%g'} 1 300`;
    }),
  ],
});

const broken = job('broken', {
  runsOn: 'e2e',
  needs: [version],
  steps: [step('boom', async ({ $ }) => { await $`echo BROKEN; exit 7`; })],
});

const after = job('after', { runsOn: 'e2e', needs: [broken], steps: [step('never', async () => {})] });

export default workflow('pipeline', {
  on: push({ branches: ['main'] }),
  jobs: [build, version, publish, broken, after],
});
"#;

fn signed_webhook_runs_needs_matrix_outputs_and_continue_on_error(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let sha = c.create_repo(PIPELINE, &[]);
    c.start_with_agent(&[("KICI_MAX_CONCURRENT_JOBS", "2")]);

    // A wrong signature is refused and stores nothing.
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let refused = c
        .api
        .try_post(
            "/webhook/default/generic/disk",
            &[("x-event-type", "push"), ("x-signature-256", "sha256=00")],
            body,
        )
        .expect("webhook");
    assert_eq!(refused.0, 401, "{:?}", refused.1);

    let (status, answer) = c.push_webhook(&sha, "delivery-pipeline-1");
    assert_eq!(status, 202, "{answer}\n{}", c.dump());
    let run_id = c.wait_for_run(SHORT);
    let detail = c.wait_for_terminal_run(&run_id, Duration::from_secs(60));
    assert_eq!(detail["status"], "failed", "{detail:#}\n{}", c.dump());

    let expect_job = |name: &str, status: &str, steps: &[(&str, &str)]| {
        let job = c.job(&detail, name);
        assert_eq!(job["status"], status, "job {name}: {job:#}\n{}", c.dump());
        let got = step_statuses(job);
        let want: Vec<(String, String)> = steps
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        assert_eq!(got, want, "steps of {name}: {job:#}");
    };
    expect_job("build (linux)", "success", &[("compile", "success")]);
    expect_job("build (mac)", "success", &[("compile", "success")]);
    expect_job(
        "version",
        "success",
        &[
            ("tag", "success"),
            ("flaky", "failed"),
            ("after-flaky", "success"),
        ],
    );
    expect_job("publish", "success", &[("publish", "success")]);
    expect_job("broken", "failed", &[("boom", "failed")]);
    assert_eq!(c.job(&detail, "after")["status"], "skipped", "{detail:#}");
    assert_eq!(
        c.job(&detail, "version")["outputs"]["tag"]["version"],
        "1.2.3",
        "job outputs stored: {detail:#}"
    );

    // Every printed line is stored once, in order.
    let log_of = |job: &str, step: i64| {
        let id = c.job(&detail, job)["jobId"]
            .as_str()
            .expect("jobId")
            .to_string();
        c.step_log(&run_id, &id, step)
    };
    for os in ["linux", "mac"] {
        let expected: Vec<String> = (1..=3)
            .map(|i| format!("BUILD-{os}-{i}"))
            .chain([format!("LOGGED-{os}")])
            .collect();
        assert_lines_once_in_order(&log_of(&format!("build ({os})"), 0), &expected, os);
    }
    assert_lines_once_in_order(&log_of("version", 0), &["1.2.3".to_string()], "tag");
    assert_lines_once_in_order(
        &log_of("version", 1),
        &["FLAKY-BEFORE".to_string()],
        "flaky",
    );
    assert_lines_once_in_order(
        &log_of("version", 2),
        &["AFTER-1".to_string(), "AFTER-2".to_string()],
        "after-flaky",
    );
    let mut expected = vec!["PUBLISH 1.2.3 success".to_string()];
    expected.extend((1..=300).map(|i| format!("SEQ-{i}")));
    assert_lines_once_in_order(&log_of("publish", 0), &expected, "publish");
    assert_lines_once_in_order(&log_of("broken", 0), &["BROKEN".to_string()], "broken");

    // A duplicate delivery creates nothing new.
    let (status, _) = c.push_webhook(&sha, "delivery-pipeline-1");
    assert_eq!(status, 200, "a redelivery is a duplicate");
    assert_eq!(c.runs().len(), 1);
    c.finish();
}

const MATRIX_OUTPUTS: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

const build = job('build', {
  runsOn: 'e2e',
  matrix: ['linux', 'mac'],
  steps: [step('compile', async ({ matrix }) => ({ artifact: `app-${matrix!.value!}` }))],
});

const publish = job('publish', {
  runsOn: 'e2e',
  needs: [build],
  steps: [
    step('publish', async ({ jobOutputs, needs, log }) => {
      const b = jobOutputs(build) as any;
      log.info(`MATRIX ${Object.keys(b.byMatrix).join('+')} ${b.byMatrix['mac'].artifact} ${b.merged.artifact} ${needs.build.status}`);
    }),
  ],
});

export default workflow('matrix-outputs', { on: push({ branches: ['main'] }), jobs: [build, publish] });
"#;

/// `jobOutputs(matrixJob)` and `ctx.needs[<base>]` downstream of a matrix job on an agent
/// give the `{byMatrix, merged}` envelope and the aggregate status (sdk.md §8, §12), as
/// `kici run local` does.
fn matrix_job_outputs_reach_the_downstream_job(backend: Backend) {
    matrix_outputs_on(backend, AgentProgram::KiciAgent);
}

/// The same pipeline on `kici-agent`, the agent-only binary: the same agent, smaller.
fn the_agent_only_binary_runs_jobs_like_kici_agent(backend: Backend) {
    matrix_outputs_on(backend, AgentProgram::AgentAlone);
}

enum AgentProgram {
    /// `kici agent`.
    KiciAgent,
    /// `kici-agent`.
    AgentAlone,
}

fn matrix_outputs_on(backend: Backend, program: AgentProgram) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let sha = c.create_repo(MATRIX_OUTPUTS, &[]);
    c.start();
    c.add_signed_local_source();
    let token = c.agent_token();
    let url = c.ws_url();
    let agent = match program {
        AgentProgram::KiciAgent => c.start_agent(&url, &token, &[]),
        AgentProgram::AgentAlone => c.start_agent_alone(&url, &token, &[]),
    };
    c.wait_for_agent(agent);
    assert_eq!(c.push_webhook(&sha, "d-matrix").0, 202);
    let run_id = c.wait_for_run(SHORT);
    let detail = c.wait_for_terminal_run(&run_id, Duration::from_secs(30));
    let publish = c.job(&detail, "publish");
    assert_eq!(publish["status"], "success", "{publish:#}");
    let log = c.step_log(&run_id, publish["jobId"].as_str().expect("jobId"), 0);
    assert_lines_once_in_order(
        &log,
        &["MATRIX linux+mac app-mac app-mac success".to_string()],
        "publish",
    );
    c.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. Faults
// ---------------------------------------------------------------------------------------------

/// `kill -9` of the agent while a step runs: the orchestrator sees the connection drop, keeps
/// the job `recovering` for 2 × KICI_AGENT_MAX_RECONNECT_DELAY_MS (here 2 s) and then fails it
/// with the spec's reason.
fn agent_killed_mid_step_fails_the_job_within_the_recovery_window(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let script = format!("echo STARTED; MARK={} sleep 300", c.marker);
    let sha = c.create_repo(&one_step_workflow(&script), &[]);
    c.orchestrator_env("KICI_AGENT_MAX_RECONNECT_DELAY_MS", "1000");
    let agent = c.start_with_agent(&[]);
    assert_eq!(c.push_webhook(&sha, "d-kill-agent").0, 202);
    let run_id = c.wait_for_run(SHORT);
    wait_for_log_line(&c, &run_id, "STARTED");
    c.agents[agent].proc.kill9();
    let killed = Instant::now();
    let detail = c.wait_for_terminal_run(&run_id, Duration::from_secs(15));
    let elapsed = killed.elapsed();
    let job = c.job(&detail, "work");
    assert_eq!(job["status"], "failed", "{job:#}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("did not reconnect within the recovery window"),
        "the job names why it failed: {job:#}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "failed after {elapsed:?}; the recovery window is 2 s"
    );
    assert_eq!(detail["status"], "failed");
    // The job's processes were orphaned by SIGKILL; the cluster's drop kills them.
    c.finish();
}

/// The agent's connection is cut for 5 s (through a proxy) while a step prints and finishes:
/// the outbox replays after the reconnect, the job is reclaimed and ends `success`, and every
/// line is stored exactly once, in order.
fn cut_connection_while_a_step_finishes_loses_no_log_line(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let script = "echo CUT-NOW; sleep 3; seq -f AFTER-%g 1 200; echo FINISHED";
    let sha = c.create_repo(&one_step_workflow(script), &[]);
    c.orchestrator_env("KICI_AGENT_MAX_RECONNECT_DELAY_MS", "15000");
    c.start();
    c.add_signed_local_source();
    let proxy = Proxy::start(([127, 0, 0, 1], c.port).into());
    let token = c.agent_token();
    let agent = c.start_agent(&proxy.ws_url(), &token, &[]);
    c.wait_for_agent(agent);
    assert_eq!(c.push_webhook(&sha, "d-cut").0, 202);
    let run_id = c.wait_for_run(SHORT);
    wait_for_log_line(&c, &run_id, "CUT-NOW");
    proxy.cut();
    std::thread::sleep(Duration::from_secs(5));
    let during = c.run_detail(&run_id);
    proxy.restore();
    // The step has finished by now, but nothing of its end got through the cut.
    let during_status = c.job(&during, "work")["status"].clone();
    assert!(
        during_status == "recovering" || during_status == "running",
        "while cut, the job is {during_status} (expected recovering): {during:#}"
    );
    let detail = c.wait_for_terminal_run(&run_id, Duration::from_secs(30));
    let job = c.job(&detail, "work");
    assert_eq!(
        job["status"],
        "success",
        "{job:#}\nwhile cut: {during:#}\n{}",
        c.dump()
    );
    assert_eq!(detail["status"], "success");
    let job_id = job["jobId"].as_str().expect("jobId");
    let log = c.step_log(&run_id, job_id, 0);
    let mut expected = vec!["CUT-NOW".to_string()];
    expected.extend((1..=200).map(|i| format!("AFTER-{i}")));
    expected.push("FINISHED".to_string());
    assert_lines_once_in_order(&log, &expected, "cut step");
    let unexpected: Vec<&String> = log
        .iter()
        .filter(|l| !expected.contains(l) && !l.starts_with("--- agent reconnected after "))
        .collect();
    assert!(unexpected.is_empty(), "unexpected lines {unexpected:?}");
    c.finish();
}

/// `kill -9` of the orchestrator while a step runs, restart on the same database and port:
/// the agent reconnects, its job is reclaimed, finishes, and the run is `success`.
fn orchestrator_killed_mid_job_and_restarted_completes_the_run(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let sha = c.create_repo(
        &one_step_workflow("echo BEFORE-CRASH; sleep 3; echo AFTER-CRASH"),
        &[],
    );
    c.orchestrator_env("KICI_AGENT_MAX_RECONNECT_DELAY_MS", "15000");
    c.start_with_agent(&[]);
    assert_eq!(c.push_webhook(&sha, "d-kill-orch").0, 202);
    let run_id = c.wait_for_run(SHORT);
    wait_for_log_line(&c, &run_id, "BEFORE-CRASH");
    c.kill9_orchestrator();
    c.start();
    let detail = c.wait_for_terminal_run(&run_id, Duration::from_secs(30));
    let job = c.job(&detail, "work");
    assert_eq!(job["status"], "success", "{job:#}\n{}", c.dump());
    assert_eq!(detail["status"], "success");
    let log = c.step_log(&run_id, job["jobId"].as_str().expect("jobId"), 0);
    assert_lines_once_in_order(
        &log,
        &["BEFORE-CRASH".to_string(), "AFTER-CRASH".to_string()],
        "crash step",
    );
    c.finish();
}

/// SIGTERM on the agent: the running job gets the (shortened) grace period, is cancelled, its
/// final status reaches the orchestrator, the agent exits 0, and none of the job's processes
/// survive.
fn agent_sigterm_cancels_the_job_and_leaves_no_process(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let script = format!(
        "echo GO; MARK={m} sleep 300 & MARK={m} sleep 301; wait",
        m = c.marker
    );
    let sha = c.create_repo(&one_step_workflow(&script), &[]);
    let agent = c.start_with_agent(&[
        ("KICI_AGENT_SHUTDOWN_GRACE_MS", "1000"),
        ("KICI_AGENT_SHUTDOWN_CANCEL_MS", "8000"),
    ]);
    assert_eq!(c.push_webhook(&sha, "d-sigterm").0, 202);
    let run_id = c.wait_for_run(SHORT);
    wait_for_log_line(&c, &run_id, "GO");
    let marked = c.wait_for("the step's sleeps", SHORT, |c| {
        let found = processes_containing(&c.marker);
        (found.len() >= 2).then_some(found)
    });
    c.agents[agent].proc.signal(Signal::SIGTERM);
    let status = c.agents[agent].proc.wait(Duration::from_secs(20));
    let output = c.agents[agent].proc.output();
    let status = status.unwrap_or_else(|| panic!("the agent ignored SIGTERM\n{}", c.dump()));
    assert_eq!(status.code(), Some(0), "exit status {status}\n{output}");
    let left = processes_containing(&c.marker);
    assert!(
        left.is_empty(),
        "processes of the job survived the agent: {left:?} (were {marked:?})\n{}",
        c.dump()
    );
    let detail = c.wait_for_terminal_run(&run_id, SHORT);
    let job = c.job(&detail, "work");
    assert_eq!(job["status"], "cancelled", "{job:#}\n{}", c.dump());
    c.finish();
}

/// SIGUSR1 on the agent: it takes no new work, lets the running job finish (`success`, every
/// line stored), then exits 0 with nothing left behind.
fn agent_sigusr1_drains_the_job_and_leaves_no_process(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let script = format!("echo GO; MARK={} sleep 2; echo DRAINED", c.marker);
    let sha = c.create_repo(&one_step_workflow(&script), &[]);
    let agent = c.start_with_agent(&[]);
    assert_eq!(c.push_webhook(&sha, "d-sigusr1").0, 202);
    let run_id = c.wait_for_run(SHORT);
    wait_for_log_line(&c, &run_id, "GO");
    c.agents[agent].proc.signal(Signal::SIGUSR1);
    let status = c.agents[agent].proc.wait(Duration::from_secs(20));
    let status = status.unwrap_or_else(|| panic!("the agent did not drain\n{}", c.dump()));
    assert_eq!(status.code(), Some(0), "exit status {status}\n{}", c.dump());
    let left = processes_containing(&c.marker);
    assert!(left.is_empty(), "processes survived the drain: {left:?}");
    let detail = c.wait_for_terminal_run(&run_id, SHORT);
    let job = c.job(&detail, "work");
    assert_eq!(job["status"], "success", "{job:#}\n{}", c.dump());
    let log = c.step_log(&run_id, job["jobId"].as_str().expect("jobId"), 0);
    assert_lines_once_in_order(&log, &["GO".to_string(), "DRAINED".to_string()], "drained");
    c.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Credentials
// ---------------------------------------------------------------------------------------------

/// While an agent clones and runs a job, no process's argv holds the agent token, the admin
/// token or the webhook secret; the job's environment holds none of them nor the agent's
/// other environment; no stored log line, API answer, `.git/config` of the workspace or log
/// file on disk contains them.
fn no_token_reaches_argv_logs_api_or_workspace(backend: Backend) {
    let Some(mut c) = cluster(backend) else {
        return;
    };
    let canary = format!("canary-{}", crate::cluster::random_hex());
    let script = format!(
        "env | sort; echo CONFIG-START; cat .git/config; echo CONFIG-END; git remote -v; MARK={} sleep 2",
        c.marker
    );
    let sha = c.create_repo(&one_step_workflow(&script), &[]);
    c.start();
    c.add_signed_local_source();
    let token = c.agent_token();
    let secrets = [
        ("agent token", token.clone()),
        ("admin token", c.admin_token.clone()),
        ("webhook secret", crate::cluster::HOOK_SECRET.to_string()),
        ("agent-only environment", canary.clone()),
    ];

    // Scan every process's argv from before the agent starts until the job has ended.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scanner = {
        let stop = std::sync::Arc::clone(&stop);
        let needles: Vec<(String, String)> = secrets
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        std::thread::spawn(move || {
            let mut hits = BTreeSet::new();
            let mut git_seen = BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for (pid, cmdline) in crate::cluster::all_command_lines() {
                    if cmdline.starts_with("git ") {
                        git_seen.insert(cmdline.clone());
                    }
                    for (name, value) in &needles {
                        if cmdline.contains(value.as_str()) {
                            hits.insert(format!("{name} in argv of {pid}: {cmdline}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (hits, git_seen)
        })
    };
    let url = c.ws_url();
    let agent = c.start_agent(&url, &token, &[("AWS_SECRET_ACCESS_KEY", &canary)]);
    c.wait_for_agent(agent);
    assert_eq!(c.push_webhook(&sha, "d-secrets").0, 202);
    let run_id = c.wait_for_run(SHORT);
    // The job's own processes: their environment must not carry any secret.
    let job_processes = c.wait_for("the step's sleep", SHORT, |c| {
        let found = processes_containing(&c.marker);
        (!found.is_empty()).then_some(found)
    });
    for (pid, cmdline) in &job_processes {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        for (name, value) in &secrets {
            assert!(
                !environ.contains(value.as_str()),
                "the {name} is in the environment of job process {pid} ({cmdline})"
            );
        }
    }
    // The checkout's own `.git/config`, read from disk while the step runs.
    let mut configs = Vec::new();
    for job_dir in std::fs::read_dir(&c.agents[agent].work_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(job_dir.path().join("ws/.git/config")) {
            configs.push(text);
        }
    }
    assert_eq!(configs.len(), 1, "one checkout in the agent's work dir");
    let detail = c.wait_for_terminal_run(&run_id, Duration::from_secs(30));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (hits, git_seen) = scanner.join().expect("scanner");
    assert!(hits.is_empty(), "secrets in argv: {hits:#?}");
    let job = c.job(&detail, "work");
    assert_eq!(job["status"], "success", "{job:#}\n{}", c.dump());
    let log = c.step_log(&run_id, job["jobId"].as_str().expect("jobId"), 0);
    let text = log.join("\n");
    assert!(text.contains("CONFIG-START"), "the step ran: {text}");
    assert!(
        text.contains("[remote \"origin\"]"),
        "a real .git/config: {text}"
    );
    assert!(
        text.contains("KICI_JOB_ID="),
        "the step printed its environment: {text}"
    );
    let mut answers = vec![
        ("run", detail.to_string()),
        ("runs", c.get("/api/v1/admin/runs").to_string()),
        ("sources", c.get("/api/v1/admin/sources").to_string()),
        ("agents", c.get("/api/v1/admin/agents").to_string()),
        ("inbox", c.get("/api/v1/admin/inbox").to_string()),
        ("log", text.clone()),
        ("the workspace's .git/config", configs.concat()),
    ];
    // Every log file the orchestrator stored.
    let logs = c.path("data/logs");
    let mut stack = vec![logs];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            } else if let Ok(content) = std::fs::read_to_string(entry.path()) {
                answers.push(("stored log file", content));
            }
        }
    }
    for (what, content) in &answers {
        for (name, value) in &secrets {
            assert!(
                !content.contains(value.as_str()),
                "the {name} appears in {what}: {content}"
            );
        }
        for prefix in ["kat_", "kadm_"] {
            assert!(
                !content.contains(prefix),
                "a {prefix} token appears in {what}: {content}"
            );
        }
    }
    eprintln!("git processes seen during the job: {git_seen:#?}");
    c.finish();
}
