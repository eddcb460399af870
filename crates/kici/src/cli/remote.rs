//! Following runs on an orchestrator: `kici run remote`, `kici up` and `kici admin runs logs`.
//!
//! The run's server-sent events (`orchestrator.md` §18) are turned back into the executor's
//! [`JobEvent`]s and fed to the same printer as `kici run local`, so a remote run looks like a
//! local one line for line; the summary is built from the final run detail.

use std::collections::{BTreeMap, HashMap};

use kici_engine::api::{JobInfo, LogEvent, LogPage, RunDetail, StepInfo};
use kici_engine::protocol::StepType;
use kici_engine::state::{State, StepStatus};
use kici_executor::junit::{self, RunResult, WorkflowResult};
use kici_executor::{JobEvent, LogSink, LogStream, SkipReason, Status, StepResult};
use serde_json::Value;

use super::client::{Client, ClientError, encode};
use super::exit;

const ADMIN: &str = "/api/v1/admin";

/// What one followed run ended as.
#[derive(Debug)]
pub struct Followed {
    pub workflow: WorkflowResult,
}

/// Rebuilds executor events from a run's event stream, once per transition and line.
pub struct RunFollower<'a> {
    sink: &'a dyn LogSink,
    jobs: HashMap<String, JobView>,
}

#[derive(Default)]
struct JobView {
    name: String,
    started: bool,
    finished: bool,
    steps: BTreeMap<i64, StepView>,
    /// Next unseen line per step: a resent or replayed line prints once.
    next_line: HashMap<i64, u64>,
    /// Lines of steps not announced yet (the stream sends a finished step after its lines).
    pending: Vec<LogEvent>,
}

#[derive(Default, Clone)]
struct StepView {
    name: String,
    is_step: bool,
    started: bool,
    finished: bool,
}

impl<'a> RunFollower<'a> {
    pub fn new(sink: &'a dyn LogSink) -> RunFollower<'a> {
        RunFollower {
            sink,
            jobs: HashMap::new(),
        }
    }

    /// Handles one SSE event; returns `true` at `end`.
    pub fn handle(&mut self, event: &str, data: &str) -> bool {
        match event {
            "job" => {
                if let Ok(job) = serde_json::from_str::<JobInfo>(data) {
                    self.job(&job);
                }
            }
            "step" => {
                let value: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                let job_id = value
                    .get("jobId")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let (Some(job_id), Ok(step)) =
                    (job_id, serde_json::from_value::<StepInfo>(value))
                {
                    self.step(&job_id, &step);
                }
            }
            "log" => {
                if let Ok(log) = serde_json::from_str::<LogEvent>(data) {
                    self.log(&log);
                }
            }
            "end" => return true,
            _ => {}
        }
        false
    }

    /// Replays a final job view: whatever the stream did not show is shown now.
    pub fn job(&mut self, job: &JobInfo) {
        let view = self.jobs.entry(job.job_id.clone()).or_default();
        view.name = job.name.clone();
        let active = !matches!(
            job.status,
            State::Pending | State::Queued | State::Held | State::Waiting
        );
        if active && !view.started && !matches!(job.status, State::Skipped) {
            view.started = true;
            self.sink.emit(&job.name, JobEvent::Started);
        }
        // Live step changes come as step events, ordered after their log lines; the steps
        // of a job event only fill in what a finished job's stream did not show.
        if job.status.is_terminal() {
            for step in &job.steps {
                self.step(&job.job_id, step);
            }
            self.flush_pending(&job.job_id, None);
        }
        let view = self.jobs.entry(job.job_id.clone()).or_default();
        if job.status.is_terminal() && !view.finished {
            view.finished = true;
            self.sink.emit(
                &job.name,
                JobEvent::Finished {
                    status: job_status(job.status),
                    duration_ms: job.duration_ms.unwrap_or(0),
                    error: job.error.clone().or_else(|| {
                        job.skip_reason
                            .clone()
                            .filter(|_| job.status == State::Skipped)
                    }),
                },
            );
        }
    }

    fn step(&mut self, job_id: &str, step: &StepInfo) {
        let view = self.jobs.entry(job_id.to_string()).or_default();
        let job_name = view.name.clone();
        let entry = view.steps.entry(step.index).or_default();
        entry.name = step.name.clone();
        entry.is_step = step.step_type == StepType::Step;
        if !entry.is_step {
            if is_step_terminal(step.status) && !entry.finished {
                entry.finished = true;
                if step.status == StepStatus::Failed {
                    self.sink.emit(
                        &job_name,
                        JobEvent::HookFinished {
                            hook: kici_executor::HookResult {
                                name: step.name.clone(),
                                status: Status::Failed,
                                duration_ms: step.duration_ms.unwrap_or(0),
                                error: step.error.clone(),
                            },
                        },
                    );
                }
            }
            return;
        }
        if step.status != StepStatus::Pending
            && step.status != StepStatus::Skipped
            && !entry.started
        {
            entry.started = true;
            self.sink.emit(
                &job_name,
                JobEvent::StepStarted {
                    step: step.name.clone(),
                    parallel: false,
                },
            );
        }
        self.flush_pending(job_id, Some(step.index));
        let view = self.jobs.entry(job_id.to_string()).or_default();
        let entry = view.steps.entry(step.index).or_default();
        if is_step_terminal(step.status) && !entry.finished {
            entry.finished = true;
            let status = step_status(step.status);
            self.sink.emit(
                &job_name,
                JobEvent::StepFinished {
                    step: step.name.clone(),
                    parallel: false,
                    result: StepResult {
                        name: step.name.clone(),
                        status,
                        duration_ms: step.duration_ms.unwrap_or(0),
                        attempts: step.attempts,
                        error: step.error.clone(),
                        stack: None,
                        continued_on_error: false,
                        skip_reason: None,
                        rule_results: Vec::new(),
                        secrets_accessed: step.secrets_accessed.clone().unwrap_or_default(),
                    },
                },
            );
        }
    }

    fn log(&mut self, log: &LogEvent) {
        let view = self.jobs.entry(log.job_id.clone()).or_default();
        if view.name.is_empty() || !view.steps.contains_key(&log.step_index) {
            view.pending.push(log.clone());
            return;
        }
        self.print_lines(log);
    }

    /// Prints held-back lines of `job_id`: of one step, or all of them (`None`).
    fn flush_pending(&mut self, job_id: &str, step_index: Option<i64>) {
        let Some(view) = self.jobs.get_mut(job_id) else {
            return;
        };
        if view.name.is_empty() {
            return;
        }
        let (ready, keep): (Vec<LogEvent>, Vec<LogEvent>) = std::mem::take(&mut view.pending)
            .into_iter()
            .partition(|l| step_index.is_none_or(|i| l.step_index == i));
        view.pending = keep;
        for log in &ready {
            self.print_lines(log);
        }
    }

    fn print_lines(&mut self, log: &LogEvent) {
        let view = self.jobs.entry(log.job_id.clone()).or_default();
        let next = view.next_line.entry(log.step_index).or_insert(0);
        let step = view
            .steps
            .get(&log.step_index)
            .filter(|s| s.is_step)
            .map(|s| s.name.clone());
        for (i, line) in log.lines.iter().enumerate() {
            let n = log.first_line + i as u64;
            if n < *next {
                continue;
            }
            *next = n + 1;
            self.sink.emit(
                &view.name,
                JobEvent::Line {
                    step: step.clone(),
                    parallel: false,
                    stream: LogStream::Stdout,
                    text: line.clone(),
                },
            );
        }
    }
}

fn is_step_terminal(status: StepStatus) -> bool {
    matches!(
        status,
        StepStatus::Success | StepStatus::Failed | StepStatus::Skipped | StepStatus::Cancelled
    )
}

fn step_status(status: StepStatus) -> Status {
    match status {
        StepStatus::Success => Status::Success,
        StepStatus::Skipped | StepStatus::Pending => Status::Skipped,
        StepStatus::Cancelled => Status::Cancelled,
        StepStatus::Failed | StepStatus::Running => Status::Failed,
    }
}

fn job_status(state: State) -> Status {
    match state {
        State::Success => Status::Success,
        State::Skipped => Status::Skipped,
        State::Cancelled => Status::Cancelled,
        _ => Status::Failed,
    }
}

/// The `run local` result shape of a finished run.
pub fn workflow_result(detail: &RunDetail) -> WorkflowResult {
    let jobs = detail
        .jobs
        .iter()
        .map(|job| junit::JobResult {
            name: job.name.clone(),
            status: job_status(job.status),
            duration_ms: job.duration_ms.unwrap_or(0),
            matrix_values: job.matrix_values.as_ref().map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect()
            }),
            skip_reason: job.skip_reason.as_deref().and_then(skip_reason),
            error: job.error.clone(),
            rule_results: Vec::new(),
            steps: job
                .steps
                .iter()
                .filter(|s| s.step_type == StepType::Step)
                .map(|s| junit::StepResult {
                    name: s.name.clone(),
                    status: step_status(s.status),
                    duration_ms: s.duration_ms.unwrap_or(0),
                    attempts: s.attempts,
                    error: s.error.clone(),
                    continued_on_error: false,
                })
                .collect(),
        })
        .collect();
    let status = match detail.summary.status {
        kici_engine::state::RunStatus::Success => Status::Success,
        kici_engine::state::RunStatus::Skipped => Status::Skipped,
        kici_engine::state::RunStatus::Cancelled => Status::Cancelled,
        _ => Status::Failed,
    };
    WorkflowResult {
        name: detail.summary.workflow_name.clone(),
        status,
        duration_ms: detail.summary.duration_ms.unwrap_or(0),
        rule_results: Vec::new(),
        jobs,
    }
}

fn skip_reason(text: &str) -> Option<SkipReason> {
    Some(match text {
        "job_rules" => SkipReason::JobRules,
        "workflow_rules" => SkipReason::WorkflowRules,
        "upstream" => SkipReason::Upstream,
        "fail_fast" => SkipReason::FailFast,
        _ => return None,
    })
}

/// Follows one run to its end through SSE and returns its final state.
pub fn follow_run(
    client: &Client,
    run_id: &str,
    sink: &dyn LogSink,
) -> Result<Followed, ClientError> {
    let mut follower = RunFollower::new(sink);
    let path = format!("{ADMIN}/runs/{}/events?fromStart=true", encode(run_id));
    let mut attempts = 0;
    loop {
        match client.sse(&path) {
            Ok(stream) => {
                let mut ended = false;
                for event in stream {
                    let Ok(event) = event else { break };
                    if follower.handle(&event.event, &event.data) {
                        ended = true;
                        break;
                    }
                }
                if ended {
                    break;
                }
            }
            Err(error) if error.status().is_some() => return Err(error),
            Err(error) => {
                attempts += 1;
                if attempts > 5 {
                    return Err(error);
                }
            }
        }
        // The stream dropped before `end`: the run may still be going; look and resume.
        let detail = run_detail(client, run_id)?;
        if detail.summary.status.is_terminal() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let detail = run_detail(client, run_id)?;
    for job in &detail.jobs {
        follower.job(job);
    }
    let workflow = workflow_result(&detail);
    Ok(Followed { workflow })
}

pub fn run_detail(client: &Client, run_id: &str) -> Result<RunDetail, ClientError> {
    let path = format!("{ADMIN}/runs/{}", encode(run_id));
    let value = client.get(&path)?;
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        method: "GET",
        path,
        message: e.to_string(),
    })
}

/// The summary document of several followed runs.
pub fn run_result(followed: &[Followed], total_ms: u64) -> RunResult {
    RunResult::new(
        followed.iter().map(|f| f.workflow.clone()).collect(),
        total_ms,
    )
}

/// `kici admin runs logs` without `-f`: every stored line, step by step.
pub fn print_logs(
    client: &Client,
    run_id: &str,
    job: Option<&str>,
    step: Option<i64>,
    json: bool,
) -> Result<u8, ClientError> {
    let detail = run_detail(client, run_id)?;
    let mut all = Vec::new();
    for info in detail
        .jobs
        .iter()
        .filter(|j| job.is_none_or(|want| j.job_id == want || j.name == want))
    {
        for s in info
            .steps
            .iter()
            .filter(|s| step.is_none_or(|want| s.index == want))
        {
            let mut offset = 0u64;
            loop {
                let path = format!(
                    "{ADMIN}/runs/{}/jobs/{}/steps/{}/logs?offset={offset}&limit=10000",
                    encode(run_id),
                    encode(&info.job_id),
                    s.index
                );
                let value = client.get(&path)?;
                let page: LogPage =
                    serde_json::from_value(value).map_err(|e| ClientError::Decode {
                        method: "GET",
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                for line in &page.lines {
                    if json {
                        all.push(serde_json::json!({"jobId": info.job_id, "job": info.name, "stepIndex": s.index, "step": s.name, "n": line.n, "ts": line.ts, "text": line.text}));
                    } else {
                        println!("[{} › {}] {}", info.name, s.name, line.text);
                    }
                }
                if page.lines.is_empty() || page.next_offset >= page.total_lines {
                    break;
                }
                offset = page.next_offset;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    }
    Ok(exit::OK)
}

/// `kici admin runs logs -f`: live lines until the run ends.
pub fn follow_logs(
    client: &Client,
    run_id: &str,
    job: Option<&str>,
    step: Option<i64>,
) -> Result<u8, ClientError> {
    /// Prints only the lines of the chosen job and step.
    struct Lines {
        job: Option<String>,
        step: Option<String>,
    }
    impl LogSink for Lines {
        fn emit(&self, job: &str, event: JobEvent) {
            if self.job.as_deref().is_some_and(|want| want != job) {
                return;
            }
            if let JobEvent::Line { step, text, .. } = event {
                if self.step.is_some() && self.step != step {
                    return;
                }
                match step {
                    Some(step) => println!("[{job} › {step}] {text}"),
                    None => println!("[{job}] {text}"),
                }
            }
        }
    }
    // The stream names steps; resolve the index once from the run as it is now.
    let detail = run_detail(client, run_id)?;
    let chosen = detail
        .jobs
        .iter()
        .find(|j| job.is_some_and(|want| j.job_id == want || j.name == want));
    let step_name = step.and_then(|index| {
        chosen
            .and_then(|j| j.steps.iter().find(|s| s.index == index))
            .map(|s| s.name.clone())
    });
    let sink = Lines {
        job: chosen.map(|j| j.name.clone()).or(job.map(str::to_string)),
        step: step_name,
    };
    let followed = follow_run(client, run_id, &sink)?;
    Ok(match followed.workflow.status {
        Status::Failed | Status::Cancelled => exit::FAILURE,
        _ => exit::OK,
    })
}

/// `kici run remote` (ours: an event to our orchestrator, no SaaS login).
#[derive(Debug, Clone, clap::Args)]
pub struct RunRemoteArgs {
    #[command(flatten)]
    pub target: super::event::EventArgs,
    /// Orchestrator URL (also: KICI_ADMIN_URL).
    #[arg(long, env = "KICI_ADMIN_URL", default_value = super::client::DEFAULT_URL)]
    pub orchestrator: String,
    /// Read the API token from this file (default: KICI_TOKEN, then KICI_ADMIN_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// The orchestrator's source that serves this repository.
    #[arg(long, default_value = "local")]
    pub source: String,
    /// `owner/name` on that source (default: from the origin remote, else local/<dir>).
    #[arg(long)]
    pub repo: Option<String>,
    /// Print the run ids and exit without following them.
    #[arg(long)]
    pub no_wait: bool,
    /// Also write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<std::path::PathBuf>,
}

/// How long the orchestrator may take to turn the event into runs before we say so.
const PROCESSING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

pub fn run_remote(global: &super::GlobalArgs, args: &RunRemoteArgs) -> u8 {
    use kici_engine::simulate;

    super::output::banner(global);
    let Some(event_arg) = &args.target.event else {
        eprintln!(
            "error: missing event argument (usage: kici run remote <event> [options]; e.g. push, tag:v1.2.3, dispatch:deploy)"
        );
        return exit::USAGE;
    };
    // `--token-file`, else KICI_TOKEN, else KICI_ADMIN_TOKEN.
    let token =
        super::client::Token::resolve(args.token_file.as_deref(), "KICI_TOKEN").and_then(|token| {
            match token {
                Some(token) => Ok(Some(token)),
                None => super::client::Token::resolve(None, "KICI_ADMIN_TOKEN"),
            }
        });
    let token = match token {
        Ok(token) => token,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let base = args
        .orchestrator
        .replacen("ws://", "http://", 1)
        .replacen("wss://", "https://", 1);
    let base = base.strip_suffix("/ws").unwrap_or(&base).to_string();
    let client = match Client::new(&base, token) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let spec = match simulate::parse_event_arg(event_arg) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return if e.is_usage_error() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    };
    let location = match super::repo::locate(global.kici_dir.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot determine the current directory: {e}");
            return exit::FAILURE;
        }
    };
    let payload = match args.target.read_payload() {
        Ok(payload) => payload,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    let report_args = args.target.report_args(event_arg, global.json, false);
    let mut options = match report_args.simulate_options(payload) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return u8::try_from(e.exit_code()).unwrap_or(exit::FAILURE);
        }
    };
    let git = super::preview::git_facts(
        &location.git_root,
        simulate::changed_files_query(&spec, &options),
    );
    let repo = args
        .repo
        .clone()
        .or_else(|| git.repo.clone())
        .unwrap_or_else(|| "local/repo".into());
    options.repo = Some(repo.clone());
    let Some(sha) = options.sha.clone().or_else(|| git.head_sha.clone()) else {
        eprintln!(
            "error: the repository has no commit yet; commit first (the orchestrator runs commits, not the working tree)"
        );
        return exit::FAILURE;
    };
    let mut event = match simulate::build_event(&spec, &options, &git) {
        Ok(event) => event,
        Err(e) => {
            eprintln!("error: {e}");
            return if e.is_usage_error() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    };
    if !options.inputs.is_empty() {
        event.dispatch_inputs = Some(
            options
                .inputs
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
    }
    if !global.quiet && super::preview::has_uncommitted_changes(&location.git_root) {
        eprintln!(
            "note: uncommitted changes are not sent; the orchestrator runs commit {}",
            &sha[..sha.len().min(12)]
        );
    }
    let body = serde_json::json!({
        "source": args.source,
        "repo": repo,
        "type": event.event_type,
        "branch": event.target_branch,
        "sha": sha,
        "event": event,
        "workflow": args.target.workflow,
    });
    let accepted = match client.post(&format!("{ADMIN}/dispatch"), &body) {
        Ok(value) => value,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    let Some(inbox_id) = accepted.get("inboxId").and_then(Value::as_str) else {
        eprintln!("error: the orchestrator accepted the event without an inbox id");
        return exit::FAILURE;
    };
    let run_ids = match wait_for_runs(&client, inbox_id, global.quiet) {
        Ok(ids) => ids,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::FAILURE;
        }
    };
    if run_ids.is_empty() {
        if let Some(workflow) = &args.target.workflow {
            eprintln!("error: workflow {workflow:?} did not match {event_arg}");
            return exit::FAILURE;
        }
        if global.json {
            println!("{}", RunResult::new(Vec::new(), 0).to_json_pretty());
        } else if !global.quiet {
            println!("No workflow matched {event_arg}.");
        }
        return exit::OK;
    }
    if args.no_wait {
        for id in &run_ids {
            println!("{id}");
        }
        return exit::OK;
    }
    let printer = super::printer::Printer::new(global);
    let started = std::time::Instant::now();
    let followed: Vec<Result<Followed, ClientError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = run_ids
            .iter()
            .map(|id| {
                let client = &client;
                let printer = &printer;
                scope.spawn(move || follow_run(client, id, printer))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ClientError::Config("a follower thread panicked".into()))
                })
            })
            .collect()
    });
    printer.flush();
    let mut done = Vec::new();
    for result in followed {
        match result {
            Ok(f) => done.push(f),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILURE;
            }
        }
    }
    let report = run_result(
        &done,
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, report.to_junit_xml(junit::JUNIT_SUITES_NAME))
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return exit::FAILURE;
    }
    if global.json {
        println!("{}", report.to_json_pretty());
    } else {
        print!(
            "{}",
            super::printer::render_summary(&report, &printer.style)
        );
    }
    if report.succeeded() {
        exit::OK
    } else {
        exit::FAILURE
    }
}

/// Waits until the inbox item was processed; its run ids (empty: nothing matched).
fn wait_for_runs(client: &Client, inbox_id: &str, quiet: bool) -> Result<Vec<String>, String> {
    let started = std::time::Instant::now();
    let mut last_error_shown: Option<String> = None;
    loop {
        let item = client
            .get(&format!("{ADMIN}/inbox/{}", encode(inbox_id)))
            .map_err(|e| e.to_string())?;
        let status = item.get("status").and_then(Value::as_str).unwrap_or("");
        let last_error = item
            .get("lastError")
            .and_then(Value::as_str)
            .map(str::to_string);
        match status {
            "done" => {
                let ids = item
                    .get("runIds")
                    .and_then(Value::as_array)
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(ids);
            }
            "dead" => {
                return Err(format!(
                    "the orchestrator gave up on the event: {}",
                    last_error.unwrap_or_else(|| "no reason recorded".into())
                ));
            }
            _ => {}
        }
        if let Some(error) = last_error
            && last_error_shown.as_ref() != Some(&error)
            && !quiet
        {
            eprintln!("waiting: the orchestrator will retry: {error}");
            last_error_shown = Some(error);
        }
        if started.elapsed() > PROCESSING_PATIENCE {
            return Err(format!(
                "the orchestrator has not processed the event after {}s (inbox item {inbox_id}); follow it with `kici admin inbox show {inbox_id}`",
                PROCESSING_PATIENCE.as_secs()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
