//! The runner core (`agent.md` §7): job env, rules, steps with retries, timeouts,
//! `continueOnError` and parallel groups, hooks in the order of `sdk.md` §11.1.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use kici_runtime::job::{
    HookOwner, JobConfig, JobPlan, JobRuntime, JsFailure, LogStream, PlanEntry, RuleLevel,
    RulesOutcome, StepPlan,
};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::host::ExecHost;
use crate::mask::Masker;
use crate::{
    Cancel, HookResult, JobEvent, JobRequest, JobResult, LogSink, SkipReason, Status, StepResult,
};

/// Limit for evaluating a runtime `env` function (`agent.md` §7.1).
const ENV_FUNCTION_LIMIT: Duration = Duration::from_secs(30);

/// Why an attempt (or any piece of user code) stopped before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    StepTimeout(u64),
    JobTimeout,
    Cancel(Cancel),
    GroupAbort,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn cancelled(rx: &mut watch::Receiver<Cancel>) -> Cancel {
    loop {
        let now = *rx.borrow_and_update();
        if now != Cancel::None {
            return now;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Resolves once a forced cancel arrives (graceful ones do not stop hooks).
async fn forced(rx: &mut watch::Receiver<Cancel>) {
    loop {
        if *rx.borrow_and_update() == Cancel::Force {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn group_aborted(rx: Option<watch::Receiver<bool>>) {
    let Some(mut rx) = rx else {
        return std::future::pending().await;
    };
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Runs `futures` with at most `limit` of them in flight, in order of start; results in input
/// order. Futures borrow the runner, so they are polled here rather than spawned.
async fn join_limited<F: Future>(futures: Vec<F>, limit: usize) -> Vec<F::Output> {
    let limit = limit.max(1);
    let total = futures.len();
    let mut queue = futures.into_iter().enumerate();
    let mut running: Vec<(usize, Pin<Box<F>>)> = Vec::new();
    let mut results: Vec<Option<F::Output>> = (0..total).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        while running.len() < limit {
            match queue.next() {
                Some((i, f)) => running.push((i, Box::pin(f))),
                None => break,
            }
        }
        let mut k = 0;
        while k < running.len() {
            if let Poll::Ready(out) = running[k].1.as_mut().poll(cx) {
                results[running[k].0] = Some(out);
                running.remove(k);
                if let Some((i, f)) = queue.next() {
                    running.push((i, Box::pin(f)));
                }
            } else {
                k += 1;
            }
        }
        if running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn job_tmp_dir() -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kici-job-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

struct Runner<'a> {
    req: &'a JobRequest,
    rt: &'a JobRuntime,
    host: &'a ExecHost,
    plan: &'a JobPlan,
    cancel: watch::Receiver<Cancel>,
    deadline: Option<Instant>,
    /// A step failed without `continueOnError`: later steps are skipped.
    failing: Cell<bool>,
    /// The job was cancelled or timed out: later steps are cancelled.
    aborted: Cell<Option<Interrupt>>,
    failed_step: RefCell<Option<String>>,
    outputs: RefCell<Map<String, Value>>,
    hooks: RefCell<Vec<HookResult>>,
}

impl Runner<'_> {
    async fn interrupted(
        &self,
        step_deadline: Option<(Instant, u64)>,
        group: Option<watch::Receiver<bool>>,
    ) -> Interrupt {
        let mut cancel = self.cancel.clone();
        let step_at = step_deadline.map(|(at, _)| at);
        let step_ms = step_deadline.map(|(_, ms)| ms).unwrap_or(0);
        tokio::select! {
            _ = sleep_until(step_at) => Interrupt::StepTimeout(step_ms),
            _ = sleep_until(self.deadline) => Interrupt::JobTimeout,
            c = cancelled(&mut cancel) => Interrupt::Cancel(c),
            _ = group_aborted(group) => Interrupt::GroupAbort,
        }
    }

    fn job_timeout_message(&self) -> String {
        format!(
            "job_timeout: job exceeded its timeout of {}ms",
            self.plan.job.timeout.unwrap_or(0)
        )
    }

    fn rule_events(&self, step: Option<&str>, outcome: &RulesOutcome) {
        for result in &outcome.results {
            self.host.emit(JobEvent::Rule {
                step: step.map(str::to_string),
                result: result.clone(),
            });
        }
    }

    async fn rules(&self, level: RuleLevel, step: Option<&str>) -> Result<RulesOutcome, Interrupt> {
        let scope = self.host.open_scope(step, false);
        let result = tokio::select! {
            r = self.rt.evaluate_rules(level, scope) => Ok(r),
            i = self.interrupted(None, None) => Err(i),
        };
        self.host.close_scope(scope);
        match result {
            Ok(Ok(outcome)) => {
                self.rule_events(step, &outcome);
                Ok(outcome)
            }
            Ok(Err(failure)) => {
                let outcome = RulesOutcome {
                    passed: false,
                    results: vec![kici_runtime::job::RuleResult {
                        label: "rules".into(),
                        passed: false,
                        duration_ms: 0,
                        error: Some(self.host.mask(&failure.message)),
                    }],
                };
                self.rule_events(step, &outcome);
                Ok(outcome)
            }
            Err(i) => Err(i),
        }
    }

    fn outcome(&self, status: Status, started: Instant, reason: Option<String>) -> Value {
        let mut o = json!({
            "status": status.as_str(),
            "stepOutputs": Value::Object(self.outputs.borrow().clone()),
            "duration": ms(started.elapsed()),
        });
        if let Some(r) = reason {
            o["reason"] = Value::String(r);
        }
        if let Some(s) = self.failed_step.borrow().clone() {
            o["failedStep"] = Value::String(s);
        }
        o
    }

    /// Runs one hook as a pseudo-step with its own timeout; a forced cancel stops it.
    async fn hook(
        &self,
        owner: HookOwner,
        kind: &str,
        timeout_ms: u64,
        label: String,
        outcome: Value,
    ) -> HookResult {
        let started = Instant::now();
        let scope = self.host.open_scope(Some(&label), false);
        let at = Instant::now() + Duration::from_millis(timeout_ms);
        let mut cancel = self.cancel.clone();
        let result = tokio::select! {
            r = self.rt.run_hook(owner, kind, scope, outcome) => r.map_err(|f| self.host.mask(&f.message)),
            _ = sleep_until(Some(at)) => Err(format!("hook_timeout: hook exceeded its timeout of {timeout_ms}ms")),
            _ = forced(&mut cancel) => Err("cancelled".to_string()),
        };
        if result.is_err() {
            self.host.kill_scope(scope, false);
        }
        self.rt.close_scope(scope, result.is_ok()).await;
        self.host.close_scope(scope);
        let hook = HookResult {
            name: label,
            status: if result.is_ok() {
                Status::Success
            } else {
                Status::Failed
            },
            duration_ms: ms(started.elapsed()),
            error: result.err(),
        };
        if let Some(e) = &hook.error {
            self.host.line(
                Some(&hook.name),
                LogStream::Stderr,
                &format!("[error] {}: {e}", hook.name),
            );
        }
        self.host
            .emit(JobEvent::HookFinished { hook: hook.clone() });
        self.hooks.borrow_mut().push(hook.clone());
        hook
    }

    fn skipped_step(step: &StepPlan, status: Status, reason: Option<&str>) -> StepResult {
        StepResult {
            name: step.name.clone(),
            status,
            duration_ms: 0,
            attempts: None,
            error: None,
            stack: None,
            continued_on_error: false,
            skip_reason: reason.map(str::to_string),
            rule_results: Vec::new(),
            secrets_accessed: Vec::new(),
        }
    }

    async fn step(
        &self,
        step: &StepPlan,
        parallel: bool,
        group: Option<watch::Receiver<bool>>,
    ) -> StepResult {
        if self.aborted.get().is_some() || group.as_ref().is_some_and(|g| *g.borrow()) {
            return Self::skipped_step(step, Status::Cancelled, None);
        }
        if self.failing.get() {
            return Self::skipped_step(step, Status::Skipped, None);
        }
        let started = Instant::now();
        let mut rule_results = Vec::new();
        if step.has_rules {
            match self
                .rules(RuleLevel::Step(step.index), Some(&step.name))
                .await
            {
                Ok(outcome) => {
                    rule_results = outcome.results.clone();
                    if !outcome.passed {
                        let mut r = Self::skipped_step(step, Status::Skipped, Some("step_rules"));
                        r.rule_results = rule_results;
                        self.host.emit(JobEvent::StepFinished {
                            step: step.name.clone(),
                            parallel,
                            result: r.clone(),
                        });
                        return r;
                    }
                }
                Err(i) => {
                    self.abort(i);
                    return Self::skipped_step(step, Status::Cancelled, None);
                }
            }
        }
        if step.approval && !self.req.approve_all {
            let mut r = Self::skipped_step(step, Status::Failed, None);
            r.error = Some("approval required (use --approve-all to approve locally)".into());
            self.fail_step(&r);
            self.host.emit(JobEvent::StepFinished {
                step: step.name.clone(),
                parallel,
                result: r.clone(),
            });
            return r;
        }
        if let Some(t) = self.plan.job.hooks.before_step {
            let outcome = self.outcome(Status::Success, started, None);
            self.hook(
                HookOwner::Job,
                "beforeStep",
                t,
                "hook:beforeStep".into(),
                outcome,
            )
            .await;
        }
        self.host.emit(JobEvent::StepStarted {
            step: step.name.clone(),
            parallel,
        });

        let max_attempts = step
            .retry
            .as_ref()
            .map(|r| r.max_attempts.max(1))
            .unwrap_or(1);
        let timeout = step
            .timeout
            .map(Duration::from_millis)
            .unwrap_or(self.req.default_step_timeout);
        let mut attempts = 0;
        let mut error: Option<JsFailure> = None;
        let mut status = Status::Success;
        let mut accessed: Vec<String> = Vec::new();
        while attempts < max_attempts {
            attempts += 1;
            let scope = self.host.open_scope(Some(&step.name), parallel);
            let at = Instant::now() + timeout;
            let result = tokio::select! {
                r = self.rt.run_step(step.index, scope) => Ok(r),
                i = self.interrupted(Some((at, ms(timeout))), group.clone()) => Err(i),
            };
            match result {
                Ok(Ok(outputs)) => {
                    accessed = self.rt.close_scope(scope, true).await;
                    self.host.close_scope(scope);
                    if let Some(text) = outputs {
                        let mut value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let masker: Masker = self.host.masker();
                        if masker.mask_json(&mut value) {
                            self.host.line(
                                Some(&step.name),
                                LogStream::Stderr,
                                "[warn] step outputs contained secret values; they were masked",
                            );
                        }
                        self.outputs.borrow_mut().insert(step.name.clone(), value);
                    }
                    status = Status::Success;
                    error = None;
                    break;
                }
                Ok(Err(failure)) => {
                    accessed = self.rt.close_scope(scope, false).await;
                    self.host.close_scope(scope);
                    status = Status::Failed;
                    error = Some(failure);
                }
                Err(interrupt) => {
                    let reason = match interrupt {
                        Interrupt::StepTimeout(t) => {
                            format!("step_timeout: step exceeded its timeout of {t}ms")
                        }
                        Interrupt::JobTimeout => self.job_timeout_message(),
                        Interrupt::Cancel(_) => "cancelled".to_string(),
                        Interrupt::GroupAbort => {
                            "cancelled: a sibling in the parallel group failed".to_string()
                        }
                    };
                    let force = matches!(interrupt, Interrupt::Cancel(Cancel::Force));
                    self.host.kill_scope(scope, force);
                    self.rt.abort_scope(scope, &reason).await;
                    accessed = self.rt.close_scope(scope, false).await;
                    self.host.close_scope(scope);
                    error = Some(JsFailure {
                        message: reason,
                        stack: None,
                    });
                    match interrupt {
                        Interrupt::StepTimeout(_) => status = Status::Failed,
                        Interrupt::JobTimeout => {
                            status = Status::Failed;
                            self.abort(interrupt);
                            break;
                        }
                        Interrupt::Cancel(_) | Interrupt::GroupAbort => {
                            status = Status::Cancelled;
                            if let Interrupt::Cancel(_) = interrupt {
                                self.abort(interrupt);
                            }
                            break;
                        }
                    }
                }
            }
            if attempts < max_attempts && self.rt.retry_if(step.index).await {
                let retry = step.retry.as_ref();
                let base = retry.map(|r| r.delay_ms).unwrap_or(1000);
                let max_delay = retry.map(|r| r.max_delay_ms).unwrap_or(30000);
                let delay = if retry.is_some_and(|r| r.backoff == "fixed") {
                    base
                } else {
                    base.saturating_mul(1u64 << (attempts - 1).min(30))
                        .min(max_delay)
                };
                if let Some(e) = &error {
                    self.host.line(
                        Some(&step.name),
                        LogStream::Stderr,
                        &format!("[warn] attempt {attempts} failed: {}", e.message),
                    );
                }
                self.host.line(
                    Some(&step.name),
                    LogStream::Stderr,
                    &format!(
                        "retrying in {delay}ms (attempt {}/{max_attempts})",
                        attempts + 1
                    ),
                );
                let wait = tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => None,
                    i = self.interrupted(None, group.clone()) => Some(i),
                };
                if let Some(i) = wait {
                    if i == Interrupt::JobTimeout {
                        status = Status::Failed;
                        error = Some(JsFailure {
                            message: self.job_timeout_message(),
                            stack: None,
                        });
                    } else {
                        status = Status::Cancelled;
                    }
                    if i != Interrupt::GroupAbort {
                        self.abort(i);
                    }
                    break;
                }
                continue;
            }
            if status != Status::Success {
                break;
            }
        }

        // Cancel path: the step's onCancel before its cleanup (sdk.md §11.1).
        if status == Status::Cancelled
            && matches!(
                self.aborted.get(),
                Some(Interrupt::Cancel(Cancel::Graceful))
            )
            && let Some(t) = step.on_cancel
        {
            let outcome = self.outcome(Status::Cancelled, started, Some("cancelled".into()));
            self.hook(
                HookOwner::Step(step.index),
                "onCancel",
                t,
                format!("{}:hook:onCancel", step.name),
                outcome,
            )
            .await;
        }
        let forced = matches!(self.aborted.get(), Some(Interrupt::Cancel(Cancel::Force)));
        if !forced {
            if let Some(t) = step.cleanup {
                let outcome = self.outcome(status, started, None);
                self.hook(
                    HookOwner::Step(step.index),
                    "cleanup",
                    t,
                    format!("{}:hook:cleanup", step.name),
                    outcome,
                )
                .await;
            }
            if let Some(t) = self.plan.job.hooks.after_step {
                let outcome = self.outcome(status, started, None);
                self.hook(
                    HookOwner::Job,
                    "afterStep",
                    t,
                    "hook:afterStep".into(),
                    outcome,
                )
                .await;
            }
        }

        let mut result = StepResult {
            name: step.name.clone(),
            status,
            duration_ms: ms(started.elapsed()),
            attempts: Some(attempts),
            error: error.as_ref().map(|e| self.host.mask(&e.message)),
            stack: error
                .as_ref()
                .and_then(|e| e.stack.as_ref())
                .map(|s| self.host.mask(s)),
            continued_on_error: false,
            skip_reason: None,
            rule_results,
            secrets_accessed: accessed,
        };
        if let Some(stack) = result
            .stack
            .as_ref()
            .filter(|s| s.contains(".ts:") || s.contains(".js:"))
        {
            for line in stack.lines().filter(|l| l.trim_start().starts_with("at ")) {
                self.host.emit(JobEvent::Line {
                    step: Some(step.name.clone()),
                    parallel,
                    stream: LogStream::Stderr,
                    text: line.to_string(),
                });
            }
        }
        if status == Status::Failed {
            if step.continue_on_error {
                result.continued_on_error = true;
            } else {
                self.fail_step(&result);
            }
        }
        self.host.emit(JobEvent::StepFinished {
            step: step.name.clone(),
            parallel,
            result: result.clone(),
        });
        result
    }

    fn fail_step(&self, result: &StepResult) {
        self.failing.set(true);
        let mut failed = self.failed_step.borrow_mut();
        if failed.is_none() {
            *failed = Some(result.name.clone());
        }
    }

    fn abort(&self, interrupt: Interrupt) {
        if self.aborted.get().is_none() {
            self.aborted.set(Some(interrupt));
        }
        if interrupt == Interrupt::Cancel(Cancel::Force) {
            self.aborted.set(Some(interrupt));
            self.host.kill_everything(true);
        }
    }

    async fn steps(&self) -> Vec<StepResult> {
        let mut results = Vec::new();
        for entry in &self.plan.steps {
            match entry {
                PlanEntry::Step(step) => results.push(self.step(step, false, None).await),
                PlanEntry::Parallel {
                    children,
                    fail_fast,
                    max_parallel,
                    ..
                } => {
                    let (abort_tx, abort_rx) = watch::channel(false);
                    let abort_tx = &abort_tx;
                    let futures: Vec<_> = children
                        .iter()
                        .map(|child| {
                            let rx = abort_rx.clone();
                            async move {
                                let r = self.step(child, true, Some(rx)).await;
                                if *fail_fast && r.status == Status::Failed && !r.continued_on_error
                                {
                                    let _ = abort_tx.send(true);
                                }
                                r
                            }
                        })
                        .collect();
                    let limit = max_parallel.unwrap_or(children.len());
                    results.extend(join_limited(futures, limit).await);
                }
            }
        }
        results
    }

    async fn run(
        &self,
        started: Instant,
    ) -> (
        Status,
        Option<SkipReason>,
        Option<String>,
        Vec<kici_runtime::job::RuleResult>,
        Vec<StepResult>,
    ) {
        let all_skipped = |status: Status| -> Vec<StepResult> {
            self.plan
                .flat()
                .into_iter()
                .map(|s| Self::skipped_step(s, status, None))
                .collect()
        };
        // Job env (layer 5), then `--env` (layer 6).
        let env = tokio::select! {
            r = self.rt.apply_job_env() => Ok(r),
            _ = tokio::time::sleep(ENV_FUNCTION_LIMIT) => Err("job env function did not finish within 30 s".to_string()),
            i = self.interrupted(None, None) => Err(match i { Interrupt::JobTimeout => self.job_timeout_message(), _ => "cancelled".into() }),
        };
        match env {
            Ok(Ok(())) => {}
            Ok(Err(f)) => {
                return (
                    Status::Failed,
                    None,
                    Some(self.host.mask(&format!("job env: {}", f.message))),
                    Vec::new(),
                    all_skipped(Status::Skipped),
                );
            }
            Err(e) => {
                return (
                    Status::Failed,
                    None,
                    Some(e),
                    Vec::new(),
                    all_skipped(Status::Skipped),
                );
            }
        }
        let mut rule_results = Vec::new();
        if self.req.evaluate_workflow_rules && self.plan.workflow.has_rules {
            match self.rules(RuleLevel::Workflow, None).await {
                Ok(o) if !o.passed => {
                    return (
                        Status::Skipped,
                        Some(SkipReason::WorkflowRules),
                        None,
                        o.results,
                        all_skipped(Status::Skipped),
                    );
                }
                Ok(o) => rule_results.extend(o.results),
                Err(_) => {
                    return (
                        Status::Cancelled,
                        None,
                        None,
                        rule_results,
                        all_skipped(Status::Cancelled),
                    );
                }
            }
        }
        if self.plan.job.has_rules {
            match self.rules(RuleLevel::Job, None).await {
                Ok(o) if !o.passed => {
                    rule_results.extend(o.results);
                    return (
                        Status::Skipped,
                        Some(SkipReason::JobRules),
                        None,
                        rule_results,
                        all_skipped(Status::Skipped),
                    );
                }
                Ok(o) => rule_results.extend(o.results),
                Err(_) => {
                    return (
                        Status::Cancelled,
                        None,
                        None,
                        rule_results,
                        all_skipped(Status::Cancelled),
                    );
                }
            }
        }
        let mut job_error = None;
        let steps = if self.plan.job.approval && !self.req.approve_all {
            job_error =
                Some("approval required (use --approve-all to approve locally)".to_string());
            self.failing.set(true);
            all_skipped(Status::Skipped)
        } else {
            self.steps().await
        };
        let status = match self.aborted.get() {
            Some(Interrupt::Cancel(_)) => Status::Cancelled,
            Some(Interrupt::JobTimeout) => {
                job_error = Some(self.job_timeout_message());
                Status::Failed
            }
            _ if self.failing.get() => Status::Failed,
            _ => Status::Success,
        };
        if job_error.is_none() && status == Status::Failed {
            job_error = steps
                .iter()
                .find(|s| s.status == Status::Failed && !s.continued_on_error)
                .map(|s| {
                    format!(
                        "step \"{}\" failed: {}",
                        s.name,
                        s.error.clone().unwrap_or_default()
                    )
                });
        }
        // Completion hooks (sdk.md §11.1); none after a forced cancel.
        let hooks = &self.plan.job.hooks;
        let mut status = status;
        match status {
            Status::Cancelled => {
                if self.aborted.get() != Some(Interrupt::Cancel(Cancel::Force)) {
                    let mut failed = false;
                    for (kind, t) in [("onCancel", hooks.on_cancel), ("cleanup", hooks.cleanup)] {
                        if let Some(t) = t {
                            let outcome =
                                self.outcome(Status::Cancelled, started, Some("cancelled".into()));
                            failed |= self
                                .hook(HookOwner::Job, kind, t, format!("hook:{kind}"), outcome)
                                .await
                                .status
                                != Status::Success;
                        }
                    }
                    if failed {
                        status = Status::Failed;
                    }
                }
            }
            Status::Success => {
                for (kind, t) in [("onSuccess", hooks.on_success), ("cleanup", hooks.cleanup)] {
                    if let Some(t) = t {
                        let outcome = self.outcome(Status::Success, started, None);
                        self.hook(HookOwner::Job, kind, t, format!("hook:{kind}"), outcome)
                            .await;
                    }
                }
            }
            Status::Failed | Status::Skipped => {
                for (kind, t) in [("onFailure", hooks.on_failure), ("cleanup", hooks.cleanup)] {
                    if let Some(t) = t {
                        let outcome = self.outcome(Status::Failed, started, job_error.clone());
                        self.hook(HookOwner::Job, kind, t, format!("hook:{kind}"), outcome)
                            .await;
                    }
                }
            }
        }
        (status, None, job_error, rule_results, steps)
    }
}

fn config_for(req: &JobRequest, tmp_dir: std::path::PathBuf) -> JobConfig {
    JobConfig {
        workspace: req.workspace.clone(),
        entry_file: req.entry_file.clone(),
        workflow: req.workflow.clone(),
        job: req.job.clone(),
        job_name: req.job_name.clone(),
        runs_on: req.runs_on.clone(),
        matrix: req.matrix.clone(),
        event: req.event.clone(),
        dispatch_inputs: req.dispatch_inputs.clone(),
        needs: req.needs.clone(),
        upstream_outputs: req.upstream_outputs.clone(),
        secrets: req.secrets.clone(),
        env: req.env.clone(),
        cli_env: req.cli_env.clone(),
        environment: req.environment.clone(),
        tmp_dir,
        memory_limit_bytes: req.memory_limit_bytes,
    }
}

/// Runs one job to completion and reports it through `sink`. `cancel` requests a graceful or
/// forced cancel at any time.
pub async fn run_job(
    req: JobRequest,
    sink: Arc<dyn LogSink>,
    cancel: watch::Receiver<Cancel>,
) -> JobResult {
    run_job_after(req, sink, cancel, async { Ok(()) }).await
}

/// [`run_job`] in a workspace that is still being prepared: the JavaScript engine starts at
/// once and the workflow loads when `workspace_ready` resolves; its error fails the job
/// before any step.
pub async fn run_job_after(
    req: JobRequest,
    sink: Arc<dyn LogSink>,
    cancel: watch::Receiver<Cancel>,
    workspace_ready: impl std::future::Future<Output = Result<(), String>>,
) -> JobResult {
    let started = Instant::now();
    let masker = Masker::new(req.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
    let warnings: Vec<String> = masker.warnings().to_vec();
    let host = Arc::new(ExecHost::new(
        req.job_name.clone(),
        sink,
        masker,
        req.kill_grace,
    ));
    host.emit(JobEvent::Started);
    for w in warnings {
        host.line(None, LogStream::Stderr, &format!("[warn] {w}"));
    }
    let mut result = JobResult::not_run(&req.job_name, Status::Failed, None);
    result.matrix_values = req.matrix.clone();
    let tmp = match job_tmp_dir() {
        Ok(dir) => dir,
        Err(e) => {
            result.error = Some(format!("cannot create the job's temporary directory: {e}"));
            return finish(&host, result, started);
        }
    };
    let config = config_for(&req, tmp.clone());
    let rt = match JobRuntime::start_after(&config, host.clone(), workspace_ready).await {
        Ok(rt) => rt,
        Err(f) => {
            result.error = Some(host.mask(&f.message));
            if let Some(stack) = &f.stack {
                for line in stack.lines() {
                    host.line(None, LogStream::Stderr, line);
                }
            }
            let _ = std::fs::remove_dir_all(&tmp);
            return finish(&host, result, started);
        }
    };
    let plan = rt.plan().clone();
    result.step_count = plan.flat().len();
    if let Some(expected) = &req.lock_steps {
        let found = plan.flat_names();
        if &found != expected {
            result.error = Some(format!(
                "workflow source does not match kici.lock.json (job \"{}\": expected steps [{}], found [{}])",
                req.job,
                expected.join(", "),
                found.join(", ")
            ));
            drop(rt);
            let _ = std::fs::remove_dir_all(&tmp);
            return finish(&host, result, started);
        }
    }
    let runner = Runner {
        req: &req,
        rt: &rt,
        host: &host,
        plan: &plan,
        cancel,
        deadline: plan.job.timeout.map(|t| started + Duration::from_millis(t)),
        failing: Cell::new(false),
        aborted: Cell::new(None),
        failed_step: RefCell::new(None),
        outputs: RefCell::new(Map::new()),
        hooks: RefCell::new(Vec::new()),
    };
    let (status, skip_reason, error, rule_results, steps) = runner.run(started).await;
    result.status = status;
    result.skip_reason = skip_reason;
    result.error = error.map(|e| host.mask(&e));
    result.rule_results = rule_results;
    result.steps = steps;
    result.outputs = runner.outputs.take();
    result.hooks = runner.hooks.take();
    // Nothing the job started may outlive it.
    host.kill_everything(false);
    rt.kill_all("SIGTERM");
    drop(runner);
    drop(rt);
    let _ = std::fs::remove_dir_all(&tmp);
    finish(&host, result, started)
}

fn finish(host: &ExecHost, mut result: JobResult, started: Instant) -> JobResult {
    result.duration_ms = ms(started.elapsed());
    host.emit(JobEvent::Finished {
        status: result.status,
        duration_ms: result.duration_ms,
        error: result.error.clone(),
    });
    result
}

/// Evaluates a workflow's `rules` once (local runs, `cli.md` §6.1 step 7), in a runtime
/// loaded for one of its jobs (`req`). Output goes to the prepare log of `req.job_name`.
pub async fn workflow_rules(
    req: &JobRequest,
    sink: Arc<dyn LogSink>,
) -> Result<RulesOutcome, String> {
    with_runtime(req, sink, async |rt, host| {
        let scope = host.open_scope(None, false);
        let r = rt
            .evaluate_rules(RuleLevel::Workflow, scope)
            .await
            .map_err(|f| f.message);
        host.close_scope(scope);
        r
    })
    .await
}

/// Runs a workflow-level hook (`onSuccess`, `onFailure`, `onCancel`, `cleanup`) once per local
/// run, in a runtime loaded for one of its jobs.
pub async fn workflow_hook(
    req: &JobRequest,
    sink: Arc<dyn LogSink>,
    kind: &str,
    outcome: Value,
) -> Result<bool, String> {
    let kind = kind.to_string();
    with_runtime(req, sink, async move |rt, host| {
        let hooks = &rt.plan().workflow.hooks;
        let timeout = match kind.as_str() {
            "onSuccess" => hooks.on_success,
            "onFailure" => hooks.on_failure,
            "onCancel" => hooks.on_cancel,
            "cleanup" => hooks.cleanup,
            _ => None,
        };
        let Some(timeout) = timeout else {
            return Ok(false);
        };
        let scope = host.open_scope(Some(&format!("workflow:hook:{kind}")), false);
        let r = tokio::select! {
            r = rt.run_hook(HookOwner::Workflow, &kind, scope, outcome) => r.map_err(|f| host.mask(&f.message)),
            _ = tokio::time::sleep(Duration::from_millis(timeout)) => Err(format!("hook_timeout: hook exceeded its timeout of {timeout}ms")),
        };
        host.kill_scope(scope, false);
        rt.close_scope(scope, false).await;
        host.close_scope(scope);
        r.map(|()| true)
    })
    .await
}

async fn with_runtime<T>(
    req: &JobRequest,
    sink: Arc<dyn LogSink>,
    f: impl AsyncFnOnce(&JobRuntime, &ExecHost) -> Result<T, String>,
) -> Result<T, String> {
    let masker = Masker::new(req.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
    let host = Arc::new(ExecHost::new(
        req.job_name.clone(),
        sink,
        masker,
        req.kill_grace,
    ));
    let tmp = job_tmp_dir().map_err(|e| e.to_string())?;
    let config = config_for(req, tmp.clone());
    let result = match JobRuntime::start(&config, host.clone()).await {
        Ok(rt) => {
            let r = match rt.apply_job_env().await {
                Ok(()) => f(&rt, &host).await,
                Err(e) => Err(e.message),
            };
            host.kill_everything(false);
            r
        }
        Err(e) => Err(host.mask(&e.message)),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
