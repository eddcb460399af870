//! Liveness and reconnection (`orchestrator.md` §10, `protocol.md` §6, §13): what happens
//! to an agent's jobs when its connection ends, how a reconnecting agent reclaims them, and
//! the sweeper that ends what nobody will finish — expired ack deadlines (requeue), expired
//! recovery windows (fail), stale running jobs (timed out) and expired queue rows.
//!
//! Every deadline is persisted on the queue row, so the sweeper also settles what a
//! previous process left behind; no job waits forever in `running` or `recovering`.

use std::collections::BTreeSet;
use std::time::Duration;

use kici_engine::labels::JobLabels;
use kici_engine::protocol::{AgentRegister, CloseCode, limits};
use kici_engine::state::{Event, State};
use kici_store::{JobUpdate, Requeue};
use tokio_util::sync::CancellationToken;

use super::progress;
use super::registry::Outgoing;
use super::reports::{AgentCtx, append_marker, publish_job};
use crate::api::AppState;

/// The reason a job fails when its agent never came back (§13).
pub(crate) const RECOVERY_EXPIRED: &str =
    "agent disconnected and did not reconnect within the recovery window";
const SCALER_LOST: &str = "scaler-managed agent disconnected mid-execution";
/// The job error of a queue expiry (§9.4); a suffix may say that no agent matches.
const QUEUE_EXPIRED: &str = "Queue timeout expired (job was never dispatched to an agent)";
const REVOKED: &str = "agent token revoked";
/// How long a revocation waits for room in a connection's outgoing queue.
const CLOSE_QUEUE_WAIT: Duration = Duration::from_secs(2);
const NEVER_STARTED: &str = "job never started: dispatch acknowledged but no running status from the agent within the threshold";
const STALE: &str = "job heartbeat stale: no heartbeat from the agent within the threshold";

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn recovery_window(state: &AppState) -> i64 {
    let max_delay = u64::try_from(state.inner.config.agents.max_reconnect_delay.as_millis())
        .unwrap_or(u64::MAX);
    i64::try_from(limits::recovery_window_ms(max_delay)).unwrap_or(i64::MAX)
}

/// A connection ended (not for shutdown): its jobs enter recovery, or — for a scaler-
/// managed agent, which never comes back — fail (started) or are requeued (not started).
pub(crate) async fn agent_disconnected(
    state: &AppState,
    agent_id: &str,
    scaler_managed: bool,
    jobs: &BTreeSet<String>,
) {
    for job_id in jobs {
        if let Err(e) = lose_job(state, agent_id, scaler_managed, job_id).await {
            tracing::error!(agent = %agent_id, job = %job_id, error = %e, "could not move a lost agent's job");
        }
    }
}

async fn lose_job(
    state: &AppState,
    agent_id: &str,
    scaler_managed: bool,
    job_id: &str,
) -> Result<(), kici_store::Error> {
    let store = state.store();
    let now = crate::now_ms();
    let Some(job) = store.get_job(job_id).await? else {
        return Ok(());
    };
    let deadline = now.saturating_add(recovery_window(state));
    match (job.status, scaler_managed) {
        (State::Running, false) => {
            let update = JobUpdate {
                recovery_deadline: Some(deadline),
                ..JobUpdate::default()
            };
            transition(state, &job.run_id, job_id, Event::Recover, update).await?;
            tracing::info!(job = %job_id, agent = %agent_id, deadline, "job recovering until its agent reconnects");
        }
        (State::Queued, false) => {
            // Dispatched, not started: the agent may be running it, so the row waits too.
            store.recover_dispatch(job_id, agent_id, deadline).await?;
        }
        (State::Running | State::Cancelling, true) => {
            let update = JobUpdate {
                error_message: Some(SCALER_LOST.to_string()),
                ..JobUpdate::default()
            };
            transition(state, &job.run_id, job_id, Event::Fail, update).await?;
        }
        (State::Queued, true) => {
            requeue(state, &job.run_id, job_id, "agent lost before start").await?;
        }
        // The agent was asked to cancel and is gone: nothing will report the outcome.
        (State::Cancelling, false) => {
            let update = JobUpdate {
                error_message: Some("agent disconnected while cancelling".to_string()),
                ..JobUpdate::default()
            };
            transition(state, &job.run_id, job_id, Event::CancelForce, update).await?;
        }
        _ => {}
    }
    Ok(())
}

/// A job write from the liveness paths; publishes and progresses the DAG on a terminal
/// state. An invalid transition (a concurrent writer won) is logged, never written.
async fn transition(
    state: &AppState,
    run_id: &str,
    job_id: &str,
    event: Event,
    update: JobUpdate,
) -> Result<bool, kici_store::Error> {
    match state
        .store()
        .transition_job(job_id, event, &update, crate::now_ms())
        .await
    {
        Ok(t) if t.changed => {
            publish_job(state, run_id, job_id);
            if t.to.is_terminal() {
                state.agents().release(job_id);
                state.metrics().job_finished(t.to.as_str());
                progress::job_finished(state, run_id).await?;
            }
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(kici_store::Error::InvalidTransition { source, .. }) => {
            state.metrics().invalid_transition("job");
            tracing::warn!(job = %job_id, from = %source.from, event = %source.event, "invalid job transition refused");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

async fn requeue(
    state: &AppState,
    run_id: &str,
    job_id: &str,
    reason: &str,
) -> Result<(), kici_store::Error> {
    state.agents().release(job_id);
    match state
        .store()
        .requeue_job(job_id, reason, crate::now_ms())
        .await?
    {
        Requeue::Requeued { attempts } => {
            tracing::info!(job = %job_id, attempts, reason, "job requeued");
        }
        Requeue::Exhausted { attempts } => {
            tracing::warn!(job = %job_id, attempts, "re-dispatch attempts exhausted");
            publish_job(state, run_id, job_id);
            state.metrics().job_finished(State::Failed.as_str());
            progress::job_finished(state, run_id).await?;
        }
        Requeue::NotDispatched => {}
    }
    state.wake_dispatch();
    Ok(())
}

/// `DELETE /api/v1/admin/agent-tokens/{id}` (`orchestrator.md` §18.2): every agent
/// connected with the token leaves the registry at once (no further dispatch), its
/// connection is closed with 4010 (the agent does not reconnect), and its jobs take the
/// normal disconnect path (recovery, or for a scaler-managed agent fail/requeue). Returns
/// how many agents were closed.
pub(crate) async fn token_revoked(state: &AppState, token_id: &str) -> usize {
    let evicted = {
        // Not in the middle of a dispatch pass: a job claimed for one of these agents is
        // already in its `active` set, and none is claimed for them afterwards.
        let _pass = state.agents().dispatch_lock.lock().await;
        state.agents().evict_token(token_id)
    };
    state
        .metrics()
        .set_agents_connected(state.agents().connected());
    for entry in &evicted {
        tracing::warn!(agent = %entry.agent_id, token = %token_id, jobs = entry.active.len(), "agent token revoked; closing the agent's connection");
        let close = Outgoing::Close(CloseCode::AgentAuthFailed, REVOKED.to_string());
        // A full outgoing queue gets a moment to make room; past it the sender is dropped
        // with the entry and the connection ends anyway.
        let _ = tokio::time::timeout(CLOSE_QUEUE_WAIT, entry.sender.send(close)).await;
        agent_disconnected(state, &entry.agent_id, entry.scaler_managed, &entry.active).await;
    }
    if !evicted.is_empty() {
        state.wake_dispatch();
    }
    evicted.len()
}

/// A new connection replaced a live one of the same agent: the old connection's jobs the
/// agent still reports are adopted by [`reconcile`]; the others are lost like on a
/// disconnect.
pub(crate) async fn adopt_or_recover(
    state: &AppState,
    ctx: &AgentCtx,
    scaler_managed: bool,
    old_jobs: &BTreeSet<String>,
    register: &AgentRegister,
) {
    let reported: BTreeSet<&str> = register
        .in_flight_jobs
        .iter()
        .chain(&register.completed_jobs)
        .flatten()
        .map(|j| j.job_id.as_str())
        .collect();
    let lost: BTreeSet<String> = old_jobs
        .iter()
        .filter(|j| !reported.contains(j.as_str()))
        .cloned()
        .collect();
    agent_disconnected(state, &ctx.agent_id, scaler_managed, &lost).await;
}

/// §13 "on re-register": reclaim recovering jobs the agent still runs, keep completed ones
/// recovering for their replayed terminal status, and force-cancel jobs the orchestrator
/// does not know (fix F36).
pub(crate) async fn reconcile(state: &AppState, ctx: &AgentCtx, register: &AgentRegister) {
    for job in register.in_flight_jobs.iter().flatten() {
        if let Err(e) = reclaim(state, ctx, &job.job_id, &job.run_id, false).await {
            tracing::error!(agent = %ctx.agent_id, job = %job.job_id, error = %e, "could not reclaim a job");
        }
    }
    for job in register.completed_jobs.iter().flatten() {
        if let Err(e) = reclaim(state, ctx, &job.job_id, &job.run_id, true).await {
            tracing::error!(agent = %ctx.agent_id, job = %job.job_id, error = %e, "could not reclaim a completed job");
        }
    }
}

async fn reclaim(
    state: &AppState,
    ctx: &AgentCtx,
    job_id: &str,
    run_id: &str,
    completed: bool,
) -> Result<(), kici_store::Error> {
    let store = state.store();
    let now = crate::now_ms();
    let job = store.get_job(job_id).await?.filter(|j| j.run_id == run_id);
    let entry = store.get_queue_entry(job_id).await?;
    let recovering_for_me = entry.as_ref().is_some_and(|e| {
        e.status == kici_engine::state::QueueStatus::Recovering
            && e.recovery_agent_id.as_deref() == Some(ctx.agent_id.as_str())
    });
    let adopt = |state: &AppState| {
        state
            .agents()
            .add_active(&ctx.agent_id, ctx.connection_id, job_id)
    };
    match job.as_ref().map(|j| j.status) {
        Some(State::Recovering) if recovering_for_me && completed => {
            // Finished while away: its terminal status is being replayed. It stays
            // recovering, with a short window for the replay (ours).
            adopt(state);
            let window = i64::try_from(limits::COMPLETED_JOB_REPLAY_WINDOW_MS).unwrap_or(i64::MAX);
            store
                .set_recovery_deadline(job_id, &ctx.agent_id, now.saturating_add(window))
                .await?;
        }
        Some(State::Recovering) if recovering_for_me => {
            adopt(state);
            let away_ms = entry
                .as_ref()
                .and_then(|e| e.recovery_deadline)
                .map(|deadline| now - (deadline - recovery_window(state)))
                .unwrap_or(0)
                .max(0);
            let update = JobUpdate {
                agent_id: Some(ctx.agent_id.clone()),
                ..JobUpdate::default()
            };
            if transition(state, run_id, job_id, Event::Start, update).await? {
                tracing::info!(job = %job_id, agent = %ctx.agent_id, away_ms, "job reclaimed after reconnect");
                let step = current_step(state, job_id).await?;
                append_marker(
                    state,
                    run_id,
                    job_id,
                    step,
                    format!("--- agent reconnected after {}s ---", away_ms / 1000),
                )
                .await?;
            }
        }
        Some(State::Queued) if recovering_for_me => {
            if store.reclaim_dispatch(job_id, &ctx.agent_id).await? {
                adopt(state);
                tracing::info!(job = %job_id, agent = %ctx.agent_id, "dispatch reclaimed after reconnect");
            } else {
                cancel_unknown(state, ctx, job_id, run_id);
            }
        }
        // Still running under this agent (the old socket had not noticed the drop).
        Some(State::Running | State::Cancelling)
            if job.as_ref().and_then(|j| j.agent_id.as_deref()) == Some(ctx.agent_id.as_str()) =>
        {
            adopt(state);
        }
        // A completed job whose terminal status was already applied: nothing to do.
        Some(status) if completed && status.is_terminal() => {}
        _ => cancel_unknown(state, ctx, job_id, run_id),
    }
    Ok(())
}

fn cancel_unknown(state: &AppState, ctx: &AgentCtx, job_id: &str, run_id: &str) {
    tracing::warn!(agent = %ctx.agent_id, job = %job_id, "agent runs a job unknown to the orchestrator; force-cancelling it");
    state.agents().send(
        &ctx.agent_id,
        super::cancel::job_cancel(run_id, job_id, "job unknown to orchestrator", true),
    );
}

/// The step whose log gets the reconnect marker: the running one, else the last known.
async fn current_step(state: &AppState, job_id: &str) -> Result<i64, kici_store::Error> {
    let steps = state.store().list_steps(job_id).await?;
    Ok(steps
        .iter()
        .rev()
        .find(|s| s.status == kici_engine::state::StepStatus::Running)
        .or(steps.last())
        .map_or(-1, |s| s.step_index))
}

/// Start-up recovery and its periodic counterpart: every dispatch whose agent is not
/// connected enters recovery with a fresh deadline.
pub(crate) async fn recover_unconnected(state: &AppState) -> Result<(), kici_store::Error> {
    for row in state.store().dispatched_jobs().await? {
        if state.agents().is_connected(&row.agent_id) {
            continue;
        }
        let jobs = BTreeSet::from([row.job_id.clone()]);
        agent_disconnected(state, &row.agent_id, false, &jobs).await;
    }
    Ok(())
}

/// The sweeper: ack deadlines and recovery windows every `sweep_interval`, stale jobs every
/// `stale_scan_interval` (and at once), queue expiry every `queue_expiry_interval`.
pub(crate) async fn run_sweeper(state: AppState, cancel: CancellationToken) {
    let config = state.inner.config.agents.clone();
    let mut sweep = tokio::time::interval(config.sweep_interval);
    let mut stale = tokio::time::interval(config.stale_scan_interval);
    let mut expiry = tokio::time::interval(config.queue_expiry_interval);
    for timer in [&mut sweep, &mut stale, &mut expiry] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        let result = tokio::select! {
            () = cancel.cancelled() => return,
            _ = sweep.tick() => sweep_deadlines(&state).await,
            _ = stale.tick() => match sweep_stale(&state).await {
                Ok(()) => sweep_progress(&state).await,
                Err(e) => Err(e),
            },
            _ = expiry.tick() => sweep_queue_expiry(&state).await,
        };
        // Log and continue: the next tick retries whatever failed.
        if let Err(e) = result {
            tracing::warn!(error = %e, "liveness sweep failed");
        }
    }
}

/// Expired ack deadlines: requeue, and drop the agent that lost the dispatch (4031).
/// Expired recovery windows: fail the job.
pub(crate) async fn sweep_deadlines(state: &AppState) -> Result<(), kici_store::Error> {
    super::cancel::end_overdue_forced_cancels(state).await?;
    let now = crate::now_ms();
    let mut evicted = Vec::new();
    let expired = {
        // No dispatch pass may hand a requeued job back to an agent being dropped for it.
        let _pass = state.agents().dispatch_lock.lock().await;
        let expired = state.store().requeue_expired_acks(now).await?;
        for (job_id, outcome) in &expired {
            let holder = state.agents().release(job_id);
            state.metrics().dispatch_ack_timeout();
            tracing::warn!(job = %job_id, agent = ?holder, outcome = ?outcome, "dispatch ack timeout");
            if let Some(agent) = holder
                && let Some(entry) = state.agents().evict(&agent)
            {
                let _ = entry.sender.try_send(Outgoing::Close(
                    CloseCode::DispatchAckTimeout,
                    "dispatch ack timeout".to_string(),
                ));
                evicted.push(entry);
            }
        }
        expired
    };
    state
        .metrics()
        .set_agents_connected(state.agents().connected());
    for entry in &evicted {
        agent_disconnected(state, &entry.agent_id, entry.scaler_managed, &entry.active).await;
    }
    for (job_id, _) in &expired {
        if let Some(job) = state.store().get_job(job_id).await?
            && job.status.is_terminal()
        {
            publish_job(state, &job.run_id, job_id);
            state.metrics().job_finished(job.status.as_str());
            progress::job_finished(state, &job.run_id).await?;
        }
    }
    if !expired.is_empty() {
        state.wake_dispatch();
    }
    for (job_id, result) in state
        .store()
        .expire_recoveries(RECOVERY_EXPIRED, now)
        .await?
    {
        match result {
            Ok(t) if t.changed => {
                tracing::warn!(job = %job_id, "agent did not return within the recovery window; job failed");
                state.agents().release(&job_id);
                publish_job(state, &t.run_id, &job_id);
                state.metrics().job_finished(t.to.as_str());
                progress::job_finished(state, &t.run_id).await?;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e, "recovery expiry refused");
            }
        }
    }
    Ok(())
}

/// The periodic counterpart of the DAG progression (and the invariant check of §12.1, at
/// start and on every stale scan): every non-terminal run is progressed again, so a run
/// whose progression was lost after a terminal job write (a store error, a crash between
/// the two) still enqueues or skips its waiting jobs and reaches its terminal status,
/// instead of staying `running` with every job ended.
pub(crate) async fn sweep_progress(state: &AppState) -> Result<(), kici_store::Error> {
    for run_id in state.store().active_run_ids().await? {
        progress::job_finished(state, &run_id).await?;
    }
    Ok(())
}

/// §10 stale detector: running jobs without a heartbeat for `interval × multiplier` time
/// out; their open steps are cancelled and the agent (if connected) is told to stop the
/// job — only that job, never the whole agent (fix F24).
pub(crate) async fn sweep_stale(state: &AppState) -> Result<(), kici_store::Error> {
    let config = &state.inner.config.agents;
    let threshold = ms(config.job_heartbeat_interval)
        .saturating_mul(i64::from(config.stale_threshold_multiplier));
    let now = crate::now_ms();
    for job in state.store().stale_running_jobs(now - threshold).await? {
        stale(state, &job, STALE, now).await?;
    }
    // Ours: an acknowledged dispatch that never started is as dead as a silent running job.
    for job in state
        .store()
        .stale_acked_dispatches(now - threshold)
        .await?
    {
        stale(state, &job, NEVER_STARTED, now).await?;
    }
    Ok(())
}

/// One stale job: STALE, open steps cancelled, the agent (if connected) told to stop it.
async fn stale(
    state: &AppState,
    job: &kici_store::StaleJob,
    reason: &str,
    now: i64,
) -> Result<(), kici_store::Error> {
    let update = JobUpdate {
        error_message: Some(reason.to_string()),
        ..JobUpdate::default()
    };
    if !transition(state, &job.run_id, &job.job_id, Event::Stale, update).await? {
        return Ok(());
    }
    state.metrics().stale_job();
    tracing::warn!(job = %job.job_id, agent = ?job.agent_id, reason, "job went stale");
    state.store().cancel_open_steps(&job.job_id, now).await?;
    if let Some(agent) = &job.agent_id {
        // The agent is often gone by now; a frame that cannot be queued is no news.
        state.agents().send(
            agent,
            super::cancel::job_cancel(&job.run_id, &job.job_id, reason, true),
        );
    }
    Ok(())
}

/// §9.4: pending rows past their expiry time out with `Queue timeout expired (job was
/// never dispatched to an agent)`, plus `; no connected agent matches [<labels>]` when no
/// connected agent could have run the job; their dependants progress.
pub(crate) async fn sweep_queue_expiry(state: &AppState) -> Result<(), kici_store::Error> {
    let now = crate::now_ms();
    for job_id in state.store().expired_queue_ids(now).await? {
        let Some(entry) = state.store().get_queue_entry(&job_id).await? else {
            continue;
        };
        let message = queue_expiry_message(state, &entry);
        if !state
            .store()
            .expire_queue_entry(&job_id, &message, now)
            .await?
        {
            continue;
        }
        tracing::warn!(job = %job_id, reason = %message, "queued job expired before an agent took it");
        publish_job(state, &entry.run_id, &job_id);
        state.metrics().job_finished(State::TimedOutStale.as_str());
        progress::job_finished(state, &entry.run_id).await?;
    }
    Ok(())
}

/// The expiry message of a queue row (§9.4).
fn queue_expiry_message(state: &AppState, entry: &kici_store::QueueEntry) -> String {
    let job = JobLabels {
        require: entry.require.clone(),
        exclude: entry.exclude.clone(),
        patterns: entry.patterns.clone(),
    };
    // A regex that does not compile matches no agent (as in the claim).
    let matched = job
        .compile()
        .is_ok_and(|compiled| state.agents().any_matches(&compiled));
    if matched {
        return QUEUE_EXPIRED.to_string();
    }
    let labels: Vec<String> = entry
        .require
        .iter()
        .cloned()
        .chain(
            entry
                .patterns
                .require
                .iter()
                .map(|p| format!("/{}/{}", p.source, p.flags)),
        )
        .collect();
    format!(
        "{QUEUE_EXPIRED}; no connected agent matches [{}]",
        labels.join(", ")
    )
}
