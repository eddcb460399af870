//! Store rows → the REST bodies of `kici_engine::api` (`orchestrator.md` §18.2). The one
//! place where internal rows meet the versioned wire shapes, so the handlers and the SSE
//! stream answer with identical JSON.

use std::collections::BTreeMap;

use kici_engine::api::{
    InboxItem as ApiInboxItem, InboxOutcome, InboxStatus as ApiInboxStatus, Ingress, JobInfo,
    QueueItem, RunEventSummary, RunSummary, StepInfo, TrustTier,
};
use kici_engine::protocol::StepType;
use kici_store::{InboxItem, InboxStatus, Job, Need, QueueEntry, Run, Step};
use serde_json::Value;

/// Unix ms from the store (never negative in practice) → the API's unsigned form.
pub(crate) fn ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn opt_ms(value: Option<i64>) -> Option<u64> {
    value.map(ms)
}

fn small(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

fn from_json<T: serde::de::DeserializeOwned>(value: Option<&Value>) -> Option<T> {
    value.and_then(|v| serde_json::from_value(v.clone()).ok())
}

pub(crate) fn run_summary(run: &Run) -> RunSummary {
    let str_field = |key: &str| {
        run.event
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    RunSummary {
        run_id: run.run_id.clone(),
        workflow_name: run.workflow_name.clone(),
        status: run.status,
        repo: run.repo_identifier.clone(),
        provider: run.provider.clone(),
        git_ref: run.git_ref.clone(),
        sha: run.sha.clone(),
        event: RunEventSummary {
            event_type: str_field("type").unwrap_or_default(),
            action: str_field("action"),
            target_branch: str_field("targetBranch"),
            source_branch: str_field("sourceBranch"),
        },
        matched_trigger: run
            .decision
            .as_ref()
            .and_then(|d| d.get("matchedTrigger"))
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok()),
        trust_tier: match run.trust_tier.as_str() {
            "trusted" => Some(TrustTier::Trusted),
            "untrusted" => Some(TrustTier::Untrusted),
            _ => None,
        },
        created_at: ms(run.created_at),
        started_at: opt_ms(run.started_at),
        completed_at: opt_ms(run.completed_at),
        duration_ms: opt_ms(run.duration_ms),
        failure_reason: run.failure_reason.clone(),
        init_failure: from_json(run.init_failure.as_ref()),
        cancelled_by: run.cancelled_by.clone(),
        is_test_run: run.is_test_run.then_some(true),
        parent_run_id: run.parent_run_id.clone(),
        triggered_by: run.triggered_by.clone(),
    }
}

pub(crate) fn step_info(step: &Step) -> StepInfo {
    StepInfo {
        index: step.step_index,
        name: step.step_name.clone(),
        step_type: step
            .step_type
            .as_deref()
            .and_then(StepType::parse)
            .unwrap_or(StepType::Step),
        status: step.status,
        started_at: opt_ms(step.started_at),
        completed_at: opt_ms(step.completed_at),
        duration_ms: opt_ms(step.duration_ms),
        exit_code: step.exit_code.and_then(|c| i32::try_from(c).ok()),
        error: step.error_message.clone(),
        attempts: step.attempts.map(small),
        log_bytes: (step.log_bytes > 0).then(|| ms(step.log_bytes)),
        secrets_accessed: from_json(step.secrets_accessed.as_ref()),
    }
}

/// A job with its steps; `needs` are the run's edges (filtered to this job).
pub(crate) fn job_info(job: &Job, steps: &[Step], needs: &[Need]) -> JobInfo {
    let upstream: Vec<String> = needs
        .iter()
        .filter(|n| n.job_name == job.job_name)
        .map(|n| n.upstream_name.clone())
        .collect();
    let matrix_values = job
        .matrix_values
        .as_ref()
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect::<BTreeMap<_, _>>()
        });
    JobInfo {
        job_id: job.job_id.clone(),
        name: job.job_name.clone(),
        base_name: job.base_job_name.clone(),
        status: job.status,
        matrix_values,
        agent_id: job.agent_id.clone(),
        attempt: (job.dispatch_attempts > 0).then(|| small(job.dispatch_attempts)),
        started_at: opt_ms(job.started_at),
        completed_at: opt_ms(job.completed_at),
        duration_ms: opt_ms(job.duration_ms),
        error: job.error_message.clone(),
        skip_reason: job.skip_reason.clone(),
        init_failure: from_json(job.init_failure.as_ref()),
        runs_on: from_json(job.runs_on.as_ref()),
        needs: (!upstream.is_empty()).then_some(upstream),
        environments: from_json(job.environments.as_ref()),
        outputs: job.outputs.as_ref().and_then(Value::as_object).cloned(),
        steps: steps.iter().map(step_info).collect(),
    }
}

pub(crate) fn queue_item(entry: &QueueEntry) -> QueueItem {
    let patterns = serde_json::to_value(&entry.patterns)
        .ok()
        .filter(|v| !v.as_object().is_some_and(|m| m.values().all(is_empty_list)));
    QueueItem {
        id: entry.job_id.clone(),
        run_id: entry.run_id.clone(),
        workflow_name: entry.workflow_name.clone(),
        job_name: entry.job_name.clone(),
        status: entry.status,
        require_labels: entry.require.clone(),
        exclude_labels: entry.exclude.clone(),
        patterns,
        pinned_agent_id: entry.pinned_agent_id.clone(),
        agent_id: entry.agent_id.clone(),
        dispatch_attempts: small(entry.dispatch_attempts),
        created_at: ms(entry.created_at),
        expires_at: opt_ms(entry.expires_at),
        dispatched_at: opt_ms(entry.dispatched_at),
        ack_deadline: opt_ms(entry.ack_deadline),
        recovery_deadline: opt_ms(entry.recovery_deadline),
        last_error: entry.last_error.clone(),
    }
}

fn is_empty_list(v: &Value) -> bool {
    v.as_array().is_some_and(Vec::is_empty) || v.is_null()
}

pub(crate) fn inbox_status(status: InboxStatus) -> ApiInboxStatus {
    match status {
        InboxStatus::Pending => ApiInboxStatus::Pending,
        InboxStatus::Processing => ApiInboxStatus::Processing,
        InboxStatus::Retry => ApiInboxStatus::Retry,
        InboxStatus::Done => ApiInboxStatus::Done,
        InboxStatus::Dead => ApiInboxStatus::Dead,
    }
}

pub(crate) fn store_inbox_status(status: ApiInboxStatus) -> InboxStatus {
    match status {
        ApiInboxStatus::Pending => InboxStatus::Pending,
        ApiInboxStatus::Processing => InboxStatus::Processing,
        ApiInboxStatus::Retry => InboxStatus::Retry,
        ApiInboxStatus::Done => InboxStatus::Done,
        ApiInboxStatus::Dead => InboxStatus::Dead,
    }
}

/// An inbox item; `detail` adds the decisions, `payload` the body.
pub(crate) fn inbox_item(item: &InboxItem, detail: bool, payload: bool) -> ApiInboxItem {
    let ingress = match item.ingress.as_str() {
        "relay" => Ingress::Relay,
        "schedule" => Ingress::Schedule,
        "manual" => Ingress::Manual,
        _ => Ingress::Direct,
    };
    let outcome = item
        .outcome
        .as_deref()
        .and_then(|o| serde_json::from_value::<InboxOutcome>(Value::String(o.to_string())).ok());
    let body = payload.then(|| match item.body.as_deref() {
        Some(bytes) => serde_json::from_slice(bytes).unwrap_or_else(|_| {
            serde_json::json!({
                "rawBody": String::from_utf8_lossy(bytes),
                "contentType": item.headers.get("content-type").cloned().unwrap_or(Value::Null),
            })
        }),
        None => Value::Null,
    });
    ApiInboxItem {
        id: item.id.clone(),
        routing_key: item.routing_key.clone(),
        delivery_id: item.delivery_id.clone(),
        ingress,
        provider: item.provider.clone(),
        event: item.event.clone(),
        action: item.action.clone(),
        status: inbox_status(item.status),
        attempts: small(item.attempts),
        received_at: ms(item.received_at),
        next_attempt_at: matches!(item.status, InboxStatus::Pending | InboxStatus::Retry)
            .then(|| ms(item.next_attempt_at)),
        last_error: item.last_error.clone(),
        outcome,
        processed_at: opt_ms(item.processed_at),
        run_ids: item.run_ids.clone(),
        body_size: ms(item.body_size),
        decisions: if detail { item.decisions.clone() } else { None },
        payload: body,
    }
}
