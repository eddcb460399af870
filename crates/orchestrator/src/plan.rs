//! Planning one matched workflow into the rows of a run (`orchestrator.md` §7): static jobs
//! in lock order, static matrix fan-out, the needs edges expanded through matrix children,
//! init failures for what this version cannot run, and which jobs start queued.
//!
//! Pure apart from id generation: the clock comes in as `now`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kici_engine::event::Event;
use kici_engine::labels::JobLabels;
use kici_engine::lock::{
    LockJob, LockJobEntry, LockMatrix, LockNeed, LockStepEntry, LockWorkflow, StringOrInline,
};
use kici_engine::matrix;
use kici_engine::protocol::{InitFailure, InitFailureScope};
use kici_engine::trigger::Decision;
use kici_store::{EnqueueSpec, JobStart, NewJob, NewNeed, NewRun};
use serde_json::{Value, json};

/// Workflow name of the run recorded when the lock itself cannot be read (§5.2).
pub const UNRESOLVED_WORKFLOW: &str = "(unresolved workflow)";
/// Events with more changed files than this are stored without the list (§7 step 1).
const MAX_STORED_CHANGED_FILES: usize = 1000;

/// What a run is created from, besides the workflow.
#[derive(Debug, Clone)]
pub struct RunContext<'a> {
    pub org_id: &'a str,
    pub inbox_id: &'a str,
    pub provider: &'a str,
    pub routing_key: &'a str,
    pub repo: &'a str,
    pub git_ref: &'a str,
    pub sha: &'a str,
    pub event: &'a Event,
    pub trust_tier: &'a str,
    pub queue_timeout: Option<Duration>,
    pub now: i64,
}

/// The run of a matched workflow, ready for `Store::create_run`.
pub fn plan_run(ctx: &RunContext<'_>, workflow: &LockWorkflow, decision: &Decision) -> NewRun {
    let mut run = base_run(ctx, &workflow.name);
    run.decision = serde_json::to_value(decision).ok();
    run.matched_trigger = decision
        .matched_trigger
        .and_then(|i| workflow.triggers.get(i))
        .map(|t| t.trigger_type().to_string());
    run.concurrency = workflow
        .concurrency
        .as_ref()
        .and_then(|c| serde_json::to_value(c).ok());
    run.workflow_timeout_ms = workflow.timeout.and_then(|t| i64::try_from(t).ok());
    let (jobs, needs) = plan_jobs(ctx, workflow);
    run.jobs = jobs;
    run.needs = needs;
    run
}

/// The run recorded when the lock is corrupt: no jobs, a run-scoped init failure.
pub fn lock_failure_run(ctx: &RunContext<'_>, message: &str) -> NewRun {
    let mut run = base_run(ctx, UNRESOLVED_WORKFLOW);
    run.init_failure = Some(init_failure(
        InitFailureScope::Run,
        "lock_resolution",
        message,
        None,
    ));
    run
}

fn base_run(ctx: &RunContext<'_>, workflow_name: &str) -> NewRun {
    let mut event = ctx.event.clone();
    if event
        .changed_files
        .as_ref()
        .is_some_and(|f| f.len() > MAX_STORED_CHANGED_FILES)
    {
        event.changed_files = None;
    }
    NewRun {
        run_id: kici_store::new_id(),
        org_id: ctx.org_id.to_string(),
        inbox_id: Some(ctx.inbox_id.to_string()),
        dispatch_key: Some(workflow_name.to_string()),
        workflow_name: workflow_name.to_string(),
        provider: ctx.provider.to_string(),
        routing_key: ctx.routing_key.to_string(),
        repo_identifier: ctx.repo.to_string(),
        git_ref: ctx.git_ref.to_string(),
        sha: ctx.sha.to_string(),
        event: serde_json::to_value(&event).unwrap_or(Value::Null),
        decision: None,
        matched_trigger: None,
        trust_tier: ctx.trust_tier.to_string(),
        concurrency: None,
        workflow_timeout_ms: None,
        is_test_run: false,
        parent_run_id: None,
        triggered_by: None,
        init_failure: None,
        created_at: ctx.now,
        jobs: Vec::new(),
        needs: Vec::new(),
    }
}

fn init_failure(
    scope: InitFailureScope,
    category: &str,
    message: &str,
    job_name: Option<&str>,
) -> Value {
    serde_json::to_value(InitFailure {
        scope,
        category: category.to_string(),
        message: message.to_string(),
        job_name: job_name.map(str::to_string),
    })
    .unwrap_or(Value::Null)
}

/// A job row before its start is decided.
struct Planned {
    job: NewJob,
    base: String,
    /// Upstream base names with their `runOn`.
    needs: Vec<(String, Vec<String>)>,
    labels: JobLabels,
    /// Position among its matrix siblings and the job's `maxParallel`.
    wave: Option<(usize, u64)>,
}

fn plan_jobs(ctx: &RunContext<'_>, workflow: &LockWorkflow) -> (Vec<NewJob>, Vec<NewNeed>) {
    let mut planned: Vec<Planned> = Vec::new();
    for (index, entry) in workflow.jobs.iter().enumerate() {
        match entry {
            LockJobEntry::Static(job) => planned.extend(plan_static(workflow, job)),
            LockJobEntry::Dynamic(dynamic) => {
                let name = match &dynamic.group {
                    Some(group) => format!("(dynamic jobs {group})"),
                    None => format!("(dynamic jobs #{index})"),
                };
                planned.push(failed(
                    &name,
                    Value::Null,
                    "dynamic_eval",
                    "dynamic job generators are not supported by this orchestrator version",
                ));
            }
        }
    }

    // Needs through matrix children: base name → every row built from it.
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &planned {
        children
            .entry(p.base.as_str())
            .or_default()
            .push(p.job.job_name.as_str());
    }
    let mut needs = Vec::new();
    let mut dependent: BTreeSet<String> = BTreeSet::new();
    for p in &planned {
        for (upstream, run_on) in &p.needs {
            for child in children.get(upstream.as_str()).into_iter().flatten() {
                needs.push(NewNeed {
                    job_name: p.job.job_name.clone(),
                    upstream_name: (*child).to_string(),
                    run_on: run_on.clone(),
                });
                dependent.insert(p.job.job_name.clone());
            }
        }
    }

    let expires_at = ctx.queue_timeout.map(|t| {
        ctx.now
            .saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
    });
    let jobs = planned
        .into_iter()
        .map(|mut p| {
            p.job.start = if p.job.init_failure.is_some() {
                JobStart::Failed
            } else if dependent.contains(&p.job.job_name) {
                JobStart::Pending
            } else if let Some((position, max)) = p.wave
                && position as u64 >= max
            {
                p.job.wave_gated = true;
                JobStart::Pending
            } else {
                JobStart::Enqueue(EnqueueSpec {
                    labels: p.labels,
                    pinned_agent_id: None,
                    expires_at,
                })
            };
            p.job
        })
        .collect();
    (jobs, needs)
}

fn plan_static(workflow: &LockWorkflow, job: &LockJob) -> Vec<Planned> {
    let config = job_config(workflow, job);
    if job.runs_on_all.is_some() {
        return vec![failed(
            &job.name,
            config,
            "no_agent",
            "runsOnAll is not supported by this orchestrator version",
        )];
    }
    if workflow.approval.is_some() || job.approval.is_some() || steps_need_approval(job) {
        return vec![failed(
            &job.name,
            config,
            "environment_rules",
            "approvals are not supported by this orchestrator version",
        )];
    }
    let mut environments = Vec::new();
    for env in job.environments.iter().flatten() {
        match &env.value {
            StringOrInline::Static(name) if !name.is_empty() => environments.push(name.clone()),
            _ => {
                return vec![failed(
                    &job.name,
                    config,
                    "dynamic_eval",
                    "computed environment names are not supported by this orchestrator version",
                )];
            }
        }
    }
    let mut needs = Vec::new();
    for need in &job.needs {
        match need {
            LockNeed::Name(name) => needs.push((name.clone(), vec!["success".to_string()])),
            LockNeed::Job { name, run_on } => needs.push((name.clone(), run_on.clone())),
            LockNeed::Group { .. } => {
                return vec![failed(
                    &job.name,
                    config,
                    "dynamic_eval",
                    "group needs are not supported by this orchestrator version",
                )];
            }
        }
    }
    let labels = JobLabels::from_matchers(
        job.runs_on.as_deref().unwrap_or_default(),
        job.exclude_labels.as_deref().unwrap_or_default(),
        job.container.is_some(),
    );
    let runs_on = job
        .runs_on
        .as_ref()
        .and_then(|r| serde_json::to_value(r).ok());
    let environments = (!environments.is_empty()).then(|| json!(environments));
    let row = |name: String, variant: Option<Value>| NewJob {
        job_id: kici_store::new_id(),
        job_name: name,
        base_job_name: job.name.clone(),
        variant_kind: variant.as_ref().map(|_| "matrix".to_string()),
        matrix_values: variant,
        job_config: config.clone(),
        environments: environments.clone(),
        runs_on: runs_on.clone(),
        wave_gated: false,
        init_failure: None,
        error_message: None,
        start: JobStart::Pending,
    };
    match &job.matrix {
        None => vec![Planned {
            job: row(job.name.clone(), None),
            base: job.name.clone(),
            needs,
            labels,
            wave: None,
        }],
        Some(LockMatrix::Dynamic { .. }) => vec![failed(
            &job.name,
            config,
            "matrix_expansion",
            "dynamic matrices are not supported by this orchestrator version",
        )],
        Some(LockMatrix::Static { values }) => match matrix::materialize(
            &job.name,
            values,
            job.include.as_deref().unwrap_or_default(),
            job.exclude.as_deref().unwrap_or_default(),
        ) {
            Err(e) => vec![failed(
                &job.name,
                config,
                "matrix_expansion",
                &e.to_string(),
            )],
            Ok(expanded) => expanded
                .into_iter()
                .enumerate()
                .map(|(position, child)| Planned {
                    job: row(child.name, Some(Value::Object(child.values))),
                    base: job.name.clone(),
                    needs: needs.clone(),
                    labels: labels.clone(),
                    wave: job.max_parallel.map(|max| (position, max)),
                })
                .collect(),
        },
    }
}

/// `job_config` (§7 step 3): the lock entry plus the workflow keys the dispatch frame needs
/// and the run does not hold (`protocol.md` §4.2: `source`, `contentHash`,
/// `resolvedHashFiles`); the rest is added when the frame is built.
fn job_config(workflow: &LockWorkflow, job: &LockJob) -> Value {
    let mut config = serde_json::to_value(job).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut config {
        map.insert(
            "source".to_string(),
            json!({"file": workflow.source.file, "exportName": workflow.source.export}),
        );
        map.insert("contentHash".to_string(), json!(workflow.content_hash));
        if let Some(files) = &workflow.resolved_hash_files {
            map.insert("resolvedHashFiles".to_string(), json!(files));
        }
    }
    config
}

fn steps_need_approval(job: &LockJob) -> bool {
    job.steps.iter().any(|entry| match entry {
        LockStepEntry::Step(step) => step.approval.is_some(),
        LockStepEntry::Parallel(group) => group.children.iter().any(|c| c.approval.is_some()),
    })
}

fn failed(name: &str, config: Value, category: &str, message: &str) -> Planned {
    Planned {
        job: NewJob {
            job_id: kici_store::new_id(),
            job_name: name.to_string(),
            base_job_name: name.to_string(),
            variant_kind: None,
            matrix_values: None,
            job_config: config,
            environments: None,
            runs_on: None,
            wave_gated: false,
            init_failure: Some(init_failure(
                InitFailureScope::Job,
                category,
                message,
                Some(name),
            )),
            error_message: Some(message.to_string()),
            start: JobStart::Failed,
        },
        base: name.to_string(),
        needs: Vec::new(),
        labels: JobLabels::default(),
        wave: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kici_engine::lock::LockWorkflow;

    fn workflow(jobs: Value) -> LockWorkflow {
        serde_json::from_value(json!({
            "name": "w",
            "source": {"file": "w.ts", "export": "#default"},
            "contentHash": "0",
            "compileSchemaVersion": 5,
            "triggers": [],
            "jobs": jobs,
        }))
        .expect("workflow")
    }

    fn plan(jobs: Value) -> (Vec<NewJob>, Vec<NewNeed>) {
        let event = Event::new("push");
        let ctx = RunContext {
            org_id: "default",
            inbox_id: "i",
            provider: "github",
            routing_key: "github:1",
            repo: "a/b",
            git_ref: "refs/heads/main",
            sha: "0",
            event: &event,
            trust_tier: "trusted",
            queue_timeout: None,
            now: 1,
        };
        plan_jobs(&ctx, &workflow(jobs))
    }

    fn starts(jobs: &[NewJob]) -> Vec<(&str, &str, bool)> {
        jobs.iter()
            .map(|j| {
                let start = match j.start {
                    JobStart::Pending => "pending",
                    JobStart::Enqueue(_) => "enqueue",
                    JobStart::Failed => "failed",
                };
                (j.job_name.as_str(), start, j.wave_gated)
            })
            .collect()
    }

    #[test]
    fn max_parallel_gates_later_children_and_failures_are_init_failures() {
        let (jobs, needs) = plan(json!([
            {"_type": "static", "name": "m", "needs": [], "steps": [], "maxParallel": 1,
             "matrix": {"_type": "static", "values": ["a", "b"]}},
            {"_type": "static", "name": "dyn", "needs": [], "steps": [],
             "matrix": {"_type": "dynamic", "source": {"file": "w.ts", "jobName": "dyn"}}},
            {"_type": "static", "name": "after", "needs": [{"name": "dyn", "runOn": ["failed"]}], "steps": []},
            {"_type": "static", "name": "empty", "needs": [], "steps": [],
             "matrix": {"_type": "static", "values": []}}
        ]));
        assert_eq!(
            starts(&jobs),
            vec![
                ("m (a)", "enqueue", false),
                ("m (b)", "pending", true),
                ("dyn", "failed", false),
                ("after", "pending", false),
                ("empty", "failed", false),
            ]
        );
        let failure = jobs[2].init_failure.as_ref().expect("init failure");
        assert_eq!(failure["category"], "matrix_expansion");
        assert_eq!(failure["scope"], "job");
        assert_eq!(
            jobs[4].init_failure.as_ref().unwrap()["category"],
            "matrix_expansion"
        );
        assert_eq!(
            needs,
            vec![NewNeed {
                job_name: "after".into(),
                upstream_name: "dyn".into(),
                run_on: vec!["failed".into()],
            }]
        );
    }
}
