//! `kici preview <event>`: which workflows and jobs an event would start (`cli.md` §5).
//!
//! Pure: the CLI gathers everything that needs IO (the lock, compiled in memory or read from
//! `.kici/kici.lock.json`; the `--payload` file; facts from git) and this module builds the
//! event ([`kici_engine::simulate`]), matches every workflow
//! ([`kici_engine::trigger::match_all_workflows`]) and renders the result.
//!
//! ```text
//! let args = PreviewArgs::parse(argv_after_preview)?;          // or fill it from clap
//! let ctx = PreviewContext { kici_dir, lock_path, payload, git };
//! let report = preview::run(&args, &ctx, &lock)?;              // Err: exit err.exit_code()
//! print!("{}", if args.json { report.to_json_string() } else { report.render_text() });
//! std::process::exit(report.exit_code());
//! ```
//!
//! # Human output
//!
//! [`PreviewReport::render_text`] reproduces the reference's stdout from the
//! `KiCI directory:` line on, line for line, with one deliberate difference (F71): `runs-on:`
//! shows the job's label matchers instead of `[object Object]` (exact labels verbatim, globs
//! as written when the stored regex is recognisably picomatch's translation of a glob, other
//! regexes as `/source/flags`, exclusions as `!<label>`, `(pick: any)` when set, all-of
//! groups of `runsOnAll` as `all-of [a, b]`). The CLI prints the banner (`kici v<version>`)
//! to stderr itself (F73); everything else, including `No workflow found matching: <w>`, is
//! in the rendered text, which ends with a newline.
//!
//! `Using lock file: <path>` is printed when [`PreviewContext::lock_path`] is set, otherwise
//! `Discovering workflows from <kici dir>/workflows/`, as the reference did.
//!
//! # `--json` (ours)
//!
//! [`PreviewReport::to_json`] returns one object:
//!
//! ```json
//! {
//!   "eventArgument": "pr:open",
//!   "kiciDir": "/repo/.kici",
//!   "lockFile": "/repo/.kici/kici.lock.json",          // when known
//!   "workflowFilter": "ci", "jobFilter": "build",      // when given
//!   "error": "No workflow found matching: ci",         // when exit code is 1
//!   "event": { ...the normalised event, triggers.md §1... },
//!   "total": 3, "matched": 1,
//!   "decisions": [ { "workflowName", "matched", "matchedTrigger"?, "checks", "summary", ... } ],
//!   "workflows": [ {
//!     "name": "ci", "description"?: "...",
//!     "matched": true,
//!     "selected": true,                 // passes --workflow
//!     "matchedTrigger"?: 0,             // 0-based
//!     "triggerType"?: "push",           // `_type` of the matched trigger
//!     "summary": "Matched trigger 1 (push)",
//!     "failedCheck"?: { "check", "pattern", "value"?, "passed": false, "reason"? },  // first failed check, unmatched only
//!     "triggers": ["push", "pr"],       // `_type` of every trigger, in order
//!     "dispatchInputs"?: {...},         // matched via dispatch/schedule: resolved --input values
//!     "inputsError"?: "...",            // ...or why they do not fit (exit 2 when --input given)
//!     "jobs": [ {                       // matrix jobs expanded into their children
//!       "name": "test (shard-1)", "baseName": "test", "matrixValues"?: {"value": "shard-1"},
//!       "matrix"?: "dynamic",           // dynamic matrix: one entry, not expanded
//!       "matrixError"?: "...",          // static matrix that cannot be expanded: one entry
//!       "selected": true,               // passes --job (by base name)
//!       "runsOn": ["kici:os:linux", "!flaky"], "runsOnPick"?: "any",
//!       "needs": ["build", "__group:shards"],
//!       "rules"?: ["label", ...],
//!       "environments"?: ["prod" | "(dynamic)"], "timeout"?: ms, "container"?: "image",
//!       "steps": ["compile", ...]        // parallel groups flattened to their children
//!     } ],
//!     "dynamicJobs": [ { "index": 1, "group"?: "shards", "needs": [...], "resultAware": false } ]
//!   } ]
//! }
//! ```
//!
//! # Differences from the reference (ours)
//!
//! * `--json` exists (the reference rejected it).
//! * `schedule` without a cron tries every distinct cron expression of the lock; a workflow
//!   matches if any of its schedule triggers matches (`triggers.md` §10). The event shown is
//!   the one with `cronExpression: "*"`; a workflow that matches none keeps the decision
//!   against that event.
//! * `--input K=V` is resolved against the matched `dispatch`/`schedule` trigger of each
//!   workflow ([`simulate::resolve_inputs`]); a failure is shown as `Inputs error: <why>`
//!   under the workflow's decision and makes the exit code 2.
//! * `--eval-rules` is accepted; evaluating rules needs the runtime, which the CLI drives.

use kici_engine::event::Event;
use kici_engine::json::to_string_compact;
use kici_engine::lock::{
    LabelMatcher, LockContainer, LockFile, LockJob, LockJobEntry, LockMatrix, LockNeed,
    LockStepEntry, LockWorkflow, RunsOnPick, StringOrInline,
};
use kici_engine::matrix::MatrixChild;
use kici_engine::simulate::{self, EventSpec, GitFacts, SimulateError, SimulateOptions};
use kici_engine::trigger::{Check, Decision, LockTrigger, match_all_workflows};
use serde_json::{Map, Value, json};

/// `kici preview` flags (`cli.md` §5), as plain data. Fill it from clap, or parse the words
/// after `preview` with [`PreviewArgs::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviewArgs {
    /// The event argument; `None` is a usage error (exit 2).
    pub event: Option<String>,
    /// `--branch <b>`.
    pub branch: Option<String>,
    /// `--sha <s>`.
    pub sha: Option<String>,
    /// `--workflow <w>`: show only this workflow; exit 1 if it did not match.
    pub workflow: Option<String>,
    /// `--job <j>`: show only this job (base name).
    pub job: Option<String>,
    /// `--files <p>`*, as given (comma lists are split by [`PreviewArgs::simulate_options`]).
    pub files: Vec<String>,
    /// `--payload <file>`: the CLI reads and parses the file into [`PreviewContext::payload`].
    pub payload: Option<String>,
    /// `--input K=V`*, as given.
    pub inputs: Vec<String>,
    /// `--eval-rules`.
    pub eval_rules: bool,
    /// `--json`.
    pub json: bool,
    /// `--kici-dir <p>`.
    pub kici_dir: Option<String>,
    /// `--debug`.
    pub debug: bool,
}

/// Why `preview` could not produce a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Event(#[from] SimulateError),
}

impl PreviewError {
    /// 2 for usage errors (unknown flag, missing or unknown event, bad `--input`), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            PreviewError::Usage(_) => 2,
            PreviewError::Event(e) if e.is_usage_error() => 2,
            PreviewError::Event(_) => 1,
        }
    }
}

impl PreviewArgs {
    /// Parses the words after `kici preview`. Accepts `--flag value` and `--flag=value`.
    pub fn parse<I, S>(args: I) -> Result<PreviewArgs, PreviewError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let words: Vec<String> = args.into_iter().map(|s| s.as_ref().to_string()).collect();
        let mut out = PreviewArgs::default();
        let mut i = 0;
        while i < words.len() {
            let word = &words[i];
            i += 1;
            if !word.starts_with("--") || word == "--" {
                if word == "--" {
                    continue;
                }
                if out.event.is_some() {
                    return Err(PreviewError::Usage(format!(
                        "unexpected argument {word:?} (the event is already {:?})",
                        out.event.as_deref().unwrap_or_default()
                    )));
                }
                out.event = Some(word.clone());
                continue;
            }
            let (flag, inline) = match word.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (word.as_str(), None),
            };
            let takes_value = matches!(
                flag,
                "--branch"
                    | "--sha"
                    | "--workflow"
                    | "--job"
                    | "--files"
                    | "--payload"
                    | "--input"
                    | "--kici-dir"
            );
            if !takes_value {
                if inline.is_some() {
                    return Err(PreviewError::Usage(format!("option {flag} takes no value")));
                }
                match flag {
                    "--eval-rules" => out.eval_rules = true,
                    "--json" => out.json = true,
                    "--debug" => out.debug = true,
                    _ => return Err(PreviewError::Usage(format!("unknown option {flag:?}"))),
                }
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => match words.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        return Err(PreviewError::Usage(format!("option {flag} needs a value")));
                    }
                },
            };
            match flag {
                "--branch" => out.branch = Some(value),
                "--sha" => out.sha = Some(value),
                "--workflow" => out.workflow = Some(value),
                "--job" => out.job = Some(value),
                "--files" => out.files.push(value),
                "--payload" => out.payload = Some(value),
                "--input" => out.inputs.push(value),
                _ => out.kici_dir = Some(value),
            }
        }
        Ok(out)
    }

    /// The event-shaping options, with the parsed `--payload` content supplied by the caller.
    pub fn simulate_options(
        &self,
        payload: Option<Value>,
    ) -> Result<SimulateOptions, PreviewError> {
        let inputs = self
            .inputs
            .iter()
            .map(|raw| simulate::parse_input(raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SimulateOptions {
            branch: self.branch.clone(),
            sha: self.sha.clone(),
            files: (!self.files.is_empty()).then(|| simulate::split_files(&self.files)),
            payload,
            repo: None,
            inputs,
        })
    }
}

/// What the CLI gathered with IO.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreviewContext {
    /// The KiCI directory as displayed (`KiCI directory: <dir>`).
    pub kici_dir: String,
    /// The lock file read from disk, as displayed; `None` when the workflows were compiled
    /// in memory without one.
    pub lock_path: Option<String>,
    /// The parsed `--payload` file.
    pub payload: Option<Value>,
    /// Facts from git; leave empty to reproduce the reference's fixture-only events.
    pub git: GitFacts,
}

/// The result of a preview: the event, every decision and what would run.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewReport {
    pub event_argument: String,
    pub kici_dir: String,
    pub lock_path: Option<String>,
    pub event: Event,
    /// One per workflow, in lock order.
    pub decisions: Vec<Decision>,
    /// One per workflow, in lock order.
    pub workflows: Vec<WorkflowPreview>,
    pub workflow_filter: Option<String>,
    pub job_filter: Option<String>,
    /// `No workflow found matching: <w>` (exit 1).
    pub error: Option<String>,
    /// `--input` was given.
    pub inputs_given: bool,
}

/// One workflow of the lock and its decision.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowPreview {
    pub name: String,
    pub description: Option<String>,
    pub matched: bool,
    /// Passes `--workflow`.
    pub selected: bool,
    /// `_type` of every trigger, in order.
    pub triggers: Vec<String>,
    /// Static jobs, in lock order.
    pub jobs: Vec<JobPreview>,
    /// Dynamic job generators, in lock order.
    pub dynamic_jobs: Vec<DynamicJobPreview>,
    /// `--input` values resolved against the matched `dispatch`/`schedule` trigger
    /// (`ctx.dispatchInputs`); `None` for other triggers or when resolution failed (the
    /// decision's `inputsError` says why).
    pub dispatch_inputs: Option<Map<String, Value>>,
}

/// A static job as the preview shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPreview {
    pub name: String,
    /// Passes `--job`.
    pub selected: bool,
    /// Rendered label matchers: labels, then exclusions as `!<label>`.
    pub runs_on: Vec<String>,
    pub runs_on_pick: Option<RunsOnPick>,
    /// `name`, or `__group:<group>` for dynamic groups.
    pub needs: Vec<String>,
    /// Rule labels.
    pub rules: Vec<String>,
    pub matrix: Option<MatrixPreview>,
    /// Step names; parallel groups flattened to their children.
    pub steps: Vec<String>,
    /// Environment names (`(dynamic)` for functions).
    pub environments: Vec<String>,
    pub timeout: Option<u64>,
    pub container: Option<String>,
}

impl JobPreview {
    /// The value of the `runs-on:` line: matchers joined by `, `, `(pick: any)` when set,
    /// `(none)` without any.
    pub fn runs_on_text(&self) -> String {
        let mut text = if self.runs_on.is_empty() {
            "(none)".to_string()
        } else {
            self.runs_on.join(", ")
        };
        if self.runs_on_pick == Some(RunsOnPick::Any) {
            text.push_str(" (pick: any)");
        }
        text
    }
}

/// A job's matrix.
#[derive(Debug, Clone, PartialEq)]
pub enum MatrixPreview {
    /// Static values (as stored, unexpanded) and the expanded children, or why expansion
    /// failed.
    Static {
        values: Value,
        children: Result<Vec<MatrixChild>, String>,
    },
    /// Computed at run time.
    Dynamic,
}

/// A dynamic job generator.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicJobPreview {
    /// Position in the workflow's `jobs`.
    pub index: u64,
    pub group: Option<String>,
    pub needs: Vec<String>,
    pub result_aware: bool,
}

/// Builds the event, matches every workflow of `lock` and collects what would run.
pub fn run(
    args: &PreviewArgs,
    ctx: &PreviewContext,
    lock: &LockFile,
) -> Result<PreviewReport, PreviewError> {
    let Some(event_argument) = args.event.clone() else {
        return Err(PreviewError::Usage(
            "missing event argument (usage: kici preview <event> [options]; e.g. push, pr:open, \
             tag:v1.2.3, schedule)"
                .into(),
        ));
    };
    let spec = simulate::parse_event_arg(&event_argument)?;
    let options = args.simulate_options(ctx.payload.clone())?;
    let event = simulate::build_event(&spec, &options, &ctx.git)?;
    let decisions = match_workflows(&spec, &event, &lock.workflows);
    Ok(PreviewReport::from_parts(args, ctx, lock, event, decisions))
}

impl PreviewReport {
    /// Assembles a report from an event and its decisions (one per workflow of `lock`, in
    /// order), e.g. decisions computed elsewhere. [`run`] is this plus event building and
    /// matching.
    pub fn from_parts(
        args: &PreviewArgs,
        ctx: &PreviewContext,
        lock: &LockFile,
        event: Event,
        mut decisions: Vec<Decision>,
    ) -> PreviewReport {
        let event_argument = args.event.clone().unwrap_or_default();
        let raw_inputs: Vec<(String, String)> = args
            .inputs
            .iter()
            .filter_map(|raw| simulate::parse_input(raw).ok())
            .collect();
        let mut inputs: Vec<Option<Map<String, Value>>> = vec![None; lock.workflows.len()];
        for (i, workflow) in lock.workflows.iter().enumerate() {
            let Some(decision) = decisions.get_mut(i).filter(|d| d.matched) else {
                continue;
            };
            let Some(trigger) = decision
                .matched_trigger
                .and_then(|t| workflow.triggers.get(t))
            else {
                continue;
            };
            if !matches!(trigger.trigger_type(), "dispatch" | "schedule") {
                continue;
            }
            let descriptor = serde_json::to_value(trigger)
                .ok()
                .and_then(|v| v.get("inputs").and_then(Value::as_object).cloned())
                .unwrap_or_default();
            match simulate::resolve_inputs(&descriptor, &raw_inputs) {
                Ok(resolved) => inputs[i] = Some(resolved),
                Err(e) => decision.inputs_error = Some(e.to_string()),
            }
        }
        let workflows: Vec<WorkflowPreview> = lock
            .workflows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut preview =
                    workflow_preview(w, decisions.get(i).is_some_and(|d| d.matched), args);
                preview.dispatch_inputs = inputs[i].take();
                preview
            })
            .collect();

        let error = args.workflow.as_ref().and_then(|name| {
            let found = workflows.iter().any(|w| w.matched && &w.name == name);
            (!found).then(|| format!("No workflow found matching: {name}"))
        });

        PreviewReport {
            event_argument,
            kici_dir: ctx.kici_dir.clone(),
            lock_path: ctx.lock_path.clone(),
            event,
            decisions,
            workflows,
            workflow_filter: args.workflow.clone(),
            job_filter: args.job.clone(),
            error,
            inputs_given: !args.inputs.is_empty(),
        }
    }
}

/// Matches every workflow against the simulated event. For `schedule` without a cron
/// expression (ours), a workflow that does not match the `"*"` event is tried against every
/// distinct cron expression of the lock and takes the first matching decision.
pub fn match_workflows(
    spec: &EventSpec,
    event: &Event,
    workflows: &[LockWorkflow],
) -> Vec<Decision> {
    let mut decisions = match_all_workflows(
        workflows
            .iter()
            .map(|w| (w.name.as_str(), w.triggers.as_slice())),
        event,
    );
    if !spec.is_unspecified_schedule() || event.payload.get("cronExpression").is_none() {
        return decisions;
    }
    let crons = lock_cron_expressions(workflows);
    for (workflow, decision) in workflows.iter().zip(decisions.iter_mut()) {
        if decision.matched {
            continue;
        }
        for cron in &crons {
            let mut candidate = event.clone();
            if let Value::Object(payload) = &mut candidate.payload {
                payload.insert("cronExpression".into(), Value::String(cron.clone()));
            }
            let again = match_all_workflows(
                std::iter::once((workflow.name.as_str(), workflow.triggers.as_slice())),
                &candidate,
            );
            if let Some(d) = again.into_iter().next().filter(|d| d.matched) {
                *decision = d;
                break;
            }
        }
    }
    decisions
}

/// Every distinct `cronExpression` of the lock's schedule triggers, in lock order.
pub fn lock_cron_expressions(workflows: &[LockWorkflow]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for trigger in workflows.iter().flat_map(|w| &w.triggers) {
        if trigger.trigger_type() != "schedule" {
            continue;
        }
        let cron = serde_json::to_value(trigger).ok().and_then(|v| {
            v.get("cronExpression")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if let Some(cron) = cron
            && !out.contains(&cron)
        {
            out.push(cron);
        }
    }
    out
}

fn workflow_preview(workflow: &LockWorkflow, matched: bool, args: &PreviewArgs) -> WorkflowPreview {
    let jobs = workflow
        .jobs
        .iter()
        .filter_map(LockJobEntry::as_static)
        .map(|job| job_preview(job, args))
        .collect();
    let dynamic_jobs = workflow
        .jobs
        .iter()
        .filter_map(|entry| match entry {
            LockJobEntry::Dynamic(d) => Some(DynamicJobPreview {
                index: d.source.index,
                group: d.group.clone(),
                needs: d.needs.iter().flatten().map(need_name).collect(),
                result_aware: d.result_aware.unwrap_or(false),
            }),
            LockJobEntry::Static(_) => None,
        })
        .collect();
    WorkflowPreview {
        name: workflow.name.clone(),
        description: workflow.description.clone(),
        matched,
        selected: args.workflow.as_ref().is_none_or(|w| w == &workflow.name),
        triggers: workflow.triggers.iter().map(trigger_label).collect(),
        jobs,
        dynamic_jobs,
        dispatch_inputs: None,
    }
}

fn trigger_label(trigger: &LockTrigger) -> String {
    match trigger.trigger_type() {
        "" => "undefined".to_string(),
        t => t.to_string(),
    }
}

fn job_preview(job: &LockJob, args: &PreviewArgs) -> JobPreview {
    let mut runs_on: Vec<String> = Vec::new();
    if let Some(labels) = &job.runs_on {
        runs_on.extend(labels.iter().map(render_label));
    } else if let Some(all) = &job.runs_on_all {
        runs_on.extend(all.include.iter().map(|group| {
            let inner: Vec<String> = group.iter().map(render_label).collect();
            format!("all-of [{}]", inner.join(", "))
        }));
        runs_on.extend(all.exclude.iter().map(|m| format!("!{}", render_label(m))));
    }
    if let Some(excludes) = &job.exclude_labels {
        runs_on.extend(excludes.iter().map(|m| format!("!{}", render_label(m))));
    }
    let matrix = job.matrix.as_ref().map(|m| match m {
        LockMatrix::Dynamic { .. } => MatrixPreview::Dynamic,
        LockMatrix::Static { values } => MatrixPreview::Static {
            values: serde_json::to_value(values).unwrap_or(Value::Null),
            children: kici_engine::matrix::materialize(
                &job.name,
                values,
                job.include.as_deref().unwrap_or_default(),
                job.exclude.as_deref().unwrap_or_default(),
            )
            .map_err(|e| e.to_string()),
        },
    });
    let mut steps = Vec::new();
    for entry in &job.steps {
        match entry {
            LockStepEntry::Step(step) => steps.push(step.name.clone()),
            LockStepEntry::Parallel(group) => {
                steps.extend(group.children.iter().map(|c| c.name.clone()))
            }
        }
    }
    JobPreview {
        name: job.name.clone(),
        selected: args.job.as_ref().is_none_or(|j| j == &job.name),
        runs_on,
        runs_on_pick: job.runs_on_pick,
        needs: job.needs.iter().map(need_name).collect(),
        rules: job
            .rules
            .iter()
            .flatten()
            .map(|r| r.label.clone())
            .collect(),
        matrix,
        steps,
        environments: job
            .environments
            .iter()
            .flatten()
            .map(|e| match &e.value {
                StringOrInline::Static(s) if !e.dynamic => s.clone(),
                _ => "(dynamic)".to_string(),
            })
            .collect(),
        timeout: job.timeout,
        container: job.container.as_ref().map(|c| match c {
            LockContainer::Image(image) | LockContainer::Spec { image, .. } => image.clone(),
        }),
    }
}

fn need_name(need: &LockNeed) -> String {
    match need {
        LockNeed::Name(name) | LockNeed::Job { name, .. } => name.clone(),
        LockNeed::Group { group, .. } => format!("__group:{group}"),
    }
}

/// A label matcher for display: exact labels verbatim, globs as written (when the regex is
/// picomatch's translation of a recoverable glob), other regexes as `/source/flags`.
pub fn render_label(matcher: &LabelMatcher) -> String {
    match matcher {
        LabelMatcher::Exact { value } => value.clone(),
        LabelMatcher::Regex { source, flags } => {
            if flags.is_empty()
                && let Some(glob) = glob_from_regex_source(source)
            {
                return glob;
            }
            format!("/{source}/{flags}")
        }
    }
}

/// Recovers the glob a picomatch regex source was made from, if the translation can be
/// undone unambiguously (verified by translating the candidate again).
pub fn glob_from_regex_source(source: &str) -> Option<String> {
    let mut inner = source.strip_prefix("^(?:")?.strip_suffix(")$")?;
    if let Some(again) = inner
        .strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
    {
        inner = again;
    }
    let inner = inner.strip_prefix("(?!\\.)(?=.)").unwrap_or(inner);
    let inner = inner.strip_suffix("\\/?").unwrap_or(inner);
    let candidate = unglob(inner)?;
    if candidate.is_empty() {
        return None;
    }
    let back = kici_engine::glob::make_re_source(&candidate).ok()?;
    (back == source).then_some(candidate)
}

/// Undoes the token translations picomatch applies to simple globs.
fn unglob(body: &str) -> Option<String> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect();
        if rest.starts_with("(?!\\.)(?=.)") {
            i += "(?!\\.)(?=.)".len();
        } else if rest.starts_with("[^/]*?") {
            out.push('*');
            i += "[^/]*?".len();
        } else if rest.starts_with("[^/]") {
            out.push('?');
            i += "[^/]".len();
        } else if chars[i] == '\\' {
            out.push(*chars.get(i + 1)?);
            i += 2;
        } else if chars[i] == '[' {
            let end = chars[i..].iter().position(|&c| c == ']')? + i;
            out.extend(&chars[i..=end]);
            i = end + 1;
        } else if chars[i] == '(' {
            // A brace alternation `(a|b)`: literal alternatives only.
            let end = chars[i..].iter().position(|&c| c == ')')? + i;
            let alts: String = chars[i + 1..end].iter().collect();
            if alts.contains(['(', '[', '\\', '?', '*']) {
                return None;
            }
            out.push('{');
            out.push_str(&alts.replace('|', ","));
            out.push('}');
            i = end + 1;
        } else if "^$.+*?{}|)".contains(chars[i]) {
            return None;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    Some(out)
}

impl PreviewReport {
    /// 0; 1 when `--workflow` names a workflow that did not match; 2 when `--input` values
    /// do not fit a selected matched workflow's inputs.
    pub fn exit_code(&self) -> i32 {
        if self.error.is_some() {
            1
        } else if self.has_input_errors() {
            2
        } else {
            0
        }
    }

    /// `--input` was given and does not fit a selected matched workflow.
    pub fn has_input_errors(&self) -> bool {
        self.inputs_given
            && self
                .workflows
                .iter()
                .zip(&self.decisions)
                .any(|(w, d)| w.selected && d.inputs_error.is_some())
    }

    /// Number of matched workflows.
    pub fn matched_count(&self) -> usize {
        self.decisions.iter().filter(|d| d.matched).count()
    }

    /// The human output (see the module documentation), ending with a newline.
    pub fn render_text(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        lines.push(format!("KiCI directory: {}", self.kici_dir));
        lines.push(format!("Event: {}", self.event_argument));
        lines.push(format!(
            "Target branch: {}",
            self.event.target_branch.as_deref().unwrap_or("undefined")
        ));
        if let Some(source) = self
            .event
            .source_branch
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            lines.push(format!("Source branch: {source}"));
        }
        if let Some(files) = self.event.changed_files.as_ref().filter(|f| !f.is_empty()) {
            lines.push(format!("Changed files: {}", files.join(", ")));
        }
        match &self.lock_path {
            Some(path) => lines.push(format!("Using lock file: {path}")),
            None => lines.push(format!(
                "Discovering workflows from {}/workflows/",
                self.kici_dir
            )),
        }
        lines.push(format!(
            "Workflows: {} total, {} matched",
            self.workflows.len(),
            self.matched_count()
        ));
        lines.push(String::new());

        if let Some(error) = &self.error {
            lines.push(error.clone());
            return finish(lines);
        }

        lines.push(String::new());
        lines.push("🔍 DRY RUN - No commands will be executed".into());
        lines.push(String::new());

        if self.matched_count() == 0 {
            lines.push("No workflows matched the event.".into());
            lines.push(String::new());
            self.render_decision_summary(&mut lines);
            return finish(lines);
        }

        for (workflow, decision) in self.workflows.iter().zip(&self.decisions) {
            if !decision.matched || !workflow.selected {
                continue;
            }
            render_workflow(&mut lines, workflow, decision);
        }
        self.render_decision_summary(&mut lines);
        lines.push("✓ Dry run complete".into());
        lines.push(String::new());
        finish(lines)
    }

    fn render_decision_summary(&self, lines: &mut Vec<String>) {
        lines.push(String::new());
        lines.push("Decision Summary:".into());
        lines.push(String::new());
        for decision in &self.decisions {
            let status = if decision.matched {
                "✓ matched"
            } else {
                "✗ skipped"
            };
            lines.push(format!("  {}: {status}", decision.workflow_name));
            lines.push(format!("    {}", decision.summary));
            if self.inputs_given
                && let Some(error) = &decision.inputs_error
            {
                lines.push(format!("    Inputs error: {error}"));
            }
            if !decision.matched
                && let Some(check) = first_failed_check(decision)
            {
                lines.push(format!("    {}", render_failed_check(check)));
            }
        }
        lines.push(String::new());
    }

    /// The `--json` document (see the module documentation).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("eventArgument".into(), self.event_argument.clone().into());
        out.insert("kiciDir".into(), self.kici_dir.clone().into());
        if let Some(p) = &self.lock_path {
            out.insert("lockFile".into(), p.clone().into());
        }
        if let Some(w) = &self.workflow_filter {
            out.insert("workflowFilter".into(), w.clone().into());
        }
        if let Some(j) = &self.job_filter {
            out.insert("jobFilter".into(), j.clone().into());
        }
        if let Some(e) = &self.error {
            out.insert("error".into(), e.clone().into());
        }
        out.insert(
            "event".into(),
            serde_json::to_value(&self.event).unwrap_or(Value::Null),
        );
        out.insert("total".into(), self.workflows.len().into());
        out.insert("matched".into(), self.matched_count().into());
        out.insert(
            "decisions".into(),
            serde_json::to_value(&self.decisions).unwrap_or(Value::Null),
        );
        let workflows: Vec<Value> = self
            .workflows
            .iter()
            .zip(&self.decisions)
            .map(|(w, d)| workflow_json(w, d))
            .collect();
        out.insert("workflows".into(), Value::Array(workflows));
        Value::Object(out)
    }

    /// [`PreviewReport::to_json`] pretty-printed, with a trailing newline.
    pub fn to_json_string(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        text.push('\n');
        text
    }
}

fn finish(lines: Vec<String>) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn render_workflow(lines: &mut Vec<String>, workflow: &WorkflowPreview, decision: &Decision) {
    lines.push(format!("Workflow: {}", workflow.name));
    if let Some(description) = workflow.description.as_deref().filter(|d| !d.is_empty()) {
        lines.push(format!("  {description}"));
    }
    lines.push("  Triggers:".into());
    for t in &workflow.triggers {
        lines.push(format!("    - {t}"));
    }
    if let Some(i) = decision.matched_trigger {
        lines.push(format!("  ✓ Matched trigger {}", i + 1));
    }
    lines.push(format!("  Jobs ({}):", workflow.jobs.len()));
    for job in workflow.jobs.iter().filter(|j| j.selected) {
        lines.push(format!("    {}", job.name));
        lines.push(format!("      runs-on: {}", job.runs_on_text()));
        if !job.needs.is_empty() {
            lines.push(format!("      needs: {}", job.needs.join(", ")));
        }
        if !job.rules.is_empty() {
            lines.push(format!("      rules: {}", job.rules.join(", ")));
        }
        match &job.matrix {
            Some(MatrixPreview::Static { values, .. }) => {
                lines.push(format!("      matrix: {}", to_string_compact(values)))
            }
            Some(MatrixPreview::Dynamic) => lines.push("      matrix: [dynamic]".into()),
            None => {}
        }
        lines.push(format!("      steps ({}):", job.steps.len()));
        for step in &job.steps {
            lines.push(format!("        - {step}"));
        }
    }
    if !workflow.dynamic_jobs.is_empty() {
        lines.push(format!(
            "  Dynamic job generators ({}):",
            workflow.dynamic_jobs.len()
        ));
        for _ in &workflow.dynamic_jobs {
            lines.push("    - [dynamic job generator]".into());
        }
    }
    lines.push(String::new());
}

fn first_failed_check(decision: &Decision) -> Option<&Check> {
    decision.checks.iter().find(|c| !c.passed)
}

/// `Failed: <check> - <pattern> vs <value>` plus ` (<reason>)` when the check has one.
pub fn render_failed_check(check: &Check) -> String {
    let value = check
        .value
        .as_ref()
        .map_or_else(|| "undefined".into(), js_display);
    let mut line = format!("Failed: {} - {} vs {}", check.check, check.pattern, value);
    if let Some(reason) = &check.reason {
        line.push_str(&format!(" ({reason})"));
    }
    line
}

/// A JSON value as a JavaScript template literal would show it.
fn js_display(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => kici_engine::json::json_number_to_js_string(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                other => js_display(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

fn workflow_json(workflow: &WorkflowPreview, decision: &Decision) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), workflow.name.clone().into());
    if let Some(d) = &workflow.description {
        out.insert("description".into(), d.clone().into());
    }
    out.insert("matched".into(), decision.matched.into());
    out.insert("selected".into(), workflow.selected.into());
    if let Some(i) = decision.matched_trigger {
        out.insert("matchedTrigger".into(), i.into());
        if let Some(t) = workflow.triggers.get(i) {
            out.insert("triggerType".into(), t.clone().into());
        }
    }
    out.insert("summary".into(), decision.summary.clone().into());
    if !decision.matched
        && let Some(check) = first_failed_check(decision)
    {
        out.insert(
            "failedCheck".into(),
            serde_json::to_value(check).unwrap_or(Value::Null),
        );
    }
    out.insert("triggers".into(), json!(workflow.triggers));
    if let Some(inputs) = &workflow.dispatch_inputs {
        out.insert("dispatchInputs".into(), Value::Object(inputs.clone()));
    }
    if let Some(error) = &decision.inputs_error {
        out.insert("inputsError".into(), error.clone().into());
    }
    let mut jobs = Vec::new();
    for job in &workflow.jobs {
        match &job.matrix {
            Some(MatrixPreview::Static {
                children: Ok(children),
                ..
            }) => {
                for child in children {
                    jobs.push(job_json(job, &child.name, Some(&child.values), None));
                }
            }
            Some(MatrixPreview::Static {
                children: Err(e), ..
            }) => jobs.push(job_json(
                job,
                &job.name,
                None,
                Some(("matrixError", e.as_str())),
            )),
            Some(MatrixPreview::Dynamic) => {
                jobs.push(job_json(job, &job.name, None, Some(("matrix", "dynamic"))))
            }
            None => jobs.push(job_json(job, &job.name, None, None)),
        }
    }
    out.insert("jobs".into(), Value::Array(jobs));
    let dynamic: Vec<Value> = workflow
        .dynamic_jobs
        .iter()
        .map(|d| {
            let mut m = Map::new();
            m.insert("index".into(), d.index.into());
            if let Some(g) = &d.group {
                m.insert("group".into(), g.clone().into());
            }
            m.insert("needs".into(), json!(d.needs));
            m.insert("resultAware".into(), d.result_aware.into());
            Value::Object(m)
        })
        .collect();
    out.insert("dynamicJobs".into(), Value::Array(dynamic));
    Value::Object(out)
}

fn job_json(
    job: &JobPreview,
    name: &str,
    values: Option<&Map<String, Value>>,
    extra: Option<(&str, &str)>,
) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    m.insert("baseName".into(), job.name.clone().into());
    if let Some(values) = values {
        m.insert("matrixValues".into(), Value::Object(values.clone()));
    }
    if let Some((k, v)) = extra {
        m.insert(k.into(), v.into());
    }
    m.insert("selected".into(), job.selected.into());
    m.insert("runsOn".into(), json!(job.runs_on));
    if job.runs_on_pick == Some(RunsOnPick::Any) {
        m.insert("runsOnPick".into(), "any".into());
    }
    m.insert("needs".into(), json!(job.needs));
    if !job.rules.is_empty() {
        m.insert("rules".into(), json!(job.rules));
    }
    if !job.environments.is_empty() {
        m.insert("environments".into(), json!(job.environments));
    }
    if let Some(t) = job.timeout {
        m.insert("timeout".into(), t.into());
    }
    if let Some(c) = &job.container {
        m.insert("container".into(), c.clone().into());
    }
    m.insert("steps".into(), json!(job.steps));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let args = PreviewArgs::parse([
            "pr:sync",
            "--branch",
            "release/2.0",
            "--files=a.ts",
            "--files",
            "b.ts,c.ts",
            "--json",
            "--input",
            "k=v",
        ])
        .unwrap();
        assert_eq!(args.event.as_deref(), Some("pr:sync"));
        assert_eq!(args.branch.as_deref(), Some("release/2.0"));
        assert_eq!(args.files, vec!["a.ts", "b.ts,c.ts"]);
        assert!(args.json);
        let options = args.simulate_options(None).unwrap();
        assert_eq!(
            options.files,
            Some(vec!["a.ts".into(), "b.ts".into(), "c.ts".into()])
        );
        assert_eq!(options.inputs, vec![("k".into(), "v".into())]);
    }

    #[test]
    fn usage_errors_exit_2() {
        for bad in [
            vec!["push", "--bogus"],
            vec!["push", "--branch"],
            vec!["push", "pr:open"],
            vec!["push", "--json=yes"],
        ] {
            let err = PreviewArgs::parse(bad.clone()).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
        let args = PreviewArgs::parse(["push", "--input", "novalue"]).unwrap();
        assert_eq!(args.simulate_options(None).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn labels_render_readably() {
        let exact = LabelMatcher::Exact {
            value: "kici:os:linux".into(),
        };
        assert_eq!(render_label(&exact), "kici:os:linux");
        for (glob, source) in [
            ("deploy-*", "^(?:^(?:deploy\\-[^/]*?)$)$"),
            ("kici:os:*", "^(?:^(?:kici\\:os\\:[^/]*?)$)$"),
            ("gpu-?", "^(?:^(?:gpu\\-[^/])$)$"),
            ("*-linux", "^(?:(?!\\.)(?=.)[^/]*?-linux)$"),
            ("pool-{a,b}", "^(?:pool-(a|b))$"),
            ("runner-[0-9]", "^(?:runner-[0-9]\\/?)$"),
        ] {
            let m = LabelMatcher::Regex {
                source: source.into(),
                flags: String::new(),
            };
            assert_eq!(render_label(&m), glob, "{source}");
        }
        let re = LabelMatcher::Regex {
            source: "^BUILDER-\\d+$".into(),
            flags: "i".into(),
        };
        assert_eq!(render_label(&re), "/^BUILDER-\\d+$/i");
        let re = LabelMatcher::Regex {
            source: "^pool-(a|b)$".into(),
            flags: String::new(),
        };
        assert_eq!(render_label(&re), "/^pool-(a|b)$/");
    }
}
