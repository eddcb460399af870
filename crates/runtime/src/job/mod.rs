//! The job runtime: one async QuickJS runtime per job that loads the workflow entry file with
//! the same loader and position mapping as the compiler, finds the job by name
//! (lockfile.md §9.1) and runs its steps, rules and hooks on request.
//!
//! The executor decides order, timeouts, retries and cancellation; this module only runs one
//! piece of user code at a time per call (calls may overlap for parallel groups). Everything
//! that leaves the process — commands and log lines — goes through the [`JobHost`].

mod fetch;
pub mod host;
mod native;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rquickjs::{
    AsyncContext, AsyncRuntime, Ctx, Error as JsError, Function, Module, Object, Value,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::modules::{self, Registry, SharedRegistry, WorkflowLoader, WorkflowResolver};
use crate::shims;
use crate::stack::{self, Anchor, describe_thrown, map_stack};

pub use host::{
    CommandOutput, CommandSpec, JobHost, LogStream, PREPARE_SCOPE, RunningCommand, ScopeId,
};

const RUNNER_MODULE: &str = "kici:runner";
const RUNNER_JS: &str = include_str!("../../sdk/runner.js");

/// What the job runtime needs to find and run one job.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The checkout root: modules load from here, `process.cwd()` and `$` run here.
    pub workspace: PathBuf,
    /// The workflow's entry file, relative to the workspace (`source.file` of the lock).
    pub entry_file: String,
    pub workflow: String,
    /// Base job name (without matrix suffix).
    pub job: String,
    /// Expanded job name (`ctx.job.name`).
    pub job_name: String,
    /// `ctx.job.runsOn`.
    pub runs_on: String,
    pub matrix: Option<Map<String, Json>>,
    /// The normalised event (`ctx.event`).
    pub event: Json,
    pub dispatch_inputs: Map<String, Json>,
    /// `ctx.needs`: `{job: {result, status}}`, present when the job has needs.
    pub needs: Option<Map<String, Json>>,
    /// Upstream job outputs by job name, for `jobOutputs()` and `job.result`.
    pub upstream_outputs: Map<String, Json>,
    pub secrets: BTreeMap<String, String>,
    /// The process environment at job start (sdk.md §14 layers 1–3).
    pub env: Vec<(String, String)>,
    /// `--env K=V` (layer 6), applied after the job's own `env`.
    pub cli_env: Vec<(String, String)>,
    pub environment: Option<String>,
    /// Per-job scratch directory (KICI_ENV/KICI_PATH files, mounted secrets).
    pub tmp_dir: PathBuf,
    pub memory_limit_bytes: usize,
}

/// A step as the live workflow object defines it (names flattened like the compiler).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepPlan {
    /// Flat index (parallel children inline).
    pub index: usize,
    pub name: String,
    pub timeout: Option<u64>,
    pub retry: Option<RetryPlan>,
    #[serde(default)]
    pub continue_on_error: bool,
    #[serde(default)]
    pub has_rules: bool,
    #[serde(default)]
    pub has_outputs: bool,
    #[serde(default)]
    pub approval: bool,
    /// Hook timeouts (ms) when the step has them.
    pub cleanup: Option<u64>,
    pub on_cancel: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetryPlan {
    pub max_attempts: u32,
    pub delay_ms: u64,
    pub backoff: String,
    pub max_delay_ms: u64,
    #[serde(default)]
    pub has_retry_if: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PlanEntry {
    #[serde(rename = "step")]
    Step(StepPlan),
    #[serde(rename = "parallel", rename_all = "camelCase")]
    Parallel {
        name: String,
        fail_fast: bool,
        max_parallel: Option<usize>,
        children: Vec<StepPlan>,
    },
}

/// Hook kinds present on an owner, with their timeouts in ms.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HookPlan {
    pub on_success: Option<u64>,
    pub on_failure: Option<u64>,
    pub cleanup: Option<u64>,
    pub on_cancel: Option<u64>,
    pub before_step: Option<u64>,
    pub after_step: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobLevelPlan {
    pub timeout: Option<u64>,
    /// Seconds.
    pub grace_period: Option<f64>,
    #[serde(default)]
    pub has_rules: bool,
    #[serde(default)]
    pub has_env: bool,
    #[serde(default)]
    pub approval: bool,
    pub hooks: HookPlan,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowLevelPlan {
    #[serde(default)]
    pub has_rules: bool,
    pub hooks: HookPlan,
}

/// The job as found in the workflow code.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct JobPlan {
    pub steps: Vec<PlanEntry>,
    pub job: JobLevelPlan,
    pub workflow: WorkflowLevelPlan,
}

impl JobPlan {
    /// Step names in flat order (what lock `steps` must agree with).
    pub fn flat_names(&self) -> Vec<String> {
        self.flat().into_iter().map(|s| s.name.clone()).collect()
    }

    pub fn flat(&self) -> Vec<&StepPlan> {
        let mut out = Vec::new();
        for entry in &self.steps {
            match entry {
                PlanEntry::Step(s) => out.push(s),
                PlanEntry::Parallel { children, .. } => out.extend(children.iter()),
            }
        }
        out
    }
}

/// Which rules to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleLevel {
    Workflow,
    Job,
    Step(usize),
}

/// Who owns a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOwner {
    Workflow,
    Job,
    Step(usize),
}

#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleResult {
    pub label: String,
    pub passed: bool,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RulesOutcome {
    pub passed: bool,
    pub results: Vec<RuleResult>,
}

/// User code failed: the message (`Name: message` unless the name is `Error`) and the stack
/// with positions in the original `.ts`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JsFailure {
    pub message: String,
    pub stack: Option<String>,
}

impl JsFailure {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            stack: None,
        }
    }
}

pub struct JobRuntime {
    // Field order matters: the context must be dropped before its runtime.
    context: AsyncContext,
    _runtime: AsyncRuntime,
    registry: SharedRegistry,
    native: Arc<native::Native>,
    plan: JobPlan,
}

impl JobRuntime {
    /// Starts a runtime, loads the entry file and finds the job. Module top-level output goes
    /// to [`PREPARE_SCOPE`].
    pub async fn start(config: &JobConfig, host: Arc<dyn JobHost>) -> Result<Self, JsFailure> {
        Self::start_after(config, host, async { Ok(()) }).await
    }

    /// [`JobRuntime::start`] for a workspace that is still being prepared: the engine and its
    /// globals are set up at once, and the entry file is loaded only when `workspace_ready`
    /// resolves (an agent overlaps the two with the checkout). Its error fails the start.
    pub async fn start_after(
        config: &JobConfig,
        host: Arc<dyn JobHost>,
        workspace_ready: impl std::future::Future<Output = Result<(), String>>,
    ) -> Result<Self, JsFailure> {
        let engine =
            |e: JsError| JsFailure::new(format!("cannot start the JavaScript engine: {e}"));
        let runtime = AsyncRuntime::new().map_err(engine)?;
        runtime.set_memory_limit(config.memory_limit_bytes).await;
        runtime.set_max_stack_size(1 << 20).await;
        let registry: SharedRegistry = Arc::new(Mutex::new(Registry {
            git_root: config.workspace.clone(),
            job: true,
            ..Registry::default()
        }));
        runtime
            .set_loader(
                WorkflowResolver(registry.clone()),
                WorkflowLoader(registry.clone()),
            )
            .await;
        let context = AsyncContext::full(&runtime).await.map_err(engine)?;
        let native = native::Native::new(host);

        let setup = {
            let registry = registry.clone();
            let native = native.clone();
            let env = config.env.clone();
            let cwd = config.workspace.to_string_lossy().into_owned();
            let entry = Some(config.entry_file.clone())
                .map(|f| config.workspace.join(f).to_string_lossy().into_owned())
                .unwrap_or_default();
            context
                .with(move |ctx| -> rquickjs::Result<()> {
                    install_host(&ctx, &registry, &native, env, cwd, entry)?;
                    ctx.eval::<(), _>(shims::GLOBALS_JS)?;
                    native::install(&ctx, &native)?;
                    ctx.eval::<(), _>(shims::RUNTIME_JS)?;
                    Ok(())
                })
                .await
        };
        setup.map_err(engine)?;
        workspace_ready.await.map_err(JsFailure::new)?;

        let absolute = config
            .workspace
            .join(&config.entry_file)
            .to_string_lossy()
            .into_owned();
        let init_config = serde_json::json!({
            "file": config.entry_file,
            "workflow": config.workflow,
            "job": config.job,
            "jobName": config.job_name,
            "runsOn": config.runs_on,
            "matrix": config.matrix,
            "event": config.event,
            "dispatchInputs": config.dispatch_inputs,
            "needs": config.needs,
            "upstreamOutputs": config.upstream_outputs,
            "secrets": config.secrets,
            "cliEnv": config.cli_env,
            "environment": config.environment,
            "tmpDir": config.tmp_dir.to_string_lossy(),
        })
        .to_string();
        let reg = registry.clone();
        let plan_text = context
            .async_with(async move |ctx| -> Result<String, JsFailure> {
                let loaded: rquickjs::Result<String> = async {
                    let namespace: Object = Module::import(&ctx, absolute.clone())?
                        .into_future::<Object>()
                        .await?;
                    ctx.globals().set("__kici_entry", namespace)?;
                    let (module, done) =
                        Module::declare(ctx.clone(), RUNNER_MODULE, RUNNER_JS)?.eval()?;
                    done.into_future::<()>().await?;
                    let runner = module.namespace()?;
                    ctx.globals().set("__kici_runner", runner.clone())?;
                    let init: Function = runner.get("init")?;
                    init.call((init_config,))
                }
                .await;
                loaded.map_err(|e| failure(&ctx, &reg, e))
            })
            .await?;
        let plan: JobPlan = serde_json::from_str(&plan_text)
            .map_err(|e| JsFailure::new(format!("internal: bad job plan: {e}")))?;
        Ok(Self {
            context,
            _runtime: runtime,
            registry,
            native,
            plan,
        })
    }

    pub fn plan(&self) -> &JobPlan {
        &self.plan
    }

    /// Calls `runner[name](JSON text)` and awaits it; returns its JSON text result, if any.
    async fn call(&self, name: &'static str, argument: Json) -> Result<Option<String>, JsFailure> {
        let registry = self.registry.clone();
        let argument = argument.to_string();
        self.context
            .async_with(async move |ctx| -> Result<Option<String>, JsFailure> {
                let result: rquickjs::Result<Option<String>> = async {
                    let runner: Object = ctx.globals().get("__kici_runner")?;
                    let f: Function = runner.get(name)?;
                    let value: Value = f.call((argument,))?;
                    let value = match value.as_promise() {
                        Some(p) => p.clone().into_future::<Value>().await?,
                        None => value,
                    };
                    if value.is_null() || value.is_undefined() {
                        Ok(None)
                    } else {
                        value.get::<String>().map(Some)
                    }
                }
                .await;
                result.map_err(|e| failure(&ctx, &registry, e))
            })
            .await
    }

    /// Applies the job's `env` (static or function, sdk.md §14 layer 5) and `--env`.
    pub async fn apply_job_env(&self) -> Result<(), JsFailure> {
        self.call("applyJobEnv", Json::Null).await.map(|_| ())
    }

    pub async fn evaluate_rules(
        &self,
        level: RuleLevel,
        scope: ScopeId,
    ) -> Result<RulesOutcome, JsFailure> {
        let (level, index) = match level {
            RuleLevel::Workflow => ("workflow", 0),
            RuleLevel::Job => ("job", 0),
            RuleLevel::Step(i) => ("step", i),
        };
        let text = self
            .call(
                "evaluateRules",
                serde_json::json!({"level": level, "index": index, "scopeId": scope}),
            )
            .await?
            .unwrap_or_default();
        serde_json::from_str(&text).map_err(|e| JsFailure::new(format!("internal: {e}")))
    }

    /// Runs one attempt of step `index`; returns its outputs (JSON object text) if any.
    /// Dropping the future abandons the attempt (the caller kills its processes).
    pub async fn run_step(
        &self,
        index: usize,
        scope: ScopeId,
    ) -> Result<Option<String>, JsFailure> {
        self.call(
            "runStep",
            serde_json::json!({"index": index, "scopeId": scope}),
        )
        .await
    }

    /// Whether the step's `retryIf` accepts its last error (true without `retryIf`).
    pub async fn retry_if(&self, index: usize) -> bool {
        matches!(
            self.call("retryIf", serde_json::json!({"index": index})).await,
            Ok(Some(ref s)) if s == "true"
        )
    }

    pub async fn run_hook(
        &self,
        owner: HookOwner,
        kind: &str,
        scope: ScopeId,
        outcome: Json,
    ) -> Result<(), JsFailure> {
        let (owner, index) = match owner {
            HookOwner::Workflow => ("workflow", 0),
            HookOwner::Job => ("job", 0),
            HookOwner::Step(i) => ("step", i),
        };
        self.call(
            "runHook",
            serde_json::json!({"owner": owner, "kind": kind, "index": index, "scopeId": scope, "outcome": outcome}),
        )
        .await
        .map(|_| ())
    }

    /// Ends a scope: applies `$KICI_ENV`/`$KICI_PATH` when `apply`, reverts `expose`, removes
    /// mounted secret files. Returns the secret names the scope read.
    pub async fn close_scope(&self, scope: ScopeId, apply: bool) -> Vec<String> {
        let text = self
            .call(
                "closeScope",
                serde_json::json!({"scopeId": scope, "apply": apply}),
            )
            .await
            .ok()
            .flatten();
        text.and_then(|t| serde_json::from_str::<Json>(&t).ok())
            .and_then(|v| {
                v.get("secretsAccessed").and_then(|a| {
                    a.as_array().map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                })
            })
            .unwrap_or_default()
    }

    /// Fires the scope's `ctx.signal` (its running `$` commands get SIGTERM).
    pub async fn abort_scope(&self, scope: ScopeId, reason: &str) {
        let _ = self
            .call(
                "abortScope",
                serde_json::json!({"scopeId": scope, "reason": reason}),
            )
            .await;
    }

    /// Signals every command this runtime started that is still running.
    pub fn kill_all(&self, signal: &str) {
        self.native.kill_all(signal);
    }
}

/// `__kici_host` as the SDK and globals.js expect it, wired to the job's log and env.
fn install_host<'js>(
    ctx: &Ctx<'js>,
    registry: &SharedRegistry,
    native: &Arc<native::Native>,
    env: Vec<(String, String)>,
    cwd: String,
    entry: String,
) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    host.set(
        "location",
        stack::location_function(ctx, registry.clone(), Anchor::Exact)?,
    )?;
    host.set(
        "purity",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, _source: String| {
            let o = Object::new(ctx)?;
            o.set("pure", false)?;
            Ok::<_, rquickjs::Error>(o)
        })?,
    )?;
    let n = native.clone();
    host.set(
        "print",
        Function::new(ctx.clone(), move |level: String, text: String| {
            let stream = if level == "warn" || level == "error" {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            };
            for line in text.split('\n') {
                n.host.log(PREPARE_SCOPE, stream, line);
            }
        })?,
    )?;
    shims::set_process_facts(ctx, &host, env, cwd)?;
    host.set("entry", entry)?;
    ctx.globals().set("__kici_host", host)?;
    Ok(())
}

/// Turns an rquickjs error into a [`JsFailure`] with the thrown value's message and a stack
/// mapped to the original sources.
fn failure(ctx: &Ctx<'_>, registry: &SharedRegistry, error: JsError) -> JsFailure {
    if let Some(f) = modules::lock(registry).failure.take() {
        let at = f
            .position
            .map(|p| format!("\n    at {p}"))
            .unwrap_or_default();
        return JsFailure {
            message: format!("{}{at}", f.message),
            stack: None,
        };
    }
    let thrown = matches!(error, JsError::Exception).then(|| ctx.catch());
    let (message, stack) = match &thrown {
        Some(value) => describe_thrown(value),
        None => (error.to_string(), None),
    };
    let registry = modules::lock(registry);
    JsFailure {
        message,
        stack: stack.map(|s| map_stack(&registry, &s, Anchor::Exact)),
    }
}

/// Absolute path of the workspace-relative `file`.
pub fn entry_path(workspace: &Path, file: &str) -> PathBuf {
    workspace.join(file)
}
