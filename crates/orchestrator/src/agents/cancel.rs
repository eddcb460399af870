//! Cancel (`orchestrator.md` §13): jobs that have not started are cancelled directly;
//! jobs running on a connected agent get `job.cancel` and move to `cancelling` (graceful)
//! until the agent reports the outcome; jobs whose agent is gone are cancelled at once. The
//! REST routes `POST /api/v1/admin/runs/{id}/cancel` and `…/jobs/{jobId}/cancel` call
//! [`cancel_run`] / [`cancel_job`].

use kici_engine::api::{CancelAnswer, CancelOutcome};
use kici_engine::protocol::{JobCancel, OrchestratorMessage};
use kici_engine::state::{Event, QueueStatus, RunEvent, RunStatus, State};
use kici_store::{Job, JobUpdate, RunUpdate};

use super::progress;
use super::reports::publish_job;
use crate::api::AppState;
use crate::error::ApiError;
use crate::events::Change;

/// Options of a cancel request (`{force?, reason?}`).
#[derive(Debug, Clone, Default)]
pub struct CancelOptions {
    /// SIGKILL on the agent, no hooks; also escalates a graceful cancel in progress.
    pub force: bool,
    /// Stored as the jobs' error and the run's `failure_reason`; default `cancelled by <actor>`.
    pub reason: Option<String>,
}

/// Cancels a run gracefully on behalf of `actor` (a token label, or `system`).
pub async fn cancel_run(
    state: &AppState,
    run_id: &str,
    actor: &str,
) -> Result<CancelAnswer, ApiError> {
    cancel_run_with(state, run_id, actor, &CancelOptions::default()).await
}

/// Cancels one job of a run gracefully on behalf of `actor`.
pub async fn cancel_job(
    state: &AppState,
    run_id: &str,
    job_id: &str,
    actor: &str,
) -> Result<CancelAnswer, ApiError> {
    cancel_job_with(state, run_id, job_id, actor, &CancelOptions::default()).await
}

/// [`cancel_run`] with `force` and `reason`. 404 for an unknown run, 409 `run_terminal`
/// for a run that already ended; a graceful cancel of a run already `cancelling` is
/// idempotent (nothing is sent again), a forced one escalates.
pub async fn cancel_run_with(
    state: &AppState,
    run_id: &str,
    actor: &str,
    options: &CancelOptions,
) -> Result<CancelAnswer, ApiError> {
    let store = state.store();
    let run = store
        .get_run(run_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {run_id} not found")))?;
    if run.status.is_terminal() {
        return Err(ApiError::RunTerminal(format!(
            "run is already {}",
            run.status
        )));
    }
    let reason = options
        .reason
        .clone()
        .unwrap_or_else(|| format!("cancelled by {actor}"));
    if run.status == RunStatus::Cancelling && !options.force {
        return Ok(CancelAnswer {
            status: CancelOutcome::Cancelling,
            cancelled_jobs: 0,
        });
    }
    if run.status != RunStatus::Cancelling {
        let update = RunUpdate {
            failure_reason: Some(reason.clone()),
            cancelled_by: Some(actor.to_string()),
        };
        match store
            .transition_run(run_id, RunEvent::CancelRequested, &update, crate::now_ms())
            .await
        {
            Ok(_) => state.events().publish(Change::Run {
                run_id: run_id.to_string(),
            }),
            // A concurrent writer moved the run (it finished or is being cancelled).
            Err(kici_store::Error::InvalidRunTransition { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut cancelled = 0u32;
    for job in store.list_jobs(run_id).await? {
        if cancel_one(state, &job, &reason, options.force).await? {
            cancelled += 1;
        }
    }
    finish(state, run_id, cancelled).await
}

/// [`cancel_job`] with `force` and `reason`. 404 for an unknown run or job, 409 when the
/// job already ended.
pub async fn cancel_job_with(
    state: &AppState,
    run_id: &str,
    job_id: &str,
    actor: &str,
    options: &CancelOptions,
) -> Result<CancelAnswer, ApiError> {
    let job = state
        .store()
        .get_job(job_id)
        .await?
        .filter(|j| j.run_id == run_id)
        .ok_or_else(|| ApiError::NotFound(format!("job {job_id} not found in run {run_id}")))?;
    if job.status.is_terminal() {
        return Err(ApiError::RunTerminal(format!(
            "job is already {}",
            job.status
        )));
    }
    let reason = options
        .reason
        .clone()
        .unwrap_or_else(|| format!("cancelled by {actor}"));
    let cancelled = u32::from(cancel_one(state, &job, &reason, options.force).await?);
    finish(state, run_id, cancelled).await
}

/// Progresses the run after cancels and answers with what the run now is.
async fn finish(state: &AppState, run_id: &str, cancelled: u32) -> Result<CancelAnswer, ApiError> {
    progress::job_finished(state, run_id).await?;
    let jobs = state.store().list_jobs(run_id).await?;
    let still_active = jobs.iter().any(|j| j.status == State::Cancelling);
    Ok(CancelAnswer {
        status: if still_active {
            CancelOutcome::Cancelling
        } else {
            CancelOutcome::Cancelled
        },
        cancelled_jobs: cancelled,
    })
}

/// Cancels one job as §13 steps 2–4 say. `true` when the job moved.
async fn cancel_one(
    state: &AppState,
    job: &Job,
    reason: &str,
    force: bool,
) -> Result<bool, kici_store::Error> {
    let store = state.store();
    let update = JobUpdate {
        error_message: Some(reason.to_string()),
        ..JobUpdate::default()
    };
    let holder = state.agents().holder(&job.job_id).or_else(|| {
        job.agent_id
            .clone()
            .filter(|a| state.agents().is_connected(a))
    });
    let event = match job.status {
        State::Pending | State::Held | State::Waiting | State::Recovering => Event::Cancel,
        State::Queued => {
            let dispatched = store
                .get_queue_entry(&job.job_id)
                .await?
                .is_some_and(|e| e.status == QueueStatus::Dispatched);
            if dispatched && let Some(agent) = &holder {
                // Dispatched but not started: stop it on the agent and cancel at once.
                send_cancel(state, agent, job, reason, true);
            }
            Event::Cancel
        }
        State::Running | State::Cancelling => match &holder {
            Some(agent) => {
                if job.status == State::Cancelling && !force {
                    return Ok(false);
                }
                send_cancel(state, agent, job, reason, force);
                if force {
                    let timeout = state.inner.config.agents.forced_cancel_timeout;
                    let deadline = crate::now_ms()
                        .saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
                    state
                        .agents()
                        .note_forced_cancel(&job.job_id, &job.run_id, deadline);
                }
                if job.status == State::Cancelling {
                    // A forced escalation: the agent reports the outcome.
                    return Ok(false);
                }
                Event::CancelGraceful
            }
            // No agent to ask: nothing else will end it.
            None if job.status == State::Running => Event::Cancel,
            None => Event::CancelForce,
        },
        _ => return Ok(false),
    };
    write(state, job, event, &update).await
}

/// §13 step 3: a job whose agent did not answer a forced cancel in time ends `cancelled`
/// (frames the agent sends later are refused by the state machine).
pub(crate) async fn end_overdue_forced_cancels(state: &AppState) -> Result<(), kici_store::Error> {
    for (job_id, run_id) in state.agents().take_overdue_forced_cancels(crate::now_ms()) {
        let Some(job) = state.store().get_job(&job_id).await? else {
            continue;
        };
        if job.status != State::Cancelling {
            continue;
        }
        let update = JobUpdate {
            error_message: Some(
                "cancelled: the agent did not confirm a forced cancel in time".to_string(),
            ),
            ..JobUpdate::default()
        };
        if write(state, &job, Event::CancelForce, &update).await? {
            tracing::warn!(job = %job_id, "forced cancel unanswered; job cancelled");
            crate::agents::progress::job_finished(state, &run_id).await?;
        }
    }
    Ok(())
}

/// One cancel-side job write: on a terminal state the slot is freed, open steps end
/// `cancelled`, and the dispatcher may use the slot. `true` when the job moved.
async fn write(
    state: &AppState,
    job: &Job,
    event: Event,
    update: &JobUpdate,
) -> Result<bool, kici_store::Error> {
    let store = state.store();
    match store
        .transition_job(&job.job_id, event, update, crate::now_ms())
        .await
    {
        Ok(t) if t.changed => {
            publish_job(state, &job.run_id, &job.job_id);
            if t.to.is_terminal() {
                state.agents().release(&job.job_id);
                state.metrics().job_finished(t.to.as_str());
                store
                    .cancel_open_steps(&job.job_id, crate::now_ms())
                    .await?;
                state.wake_dispatch();
            }
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(kici_store::Error::InvalidTransition { source, .. }) => {
            // The job moved under us (it finished, or its agent reported first).
            tracing::debug!(job = %job.job_id, from = %source.from, event = %source.event, "cancel raced with another status write");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// `failFast` (`orchestrator.md` §12.1 step 4): a sibling of a failed matrix child.
/// Unstarted (`pending`, `queued`) → SKIP with `skip_reason = "fail_fast"` (a dispatched
/// one is also stopped on its agent); running → graceful cancel (`job.cancel`, then
/// `cancelling` until the agent reports); recovering (agent gone) → CANCEL. `true` when
/// the job moved.
pub(crate) async fn fail_fast_sibling(
    state: &AppState,
    job: &Job,
    reason: &str,
) -> Result<bool, kici_store::Error> {
    let holder = state.agents().holder(&job.job_id).or_else(|| {
        job.agent_id
            .clone()
            .filter(|a| state.agents().is_connected(a))
    });
    let (event, update) = match job.status {
        State::Pending | State::Queued => {
            if job.status == State::Queued
                && let Some(agent) = &holder
                && state
                    .store()
                    .get_queue_entry(&job.job_id)
                    .await?
                    .is_some_and(|e| e.status == QueueStatus::Dispatched)
            {
                send_cancel(state, agent, job, reason, true);
            }
            let update = JobUpdate {
                skip_reason: Some(FAIL_FAST.to_string()),
                ..JobUpdate::default()
            };
            (Event::Skip, update)
        }
        State::Running => {
            let update = JobUpdate {
                error_message: Some(reason.to_string()),
                ..JobUpdate::default()
            };
            match &holder {
                Some(agent) => {
                    send_cancel(state, agent, job, reason, false);
                    (Event::CancelGraceful, update)
                }
                None => (Event::Cancel, update),
            }
        }
        State::Recovering => (
            Event::Cancel,
            JobUpdate {
                error_message: Some(reason.to_string()),
                ..JobUpdate::default()
            },
        ),
        _ => return Ok(false),
    };
    write(state, job, event, &update).await
}

/// The skip reason of a fail-fast sibling (`cli.md`, `orchestrator.md` §12.1).
const FAIL_FAST: &str = "fail_fast";

fn send_cancel(state: &AppState, agent: &str, job: &Job, reason: &str, force: bool) {
    let sent = state
        .agents()
        .send(agent, job_cancel(&job.run_id, &job.job_id, reason, force));
    if !sent {
        tracing::warn!(job = %job.job_id, agent, "job.cancel could not be queued for the agent");
    }
}

/// A `job.cancel` frame (`protocol.md` §8); `force` asks for SIGKILL without hooks.
pub(super) fn job_cancel(
    run_id: &str,
    job_id: &str,
    reason: &str,
    force: bool,
) -> OrchestratorMessage {
    OrchestratorMessage::JobCancel(JobCancel {
        message_id: kici_store::new_id(),
        run_id: run_id.to_string(),
        job_id: job_id.to_string(),
        reason: reason.to_string(),
        force: force.then_some(true),
    })
}
