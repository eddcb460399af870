//! `inbox` (§18.2, §3): stored deliveries, dead letters, retry and replay.

use axum::Json;
use axum::extract::{Path, State};
use kici_engine::api::{InboxItem, InboxQuery, InboxRequeued, InboxStatus, Page, page_limit};

use super::{QueryArgs, decode_cursor, encode_cursor};
use crate::api::AppState;
use crate::api::auth::{Admin, Permission};
use crate::api::views::{inbox_item, inbox_status, store_inbox_status};
use crate::error::ApiError;

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    QueryArgs(query): QueryArgs<InboxQuery>,
) -> Result<Json<Page<InboxItem>>, ApiError> {
    admin.require(Permission::EventLogRead)?;
    let limit = page_limit(query.limit);
    let cursor = decode_cursor(query.cursor.as_deref())?;
    let mut items = state
        .store()
        .list_inbox(
            query.status.map(store_inbox_status),
            cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
            i64::from(limit) + 1,
        )
        .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|i| encode_cursor(i.received_at, &i.id)))
        .flatten();
    Ok(Json(Page {
        items: items.iter().map(|i| inbox_item(i, false, false)).collect(),
        next_cursor,
    }))
}

pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    QueryArgs(query): QueryArgs<InboxQuery>,
) -> Result<Json<InboxItem>, ApiError> {
    admin.require(Permission::EventLogRead)?;
    let payload = query.payload.unwrap_or(false);
    if payload {
        admin.require(Permission::EventLogReadPayload)?;
    }
    let item = state
        .store()
        .get_inbox_item(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no inbox item {id}")))?;
    Ok(Json(inbox_item(&item, true, payload)))
}

/// A `dead` or `retry` item goes back to `pending` with `attempts = 0`.
pub async fn retry(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<InboxRequeued>, ApiError> {
    admin.require(Permission::EventDlqManage)?;
    let store = state.store();
    let item = store
        .get_inbox_item(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no inbox item {id}")))?;
    if !store.retry_inbox(&id, crate::now_ms()).await? {
        return Err(ApiError::Conflict(format!(
            "inbox item {id} is {:?}; only dead or retrying items can be retried",
            inbox_status(item.status)
        )));
    }
    state.inner.inbox_wake.notify_one();
    tracing::info!(inbox = %id, by = %admin.token_id, "inbox item retried");
    Ok(Json(InboxRequeued {
        id,
        delivery_id: item.delivery_id,
        status: InboxStatus::Pending,
    }))
}

/// Copies the item (delivery id `<orig>:replay:<n>`) for a full re-processing: new runs.
pub async fn replay(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<InboxRequeued>, ApiError> {
    admin.require(Permission::EventDlqManage)?;
    let store = state.store();
    let new_id = match store.replay_inbox(&id, crate::now_ms()).await {
        Err(kici_store::Error::NotFound { .. }) => {
            return Err(ApiError::NotFound(format!("no inbox item {id}")));
        }
        other => other?,
    };
    let copy = store
        .get_inbox_item(&new_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the replayed item vanished".into()))?;
    state.inner.inbox_wake.notify_one();
    tracing::info!(inbox = %id, replay = %new_id, by = %admin.token_id, "inbox item replayed");
    Ok(Json(InboxRequeued {
        id: new_id,
        delivery_id: copy.delivery_id,
        status: inbox_status(copy.status),
    }))
}
