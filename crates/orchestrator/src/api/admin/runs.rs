//! Runs, jobs, step logs and manual dispatch (§18.2, §8.4).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kici_engine::api::{
    DispatchAccepted, DispatchRequest, JobInfo, LogLine, LogPage, LogQuery, Page, RunDetail,
    RunListQuery, RunSummary, log_limit, page_limit,
};
use kici_store::{NewDelivery, RunFilter, Store};
use serde_json::json;

use super::{JsonBody, QueryArgs, decode_cursor, encode_cursor};
use crate::api::AppState;
use crate::api::auth::{Admin, Permission};
use crate::api::views::{job_info, run_summary};
use crate::error::ApiError;

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    QueryArgs(query): QueryArgs<RunListQuery>,
) -> Result<Json<Page<RunSummary>>, ApiError> {
    admin.require(Permission::RunRead)?;
    let limit = page_limit(query.limit);
    let cursor = decode_cursor(query.cursor.as_deref())?;
    let filter = RunFilter {
        status: query.status,
        workflow: query.workflow,
        repo: query.repo,
        branch: query.branch,
        since: query.since.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
    };
    // One extra row tells whether another page exists.
    let mut runs = state
        .store()
        .list_runs_filtered(
            &filter,
            cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
            i64::from(limit) + 1,
        )
        .await?;
    let more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    let next_cursor = more
        .then(|| runs.last().map(|r| encode_cursor(r.created_at, &r.run_id)))
        .flatten();
    Ok(Json(Page {
        items: runs.iter().map(run_summary).collect(),
        next_cursor,
    }))
}

/// A run's jobs with their steps, in lock order.
pub(crate) async fn load_jobs(store: &Store, run_id: &str) -> Result<Vec<JobInfo>, ApiError> {
    let needs = store.list_needs(run_id).await?;
    let mut out = Vec::new();
    for job in store.list_jobs(run_id).await? {
        let steps = store.list_steps(&job.job_id).await?;
        out.push(job_info(&job, &steps, &needs));
    }
    Ok(out)
}

pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(run_id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    admin.require(Permission::RunRead)?;
    let run = state
        .store()
        .get_run(&run_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {run_id}")))?;
    Ok(Json(RunDetail {
        summary: run_summary(&run),
        jobs: load_jobs(state.store(), &run_id).await?,
        decision: run.decision.clone(),
    }))
}

pub async fn jobs(
    State(state): State<AppState>,
    admin: Admin,
    Path(run_id): Path<String>,
) -> Result<Json<Vec<JobInfo>>, ApiError> {
    admin.require(Permission::RunRead)?;
    if state.store().get_run(&run_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no run {run_id}")));
    }
    Ok(Json(load_jobs(state.store(), &run_id).await?))
}

/// Whether a step's log can still grow: the step (or, for the prepare log and steps that
/// never reported, the job) has not ended.
pub(crate) async fn log_complete(
    store: &Store,
    job_id: &str,
    step_index: i64,
) -> Result<bool, ApiError> {
    let steps = store.list_steps(job_id).await?;
    if let Some(step) = steps.iter().find(|s| s.step_index == step_index)
        && step.status.is_terminal()
    {
        return Ok(true);
    }
    Ok(store
        .get_job(job_id)
        .await?
        .is_some_and(|job| job.status.is_terminal()))
}

pub async fn logs(
    State(state): State<AppState>,
    admin: Admin,
    Path((run_id, job_id, step_index)): Path<(String, String, i64)>,
    QueryArgs(query): QueryArgs<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    admin.require(Permission::RunRead)?;
    let store = state.store();
    let job = store
        .get_job(&job_id)
        .await?
        .filter(|j| j.run_id == run_id)
        .ok_or_else(|| ApiError::NotFound(format!("no job {job_id} in run {run_id}")))?;
    let offset = i64::try_from(query.offset.unwrap_or(0)).unwrap_or(i64::MAX);
    let page = store
        .read_step_log(
            &job.job_id,
            step_index,
            offset,
            i64::from(log_limit(query.limit)),
        )
        .await?;
    let complete =
        log_complete(store, &job.job_id, step_index).await? && page.next_offset >= page.total_lines;
    Ok(Json(LogPage {
        lines: page
            .lines
            .into_iter()
            .map(|l| LogLine {
                n: crate::api::views::ms(l.n),
                ts: iso8601_ms(l.ts),
                text: l.text,
            })
            .collect(),
        next_offset: crate::api::views::ms(page.next_offset),
        total_lines: crate::api::views::ms(page.total_lines),
        complete,
    }))
}

/// `POST dispatch`: a manual run request becomes an inbox item (provider `manual`) and is
/// processed like any delivery (§8.4).
pub async fn dispatch(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<DispatchRequest>,
) -> Result<(StatusCode, Json<DispatchAccepted>), ApiError> {
    admin.require(Permission::RunDispatch)?;
    let source = state
        .sources()
        .by_name("default", &body.source)
        .ok_or_else(|| ApiError::NotFound(format!("no source {}", body.source)))?;
    if kici_engine::provider::repo_url("{owner}/{name}", &body.repo).is_none() {
        return Err(ApiError::BadRequest(format!(
            "repo {:?} is not an owner/name identifier",
            body.repo
        )));
    }
    if body.event_type.trim().is_empty() {
        return Err(ApiError::BadRequest("type must not be empty".into()));
    }
    if let Some(sha) = &body.sha
        && !kici_engine::provider::is_full_sha(sha)
    {
        return Err(ApiError::BadRequest("sha must be a full commit id".into()));
    }
    if let Some(event) = &body.event {
        if body.sha.is_none() {
            return Err(ApiError::BadRequest(
                "a dispatch with an event needs the sha of the commit to run".into(),
            ));
        }
        if let Err(e) = serde_json::from_value::<kici_engine::event::Event>(event.clone()) {
            return Err(ApiError::BadRequest(format!("event: {e}")));
        }
    }
    let payload = json!({
        "event": body.event,
        "workflow": body.workflow,
        "source": body.source,
        "repo": body.repo,
        "type": body.event_type,
        "branch": body.branch,
        "sha": body.sha,
        "inputs": body.inputs.clone().unwrap_or_default(),
        "requestedBy": admin.actor(),
    });
    let delivery_id = format!("manual:{}", kici_store::new_id());
    let mut delivery = NewDelivery::inline(
        &source.org_id,
        &source.routing_key,
        &delivery_id,
        "manual",
        "manual",
        "dispatch",
        payload.to_string().into_bytes(),
        crate::now_ms(),
    );
    delivery.source_id = Some(source.id.clone());
    delivery.action = Some(body.event_type.clone());
    delivery.headers = json!({ "content-type": "application/json" });
    let id = match state.store().insert_delivery(&delivery).await? {
        kici_store::InsertOutcome::Inserted { id }
        | kici_store::InsertOutcome::Revived { id }
        | kici_store::InsertOutcome::Duplicate { id } => id,
    };
    state.metrics().webhook_received("manual", "dispatch");
    state.inner.inbox_wake.notify_one();
    tracing::info!(inbox = %id, source = %source.name, repo = %body.repo, by = %admin.token_id, "manual dispatch queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(DispatchAccepted { inbox_id: id }),
    ))
}

/// `POST runs/:runId/rerun` (ours): the run's workflow again, at the same commit with the same
/// event, as a new run whose `parentRunId` is the original.
pub async fn rerun(
    State(state): State<AppState>,
    admin: Admin,
    Path(run_id): Path<String>,
) -> Result<(StatusCode, Json<DispatchAccepted>), ApiError> {
    admin.require(Permission::RunDispatch)?;
    let run = state
        .store()
        .get_run(&run_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {run_id}")))?;
    if !run.status.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "run {run_id} is still {}; cancel it or wait for it to end",
            run.status.as_str()
        )));
    }
    if run.workflow_name == crate::plan::UNRESOLVED_WORKFLOW {
        return Err(ApiError::Conflict(format!(
            "run {run_id} never resolved its lock; push a fixed lock instead"
        )));
    }
    let source = state.sources().get(&run.routing_key).ok_or_else(|| {
        ApiError::Conflict(format!("the source of run {run_id} no longer exists"))
    })?;
    let payload = json!({
        "event": run.event,
        "workflow": run.workflow_name,
        "source": source.name,
        "repo": run.repo_identifier,
        "type": run.event.get("type").and_then(serde_json::Value::as_str).unwrap_or("push"),
        "sha": run.sha,
        "parentRunId": run.run_id,
        "requestedBy": admin.actor(),
    });
    let mut delivery = NewDelivery::inline(
        &source.org_id,
        &source.routing_key,
        &format!("rerun:{}", kici_store::new_id()),
        "manual",
        "manual",
        "rerun",
        payload.to_string().into_bytes(),
        crate::now_ms(),
    );
    delivery.source_id = Some(source.id.clone());
    delivery.headers = json!({ "content-type": "application/json" });
    let id = match state.store().insert_delivery(&delivery).await? {
        kici_store::InsertOutcome::Inserted { id }
        | kici_store::InsertOutcome::Revived { id }
        | kici_store::InsertOutcome::Duplicate { id } => id,
    };
    state.inner.inbox_wake.notify_one();
    tracing::info!(inbox = %id, run = %run_id, by = %admin.token_id, "re-run queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(DispatchAccepted { inbox_id: id }),
    ))
}

/// Unix ms → `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), without a date library.
pub(crate) fn iso8601_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn cancel_options(body: kici_engine::api::CancelRequest) -> crate::agents::CancelOptions {
    crate::agents::CancelOptions {
        force: body.force.unwrap_or(false),
        reason: body.reason,
    }
}

/// `POST runs/{id}/cancel` (§13), through the agent side's cancel.
pub async fn cancel(
    State(state): State<AppState>,
    admin: Admin,
    Path(run_id): Path<String>,
    JsonBody(body): JsonBody<kici_engine::api::CancelRequest>,
) -> Result<(StatusCode, Json<kici_engine::api::CancelAnswer>), ApiError> {
    admin.require(Permission::RunCancel)?;
    let answer =
        crate::agents::cancel_run_with(&state, &run_id, &admin.actor(), &cancel_options(body))
            .await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// `POST runs/{id}/jobs/{jobId}/cancel` (§13).
pub async fn cancel_job(
    State(state): State<AppState>,
    admin: Admin,
    Path((run_id, job_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<kici_engine::api::CancelRequest>,
) -> Result<(StatusCode, Json<kici_engine::api::CancelAnswer>), ApiError> {
    admin.require(Permission::RunCancel)?;
    let answer = crate::agents::cancel_job_with(
        &state,
        &run_id,
        &job_id,
        &admin.actor(),
        &cancel_options(body),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_iso_timestamps() {
        assert_eq!(super::iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::iso8601_ms(1_767_000_000_123),
            "2025-12-29T09:20:00.123Z"
        );
        assert_eq!(
            super::iso8601_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
