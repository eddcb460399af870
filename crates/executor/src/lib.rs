//! Runs one job — and, for `kici run local`, a whole event's worth of jobs — with the same
//! semantics locally and on an agent: isolated workspace, steps in the embedded runtime,
//! `$` processes in their own process group, secret masking, outputs, timeouts and hooks.
//!
//! It never opens a database or a server socket; logs leave through a [`LogSink`] the caller
//! owns. [`run_job`] is the runner core of `agent.md` §7; its future is not `Send` (the
//! JavaScript engine is single-threaded), so run it with `block_on` or in a `LocalSet`.

mod host;
mod job;
pub mod junit;
pub mod mask;
pub mod process;
pub mod request;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

pub use job::{run_job, run_job_after, workflow_hook, workflow_rules};
pub use junit::{SkipReason, Status};
pub use kici_runtime::job::LogStream;

/// Default per-attempt step timeout (`KICI_DEFAULT_STEP_TIMEOUT_MS`, 30 min).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A cancel request (`agent.md` §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cancel {
    #[default]
    None,
    /// Abort running steps, SIGTERM their groups, run the cancel hooks.
    Graceful,
    /// SIGKILL everything, no hooks.
    Force,
}

/// Everything the executor reports while a job runs. Lines are already masked.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    Started,
    /// A rule was evaluated (`step` is `None` for job and workflow rules).
    Rule {
        step: Option<String>,
        result: kici_runtime::job::RuleResult,
    },
    StepStarted {
        step: String,
        parallel: bool,
    },
    /// One line of output; `step` is `None` for the job's own log (prepare, job hooks).
    Line {
        step: Option<String>,
        parallel: bool,
        stream: LogStream,
        text: String,
    },
    StepFinished {
        step: String,
        parallel: bool,
        result: StepResult,
    },
    HookFinished {
        hook: HookResult,
    },
    Finished {
        status: Status,
        duration_ms: u64,
        error: Option<String>,
    },
}

/// Where job output goes: the local printer now, the agent's log shipper later.
pub trait LogSink: Send + Sync + 'static {
    fn emit(&self, job: &str, event: JobEvent);
}

/// One job to run.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// The checkout root.
    pub workspace: PathBuf,
    /// The workflow's entry file, relative to the workspace.
    pub entry_file: String,
    pub workflow: String,
    /// Base name (without matrix suffix).
    pub job: String,
    /// Expanded name, `<job> (<suffix>)` for matrix children.
    pub job_name: String,
    /// Step names of the lock job (flat); a mismatch with the code fails the job
    /// (`lockfile.md` §9.1). `None` skips the check.
    pub lock_steps: Option<Vec<String>>,
    pub runs_on: String,
    pub matrix: Option<Map<String, Value>>,
    /// The normalised event.
    pub event: Value,
    pub dispatch_inputs: Map<String, Value>,
    /// `ctx.needs`.
    pub needs: Option<Map<String, Value>>,
    /// Upstream outputs by job name (already shaped by [`job_outputs_value`] /
    /// [`matrix_outputs_value`]).
    pub upstream_outputs: Map<String, Value>,
    pub secrets: BTreeMap<String, String>,
    /// Environment at job start (sdk.md §14 layers 1–3).
    pub env: Vec<(String, String)>,
    /// `--env` (layer 6).
    pub cli_env: Vec<(String, String)>,
    pub environment: Option<String>,
    /// Remote mode evaluates workflow rules in every job; local runs do it once per workflow.
    pub evaluate_workflow_rules: bool,
    /// Grant approval gates (`--approve-all`).
    pub approve_all: bool,
    pub default_step_timeout: Duration,
    /// SIGTERM → SIGKILL delay for `$` commands.
    pub kill_grace: Duration,
    pub memory_limit_bytes: usize,
}

impl JobRequest {
    /// A request with the defaults for everything but the identity of the job.
    pub fn new(
        workspace: PathBuf,
        entry_file: impl Into<String>,
        workflow: impl Into<String>,
        job: impl Into<String>,
    ) -> Self {
        let job = job.into();
        Self {
            workspace,
            entry_file: entry_file.into(),
            workflow: workflow.into(),
            job_name: job.clone(),
            job,
            lock_steps: None,
            runs_on: String::new(),
            matrix: None,
            event: serde_json::json!({"type": "push", "payload": {}}),
            dispatch_inputs: Map::new(),
            needs: None,
            upstream_outputs: Map::new(),
            secrets: BTreeMap::new(),
            env: std::env::vars().collect(),
            cli_env: Vec::new(),
            environment: None,
            evaluate_workflow_rules: false,
            approve_all: false,
            default_step_timeout: DEFAULT_STEP_TIMEOUT,
            kill_grace: process::DEFAULT_KILL_GRACE,
            memory_limit_bytes: 1024 << 20,
        }
    }
}

/// One step's result (`cli.md` §6.4).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub name: String,
    pub status: Status,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The JavaScript stack of the failure, positions in the `.ts`.
    #[serde(skip)]
    pub stack: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub continued_on_error: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_results: Vec<kici_runtime::job::RuleResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets_accessed: Vec<String>,
}

/// A hook run as a pseudo-step (`step_type` `hook:<kind>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookResult {
    /// `hook:onSuccess`, `hook:cleanup`, … (`step:<name>:hook:cleanup` for step hooks).
    pub name: String,
    pub status: Status,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a job produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub name: String,
    pub status: Status,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix_values: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_results: Vec<kici_runtime::job::RuleResult>,
    pub steps: Vec<StepResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookResult>,
    /// Outputs by step name, for the steps that produced outputs (masked).
    #[serde(skip)]
    pub outputs: Map<String, Value>,
    /// Number of steps of the job (flat), for the shape of `jobOutputs`.
    #[serde(skip)]
    pub step_count: usize,
}

impl JobResult {
    /// A job that never ran.
    pub fn not_run(name: &str, status: Status, skip_reason: Option<SkipReason>) -> Self {
        Self {
            name: name.to_string(),
            status,
            duration_ms: 0,
            matrix_values: None,
            skip_reason,
            error: None,
            rule_results: Vec::new(),
            steps: Vec::new(),
            hooks: Vec::new(),
            outputs: Map::new(),
            step_count: 0,
        }
    }

    /// The job as the `--json` and JUnit reports show it (`cli.md` §6.4): hooks, outputs and
    /// step details the spec does not list are left out.
    pub fn report(&self) -> junit::JobResult {
        junit::JobResult {
            name: self.name.clone(),
            status: self.status,
            duration_ms: self.duration_ms,
            matrix_values: self.matrix_values.clone(),
            skip_reason: self.skip_reason,
            error: self.error.clone(),
            rule_results: self.rule_results.clone(),
            steps: self.steps.iter().map(StepResult::report).collect(),
        }
    }
}

impl StepResult {
    /// The exit code of the `$` command whose failure failed the step (`step.status`
    /// `data.exitCode`, `protocol.md` §7.3); `None` when the step did not fail that way
    /// (success, a thrown error, a timeout, a cancel, a command killed by a signal).
    ///
    /// Read from the failure message the runtime's `ProcessOutput` builds (`…\n    exit code:
    /// <n>[ (<meaning>)]\n    command: …`, `runner.js`), so the result itself keeps its shape.
    /// The command comes after that line and the stderr tail before it, so the last occurrence
    /// that is followed by the `command:` line is the command's own.
    pub fn exit_code(&self) -> Option<i32> {
        if self.status != Status::Failed {
            return None;
        }
        exit_code_of_failure(self.error.as_deref()?)
    }

    /// The step as the `--json` and JUnit reports show it (`cli.md` §6.4).
    pub fn report(&self) -> junit::StepResult {
        junit::StepResult {
            name: self.name.clone(),
            status: self.status,
            duration_ms: self.duration_ms,
            attempts: self.attempts,
            error: self.error.clone(),
            continued_on_error: self.continued_on_error,
        }
    }
}

/// See [`StepResult::exit_code`].
fn exit_code_of_failure(message: &str) -> Option<i32> {
    const LABEL: &str = "\n    exit code: ";
    let mut rest = message;
    let mut found = None;
    while let Some(at) = rest.find(LABEL) {
        let after = &rest[at + LABEL.len()..];
        let line = after.split('\n').next().unwrap_or_default();
        let digits = line.split(' ').next().unwrap_or_default();
        let followed_by_command = after[line.len()..].starts_with("\n    command: ");
        if followed_by_command
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(code) = digits.parse::<i32>()
        {
            found = Some(code);
        }
        rest = after;
    }
    found
}

/// `jobOutputs(job)` of a non-matrix job (`sdk.md` §12.1): flat when the job has exactly one
/// step and it produced outputs, otherwise `{<stepName>: outputs}`.
pub fn job_outputs_value(result: &JobResult) -> Value {
    if result.step_count == 1
        && result.outputs.len() == 1
        && let Some(v) = result.outputs.values().next()
    {
        return v.clone();
    }
    Value::Object(result.outputs.clone())
}

/// `jobOutputs(matrixJob)`: `{byMatrix: {<suffix>: outputs}, merged}`, `merged` assigned in
/// ascending byte order of the suffix (`sdk.md` §8).
pub fn matrix_outputs_value(children: &[(String, Value)]) -> Value {
    let mut sorted: Vec<&(String, Value)> = children.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut by_matrix = Map::new();
    let mut merged = Map::new();
    for (suffix, value) in sorted {
        by_matrix.insert(suffix.clone(), value.clone());
        if let Value::Object(o) = value {
            for (k, v) in o {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::json!({"byMatrix": by_matrix, "merged": merged})
}

#[cfg(test)]
mod tests {
    use super::exit_code_of_failure;

    #[test]
    fn exit_code_comes_from_the_process_failure_lines() {
        let message =
            "boom\n    at .kici/workflows/ci.ts:3:5\n    exit code: 3\n    command: exit 3";
        assert_eq!(exit_code_of_failure(message), Some(3));
        assert_eq!(
            exit_code_of_failure("\n    exit code: 127 (Command not found)\n    command: nope"),
            Some(127)
        );
        // A nested failure in the stderr tail does not win over the command's own.
        let nested =
            "\n    exit code: 9\n    command: inner\n\n    exit code: 4\n    command: outer";
        assert_eq!(exit_code_of_failure(nested), Some(4));
        assert_eq!(
            exit_code_of_failure("\n    exit code: null\n    signal: SIGKILL\n    command: x"),
            None
        );
        assert_eq!(exit_code_of_failure("Error: thrown by the step"), None);
        assert_eq!(
            exit_code_of_failure("step_timeout: step exceeded its timeout of 5ms"),
            None
        );
    }
}
