//! One dispatched job: its own thread prepares the job directory, fetches the commit, checks
//! the lock's content hash and runs the executor; the event loop turns what it reports into
//! `step.status`, `log.chunk` and `job.status` frames ([`JobTracker`]).
//!
//! The executor's future is not `Send` (QuickJS is single-threaded), so each job gets a
//! dedicated thread with a current-thread runtime and a `LocalSet`. A crashing step cannot
//! take the event loop with it, and the thread owns everything blocking (git, file reads).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use kici_engine::lock::{LockStepEntry, workflow_content_hash};
use kici_engine::protocol::logs::StepLogBatcher;
use kici_engine::protocol::step_index::{JobHook, StepHook, StepSlot};
use kici_engine::protocol::{
    AgentMessage, JobDispatch, JobSkipReason, JobStatusData, JobStatusReport, LogChunk,
    ReportedJobState, RuleResult, StepConcurrencyKind, StepResult as WireStepResult,
    StepSkipReason, StepState, StepStatusData, StepStatusReport, StepType, TimeoutReason,
};
use kici_executor::request::{self, JobSpec};
use kici_executor::workspace;
use kici_executor::{Cancel, JobEvent, JobResult, LogSink, SkipReason, Status, StepResult};

use crate::clone::{CloneRequest, clone_commit};

/// Host variables a job may inherit (`agent.md` §11 layer 1); everything else of the
/// agent's environment, the token above all, stays out.
const HOST_ALLOWLIST: &[&str] = &[
    "PATH", "HOME", "USER", "SHELL", "LANG", "LC_ALL", "TERM", "TZ",
];

/// What a job thread reports to the event loop.
#[derive(Debug)]
pub(crate) enum JobUpdate {
    /// The checkout is ready (sent only when the dispatch asked for the tip of a ref, so
    /// that `job.status running` can carry `resolvedSha`).
    Resolved {
        sha: String,
    },
    Event(JobEvent),
    Finished(Box<JobOutcome>),
    /// The job's thread swept its processes and removed its directory, after `Finished`
    /// (the result is reported first, so cleanup adds nothing to the job's duration).
    CleanedUp,
}

/// How a job ended.
#[derive(Debug)]
pub(crate) struct JobOutcome {
    pub result: JobResult,
}

/// Settings a job thread needs from the agent configuration.
#[derive(Debug, Clone)]
pub(crate) struct JobSettings {
    pub work_dir: PathBuf,
    pub default_step_timeout: Duration,
    pub memory_limit_bytes: usize,
}

/// Forwards executor events to the event loop, tagged with the job id.
struct ChannelSink {
    job_id: String,
    tx: mpsc::UnboundedSender<(String, JobUpdate)>,
}

impl LogSink for ChannelSink {
    fn emit(&self, _job: &str, event: JobEvent) {
        // The loop only goes away when the agent exits; events after that have nowhere to go.
        let _ = self.tx.send((self.job_id.clone(), JobUpdate::Event(event)));
    }
}

/// Starts the job's thread.
pub(crate) fn spawn(
    dispatch: Box<JobDispatch>,
    settings: JobSettings,
    cancel: watch::Receiver<Cancel>,
    tx: mpsc::UnboundedSender<(String, JobUpdate)>,
) -> std::io::Result<()> {
    let name = format!("kici-job-{}", short(&dispatch.job_id));
    std::thread::Builder::new().name(name).spawn(move || {
        let job_id = dispatch.job_id.clone();
        let (result, cleanup) = run_thread(&dispatch, &settings, cancel, &tx);
        let _ = tx.send((
            job_id.clone(),
            JobUpdate::Finished(Box::new(JobOutcome { result })),
        ));
        if let Some(cleanup) = cleanup {
            cleanup.run(&job_id);
        }
        let _ = tx.send((job_id, JobUpdate::CleanedUp));
    })?;
    Ok(())
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn failed(name: &str, error: String) -> JobResult {
    let mut result = JobResult::not_run(name, Status::Failed, None);
    result.error = Some(error);
    result
}

fn run_thread(
    dispatch: &JobDispatch,
    settings: &JobSettings,
    cancel: watch::Receiver<Cancel>,
    tx: &mpsc::UnboundedSender<(String, JobUpdate)>,
) -> (JobResult, Option<Cleanup>) {
    let config = &dispatch.job_config;
    let dir = match JobDir::create(&settings.work_dir) {
        Ok(dir) => dir,
        Err(e) => {
            let error = format!("cannot create the job directory: {e}");
            return (failed(&config.name, error), None);
        }
    };
    let ws = dir.path.join("ws");
    let tmp = dir.path.join("tmp");
    let req = build_request(dispatch, settings, &ws, &tmp);
    let sink: Arc<dyn LogSink> = Arc::new(ChannelSink {
        job_id: dispatch.job_id.clone(),
        tx: tx.clone(),
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let error = format!("cannot start the job runtime: {e}");
            return (failed(&config.name, error), Some(Cleanup::dir(dir)));
        }
    };
    // The checkout runs on a thread of its own while the job's JavaScript engine starts
    // (≈ 3 ms of set-up that needs no workspace); the workflow loads once it is ready.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let checkout = if config.checkout_or_default() && !dispatch.repo_url.is_empty() {
        let job = dispatch.clone();
        let (ws, tmp, tx) = (ws.clone(), tmp.clone(), tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("kici-checkout-{}", short(&dispatch.job_id)))
            .spawn(move || {
                let _ = ready_tx.send(checkout(&job, &ws, &tmp, &tx));
            });
        match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                let error = format!("cannot start the checkout: {e}");
                return (failed(&config.name, error), Some(Cleanup::dir(dir)));
            }
        }
    } else {
        let _ = ready_tx.send(Ok(()));
        None
    };
    let workspace_ready = async move {
        ready_rx
            .await
            .unwrap_or_else(|_| Err("the checkout stopped without a result".to_string()))
    };
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(
        &runtime,
        kici_executor::run_job_after(req, sink, cancel, workspace_ready),
    );
    let cleanup = Cleanup {
        checkout,
        local: Some(local),
        runtime: Some(runtime),
        tmp: Some(tmp),
        dir,
    };
    (result, Some(cleanup))
}

/// Fetches the dispatched commit into `ws` and checks the lock's content hash against it.
fn checkout(
    dispatch: &JobDispatch,
    ws: &Path,
    home: &Path,
    tx: &mpsc::UnboundedSender<(String, JobUpdate)>,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let clone = CloneRequest {
        repo_url: &dispatch.repo_url,
        git_ref: &dispatch.git_ref,
        sha: &dispatch.sha,
        auth: dispatch.source_auth.as_ref(),
    };
    let head = clone_commit(&clone, ws, home).map_err(|e| e.to_string())?;
    tracing::info!(job_id = %dispatch.job_id, elapsed_ms = started.elapsed().as_millis() as u64, "checkout ready");
    if dispatch.sha.is_empty() || dispatch.sha == "HEAD" {
        let _ = tx.send((dispatch.job_id.clone(), JobUpdate::Resolved { sha: head }));
    }
    verify_content_hash(ws, dispatch)
}

/// What a job leaves to tear down once its result is reported.
struct Cleanup {
    /// Joined before the directory goes: a job that failed before its workflow loaded may
    /// still be checking out.
    checkout: Option<std::thread::JoinHandle<()>>,
    local: Option<tokio::task::LocalSet>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The job's `TMPDIR`, by which leftover processes are found.
    tmp: Option<std::path::PathBuf>,
    dir: JobDir,
}

impl Cleanup {
    fn dir(dir: JobDir) -> Cleanup {
        Cleanup {
            checkout: None,
            local: None,
            runtime: None,
            tmp: None,
            dir,
        }
    }

    fn run(mut self, job_id: &str) {
        if let Some(checkout) = self.checkout.take() {
            let _ = checkout.join();
        }
        // Give SIGKILL escalations of the job's process groups a moment before the runtime
        // and the job directory go away.
        drop(self.local.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_millis(200));
        }
        // The final sweep (`agent.md` §8, §17): whatever the job started and left behind —
        // a command that ignored SIGTERM once the runtime holding its SIGKILL timer was
        // gone, a daemonised background process — still carries the job's own `TMPDIR`.
        if let Some(tmp) = &self.tmp {
            let killed = kill_job_processes(tmp);
            if killed > 0 {
                tracing::info!(%job_id, killed, "killed processes the job left behind");
            }
        }
        drop(self.dir);
    }
}

/// Rounds of the final sweep: a process may start a child between two scans.
const SWEEP_ROUNDS: usize = 20;

/// SIGKILLs every process (of this user; others cannot be read) whose environment has
/// `TMPDIR=<tmp>`, until a scan finds none. Returns how many were killed.
fn kill_job_processes(tmp: &Path) -> usize {
    let mut needle = b"TMPDIR=".to_vec();
    needle.extend_from_slice(tmp.as_os_str().as_encoded_bytes());
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..SWEEP_ROUNDS {
        let mut found = 0;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return killed;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_slice())
                && let Ok(raw) = i32::try_from(pid)
                && nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(raw),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok()
            {
                found += 1;
            }
        }
        if found == 0 {
            break;
        }
        killed += found;
        std::thread::sleep(Duration::from_millis(20));
    }
    killed
}

/// Age beyond which a `kici-*` entry of the work directory is left over from a crash.
pub(crate) const STALE_JOB_DIR_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// `agent.md` §2: deletes the job directories (and outbox spill files) under `work_dir`
/// that a crashed agent left behind, i.e. `kici-*` entries not modified for `max_age`.
/// Returns how many were removed. A running job's directory is never that old: it is
/// created fresh for every dispatch.
pub(crate) fn sweep_stale_job_dirs(work_dir: &Path, max_age: Duration) -> usize {
    let mut removed = 0;
    for (path, meta) in workspace::stale_entries(work_dir, "kici-", max_age) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let result = if meta.is_dir() {
            workspace::force_remove_dir_all(&path)
        } else if meta.is_file() && name.starts_with("kici-outbox-") && name.ends_with(".spill") {
            std::fs::remove_file(&path)
        } else {
            continue;
        };
        match result {
            Ok(()) => removed += 1,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "removing a stale job directory failed");
            }
        }
    }
    removed
}

/// `lockfile.md` §9.2: the content hash of the checked-out workflow sources must be the one
/// the lock was compiled with.
fn verify_content_hash(ws: &Path, dispatch: &JobDispatch) -> Result<(), String> {
    let config = &dispatch.job_config;
    let file = &config.source.file;
    let entry = std::fs::read(ws.join(file))
        .map_err(|e| format!("workflow entry file {file} cannot be read from the checkout: {e}"))?;
    let entry = String::from_utf8_lossy(&entry);
    let assets: Vec<(String, Option<String>)> = config
        .resolved_hash_files
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            let content = std::fs::read(ws.join(f))
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            (f.clone(), content)
        })
        .collect();
    let actual = workflow_content_hash(&entry, &assets);
    if actual == config.content_hash {
        Ok(())
    } else {
        Err(format!(
            "Lock file is out of date: workflow source changed without regenerating kici.lock.json (expected contentHash {}, got {actual}, file {file}). Run 'kici compile' and commit the updated lock file.",
            config.content_hash
        ))
    }
}

/// `jobOutputs` and `ctx.needs` by upstream name: matrix children grouped under their base
/// name as `{byMatrix, merged}` with the group's status, the way `kici run local` does it.
fn upstream_context(dispatch: &JobDispatch) -> (Map<String, Value>, Option<Map<String, Value>>) {
    let config = &dispatch.job_config;
    let outputs = dispatch.upstream_job_outputs.clone().unwrap_or_default();
    let statuses = dispatch.upstream_job_statuses.clone().unwrap_or_default();
    let children = config.upstream_matrix.clone().unwrap_or_default();
    let mut by_name = Map::new();
    let mut needs = Map::new();
    let mut groups: BTreeMap<String, Vec<(String, Value, &str)>> = BTreeMap::new();
    for name in &config.needs {
        let result = outputs
            .get(name)
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let status = statuses.get(name).map(|s| s.as_str()).unwrap_or("success");
        match children.get(name) {
            Some(child) => groups.entry(child.base.clone()).or_default().push((
                child.suffix.clone(),
                result,
                status,
            )),
            None => {
                needs.insert(
                    name.clone(),
                    serde_json::json!({"result": result, "status": status}),
                );
                by_name.insert(name.clone(), result);
            }
        }
    }
    for (base, members) in groups {
        let statuses: Vec<&str> = members.iter().map(|(_, _, s)| *s).collect();
        let status = if statuses
            .iter()
            .any(|s| !matches!(*s, "success" | "skipped" | "cancelled"))
        {
            "failed"
        } else if statuses.contains(&"cancelled") {
            "cancelled"
        } else if statuses.iter().all(|s| *s == "skipped") {
            "skipped"
        } else {
            "success"
        };
        let value = kici_executor::matrix_outputs_value(
            &members
                .into_iter()
                .map(|(suffix, value, _)| (suffix, value))
                .collect::<Vec<_>>(),
        );
        needs.insert(
            base.clone(),
            serde_json::json!({"result": value, "status": status}),
        );
        by_name.insert(base, value);
    }
    (by_name, (!config.needs.is_empty()).then_some(needs))
}

fn build_request(
    dispatch: &JobDispatch,
    settings: &JobSettings,
    ws: &Path,
    tmp: &Path,
) -> kici_executor::JobRequest {
    let config = &dispatch.job_config;
    let mut system: Vec<(String, String)> = vec![
        ("FORCE_COLOR".into(), "1".into()),
        ("CI".into(), "true".into()),
    ];
    system.extend(config.env.clone().unwrap_or_default());
    system.push(("KICI_WORKSPACE".into(), ws.to_string_lossy().into_owned()));
    system.push(("TMPDIR".into(), tmp.to_string_lossy().into_owned()));
    let environment_vars: Vec<(String, String)> = config
        .environment_vars
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let job_env: Vec<(String, String)> = config
        .job_env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let host = HOST_ALLOWLIST
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_string(), v)));
    let env = request::layered_env(host, &[&system, &environment_vars, &job_env]);
    let (upstream_outputs, needs) = upstream_context(dispatch);
    let matrix = config.matrix_values.as_ref().map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<String, Value>>()
    });
    let secrets: BTreeMap<String, String> = dispatch
        .secrets
        .as_ref()
        .map(|s| {
            s.iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut req = request::job_request(JobSpec {
        workspace: ws,
        entry_file: &config.source.file,
        workflow: &config.workflow_name,
        base_job: &config.base_job_name,
        job_name: &config.name,
        steps: &config.steps,
        runs_on: request::runs_on_text(config.runs_on.as_deref(), request::plain_label),
        environment: config.environment.clone(),
        matrix,
        event: serde_json::to_value(&config.event).unwrap_or(Value::Null),
        dispatch_inputs: config.dispatch_inputs.clone().unwrap_or_default(),
        upstream_outputs,
        needs,
        secrets,
        env,
    });
    // Remote jobs evaluate workflow rules themselves (`agent.md` §7.1 step 6).
    req.evaluate_workflow_rules = true;
    req.default_step_timeout = settings.default_step_timeout;
    req.memory_limit_bytes = settings.memory_limit_bytes;
    req
}

/// `KICI_WORK_DIR/kici-<8 random>/` with `ws/` and `tmp/` (mode 0700), removed on drop.
struct JobDir {
    path: PathBuf,
}

impl JobDir {
    fn create(work_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(work_dir)?;
        let path = work_dir.join(format!("kici-{}", crate::random_lower_alnum(8)));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        let dir = JobDir { path };
        for sub in ["ws", "tmp"] {
            builder.create(dir.path.join(sub))?;
        }
        Ok(dir)
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        if let Err(error) = workspace::force_remove_dir_all(&self.path) {
            tracing::warn!(%error, path = %self.path.display(), "removing the job directory failed");
        }
    }
}

// ------------------------------------------------------------------------------ frames

/// Mints message ids and timestamps for frames.
pub(crate) trait FrameClock {
    fn message_id(&mut self) -> String;
    fn now_ms(&self) -> u64;
}

/// The wire view of one running job: step indices, per-step log batches, hook pseudo-steps.
#[derive(Debug)]
pub(crate) struct JobTracker {
    pub run_id: String,
    pub job_id: String,
    steps: Vec<String>,
    parallel: HashSet<String>,
    log_cap: u64,
    batchers: HashMap<i64, StepLogBatcher>,
    /// Hook pseudo-steps already reported `running`.
    hooks_started: HashSet<i64>,
    /// Flat index of the step that started last and of the one that finished last.
    last_started: Option<usize>,
    last_finished: Option<usize>,
}

impl JobTracker {
    pub(crate) fn new(dispatch: &JobDispatch) -> Self {
        let config = &dispatch.job_config;
        let mut parallel = HashSet::new();
        for entry in &config.steps {
            if let LockStepEntry::Parallel(p) = entry {
                parallel.extend(p.children.iter().map(|c| c.name.clone()));
            }
        }
        JobTracker {
            run_id: dispatch.run_id.clone(),
            job_id: dispatch.job_id.clone(),
            steps: request::flat_step_names(&config.steps),
            parallel,
            log_cap: dispatch.max_log_size_bytes_or_default(),
            batchers: HashMap::new(),
            hooks_started: HashSet::new(),
            last_started: None,
            last_finished: None,
        }
    }

    fn step_position(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s == name)
    }

    /// The wire index and type of a log scope or hook label (`protocol.md` §7.3).
    fn slot_of(&self, scope: Option<&str>) -> (i64, StepType) {
        let Some(name) = scope else {
            return (StepSlot::Prepare.index().unwrap_or(-1), StepType::Step);
        };
        if let Some(i) = self.step_position(name) {
            return (to_index(StepSlot::Step(i as u32)), StepType::Step);
        }
        let job_hook = |hook: JobHook, t: StepType| (to_index(StepSlot::JobHook(hook)), t);
        match name {
            "hook:onSuccess" => return job_hook(JobHook::OnSuccess, StepType::HookOnSuccess),
            "hook:onFailure" => return job_hook(JobHook::OnFailure, StepType::HookOnFailure),
            "hook:onCancel" => return job_hook(JobHook::OnCancel, StepType::HookOnCancel),
            "hook:cleanup" => return job_hook(JobHook::Cleanup, StepType::HookCleanup),
            "hook:beforeStep" => {
                // It runs right before the next step starts.
                let next = self.last_finished.map_or(0, |i| i + 1) as u32;
                return (
                    to_index(StepSlot::BeforeStep(next)),
                    StepType::HookBeforeStep,
                );
            }
            "hook:afterStep" => {
                let current = self.last_started.unwrap_or(0) as u32;
                return (
                    to_index(StepSlot::AfterStep(current)),
                    StepType::HookAfterStep,
                );
            }
            _ => {}
        }
        for (suffix, hook, t) in [
            (":hook:onCancel", StepHook::OnCancel, StepType::HookOnCancel),
            (":hook:cleanup", StepHook::Cleanup, StepType::HookCleanup),
        ] {
            if let Some(step) = name.strip_suffix(suffix)
                && let Some(i) = self.step_position(step)
            {
                return (to_index(StepSlot::StepHook(i as u32, hook)), t);
            }
        }
        // A scope the lock does not know: keep its lines in the job's own log.
        (StepSlot::Prepare.index().unwrap_or(-1), StepType::Step)
    }

    fn chunk(
        &self,
        clock: &mut dyn FrameClock,
        step_index: i64,
        lines: Vec<String>,
    ) -> AgentMessage {
        AgentMessage::LogChunk(LogChunk {
            message_id: clock.message_id(),
            run_id: self.run_id.clone(),
            job_id: self.job_id.clone(),
            step_index,
            lines,
            timestamp: clock.now_ms(),
            seq: None,
        })
    }

    fn step_status(
        &self,
        clock: &mut dyn FrameClock,
        index: i64,
        name: &str,
        state: StepState,
        step_type: StepType,
    ) -> StepStatusReport {
        let concurrency_kind = (step_type == StepType::Step && index >= 0).then(|| {
            if self.parallel.contains(name) {
                StepConcurrencyKind::ParallelChild
            } else {
                StepConcurrencyKind::Sequential
            }
        });
        StepStatusReport {
            message_id: clock.message_id(),
            run_id: self.run_id.clone(),
            job_id: self.job_id.clone(),
            step_index: index,
            step_name: name.to_string(),
            state,
            timestamp: clock.now_ms(),
            step_type: Some(step_type),
            data: None,
            secrets_accessed: None,
            concurrency_kind,
            group_id: None,
            log_bytes_streamed: None,
            seq: None,
        }
    }

    /// Sends the pending batch of `index` (before its terminal status); returns the bytes
    /// streamed for that step.
    fn finish_batch(
        &mut self,
        clock: &mut dyn FrameClock,
        index: i64,
        out: &mut Vec<AgentMessage>,
    ) -> u64 {
        let Some(mut batcher) = self.batchers.remove(&index) else {
            return 0;
        };
        if let Some(lines) = batcher.finish() {
            out.push(self.chunk(clock, index, lines));
        }
        batcher.bytes_streamed()
    }

    /// Turns one executor event into frames.
    pub(crate) fn on_event(
        &mut self,
        clock: &mut dyn FrameClock,
        event: JobEvent,
        out: &mut Vec<AgentMessage>,
    ) {
        match event {
            JobEvent::Started | JobEvent::Rule { .. } | JobEvent::Finished { .. } => {}
            JobEvent::StepStarted { step, .. } => {
                let (index, step_type) = self.slot_of(Some(&step));
                self.last_started = self.step_position(&step);
                let report = self.step_status(clock, index, &step, StepState::Running, step_type);
                out.push(AgentMessage::StepStatus(Box::new(report)));
            }
            JobEvent::Line { step, text, .. } => {
                let (index, step_type) = self.slot_of(step.as_deref());
                if step_type != StepType::Step && self.hooks_started.insert(index) {
                    let name = step.as_deref().unwrap_or_default();
                    let report =
                        self.step_status(clock, index, name, StepState::Running, step_type);
                    out.push(AgentMessage::StepStatus(Box::new(report)));
                }
                let now = clock.now_ms();
                let cap = self.log_cap;
                let batches = self
                    .batchers
                    .entry(index)
                    .or_insert_with(|| StepLogBatcher::new(cap))
                    .push(&text, now);
                for lines in batches {
                    out.push(self.chunk(clock, index, lines));
                }
            }
            JobEvent::StepFinished { step, result, .. } => {
                let (index, step_type) = self.slot_of(Some(&step));
                if let Some(i) = self.step_position(&step) {
                    self.last_finished = Some(i);
                }
                let streamed = self.finish_batch(clock, index, out);
                let mut report =
                    self.step_status(clock, index, &step, step_state(result.status), step_type);
                report.data = Some(step_data(&result));
                report.log_bytes_streamed = Some(streamed);
                report.secrets_accessed =
                    (!result.secrets_accessed.is_empty()).then(|| result.secrets_accessed.clone());
                out.push(AgentMessage::StepStatus(Box::new(report)));
            }
            JobEvent::HookFinished { hook } => {
                let (index, step_type) = self.slot_of(Some(&hook.name));
                if self.hooks_started.insert(index) {
                    let report =
                        self.step_status(clock, index, &hook.name, StepState::Running, step_type);
                    out.push(AgentMessage::StepStatus(Box::new(report)));
                }
                // A hook can run again (beforeStep before every step): a later run reports
                // `running` anew.
                self.hooks_started.remove(&index);
                let streamed = self.finish_batch(clock, index, out);
                let mut report =
                    self.step_status(clock, index, &hook.name, step_state(hook.status), step_type);
                report.data = Some(StepStatusData {
                    duration_ms: Some(hook.duration_ms),
                    error: hook.error.clone(),
                    ..StepStatusData::default()
                });
                report.log_bytes_streamed = Some(streamed);
                out.push(AgentMessage::StepStatus(Box::new(report)));
            }
        }
    }

    /// Batches whose 100 ms delay has passed.
    pub(crate) fn flush_due(&mut self, clock: &mut dyn FrameClock, out: &mut Vec<AgentMessage>) {
        let now = clock.now_ms();
        let mut due: Vec<(i64, Vec<String>)> = Vec::new();
        for (index, batcher) in &mut self.batchers {
            if let Some(lines) = batcher.poll(now) {
                due.push((*index, lines));
            }
        }
        due.sort_by_key(|(i, _)| *i);
        for (index, lines) in due {
            out.push(self.chunk(clock, index, lines));
        }
    }

    /// When the earliest pending batch is due (Unix ms).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.batchers
            .values()
            .filter_map(StepLogBatcher::deadline)
            .min()
    }

    /// Flushes every batch (the job ended) and builds the terminal `job.status`.
    pub(crate) fn finish(
        &mut self,
        clock: &mut dyn FrameClock,
        result: &JobResult,
        out: &mut Vec<AgentMessage>,
    ) {
        let mut indices: Vec<i64> = self.batchers.keys().copied().collect();
        indices.sort_unstable();
        for index in indices {
            self.finish_batch(clock, index, out);
        }
        let state = match result.status {
            Status::Success => ReportedJobState::Success,
            Status::Failed => ReportedJobState::Failed,
            Status::Skipped => ReportedJobState::Skipped,
            Status::Cancelled => ReportedJobState::Cancelled,
        };
        let data = JobStatusData {
            error: result.error.clone(),
            duration_ms: Some(result.duration_ms),
            outputs: (!result.outputs.is_empty()).then(|| result.outputs.clone()),
            step_results: Some(
                result
                    .steps
                    .iter()
                    .map(|s| WireStepResult {
                        name: s.name.clone(),
                        status: step_state(s.status),
                        duration_ms: s.duration_ms,
                        error: s.error.clone(),
                    })
                    .collect(),
            ),
            skip_reason: match result.skip_reason {
                Some(SkipReason::JobRules) => Some(JobSkipReason::JobRules),
                Some(SkipReason::WorkflowRules) => Some(JobSkipReason::WorkflowRules),
                _ => None,
            },
            timeout_reason: result
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("job_timeout"))
                .then_some(TimeoutReason::JobTimeout),
            init_failure: None,
            rule_results: (!result.rule_results.is_empty()).then(|| {
                result
                    .rule_results
                    .iter()
                    .map(|r| RuleResult {
                        label: r.label.clone(),
                        passed: r.passed,
                        duration_ms: r.duration_ms,
                        error: r.error.clone(),
                    })
                    .collect()
            }),
            resolved_sha: None,
        };
        out.push(self.job_status(clock, state, Some(data)));
    }

    pub(crate) fn job_status(
        &self,
        clock: &mut dyn FrameClock,
        state: ReportedJobState,
        data: Option<JobStatusData>,
    ) -> AgentMessage {
        AgentMessage::JobStatus(Box::new(JobStatusReport {
            message_id: clock.message_id(),
            run_id: self.run_id.clone(),
            job_id: self.job_id.clone(),
            state,
            timestamp: clock.now_ms(),
            data,
            dropped_jobs: None,
            secret_outputs: None,
            seq: None,
        }))
    }
}

fn to_index(slot: StepSlot) -> i64 {
    // Only step numbers beyond a million have no index; they share the prepare log.
    slot.index().unwrap_or(-1)
}

fn step_state(status: Status) -> StepState {
    match status {
        Status::Success => StepState::Success,
        Status::Failed => StepState::Failed,
        Status::Skipped => StepState::Skipped,
        Status::Cancelled => StepState::Cancelled,
    }
}

fn step_data(result: &StepResult) -> StepStatusData {
    StepStatusData {
        duration_ms: Some(result.duration_ms),
        error: result.error.clone(),
        exit_code: result.exit_code(),
        attempt: result.attempts,
        skip_reason: (result.skip_reason.as_deref() == Some("step_rules"))
            .then_some(StepSkipReason::StepRules),
        continued_on_error: result.continued_on_error.then_some(true),
        step_type: None,
        step_type_camel: None,
    }
}
