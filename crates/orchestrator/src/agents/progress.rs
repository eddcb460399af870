//! DAG progression (`orchestrator.md` §12.1): after a job of a run reaches a terminal
//! state, dependants whose edge is unsatisfiable are skipped (cascading), dependants whose
//! upstreams all ended as their `runOn` asks are enqueued, wave-gated matrix siblings are
//! released, and the run is finished once every job is terminal.
//!
//! The pass re-reads the run and repeats until nothing changes, so a skip that makes
//! another dependant unsatisfiable cascades, and two passes racing for one run (two jobs
//! ending at once on two connections) are harmless: every write is a compare-and-set, and a
//! write the other pass already did is refused or a no-op.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kici_engine::labels::JobLabels;
use kici_engine::lock::LabelMatcher;
use kici_engine::state::{Event, RunEvent, RunStatus, State};
use kici_store::{EnqueueSpec, Job, JobUpdate, RunUpdate};
use serde_json::Value;

use super::cancel;
use super::reports::publish_job;
use crate::api::AppState;
use crate::events::Change;

/// Bounds the fix-point loop; every pass that changes something moves at least one job
/// towards a terminal state, so a run with n jobs needs at most n + 1 passes.
const MAX_PASSES: usize = 10_000;

/// The first job of a run started: the run moves `pending → running`.
pub(crate) async fn run_started(state: &AppState, run_id: &str) -> Result<(), kici_store::Error> {
    let Some(run) = state.store().get_run(run_id).await? else {
        return Ok(());
    };
    if run.status != RunStatus::Pending {
        return Ok(());
    }
    match state
        .store()
        .transition_run(
            run_id,
            RunEvent::Start,
            &RunUpdate::default(),
            crate::now_ms(),
        )
        .await
    {
        Ok(_) => {
            state.events().publish(Change::Run {
                run_id: run_id.to_string(),
            });
            Ok(())
        }
        // Another writer moved it first (a second job started, or a cancel).
        Err(kici_store::Error::InvalidRunTransition { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A job of `run_id` reached a terminal state: progress the DAG and finish the run when
/// every job is terminal.
pub(crate) async fn job_finished(state: &AppState, run_id: &str) -> Result<(), kici_store::Error> {
    let store = state.store();
    let mut enqueued = false;
    for _ in 0..MAX_PASSES {
        let Some(run) = store.get_run(run_id).await? else {
            return Ok(());
        };
        let jobs = store.list_jobs(run_id).await?;
        let needs = store.list_needs(run_id).await?;
        let by_name: HashMap<&str, &Job> = jobs.iter().map(|j| (j.job_name.as_str(), j)).collect();
        let cancelling = matches!(run.status, RunStatus::Cancelling | RunStatus::Cancelled);
        // §12.1 step 4: fail-fast first, so that no sibling is enqueued or released below.
        if !cancelling && fail_fast(state, &jobs).await? {
            continue;
        }
        let mut changed = false;
        let mut ready: HashSet<&str> = HashSet::new();

        for job in jobs.iter().filter(|j| j.status == State::Pending) {
            let edges: Vec<_> = needs
                .iter()
                .filter(|n| n.job_name == job.job_name)
                .collect();
            if cancelling {
                // §12.1 step 3: a cancelled run cancels its waiting jobs, it does not skip them.
                changed |= write(state, job, Event::Cancel, error("run cancelled")).await?;
                continue;
            }
            if edges.is_empty() {
                continue;
            }
            let mut unsatisfied = None;
            let mut all_done = true;
            for edge in &edges {
                let Some(upstream) = by_name.get(edge.upstream_name.as_str()) else {
                    unsatisfied = Some(format!("upstream {} (missing)", edge.upstream_name));
                    break;
                };
                if !upstream.status.is_terminal() {
                    all_done = false;
                    continue;
                }
                if !satisfies(upstream, &edge.run_on) {
                    unsatisfied = Some(format!(
                        "upstream {} ({})",
                        upstream.job_name, upstream.status
                    ));
                    break;
                }
            }
            if let Some(reason) = unsatisfied {
                let update = JobUpdate {
                    skip_reason: Some(reason),
                    ..JobUpdate::default()
                };
                changed |= write(state, job, Event::Skip, update).await?;
            } else if all_done && bounded_child(job) {
                // A bounded fan-out child whose needs are met goes through the waves below
                // (`maxParallel` holds for children downstream of other jobs too).
                ready.insert(job.job_id.as_str());
            } else if all_done {
                let did = enqueue(state, job).await?;
                enqueued |= did;
                changed |= did;
            }
        }

        // §12.1 step 4: a finished child of a wave-gated fan-out releases the next sibling.
        if !cancelling {
            let did = release_waves(state, &jobs, &ready).await?;
            enqueued |= did;
            changed |= did;
        }
        if !changed {
            break;
        }
    }
    if enqueued {
        state.wake_dispatch();
    }
    if let Some(status) = store
        .finish_run_if_complete(run_id, crate::now_ms())
        .await?
    {
        tracing::info!(run = %run_id, %status, "run finished");
        state.events().publish(Change::Run {
            run_id: run_id.to_string(),
        });
    }
    Ok(())
}

/// Whether an ended upstream satisfies an edge. A rule-skipped job satisfies edges like a
/// success, as in the reference (fix F31).
fn satisfies(upstream: &Job, run_on: &[String]) -> bool {
    let status = upstream.status.as_str();
    if run_on.iter().any(|s| s == status) {
        return true;
    }
    upstream.status == State::Skipped
        && upstream.skip_reason.as_deref() == Some("job_rules")
        && run_on.iter().any(|s| s == "success")
}

fn error(message: &str) -> JobUpdate {
    JobUpdate {
        error_message: Some(message.to_string()),
        ..JobUpdate::default()
    }
}

/// One job write of the pass; a refusal means a concurrent pass or writer got there first.
async fn write(
    state: &AppState,
    job: &Job,
    event: Event,
    update: JobUpdate,
) -> Result<bool, kici_store::Error> {
    match state
        .store()
        .transition_job(&job.job_id, event, &update, crate::now_ms())
        .await
    {
        Ok(t) if t.changed => {
            publish_job(state, &job.run_id, &job.job_id);
            state.metrics().job_finished(t.to.as_str());
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(kici_store::Error::InvalidTransition { .. } | kici_store::Error::Contended { .. }) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// ENQUEUE with the job's label requirements; a full queue FAILs it (§9.4).
pub(crate) async fn enqueue(state: &AppState, job: &Job) -> Result<bool, kici_store::Error> {
    let now = crate::now_ms();
    let spec = EnqueueSpec {
        labels: job_labels(&job.job_config),
        pinned_agent_id: None,
        expires_at: state.inner.config.queue_timeout.map(|t: Duration| {
            now.saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
        }),
    };
    match state.store().enqueue_job(&job.job_id, &spec, now).await {
        Ok(()) => {
            publish_job(state, &job.run_id, &job.job_id);
            Ok(true)
        }
        Err(e @ kici_store::Error::QueueFull { .. }) => {
            write(state, job, Event::Fail, error(&e.to_string())).await
        }
        Err(kici_store::Error::InvalidTransition { .. } | kici_store::Error::Contended { .. }) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The job's `runsOn` / `excludeLabels` / `container` from its stored configuration.
pub(crate) fn job_labels(config: &Value) -> JobLabels {
    let matchers = |key: &str| -> Vec<LabelMatcher> {
        config
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    let container = config.get("container").is_some_and(|c| !c.is_null());
    JobLabels::from_matchers(&matchers("runsOn"), &matchers("excludeLabels"), container)
}

/// Matrix children of the run, grouped by their base job.
fn matrix_groups(jobs: &[Job]) -> HashMap<&str, Vec<&Job>> {
    let mut groups: HashMap<&str, Vec<&Job>> = HashMap::new();
    for job in jobs
        .iter()
        .filter(|j| j.variant_kind.as_deref() == Some("matrix"))
    {
        groups
            .entry(job.base_job_name.as_str())
            .or_default()
            .push(job);
    }
    groups
}

/// `failFast` (default `false`, `sdk.md` §4): once a child of a fan-out with `failFast:
/// true` failed (or timed out stale), its unfinished siblings are skipped (`fail_fast`)
/// or cancelled ([`cancel::fail_fast_sibling`]). `true` when a job moved.
async fn fail_fast(state: &AppState, jobs: &[Job]) -> Result<bool, kici_store::Error> {
    let mut changed = false;
    for siblings in matrix_groups(jobs).values() {
        let enabled = siblings
            .iter()
            .any(|j| j.job_config.get("failFast").and_then(Value::as_bool) == Some(true));
        if !enabled {
            continue;
        }
        let Some(failed) = siblings
            .iter()
            .find(|j| matches!(j.status, State::Failed | State::TimedOutStale))
        else {
            continue;
        };
        let reason = format!("fail-fast: {} {}", failed.job_name, failed.status);
        for job in siblings.iter().filter(|j| !j.status.is_terminal()) {
            if cancel::fail_fast_sibling(state, job, &reason).await? {
                tracing::info!(job = %job.job_id, job_name = %job.job_name, failed = %failed.job_name, "fail-fast");
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// Enqueues gated siblings while their fan-out has fewer than `maxParallel` active
/// children.
/// A matrix child under `maxParallel`.
fn bounded_child(job: &Job) -> bool {
    job.variant_kind.as_deref() == Some("matrix")
        && job
            .job_config
            .get("maxParallel")
            .and_then(Value::as_u64)
            .is_some()
}

/// `ready`: pending children whose needs are met (they wait for a wave like gated ones).
async fn release_waves(
    state: &AppState,
    jobs: &[Job],
    ready: &HashSet<&str>,
) -> Result<bool, kici_store::Error> {
    let groups = matrix_groups(jobs);
    let mut changed = false;
    for siblings in groups.values() {
        let gated: Vec<&&Job> = siblings
            .iter()
            .filter(|j| {
                j.status == State::Pending && (j.wave_gated || ready.contains(j.job_id.as_str()))
            })
            .collect();
        let Some(first) = gated.first() else {
            continue;
        };
        let Some(max) = first.job_config.get("maxParallel").and_then(Value::as_u64) else {
            continue;
        };
        let mut active = siblings
            .iter()
            .filter(|j| {
                matches!(
                    j.status,
                    State::Queued | State::Running | State::Recovering | State::Cancelling
                )
            })
            .count() as u64;
        for job in gated {
            if active >= max {
                break;
            }
            if enqueue(state, job).await? {
                changed = true;
                active += 1;
            }
        }
    }
    Ok(changed)
}
