//! `kici run local <event>` (spec/cli.md §6): compile in memory, build and match the event like
//! `preview`, check the repository out into an isolated workspace and run every matched job
//! through the executor: DAG order, up to `--concurrency` jobs at once, matrix fan-out,
//! outputs passed downstream, live prefixed output, a summary, `--json` and `--junit`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use kici_compiler::compile::compile;
use kici_compiler::preview::{self as report, PreviewContext, render_label};
use kici_engine::lock::{LockFile, LockJob, LockMatrix, LockNeed, LockWorkflow};
use kici_engine::simulate;
use kici_executor::junit::{self, JUNIT_SUITES_NAME, RunResult};
use kici_executor::request;
use kici_executor::workspace::{self, Mode, Workspace};
use kici_executor::{
    Cancel, JobRequest, JobResult, LogSink, SkipReason, Status, job_outputs_value,
    matrix_outputs_value, run_job, workflow_hook, workflow_rules,
};

use super::compile::request_for;
use super::event::EventArgs;
use super::output::{Style, banner, print_diagnostics};
use super::preview::git_facts;
use super::printer::{Printer, render_summary};
use super::repo::locate;
use super::{GlobalArgs, exit};

/// Exit code after Ctrl-C (cli.md §6.6).
const INTERRUPTED: u8 = 130;

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Run the workflows an event triggers, on this machine.
    Local(RunLocalArgs),
    /// Send an event to an orchestrator and follow the runs it starts, live.
    Remote(super::remote::RunRemoteArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunLocalArgs {
    #[command(flatten)]
    pub target: EventArgs,
    /// Environment variable for every job, K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Local secret with the highest precedence, K=V (repeatable).
    #[arg(long = "secret", value_name = "K=V")]
    pub secrets: Vec<String>,
    /// A dotenv file of secrets (repeatable).
    #[arg(long = "secret-file", value_name = "FILE")]
    pub secret_files: Vec<PathBuf>,
    /// Maximum number of jobs running at once (default: CPU parallelism).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// On a job failure, skip only its dependents instead of stopping everything.
    #[arg(long)]
    pub keep_going: bool,
    /// Run in the repository itself instead of an isolated checkout.
    #[arg(long)]
    pub in_place: bool,
    /// Keep the isolated checkout after success.
    #[arg(long)]
    pub keep: bool,
    /// Grant all approval gates.
    #[arg(long)]
    pub approve_all: bool,
    /// Also write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Debug output (`KICI_DEBUG=1` for steps).
    #[arg(long)]
    pub debug: bool,
}

pub fn run(global: &GlobalArgs, command: &RunCommand) -> u8 {
    match command {
        RunCommand::Local(args) => run_local(global, args),
        RunCommand::Remote(args) => super::remote::run_remote(global, args),
    }
}

fn split_kv(raw: &str, flag: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{flag} expects K=V, got \"{raw}\"")),
    }
}

fn run_local(global: &GlobalArgs, args: &RunLocalArgs) -> u8 {
    banner(global);
    let style = Style::for_stderr(global);
    let Some(event) = &args.target.event else {
        eprintln!(
            "error: missing event argument (usage: kici run local <event> [options]; e.g. push, pr:open, tag:v1.2.3)"
        );
        return exit::USAGE;
    };
    let mut cli_env = Vec::new();
    for raw in &args.env {
        match split_kv(raw, "--env") {
            Ok(kv) => cli_env.push(kv),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    let mut cli_secrets = Vec::new();
    for raw in &args.secrets {
        match split_kv(raw, "--secret") {
            Ok(kv) => cli_secrets.push(kv),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    let spec = match simulate::parse_event_arg(event) {
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
    let location = match locate(global.kici_dir.as_deref()) {
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

    // The checkout (git clone, checkout, local changes) depends on neither the compile nor
    // the event, so it runs on another thread meanwhile; a run that matches nothing removes
    // it again.
    let pending_checkout = PendingCheckout::start(&location.git_root, args.in_place, args.keep);

    // 1. Compile in memory.
    let compilation = compile(&request_for(&location));
    let Some(lock_text) = &compilation.lock_text else {
        print_diagnostics(
            &compilation.diagnostics,
            &location.git_root,
            &style,
            global.quiet,
        );
        eprintln!("error: the workflows do not compile; nothing was run");
        return exit::FAILURE;
    };
    let lock: LockFile = match serde_json::from_str(lock_text) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: internal: the compiled lock does not parse: {e}");
            return exit::FAILURE;
        }
    };

    // 4–5. Event, matching, inputs — exactly as `preview` decides.
    let report_args = args.target.report_args(event, global.json, args.debug);
    let options = match report_args.simulate_options(payload.clone()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return u8::try_from(e.exit_code()).unwrap_or(exit::FAILURE);
        }
    };
    let git = git_facts(
        &location.git_root,
        simulate::changed_files_query(&spec, &options),
    );
    let context = PreviewContext {
        kici_dir: location.kici_dir.display().to_string(),
        lock_path: None,
        payload,
        git: git.clone(),
    };
    let preview = match report::run(&report_args, &context, &lock) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return u8::try_from(e.exit_code()).unwrap_or(exit::FAILURE);
        }
    };
    if preview.has_input_errors() {
        for d in &preview.decisions {
            if let Some(e) = &d.inputs_error {
                eprintln!("error: workflow {}: {e}", d.workflow_name);
            }
        }
        return exit::USAGE;
    }
    let matched: Vec<(usize, &LockWorkflow)> = lock
        .workflows
        .iter()
        .enumerate()
        .filter(|(i, w)| {
            preview.workflows.get(*i).is_some_and(|p| p.matched)
                && args
                    .target
                    .workflow
                    .as_ref()
                    .is_none_or(|name| &w.name == name)
        })
        .collect();
    let out = Printer::new(global);
    if matched.is_empty() {
        if let Some(e) = &preview.error {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
        out.info("No workflows matched the event");
        if global.json {
            println!("{}", RunResult::new(Vec::new(), 0).to_json_pretty());
        }
        return exit::OK;
    }

    // 3. Secrets (always from the real .kici/).
    let file_secrets = match load_secrets(&location.kici_dir, &args.secret_files) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };

    // 6. Workspace: the checkout started before the compile; wait for it now.
    let mut checkout = match pending_checkout.wait() {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    if checkout.is_isolated() {
        out.info(&format!("running in {}", checkout.path().display()));
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    let run_id = format!("local-{}", random_hex(12));
    let event_json = serde_json::to_value(&preview.event).unwrap_or(Value::Null);
    let settings = Settings {
        workspace: checkout.path().to_path_buf(),
        event: event_json,
        run_id,
        repo: git.repo.clone().unwrap_or_default(),
        concurrency: args.concurrency.filter(|n| *n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        keep_going: args.keep_going,
        approve_all: args.approve_all,
        job_filter: args.target.job.clone(),
        cli_env,
        debug: args.debug,
    };
    let started = Instant::now();
    let sink: Arc<Printer> = Arc::new(out);
    let local = tokio::task::LocalSet::new();
    let (results, interrupted) = local.block_on(&runtime, async {
        let (cancel_tx, cancel_rx) = watch::channel(Cancel::None);
        let interrupted = Arc::new(Mutex::new(false));
        let flag = interrupted.clone();
        let sigint = tokio::spawn(async move {
            let mut count = 0;
            while tokio::signal::ctrl_c().await.is_ok() {
                count += 1;
                if let Ok(mut f) = flag.lock() {
                    *f = true;
                }
                let _ = cancel_tx.send(if count == 1 {
                    Cancel::Graceful
                } else {
                    Cancel::Force
                });
            }
        });
        let mut results = Vec::new();
        for (index, workflow) in &matched {
            if *cancel_rx.borrow() != Cancel::None {
                break;
            }
            let inputs = preview
                .workflows
                .get(*index)
                .and_then(|p| p.dispatch_inputs.clone())
                .unwrap_or_default();
            let secrets = merge_secrets(&file_secrets, &cli_secrets, None);
            let result = run_workflow(
                workflow,
                &settings,
                &inputs,
                &secrets,
                sink.clone(),
                cancel_rx.clone(),
            )
            .await;
            results.push(result);
        }
        sigint.abort();
        let interrupted = interrupted.lock().map(|f| *f).unwrap_or(false);
        (results, interrupted)
    });
    // Give SIGKILL escalations of cancelled commands a chance before the runtime goes away.
    runtime.shutdown_timeout(Duration::from_millis(200));
    let report = RunResult::new(results, started.elapsed().as_millis() as u64);

    if checkout.is_isolated() {
        if !report.succeeded() || interrupted {
            checkout.keep();
        }
        if checkout.is_kept() {
            sink.info(&format!("workspace kept at {}", checkout.path().display()));
        } else if let Err(e) = checkout.remove() {
            eprintln!("warning: {e}");
        }
    }
    let summary = render_summary(&report, &sink.style);
    sink.flush();
    if global.json {
        eprint!("{summary}");
        println!("{}", report.to_json_pretty());
    } else {
        print!("{summary}");
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, report.to_junit_xml(JUNIT_SUITES_NAME))
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return exit::FAILURE;
    }
    if interrupted {
        INTERRUPTED
    } else if !report.succeeded() {
        exit::FAILURE
    } else {
        exit::OK
    }
}

// ------------------------------------------------------------------------------ scheduling

struct Settings {
    workspace: PathBuf,
    event: Value,
    run_id: String,
    repo: String,
    concurrency: usize,
    keep_going: bool,
    approve_all: bool,
    job_filter: Option<String>,
    cli_env: Vec<(String, String)>,
    debug: bool,
}

/// (name, matrix values, matrix suffix, a failure known before running).
type Child = (
    String,
    Option<Map<String, Value>>,
    Option<String>,
    Option<(Status, String)>,
);

/// One schedulable job: a static job or one child of its matrix.
struct Node {
    base: String,
    name: String,
    lock: LockJob,
    matrix: Option<Map<String, Value>>,
    suffix: Option<String>,
    /// Indices of the nodes this one waits for, with the statuses that release it.
    upstream: Vec<(usize, Vec<String>)>,
    result: Option<JobResult>,
    /// Set when the node cannot run for a reason known before scheduling.
    preset: Option<(Status, String)>,
}

fn needs_of(job: &LockJob) -> Vec<(String, Vec<String>)> {
    job.needs
        .iter()
        .filter_map(|n| match n {
            LockNeed::Name(name) => Some((name.clone(), vec!["success".to_string()])),
            LockNeed::Job { name, run_on } => Some((name.clone(), run_on.clone())),
            LockNeed::Group { .. } => None,
        })
        .collect()
}

fn plan_nodes(workflow: &LockWorkflow, filter: Option<&str>) -> (Vec<Node>, Vec<String>) {
    let mut notices = Vec::new();
    let statics: Vec<&LockJob> = workflow.jobs.iter().filter_map(|j| j.as_static()).collect();
    if workflow.jobs.len() != statics.len() {
        notices.push("dynamic job generators are not supported by `kici run local` yet; their jobs were not run".to_string());
    }
    // --job: the job plus its transitive dependencies.
    let selected: Option<std::collections::BTreeSet<String>> = filter.map(|f| {
        let mut keep = std::collections::BTreeSet::new();
        let mut stack = vec![f.to_string()];
        while let Some(name) = stack.pop() {
            if keep.insert(name.clone())
                && let Some(job) = statics.iter().find(|j| j.name == name)
            {
                stack.extend(needs_of(job).into_iter().map(|(n, _)| n));
            }
        }
        keep
    });
    let mut nodes = Vec::new();
    let mut by_base: HashMap<String, Vec<usize>> = HashMap::new();
    for job in &statics {
        if selected.as_ref().is_some_and(|s| !s.contains(&job.name)) {
            continue;
        }
        let children: Vec<Child> = match &job.matrix {
            None => vec![(job.name.clone(), None, None, None)],
            Some(LockMatrix::Static { values }) => {
                match kici_engine::matrix::materialize(
                    &job.name,
                    values,
                    job.include.as_deref().unwrap_or(&[]),
                    job.exclude.as_deref().unwrap_or(&[]),
                ) {
                    Ok(list) => list
                        .into_iter()
                        .map(|c| {
                            let suffix = kici_engine::matrix::format_suffix(&c.values);
                            (c.name, Some(c.values), Some(suffix), None)
                        })
                        .collect(),
                    Err(e) => vec![(
                        job.name.clone(),
                        None,
                        None,
                        Some((Status::Failed, e.to_string())),
                    )],
                }
            }
            Some(LockMatrix::Dynamic { .. }) => vec![(
                job.name.clone(),
                None,
                None,
                Some((
                    Status::Failed,
                    "dynamic matrices are not supported by `kici run local` yet".to_string(),
                )),
            )],
        };
        for (name, matrix, suffix, preset) in children {
            by_base
                .entry(job.name.clone())
                .or_default()
                .push(nodes.len());
            nodes.push(Node {
                base: job.name.clone(),
                name,
                lock: (*job).clone(),
                matrix,
                suffix,
                upstream: Vec::new(),
                result: None,
                preset,
            });
        }
    }
    for node in &mut nodes {
        for (need, run_on) in needs_of(&node.lock) {
            for &i in by_base.get(&need).map(Vec::as_slice).unwrap_or(&[]) {
                node.upstream.push((i, run_on.clone()));
            }
        }
    }
    (nodes, notices)
}

/// Whether an upstream result releases a dependent edge (sdk.md §6.1, §7: a job skipped by its
/// own rules counts as a success).
fn edge_satisfied(result: &JobResult, run_on: &[String]) -> bool {
    let status = if result.skip_reason == Some(SkipReason::JobRules) {
        "success"
    } else {
        result.status.as_str()
    };
    run_on.iter().any(|s| s == status)
}

fn has_cycle(nodes: &[Node]) -> bool {
    let mut state = vec![0u8; nodes.len()];
    fn visit(i: usize, nodes: &[Node], state: &mut [u8]) -> bool {
        if state[i] == 1 {
            return true;
        }
        if state[i] == 2 {
            return false;
        }
        state[i] = 1;
        for (u, _) in &nodes[i].upstream {
            if visit(*u, nodes, state) {
                return true;
            }
        }
        state[i] = 2;
        false
    }
    (0..nodes.len()).any(|i| visit(i, nodes, &mut state))
}

fn status_of_group(results: &[&JobResult]) -> Status {
    if results.iter().any(|r| r.status == Status::Failed) {
        Status::Failed
    } else if results.iter().any(|r| r.status == Status::Cancelled) {
        Status::Cancelled
    } else if !results.is_empty() && results.iter().all(|r| r.status == Status::Skipped) {
        Status::Skipped
    } else {
        Status::Success
    }
}

/// Outputs and `ctx.needs` entries of upstream jobs, by base name.
fn upstream_context(nodes: &[Node], node: usize) -> (Map<String, Value>, Map<String, Value>) {
    let mut outputs = Map::new();
    let mut needs = Map::new();
    let mut bases: Vec<&str> = nodes[node]
        .upstream
        .iter()
        .map(|(u, _)| nodes[*u].base.as_str())
        .collect();
    bases.dedup();
    for base in bases {
        let members: Vec<&Node> = nodes.iter().filter(|n| n.base == base).collect();
        let results: Vec<&JobResult> = members.iter().filter_map(|n| n.result.as_ref()).collect();
        let is_matrix = members.iter().any(|n| n.suffix.is_some());
        let value = if is_matrix {
            let children: Vec<(String, Value)> = members
                .iter()
                .filter_map(|n| {
                    Some((n.suffix.clone()?, n.result.as_ref().map(job_outputs_value)?))
                })
                .collect();
            matrix_outputs_value(&children)
        } else {
            results
                .first()
                .map(|r| job_outputs_value(r))
                .unwrap_or(Value::Object(Map::new()))
        };
        needs.insert(
            base.to_string(),
            json!({"result": value, "status": status_of_group(&results).as_str()}),
        );
        outputs.insert(base.to_string(), value);
    }
    (outputs, needs)
}

fn base_env(settings: &Settings, workflow: &LockWorkflow, job_name: &str) -> Vec<(String, String)> {
    let job_id = format!("{}-{}", settings.run_id, job_name);
    let mut system = request::system_env(
        &settings.event,
        &request::SystemVars {
            run_id: &settings.run_id,
            job_id: &job_id,
            job_name,
            workflow: &workflow.name,
            repo: &settings.repo,
            provider: "local",
            workspace: &settings.workspace,
            attempt: 1,
            is_test_run: false,
        },
    );
    if settings.debug {
        system.push(("KICI_DEBUG".into(), "1".into()));
    }
    // Local runs start from the user's whole environment (sdk.md §14 layer 1).
    request::layered_env(std::env::vars(), &[&system])
}

fn request_for_node(
    settings: &Settings,
    workflow: &LockWorkflow,
    node: &Node,
    inputs: &Map<String, Value>,
    secrets: &BTreeMap<String, String>,
) -> JobRequest {
    let mut req = request::job_request(request::JobSpec {
        workspace: &settings.workspace,
        entry_file: &workflow.source.file,
        workflow: &workflow.name,
        base_job: &node.base,
        job_name: &node.name,
        steps: &node.lock.steps,
        runs_on: request::runs_on_text(node.lock.runs_on.as_deref(), render_label),
        environment: request::first_environment(node.lock.environments.as_deref()),
        matrix: node.matrix.clone(),
        event: settings.event.clone(),
        dispatch_inputs: inputs.clone(),
        upstream_outputs: Map::new(),
        needs: None,
        secrets: secrets.clone(),
        env: base_env(settings, workflow, &node.name),
    });
    req.cli_env = settings.cli_env.clone();
    req.approve_all = settings.approve_all;
    req
}

async fn run_workflow(
    workflow: &LockWorkflow,
    settings: &Settings,
    inputs: &Map<String, Value>,
    secrets: &BTreeMap<String, String>,
    sink: Arc<Printer>,
    cancel: watch::Receiver<Cancel>,
) -> junit::WorkflowResult {
    let started = Instant::now();
    sink.info(&format!("Running workflow: {}", workflow.name));
    let (mut nodes, notices) = plan_nodes(workflow, settings.job_filter.as_deref());
    for n in notices {
        sink.info(&format!("notice: {n}"));
    }
    let mut result = junit::WorkflowResult {
        name: workflow.name.clone(),
        status: Status::Success,
        duration_ms: 0,
        rule_results: Vec::new(),
        jobs: Vec::new(),
    };
    // Why jobs were skipped, by job name: the `error` of their report.
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    if settings.job_filter.is_some() && nodes.is_empty() {
        sink.info(&format!(
            "notice: workflow {} has no job {}; skipped",
            workflow.name,
            settings.job_filter.as_deref().unwrap_or("")
        ));
        result.status = Status::Skipped;
        return result;
    }
    if has_cycle(&nodes) {
        sink.info("error: Circular dependency detected in job graph");
        result.status = Status::Failed;
        return result;
    }
    let dyn_sink: Arc<dyn LogSink> = sink.clone();
    // Workflow rules: once, before any job (cli.md §6.1 step 7).
    if workflow.rules.as_ref().is_some_and(|r| !r.is_empty())
        && let Some(first) = nodes.first()
    {
        let req = request_for_node(settings, workflow, first, inputs, secrets);
        match workflow_rules(&req, dyn_sink.clone()).await {
            Ok(outcome) => {
                for r in &outcome.results {
                    sink.rule_line(None, "workflow", r);
                }
                result.rule_results = outcome.results.clone();
                if !outcome.passed {
                    for node in &nodes {
                        let mut job = JobResult::not_run(
                            &node.name,
                            Status::Skipped,
                            Some(SkipReason::WorkflowRules),
                        )
                        .report();
                        job.error = Some("workflow rules".into());
                        result.jobs.push(job);
                    }
                    result.status = Status::Skipped;
                    result.duration_ms = started.elapsed().as_millis() as u64;
                    return result;
                }
            }
            Err(e) => {
                sink.info(&format!("error: workflow rules: {e}"));
                result.status = Status::Failed;
                return result;
            }
        }
    }

    let (done_tx, mut done_rx) = mpsc::channel::<(usize, JobResult)>(64);
    let (job_cancel_tx, job_cancel_rx) = watch::channel(Cancel::None);
    let mut outer_cancel = cancel.clone();
    let mut running = 0usize;
    let mut stop_all = false;
    loop {
        // Settle nodes whose fate is known without running them.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for i in 0..nodes.len() {
                if nodes[i].result.is_some() || nodes[i].name.is_empty() {
                    continue;
                }
                if let Some((status, error)) = nodes[i].preset.clone() {
                    let mut r = JobResult::not_run(&nodes[i].name, status, None);
                    r.error = Some(error.clone());
                    sink.job_line(&nodes[i].name, &format!("✗ Failed: {error}"));
                    nodes[i].result = Some(r);
                    progressed = true;
                    continue;
                }
                if stop_all {
                    nodes[i].result = Some(JobResult::not_run(
                        &nodes[i].name,
                        Status::Skipped,
                        Some(SkipReason::FailFast),
                    ));
                    reasons.insert(
                        nodes[i].name.clone(),
                        "fail-fast after an earlier failure".into(),
                    );
                    progressed = true;
                    continue;
                }
                let upstream_done = nodes[i]
                    .upstream
                    .iter()
                    .all(|(u, _)| nodes[*u].result.is_some());
                if !upstream_done {
                    continue;
                }
                let blocked = nodes[i].upstream.iter().find(|(u, run_on)| {
                    nodes[*u]
                        .result
                        .as_ref()
                        .is_some_and(|r| !edge_satisfied(r, run_on))
                });
                if let Some((u, _)) = blocked {
                    let up = &nodes[*u];
                    let status = up.result.as_ref().map(|r| r.status.as_str()).unwrap_or("");
                    let reason = format!("upstream {} {}", up.name, status);
                    sink.job_line(&nodes[i].name, &format!("Skipped ({reason})"));
                    reasons.insert(nodes[i].name.clone(), reason);
                    nodes[i].result = Some(JobResult::not_run(
                        &nodes[i].name,
                        Status::Skipped,
                        Some(SkipReason::Upstream),
                    ));
                    progressed = true;
                }
            }
        }
        // Start ready jobs.
        for i in 0..nodes.len() {
            if running >= settings.concurrency || stop_all {
                break;
            }
            if nodes[i].result.is_some() || nodes[i].name.is_empty() {
                continue;
            }
            if !nodes[i]
                .upstream
                .iter()
                .all(|(u, _)| nodes[*u].result.is_some())
            {
                continue;
            }
            let (outputs, needs) = upstream_context(&nodes, i);
            let mut req = request_for_node(settings, workflow, &nodes[i], inputs, secrets);
            req.upstream_outputs = outputs;
            if !nodes[i].lock.needs.is_empty() {
                req.needs = Some(needs);
            }
            // Mark as started: an empty name is never scheduled twice.
            let name = std::mem::take(&mut nodes[i].name);
            let tx = done_tx.clone();
            let job_sink = dyn_sink.clone();
            let rx = job_cancel_rx.clone();
            tokio::task::spawn_local(async move {
                let r = run_job(req, job_sink, rx).await;
                let _ = tx.send((i, r)).await;
            });
            nodes[i].result = None;
            nodes[i].preset = None;
            let _ = name;
            running += 1;
        }
        let all_done = nodes.iter().all(|n| n.result.is_some());
        if running == 0 {
            if all_done {
                break;
            }
            // Nothing runs and nothing can start: only possible after stop_all.
            if stop_all
                || nodes
                    .iter()
                    .all(|n| n.result.is_some() || n.name.is_empty())
            {
                for n in nodes.iter_mut().filter(|n| n.result.is_none()) {
                    n.result = Some(JobResult::not_run(
                        &n.base,
                        Status::Skipped,
                        Some(SkipReason::FailFast),
                    ));
                }
                break;
            }
        }
        tokio::select! {
            Some((i, r)) = done_rx.recv() => {
                running -= 1;
                nodes[i].name = r.name.clone();
                if r.status == Status::Failed && !settings.keep_going {
                    stop_all = true;
                    let _ = job_cancel_tx.send(Cancel::Graceful);
                }
                nodes[i].result = Some(r);
            }
            c = async { loop { if outer_cancel.changed().await.is_err() { std::future::pending::<()>().await; } let v = *outer_cancel.borrow(); if v != Cancel::None { return v; } } } => {
                stop_all = true;
                let _ = job_cancel_tx.send(c);
            }
        }
    }
    result.jobs = nodes
        .into_iter()
        .filter_map(|n| n.result)
        .map(|r| {
            let mut job = r.report();
            if let Some(reason) = reasons.remove(&job.name) {
                job.error.get_or_insert(reason);
            }
            job
        })
        .collect();
    let statuses: Vec<Status> = result.jobs.iter().map(|j| j.status).collect();
    result.status = if statuses.contains(&Status::Failed) {
        Status::Failed
    } else if statuses.contains(&Status::Cancelled) {
        Status::Cancelled
    } else if !statuses.is_empty() && statuses.iter().all(|s| *s == Status::Skipped) {
        Status::Skipped
    } else {
        Status::Success
    };
    // Workflow hooks, once per run (sdk.md §11.1).
    let has_hooks = workflow.has_on_success
        || workflow.has_on_failure
        || workflow.has_on_cancel
        || workflow.has_cleanup;
    if has_hooks && result.status != Status::Skipped {
        let representative = plan_nodes(workflow, None).0.into_iter().next();
        if let Some(node) = representative {
            let req = request_for_node(settings, workflow, &node, inputs, secrets);
            let kind = match result.status {
                Status::Success => "onSuccess",
                Status::Cancelled => "onCancel",
                _ => "onFailure",
            };
            let outcome = json!({"status": result.status.as_str(), "duration": started.elapsed().as_millis() as u64, "stepOutputs": {}});
            for k in [kind, "cleanup"] {
                if let Err(e) = workflow_hook(&req, dyn_sink.clone(), k, outcome.clone()).await {
                    sink.info(&format!(
                        "[{}] workflow hook {k} failed: {e}",
                        workflow.name
                    ));
                }
            }
        }
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

// ------------------------------------------------------------------------------ secrets

/// Local secrets (sdk.md §13): `.kici/.secrets` (INI), `.kici/.env.local`, `--secret-file`;
/// global entries plus the `default` section. Returns (global, sections).
type Secrets = (
    BTreeMap<String, String>,
    BTreeMap<String, BTreeMap<String, String>>,
);

fn load_secrets(kici_dir: &Path, files: &[PathBuf]) -> Result<Secrets, String> {
    let mut global = BTreeMap::new();
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(kici_dir.join(".secrets")) {
        let mut section: Option<String> = None;
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            if t.starts_with('[') && t.ends_with(']') {
                section = Some(t[1..t.len() - 1].trim().to_string());
                continue;
            }
            if let Some((k, v)) = t.split_once('=') {
                let (k, v) = (k.trim().to_string(), v.trim().to_string());
                match &section {
                    None => global.insert(k, v),
                    Some(s) => sections.entry(s.clone()).or_default().insert(k, v),
                };
            }
        }
    }
    let dotenv = |text: &str, into: &mut BTreeMap<String, String>| {
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let t = t.strip_prefix("export ").unwrap_or(t);
            if let Some((k, v)) = t.split_once('=') {
                let v = v.trim();
                let v = if v.len() >= 2
                    && ((v.starts_with('"') && v.ends_with('"'))
                        || (v.starts_with('\'') && v.ends_with('\'')))
                {
                    &v[1..v.len() - 1]
                } else {
                    v
                };
                into.insert(k.trim().to_string(), v.to_string());
            }
        }
    };
    if let Ok(text) = std::fs::read_to_string(kici_dir.join(".env.local")) {
        dotenv(&text, &mut global);
    }
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--secret-file {}: {e}", file.display()))?;
        dotenv(&text, &mut global);
    }
    Ok((global, sections))
}

fn merge_secrets(
    files: &Secrets,
    cli: &[(String, String)],
    environment: Option<&str>,
) -> BTreeMap<String, String> {
    let mut out = files.0.clone();
    if let Some(section) = files.1.get(environment.unwrap_or("default")) {
        out.extend(section.clone());
    }
    for (k, v) in cli {
        out.insert(k.clone(), v.clone());
    }
    out
}

// ------------------------------------------------------------------------------ run id

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n.div_ceil(2)];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        let seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()[..n].to_string()
}

/// An isolated checkout being prepared on another thread.
struct PendingCheckout {
    thread: Option<std::thread::JoinHandle<Result<Workspace, workspace::WorkspaceError>>>,
}

impl PendingCheckout {
    fn start(git_root: &std::path::Path, in_place: bool, keep: bool) -> Self {
        let root = git_root.to_path_buf();
        let thread = std::thread::spawn(move || {
            let mode = if in_place {
                Mode::InPlace
            } else {
                workspace::cleanup_stale(&workspace::default_parent(), workspace::STALE_AFTER);
                Mode::Isolated
            };
            let options = workspace::Options {
                mode,
                keep,
                parent: None,
            };
            // HEAD read from `.git` saves two `git` processes; anything unusual asks git.
            match super::gitdir::read_head(&root).and_then(|head| head.sha) {
                Some(sha) if mode != Mode::InPlace => {
                    Workspace::prepare_known(&root, &sha, &options)
                }
                _ => Workspace::prepare(&root, &options),
            }
        });
        Self {
            thread: Some(thread),
        }
    }

    fn wait(mut self) -> Result<Workspace, workspace::WorkspaceError> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(workspace::WorkspaceError::CreateDir {
                parent: workspace::default_parent(),
                source: std::io::Error::other("the checkout thread panicked"),
            }),
        }
    }
}

impl Drop for PendingCheckout {
    /// Joining drops an unused checkout, which removes its directory before we exit.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
