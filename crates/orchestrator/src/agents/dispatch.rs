//! Dispatch (`orchestrator.md` §9.3, `protocol.md` §4.1, §6): one dispatcher task claims
//! queue rows for agents with free slots and sends `job.dispatch`. It runs when woken
//! (enqueue, a freed slot, a new agent, a reject) and on the drain tick, so every path
//! that can make a row claimable needs nothing more than [`AppState::wake_dispatch`].
//!
//! A single task does every claim, so slot reservations in the registry never race each
//! other; the claim itself is the store's atomic compare-and-set, so another node (later)
//! cannot take the same row either.

use std::collections::BTreeMap;

use kici_engine::protocol::{
    GitAuthKind, JobConfig, JobDispatch, JobStatus, MatrixChild, OrchestratorMessage,
};
use kici_engine::state::{Event, State};
use kici_store::{ClaimedJob, Job, JobUpdate, Requeue, Run};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::progress;
use super::registry::FreeAgent;
use super::reports::publish_job;
use crate::api::AppState;

/// The dispatcher task: a pass on every wake-up and every drain interval.
pub(crate) async fn run_dispatcher(state: AppState, cancel: CancellationToken) {
    let interval = state.inner.config.agents.queue_drain_interval;
    loop {
        dispatch_pass(&state).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = state.inner.dispatch_wake.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Hands out queue rows until no agent with a free slot can claim one.
pub(crate) async fn dispatch_pass(state: &AppState) {
    let _pass = state.agents().dispatch_lock.lock().await;
    for agent in state.agents().free_agents(crate::now_ms()) {
        // Every claim consumes a pending row, so this ends; the bound is a safety net.
        for _ in 0..MAX_CLAIMS_PER_AGENT {
            let free = state.agents().free_slots(
                &agent.profile.agent_id,
                agent.connection_id,
                crate::now_ms(),
            );
            if free == 0 {
                break;
            }
            match dispatch_one(state, &agent).await {
                Ok(Dispatched::Sent | Dispatched::Settled) => continue,
                Ok(Dispatched::Nothing) => break,
                Err(e) => {
                    tracing::warn!(agent = %agent.profile.agent_id, error = %e, "dispatch failed");
                    break;
                }
            }
        }
    }
}

/// Claims one agent may make in one pass (each one takes a pending row).
const MAX_CLAIMS_PER_AGENT: usize = 10_000;

/// What one claim attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dispatched {
    /// A job was sent (to this agent, or to another one by `runsOnPick: any`).
    Sent,
    /// A row was claimed and settled without a dispatch (failed, already ended): go on.
    Settled,
    /// Nothing claimable for this agent.
    Nothing,
}

/// A claimed row goes back to the queue; a row whose attempts ran out fails its job, and
/// the run progresses (else its dependants would wait forever).
async fn give_back(
    state: &AppState,
    claimed: &ClaimedJob,
    reason: &str,
) -> Result<(), kici_store::Error> {
    state.agents().release(&claimed.job_id);
    match state
        .store()
        .requeue_job(&claimed.job_id, reason, crate::now_ms())
        .await?
    {
        Requeue::Exhausted { attempts } => {
            tracing::warn!(job = %claimed.job_id, attempts, "re-dispatch attempts exhausted");
            publish_job(state, &claimed.run_id, &claimed.job_id);
            state.metrics().job_finished(State::Failed.as_str());
            progress::job_finished(state, &claimed.run_id).await?;
        }
        Requeue::Requeued { .. } | Requeue::NotDispatched => {}
    }
    Ok(())
}

/// `runsOnPick: any` (§9.3): the agent the job goes to when it is not `claimer`.
async fn pick_any(
    state: &AppState,
    claimed: &ClaimedJob,
    claimer: &str,
    now: i64,
) -> Result<Option<(String, u64)>, kici_store::Error> {
    if state.agents().free_agents(now).len() < 2 {
        return Ok(None);
    }
    let Some(job) = state.store().get_job(&claimed.job_id).await? else {
        return Ok(None);
    };
    if job.job_config.get("runsOnPick").and_then(Value::as_str) != Some("any") {
        return Ok(None);
    }
    let Ok(labels) = progress::job_labels(&job.job_config).compile() else {
        return Ok(None);
    };
    Ok(state
        .agents()
        .least_recently_dispatched(&labels, now)
        .filter(|(agent_id, _)| agent_id != claimer))
}

/// Claims and sends one job; the claim is `claimer`'s (the pull path of §9.3), the
/// dispatch goes to it or, for `runsOnPick: any`, to the least recently dispatched-to
/// matching agent.
async fn dispatch_one(
    state: &AppState,
    claimer: &FreeAgent,
) -> Result<Dispatched, kici_store::Error> {
    let store = state.store();
    let now = crate::now_ms();
    let Some(claimed) = store.claim_next(&claimer.profile, now).await? else {
        return Ok(Dispatched::Nothing);
    };
    let mut agent_id = claimer.profile.agent_id.clone();
    let mut connection_id = claimer.connection_id;
    if let Some((other, other_connection)) = pick_any(state, &claimed, &agent_id, now).await?
        && store
            .reassign_dispatch(&claimed.job_id, &agent_id, &other)
            .await?
    {
        agent_id = other;
        connection_id = other_connection;
    }
    let agent_id = agent_id.as_str();
    if !state
        .agents()
        .add_active(agent_id, connection_id, &claimed.job_id)
    {
        give_back(state, &claimed, "agent disconnected before dispatch").await?;
        return Ok(if agent_id == claimer.profile.agent_id {
            Dispatched::Nothing
        } else {
            Dispatched::Settled
        });
    }
    let frame = match build_dispatch(state, &claimed, agent_id).await {
        Ok(frame) => frame,
        Err(BuildError::Store(e)) => {
            give_back(state, &claimed, "dispatch frame could not be built").await?;
            return Err(e);
        }
        Err(BuildError::Ended(status)) => {
            // Settled while it waited (a fail-fast skip or a cancel raced the claim): the
            // terminal write already closed the row; nothing to send.
            state.agents().release(&claimed.job_id);
            tracing::debug!(job = %claimed.job_id, %status, "claimed job already ended; not dispatched");
            return Ok(Dispatched::Settled);
        }
        Err(BuildError::Invalid(message)) => {
            // Nothing the agent could run: fail the job rather than requeue it forever.
            state.agents().release(&claimed.job_id);
            tracing::error!(job = %claimed.job_id, error = %message, "job cannot be dispatched");
            let update = JobUpdate {
                error_message: Some(message),
                ..JobUpdate::default()
            };
            if store
                .transition_job(&claimed.job_id, Event::Fail, &update, now)
                .await
                .is_ok()
            {
                publish_job(state, &claimed.run_id, &claimed.job_id);
                state.metrics().job_finished(State::Failed.as_str());
                progress::job_finished(state, &claimed.run_id).await?;
            }
            return Ok(Dispatched::Settled);
        }
    };
    let waited_ms = now.saturating_sub(claimed.queued_at);
    if !state
        .agents()
        .send(agent_id, OrchestratorMessage::JobDispatch(Box::new(frame)))
    {
        give_back(
            state,
            &claimed,
            "agent connection could not take the dispatch",
        )
        .await?;
        return Ok(if agent_id == claimer.profile.agent_id {
            Dispatched::Nothing
        } else {
            Dispatched::Settled
        });
    }
    state.agents().note_dispatch(agent_id, connection_id);
    state
        .metrics()
        .observe_dispatch_latency(u64::try_from(waited_ms).unwrap_or(0));
    tracing::info!(job = %claimed.job_id, job_name = %claimed.job_name, agent = %agent_id, attempt = claimed.dispatch_attempts + 1, "job dispatched");
    Ok(Dispatched::Sent)
}

#[derive(Debug)]
enum BuildError {
    Store(kici_store::Error),
    /// The job is no longer `queued` (it ended after the claim).
    Ended(State),
    /// The stored job cannot become a dispatch frame.
    Invalid(String),
}

impl From<kici_store::Error> for BuildError {
    fn from(e: kici_store::Error) -> Self {
        BuildError::Store(e)
    }
}

/// The `job.dispatch` frame (§4.1): the stored job configuration completed with the run's
/// event and the orchestrator keys of §4.2, clone location and credentials of the run's
/// source, and the outputs and statuses of the job's upstreams (§12.3).
async fn build_dispatch(
    state: &AppState,
    claimed: &ClaimedJob,
    agent_id: &str,
) -> Result<JobDispatch, BuildError> {
    let store = state.store();
    let job = store
        .get_job(&claimed.job_id)
        .await?
        .ok_or_else(|| BuildError::Invalid("job row is missing".to_string()))?;
    if job.status != State::Queued {
        return Err(BuildError::Ended(job.status));
    }
    let run = store
        .get_run(&claimed.run_id)
        .await?
        .ok_or_else(|| BuildError::Invalid("run row is missing".to_string()))?;
    let upstream_names: Vec<String> = store
        .list_needs(&run.run_id)
        .await?
        .into_iter()
        .filter(|n| n.job_name == job.job_name)
        .map(|n| n.upstream_name)
        .collect();
    // Most jobs have no upstreams: then the run's other jobs need not be read.
    let jobs = if upstream_names.is_empty() {
        Vec::new()
    } else {
        store.list_jobs(&run.run_id).await?
    };
    let mut upstream_outputs = Map::new();
    let mut upstream_statuses = BTreeMap::new();
    for name in &upstream_names {
        let Some(upstream) = jobs.iter().find(|j| &j.job_name == name) else {
            continue;
        };
        if let Some(outputs) = &upstream.outputs {
            upstream_outputs.insert(name.clone(), outputs.clone());
        }
        if let Some(status) = wire_status(upstream.status) {
            upstream_statuses.insert(name.clone(), status);
        }
    }
    let attempt = u32::try_from(claimed.dispatch_attempts + 1).unwrap_or(u32::MAX);
    let mut job_config = job_config(&job, &run, &upstream_names, attempt)?;
    let upstream_matrix: BTreeMap<String, MatrixChild> = upstream_names
        .iter()
        .filter_map(|name| {
            let upstream = jobs.iter().find(|j| &j.job_name == name)?;
            upstream.matrix_values.as_ref()?;
            Some((
                name.clone(),
                MatrixChild::of(name, &upstream.base_job_name)?,
            ))
        })
        .collect();
    job_config.upstream_matrix = (!upstream_matrix.is_empty()).then_some(upstream_matrix);

    let capable = state.agents().has_capabilities(agent_id);
    let source = state.sources().get(&run.routing_key);
    let (repo_url, source_auth) = match (&source, job_config.checkout_or_default()) {
        (_, false) => (String::new(), None),
        (Some(source), true) => (source.clone_url(&run.repo_identifier), source.clone_auth()),
        (None, true) => {
            return Err(BuildError::Invalid(format!(
                "the run's source {} no longer exists",
                run.routing_key
            )));
        }
    };
    // Agents without capabilities (the reference agent) clone with `--branch <name>` and
    // read the credential from the legacy `token` field (§4.1).
    let git_ref = if capable {
        run.git_ref.clone()
    } else {
        run.git_ref
            .strip_prefix("refs/heads/")
            .or_else(|| run.git_ref.strip_prefix("refs/tags/"))
            .unwrap_or(&run.git_ref)
            .to_string()
    };
    let token = match (&source_auth, capable) {
        (Some(auth), false) if auth.kind == GitAuthKind::Basic => Some(auth.secret.clone()),
        _ => None,
    };
    Ok(JobDispatch {
        message_id: kici_store::new_id(),
        run_id: run.run_id.clone(),
        job_id: job.job_id.clone(),
        repo_url,
        git_ref,
        sha: run.sha.clone(),
        lock_file_url: String::new(),
        timestamp: u64::try_from(crate::now_ms()).unwrap_or(0),
        token,
        source_auth,
        workflow_auth: None,
        secrets: None,
        namespaced_secrets: None,
        max_log_size_bytes: None,
        request_id: None,
        upstream_job_outputs: (!upstream_outputs.is_empty()).then_some(upstream_outputs),
        upstream_job_statuses: (!upstream_statuses.is_empty()).then_some(upstream_statuses),
        org_id: Some(run.org_id.clone()),
        repo_id: None,
        job_config,
    })
}

/// A job state as `upstreamJobStatuses` carries it; the orchestrator-only states have no
/// wire form.
fn wire_status(state: State) -> Option<JobStatus> {
    Some(match state {
        State::Pending => JobStatus::Pending,
        State::Queued => JobStatus::Queued,
        State::Running => JobStatus::Running,
        State::Recovering => JobStatus::Recovering,
        State::Cancelling => JobStatus::Cancelling,
        State::Success => JobStatus::Success,
        State::Failed => JobStatus::Failed,
        State::Cancelled => JobStatus::Cancelled,
        State::Skipped => JobStatus::Skipped,
        State::TimedOutStale => JobStatus::TimedOutStale,
        State::DriftDropped => JobStatus::DriftDropped,
        State::Held | State::Waiting => return None,
    })
}

/// `jobConfig` (§4.2) from the stored lock entry: the expanded name and needs, the run's
/// event and provider, the system variables, and the job `env` moved to `jobEnv` (in the
/// lock `env` is the job's; on the wire it is the system variables).
fn job_config(
    job: &Job,
    run: &Run,
    upstream_names: &[String],
    attempt: u32,
) -> Result<JobConfig, BuildError> {
    let Value::Object(mut config) = job.job_config.clone() else {
        return Err(BuildError::Invalid(
            "job configuration is not an object".to_string(),
        ));
    };
    match config.remove("env") {
        Some(Value::Object(env)) if env.values().all(Value::is_string) => {
            config.insert("jobEnv".to_string(), Value::Object(env));
        }
        Some(Value::Null) | None => {}
        // An inline or impure `env` is evaluated by the runner.
        Some(_) => {
            config.insert("dynamicEnvAtRuntime".to_string(), Value::Bool(true));
        }
    }
    let environments: Vec<String> = job
        .environments
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    config.remove("environments");
    if let Some(first) = environments.first() {
        config.insert("environment".to_string(), json!(first));
        config.insert("environments".to_string(), json!(environments));
    }
    config.insert("name".to_string(), json!(job.job_name));
    config.insert("baseJobName".to_string(), json!(job.base_job_name));
    config.insert("workflowName".to_string(), json!(run.workflow_name));
    config.insert("needs".to_string(), json!(upstream_names));
    config.insert("event".to_string(), run.event.clone());
    config.insert("provider".to_string(), json!(run.provider));
    config.insert("attempt".to_string(), json!(attempt));
    if let Some(Value::Object(values)) = &job.matrix_values {
        let strings: Map<String, Value> = values
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(text))
            })
            .collect();
        config.insert("matrixValues".to_string(), Value::Object(strings));
    }
    if run.concurrency.is_some() {
        config.insert("hasConcurrencyGroup".to_string(), Value::Bool(true));
    }
    config.insert("env".to_string(), json!(system_env(job, run, attempt)));
    serde_json::from_value(Value::Object(config))
        .map_err(|e| BuildError::Invalid(format!("job configuration is invalid: {e}")))
}

/// KiCI system variables (`sdk.md` §14 layer 3) the orchestrator knows; `KICI_WORKSPACE`
/// is the agent's.
fn system_env(job: &Job, run: &Run, attempt: u32) -> BTreeMap<String, String> {
    let event = &run.event;
    let text = |key: &str| {
        event
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut env = BTreeMap::new();
    env.insert("KICI".to_string(), "true".to_string());
    env.insert("KICI_RUN_ID".to_string(), run.run_id.clone());
    env.insert("KICI_JOB_ID".to_string(), job.job_id.clone());
    env.insert("KICI_JOB_NAME".to_string(), job.job_name.clone());
    env.insert("KICI_WORKFLOW_NAME".to_string(), run.workflow_name.clone());
    env.insert("KICI_REPO".to_string(), run.repo_identifier.clone());
    env.insert("KICI_REF".to_string(), run.git_ref.clone());
    env.insert("KICI_SHA".to_string(), run.sha.clone());
    env.insert("KICI_BRANCH".to_string(), text("targetBranch"));
    env.insert("KICI_EVENT_TYPE".to_string(), text("type"));
    env.insert("KICI_EVENT_ACTION".to_string(), text("action"));
    env.insert("KICI_PROVIDER".to_string(), run.provider.clone());
    env.insert("KICI_IS_TEST_RUN".to_string(), run.is_test_run.to_string());
    env.insert("KICI_ATTEMPT".to_string(), attempt.to_string());
    env
}
