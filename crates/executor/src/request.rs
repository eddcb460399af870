//! Turning one job of a lock, and the run around it, into a [`JobRequest`].
//!
//! `kici run local` (every job of a matched workflow, from the compiled lock) and the agent
//! (one dispatched job, from the `jobConfig` that carries the same lock fields) build their
//! requests here, so the two paths cannot drift apart in how steps are named, which
//! environment a job gets or which `KICI_*` variables it sees.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use kici_engine::lock::{LabelMatcher, LockEnvironment, LockStepEntry, StringOrInline};

use crate::JobRequest;

/// One job to turn into a request. Borrowed pieces come straight from a lock job entry (or a
/// dispatched `jobConfig`); owned ones are per-run facts the caller computed.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    /// The checkout root.
    pub workspace: &'a Path,
    /// The workflow's entry file, relative to the checkout (`source.file`).
    pub entry_file: &'a str,
    pub workflow: &'a str,
    /// Name without matrix suffix.
    pub base_job: &'a str,
    /// Expanded name (`<base> (<suffix>)` for matrix children).
    pub job_name: &'a str,
    /// The lock job's steps; their flat names are checked against the code.
    pub steps: &'a [LockStepEntry],
    /// `ctx.job.runsOn`, already rendered for display.
    pub runs_on: String,
    /// The job's first environment name, if any (see [`first_environment`]).
    pub environment: Option<String>,
    pub matrix: Option<Map<String, Value>>,
    /// The normalised event.
    pub event: Value,
    pub dispatch_inputs: Map<String, Value>,
    /// Upstream outputs by job name, shaped by [`crate::job_outputs_value`] /
    /// [`crate::matrix_outputs_value`].
    pub upstream_outputs: Map<String, Value>,
    /// `ctx.needs`, present when the job has needs.
    pub needs: Option<Map<String, Value>>,
    pub secrets: BTreeMap<String, String>,
    /// The process environment at job start (`sdk.md` §14 layers 1–4).
    pub env: Vec<(String, String)>,
}

/// The request for `spec`, with the executor's defaults for everything a spec does not name
/// (timeouts, kill grace, memory limit); callers adjust those fields afterwards.
pub fn job_request(spec: JobSpec<'_>) -> JobRequest {
    let mut req = JobRequest::new(
        spec.workspace.to_path_buf(),
        spec.entry_file,
        spec.workflow,
        spec.base_job,
    );
    req.job_name = spec.job_name.to_string();
    req.lock_steps = Some(flat_step_names(spec.steps));
    req.runs_on = spec.runs_on;
    req.matrix = spec.matrix;
    req.event = spec.event;
    req.dispatch_inputs = spec.dispatch_inputs;
    req.upstream_outputs = spec.upstream_outputs;
    req.needs = spec.needs;
    req.secrets = spec.secrets;
    req.env = spec.env;
    req.environment = spec.environment;
    req
}

/// The lock job's steps flattened like the compiler does (parallel children inline), which is
/// the index space of `step.status` and `log.chunk` (`lockfile.md` §9.1).
pub fn flat_step_names(steps: &[LockStepEntry]) -> Vec<String> {
    let mut out = Vec::new();
    for entry in steps {
        match entry {
            LockStepEntry::Step(s) => out.push(s.name.clone()),
            LockStepEntry::Parallel(p) => out.extend(p.children.iter().map(|c| c.name.clone())),
        }
    }
    out
}

/// The first environment of a lock job when it is a static, non-empty name; a dynamic
/// environment is resolved by the orchestrator and arrives separately.
pub fn first_environment(environments: Option<&[LockEnvironment]>) -> Option<String> {
    environments
        .and_then(|e| e.first())
        .and_then(|e| match &e.value {
            StringOrInline::Static(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
}

/// `runsOn` matchers joined for `ctx.job.runsOn`, each rendered by `render` (the author CLI
/// shows globs as written; the agent has only the regex source).
pub fn runs_on_text(
    matchers: Option<&[LabelMatcher]>,
    render: impl Fn(&LabelMatcher) -> String,
) -> String {
    matchers
        .map(|m| m.iter().map(render).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

/// A label matcher as plain text: exact labels verbatim, regexes as `/source/flags`.
pub fn plain_label(matcher: &LabelMatcher) -> String {
    match matcher {
        LabelMatcher::Exact { value } => value.clone(),
        LabelMatcher::Regex { source, flags } => format!("/{source}/{flags}"),
    }
}

/// The per-run facts behind the KiCI system variables (`sdk.md` §14 layer 3).
#[derive(Debug, Clone)]
pub struct SystemVars<'a> {
    pub run_id: &'a str,
    pub job_id: &'a str,
    pub job_name: &'a str,
    pub workflow: &'a str,
    /// `owner/name`.
    pub repo: &'a str,
    pub provider: &'a str,
    pub workspace: &'a Path,
    /// Dispatch attempt, 1-based.
    pub attempt: u32,
    pub is_test_run: bool,
}

/// Layers 2 and 3 of `sdk.md` §14: the sandbox defaults and the KiCI system variables, with
/// branch, sha and event kind read from the normalised `event`.
pub fn system_env(event: &Value, vars: &SystemVars<'_>) -> Vec<(String, String)> {
    let get = |k: &str| {
        event
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let branch = get("targetBranch");
    let git_ref = if branch.is_empty() {
        String::new()
    } else {
        format!("refs/heads/{branch}")
    };
    vec![
        ("FORCE_COLOR".into(), "1".into()),
        ("CI".into(), "true".into()),
        ("KICI".into(), "true".into()),
        ("KICI_RUN_ID".into(), vars.run_id.into()),
        ("KICI_JOB_ID".into(), vars.job_id.into()),
        ("KICI_JOB_NAME".into(), vars.job_name.into()),
        ("KICI_WORKFLOW_NAME".into(), vars.workflow.into()),
        ("KICI_REPO".into(), vars.repo.into()),
        ("KICI_REF".into(), git_ref),
        ("KICI_SHA".into(), get("sha")),
        ("KICI_BRANCH".into(), branch),
        ("KICI_EVENT_TYPE".into(), get("type")),
        ("KICI_EVENT_ACTION".into(), get("action")),
        ("KICI_PROVIDER".into(), vars.provider.into()),
        (
            "KICI_WORKSPACE".into(),
            vars.workspace.to_string_lossy().into_owned(),
        ),
        ("KICI_IS_TEST_RUN".into(), vars.is_test_run.to_string()),
        ("KICI_ATTEMPT".into(), vars.attempt.to_string()),
    ]
}

/// `base` with `layers` applied in order, later keys replacing earlier ones; sorted by key so
/// that the environment a job sees does not depend on hash order.
pub fn layered_env<I>(base: I, layers: &[&[(String, String)]]) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut env: BTreeMap<String, String> = base.into_iter().collect();
    for layer in layers {
        for (k, v) in *layer {
            env.insert(k.clone(), v.clone());
        }
    }
    env.into_iter().collect()
}
