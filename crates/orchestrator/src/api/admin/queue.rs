//! `queue` (§18.2, §9): the dispatch queue's rows with labels and attempts, and the
//! operator's clear.

use axum::Json;
use axum::extract::{Path, State};
use kici_engine::api::{
    Page, PageQuery, QueueClearAnswer, QueueClearRequest, QueueItem, page_limit,
};

use super::{JsonBody, QueryArgs, decode_cursor, encode_cursor};
use crate::api::AppState;
use crate::api::auth::{Admin, Permission};
use crate::api::views::queue_item;
use crate::error::ApiError;

/// `?pending=true` lists only the rows waiting for an agent.
#[derive(Debug, Default, serde::Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    pub pending: Option<bool>,
    #[serde(flatten)]
    pub page: PageQuery,
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    QueryArgs(query): QueryArgs<QueueQuery>,
) -> Result<Json<Page<QueueItem>>, ApiError> {
    admin.require(Permission::RunRead)?;
    let limit = page_limit(query.page.limit);
    let cursor = decode_cursor(query.page.cursor.as_deref())?;
    let mut rows = state
        .store()
        .list_queue(
            query.pending.unwrap_or(false),
            cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
            i64::from(limit) + 1,
        )
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| encode_cursor(r.created_at, &r.job_id)))
        .flatten();
    Ok(Json(Page {
        items: rows.iter().map(queue_item).collect(),
        next_cursor,
    }))
}

pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<QueueItem>, ApiError> {
    admin.require(Permission::RunRead)?;
    let entry = state
        .store()
        .get_queue_entry(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no queue row {id}")))?;
    Ok(Json(queue_item(&entry)))
}

/// Expires every `pending` row (their jobs become STALE); needs `{"confirm": true}`.
pub async fn clear(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<QueueClearRequest>,
) -> Result<Json<QueueClearAnswer>, ApiError> {
    admin.require(Permission::QueueManage)?;
    if !body.confirm {
        return Err(ApiError::BadRequest(
            "set confirm to true to clear the queue".into(),
        ));
    }
    let expired = state.store().clear_queue(crate::now_ms()).await?;
    for job_id in &expired {
        if let Ok(Some(job)) = state.store().get_job(job_id).await {
            state.events().publish(crate::events::Change::Job {
                run_id: job.run_id,
                job_id: job_id.clone(),
            });
        }
    }
    tracing::info!(expired = expired.len(), by = %admin.token_id, "queue cleared");
    Ok(Json(QueueClearAnswer {
        expired: expired.len() as u64,
    }))
}
