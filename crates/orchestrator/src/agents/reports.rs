//! What agents report (`protocol.md` §5–§7, §10–§11): acks and rejects of dispatches, job
//! and step statuses, log chunks and heartbeats, each written through the store's
//! state-machine-enforced writes and published on the change bus.
//!
//! An invalid transition is refused by the store, logged and counted here, and the
//! connection goes on: one confused report must not cost the agent its other jobs.

use std::sync::atomic::{AtomicI64, Ordering};

use kici_engine::protocol::{
    AgentMessage, ConcurrencyAction, JobAck, JobConcurrencyAck, JobReject, JobStatusReport,
    LogChunk, OrchestratorMessage, RejectReason, ReportedJobState, StepConcurrencyKind, StepState,
    StepStatusReport, limits,
};
use kici_engine::state::{self, State, StepStatus};
use kici_store::{JobUpdate, Requeue, StepReport, StepWrite};
use serde_json::Value;

use super::progress;
use crate::api::AppState;
use crate::events::Change;

/// Outputs larger than this (serialised) are not stored (`orchestrator.md` §12.2).
const MAX_OUTPUTS_BYTES: usize = 1024 * 1024;
/// After a `busy` reject the agent gets no dispatch for this long.
const BUSY_PAUSE_MS: i64 = 1000;

/// The connection a frame arrived on.
#[derive(Debug, Clone)]
pub(crate) struct AgentCtx {
    pub agent_id: String,
    pub connection_id: u64,
}

/// What applying a frame did, for the `frames.ack` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Frame,
    /// A terminal `job.status`: acknowledged at once (§12).
    Terminal,
}

/// Why a frame ended the connection.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Not valid at this point of the protocol: `error` + 4003.
    Invalid(String),
    /// The store failed: close with 4006, unacknowledged, so the agent replays.
    Internal(kici_store::Error),
}

impl From<kici_store::Error> for Refusal {
    fn from(e: kici_store::Error) -> Self {
        Refusal::Internal(e)
    }
}

/// Applies one decoded frame of a registered agent.
pub(crate) async fn apply(
    state: &AppState,
    ctx: &AgentCtx,
    message: AgentMessage,
) -> Result<Applied, Refusal> {
    let now = crate::now_ms();
    if let Some(job_id) = message.job_id()
        && !owns(state, ctx, job_id, now).await?
    {
        tracing::warn!(agent = %ctx.agent_id, job = %job_id, message = message.message_type(), "frame about a job this agent does not own dropped");
        return Ok(Applied::Frame);
    }
    match message {
        AgentMessage::AuthRequest(_) | AgentMessage::AgentRegister(_) => {
            Err(Refusal::Invalid(format!(
                "{} is only valid during the handshake",
                message.message_type()
            )))
        }
        AgentMessage::Heartbeat(_) => {
            state
                .agents()
                .heartbeat(&ctx.agent_id, ctx.connection_id, now);
            Ok(Applied::Frame)
        }
        AgentMessage::ConfigAck(_) => Ok(Applied::Frame),
        AgentMessage::AgentStatus(status) => {
            let draining = status.draining.unwrap_or(false);
            state
                .agents()
                .set_draining(&ctx.agent_id, ctx.connection_id, draining);
            if !draining {
                // Spare capacity triggers a queue drain (§5.1); the orchestrator's own slot
                // count stays authoritative.
                state.agents().unpause(&ctx.agent_id, ctx.connection_id);
                state.wake_dispatch();
            }
            Ok(Applied::Frame)
        }
        AgentMessage::JobAck(ack) => {
            job_ack(state, ctx, &ack, now).await?;
            Ok(Applied::Frame)
        }
        AgentMessage::JobReject(reject) => {
            job_reject(state, ctx, &reject, now).await?;
            Ok(Applied::Frame)
        }
        AgentMessage::JobStatus(report) => job_status(state, ctx, &report, now).await,
        AgentMessage::StepStatus(report) => {
            step_status(state, &report, now).await?;
            Ok(Applied::Frame)
        }
        AgentMessage::LogChunk(chunk) => {
            log_chunk(state, &chunk).await?;
            Ok(Applied::Frame)
        }
        AgentMessage::JobHeartbeat(heartbeat) => {
            if !state
                .store()
                .record_job_heartbeat(&heartbeat.job_id, now)
                .await?
            {
                tracing::debug!(job = %heartbeat.job_id, "heartbeat for a job that is not running");
            }
            Ok(Applied::Frame)
        }
        AgentMessage::JobConcurrencyReport(report) => {
            // Workflow concurrency groups (§11) are not enforced yet: let the job proceed
            // rather than leave it waiting for an answer that never comes.
            tracing::warn!(job = %report.job_id, group = %report.group, "concurrency groups are not enforced; job proceeds");
            state.agents().send(
                &ctx.agent_id,
                OrchestratorMessage::JobConcurrencyAck(JobConcurrencyAck {
                    request_id: report.message_id,
                    action: ConcurrencyAction::Proceed,
                    reason: None,
                    run_id: Some(report.run_id),
                    job_id: Some(report.job_id),
                }),
            );
            Ok(Applied::Frame)
        }
        // [later] tiers: decoded so the agent is not disconnected, otherwise ignored.
        AgentMessage::AgentLog(_)
        | AgentMessage::AgentMetrics(_)
        | AgentMessage::RunEvent(_)
        | AgentMessage::JobContext(_) => Ok(Applied::Frame),
    }
}

/// §6 ownership: the job was dispatched to this connection, or the store says this agent
/// ran it and it is active or finished less than 30 s ago.
async fn owns(
    state: &AppState,
    ctx: &AgentCtx,
    job_id: &str,
    now: i64,
) -> Result<bool, kici_store::Error> {
    if state
        .agents()
        .owns(&ctx.agent_id, ctx.connection_id, job_id)
    {
        return Ok(true);
    }
    let Some(job) = state.store().get_job(job_id).await? else {
        return Ok(false);
    };
    if job.agent_id.as_deref() != Some(ctx.agent_id.as_str()) {
        return Ok(false);
    }
    let grace = i64::try_from(limits::OWNERSHIP_GRACE_MS).unwrap_or(i64::MAX);
    Ok(!job.status.is_terminal() || job.completed_at.is_some_and(|t| t + grace >= now))
}

async fn job_ack(
    state: &AppState,
    ctx: &AgentCtx,
    ack: &JobAck,
    now: i64,
) -> Result<(), kici_store::Error> {
    if !state
        .store()
        .ack_dispatch(&ack.job_id, &ctx.agent_id, now)
        .await?
    {
        // Late, or the job already started: the sweeper requeues an expired dispatch.
        tracing::debug!(agent = %ctx.agent_id, job = %ack.job_id, "job.ack did not settle a pending dispatch");
    }
    Ok(())
}

async fn job_reject(
    state: &AppState,
    ctx: &AgentCtx,
    reject: &JobReject,
    now: i64,
) -> Result<(), kici_store::Error> {
    state.agents().release(&reject.job_id);
    match reject.reason {
        RejectReason::Draining => {
            state
                .agents()
                .set_draining(&ctx.agent_id, ctx.connection_id, true);
        }
        RejectReason::Busy => {
            state
                .agents()
                .pause(&ctx.agent_id, ctx.connection_id, now + BUSY_PAUSE_MS);
        }
    }
    let reason = match reject.reason {
        RejectReason::Busy => "rejected by agent: busy",
        RejectReason::Draining => "rejected by agent: draining",
    };
    match state
        .store()
        .requeue_job(&reject.job_id, reason, now)
        .await?
    {
        Requeue::Requeued { attempts } => {
            tracing::info!(agent = %ctx.agent_id, job = %reject.job_id, attempts, reason, "dispatch rejected; job requeued");
        }
        Requeue::Exhausted { attempts } => {
            tracing::warn!(job = %reject.job_id, attempts, "re-dispatch attempts exhausted");
            publish_job(state, &reject.run_id, &reject.job_id);
            state.metrics().job_finished(State::Failed.as_str());
            progress::job_finished(state, &reject.run_id).await?;
        }
        Requeue::NotDispatched => {}
    }
    state.wake_dispatch();
    Ok(())
}

fn reported_state(reported: ReportedJobState) -> State {
    match reported {
        ReportedJobState::Running => State::Running,
        ReportedJobState::Cancelling => State::Cancelling,
        ReportedJobState::Success => State::Success,
        ReportedJobState::Failed => State::Failed,
        ReportedJobState::Cancelled => State::Cancelled,
        ReportedJobState::Skipped => State::Skipped,
    }
}

async fn job_status(
    state: &AppState,
    ctx: &AgentCtx,
    report: &JobStatusReport,
    now: i64,
) -> Result<Applied, Refusal> {
    let store = state.store();
    let Some(job) = store.get_job(&report.job_id).await? else {
        return Ok(Applied::Frame);
    };
    if job.run_id != report.run_id {
        tracing::warn!(job = %report.job_id, run = %report.run_id, "job.status names the wrong run; dropped");
        return Ok(Applied::Frame);
    }
    let reported = reported_state(report.state);
    let Some(mut event) = state::agent_report_event(job.status, reported) else {
        return Ok(Applied::Frame);
    };
    let mut update = JobUpdate::default();
    if reported == State::Running {
        update.agent_id = Some(ctx.agent_id.clone());
    }
    if let Some(data) = &report.data {
        update.error_message = data.error.clone();
        update.skip_reason = data.skip_reason.and_then(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
        });
        if reported.is_terminal()
            && let Some(outputs) = &data.outputs
        {
            // Flat only for a one-step job, as `kici run local` stores it (sdk.md §12.1).
            let step_count = store.list_steps(&job.job_id).await?.len();
            match stored_outputs(outputs, step_count) {
                Ok(value) => update.outputs = value,
                Err(message) => {
                    update.error_message = Some(message);
                    if event == state::Event::Succeed {
                        event = state::Event::Fail;
                    }
                }
            }
        }
    }
    let transition = match store
        .transition_job(&report.job_id, event, &update, now)
        .await
    {
        Ok(t) => t,
        Err(kici_store::Error::InvalidTransition { source, .. }) => {
            state.metrics().invalid_transition("job");
            tracing::warn!(agent = %ctx.agent_id, job = %report.job_id, from = %source.from, event = %source.event, "invalid job transition refused");
            return Ok(Applied::Frame);
        }
        Err(e) => return Err(e.into()),
    };
    if !transition.changed {
        return Ok(if reported.is_terminal() {
            Applied::Terminal
        } else {
            Applied::Frame
        });
    }
    publish_job(state, &job.run_id, &job.job_id);
    if transition.to == State::Running {
        progress::run_started(state, &job.run_id).await?;
        if transition.from == State::Recovering {
            tracing::info!(job = %job.job_id, agent = %ctx.agent_id, "recovering job reported running again");
        }
    }
    if transition.to.is_terminal() {
        state.agents().release(&job.job_id);
        state.metrics().job_finished(transition.to.as_str());
        if let Some(started) = job.started_at {
            state
                .metrics()
                .observe_job_duration(u64::try_from(now - started).unwrap_or(0));
        }
        progress::job_finished(state, &job.run_id).await?;
        state.wake_dispatch();
        return Ok(Applied::Terminal);
    }
    Ok(Applied::Frame)
}

/// §12.2: flat when the job has exactly one step and it produced outputs, else keyed by step
/// name (sdk.md §12.1: a three-step job whose one step produced outputs stays step-keyed, as
/// in `kici run local`); `Err` when the result exceeds 1 MiB.
fn stored_outputs(
    outputs: &serde_json::Map<String, Value>,
    step_count: usize,
) -> Result<Option<Value>, String> {
    if outputs.is_empty() {
        return Ok(None);
    }
    let value = if outputs.len() == 1 && step_count <= 1 {
        outputs.values().next().cloned().unwrap_or(Value::Null)
    } else {
        Value::Object(outputs.clone())
    };
    if value.to_string().len() > MAX_OUTPUTS_BYTES {
        return Err("outputs exceed 1 MiB".to_string());
    }
    Ok(Some(value))
}

fn step_status_of(state: StepState) -> StepStatus {
    match state {
        StepState::Running => StepStatus::Running,
        StepState::Success => StepStatus::Success,
        StepState::Failed => StepStatus::Failed,
        StepState::Skipped => StepStatus::Skipped,
        StepState::Pending => StepStatus::Pending,
        StepState::Cancelled => StepStatus::Cancelled,
    }
}

async fn step_status(
    state: &AppState,
    report: &StepStatusReport,
    now: i64,
) -> Result<(), kici_store::Error> {
    let data = report.data.clone().unwrap_or_default();
    let step = StepReport {
        run_id: report.run_id.clone(),
        job_id: report.job_id.clone(),
        step_index: report.step_index,
        step_name: report.step_name.clone(),
        step_type: Some(report.effective_step_type().to_string()),
        status: step_status_of(report.state),
        concurrency_kind: report.concurrency_kind.map(|k| {
            match k {
                StepConcurrencyKind::Sequential => "sequential",
                StepConcurrencyKind::ParallelChild => "parallel-child",
                StepConcurrencyKind::ParallelGroup => "parallel-group",
            }
            .to_string()
        }),
        group_id: report.group_id.clone(),
        attempts: data.attempt.map(i64::from),
        exit_code: data.exit_code.map(i64::from),
        error_message: data.error,
        secrets_accessed: report
            .secrets_accessed
            .as_ref()
            .map(|names| Value::from(names.clone())),
        log_bytes: report
            .log_bytes_streamed
            .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
    };
    match state.store().record_step(&step, now).await {
        Ok(StepWrite::Unchanged) => {}
        Ok(_) => {
            if step.status.is_terminal() {
                state.metrics().step_finished(step.status.as_str());
            }
            state.events().publish(Change::Step {
                run_id: report.run_id.clone(),
                job_id: report.job_id.clone(),
                step_index: report.step_index,
            });
        }
        Err(kici_store::Error::InvalidStepTransition { from, to, .. }) => {
            state.metrics().invalid_transition("step");
            tracing::warn!(job = %report.job_id, step = report.step_index, %from, %to, "invalid step transition refused");
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Log chunks without `seq` (agents without `seq-ack`) still need a unique dedup key: a
/// negative counter that starts at the negated start time, so it never meets an agent's
/// positive `seq` nor an earlier process's keys.
fn local_seq() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let _ = NEXT.compare_exchange(
        0,
        -crate::now_ms().saturating_mul(1000),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    NEXT.fetch_sub(1, Ordering::Relaxed)
}

async fn log_chunk(state: &AppState, chunk: &LogChunk) -> Result<(), kici_store::Error> {
    let seq = chunk
        .seq
        .and_then(|s| i64::try_from(s).ok())
        .unwrap_or_else(local_seq);
    append_lines(
        state,
        &chunk.run_id,
        &chunk.job_id,
        chunk.step_index,
        seq,
        i64::try_from(chunk.timestamp).unwrap_or(i64::MAX),
        chunk.lines.clone(),
    )
    .await
}

/// Stores lines for a step and tells live followers; a chunk already stored under `seq` is
/// not stored again.
pub(crate) async fn append_lines(
    state: &AppState,
    run_id: &str,
    job_id: &str,
    step_index: i64,
    seq: i64,
    ts: i64,
    lines: Vec<String>,
) -> Result<(), kici_store::Error> {
    let bytes: usize = lines.iter().map(String::len).sum();
    let stored = state
        .store()
        .append_log_chunk(&kici_store::LogChunk {
            run_id: run_id.to_string(),
            job_id: job_id.to_string(),
            step_index,
            seq: if seq == 0 { local_seq() } else { seq },
            ts,
            lines,
        })
        .await?;
    state.metrics().log_chunk_received(stored, bytes);
    if stored {
        state.events().publish(Change::Log {
            run_id: run_id.to_string(),
            job_id: job_id.to_string(),
            step_index,
        });
    }
    Ok(())
}

/// A marker line written by the orchestrator itself (reconnects).
pub(crate) async fn append_marker(
    state: &AppState,
    run_id: &str,
    job_id: &str,
    step_index: i64,
    line: String,
) -> Result<(), kici_store::Error> {
    append_lines(
        state,
        run_id,
        job_id,
        step_index,
        local_seq(),
        crate::now_ms(),
        vec![line],
    )
    .await
}

pub(crate) fn publish_job(state: &AppState, run_id: &str, job_id: &str) {
    state.events().publish(Change::Job {
        run_id: run_id.to_string(),
        job_id: job_id.to_string(),
    });
}
