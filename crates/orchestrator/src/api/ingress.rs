//! Webhook ingress (`orchestrator.md` §4): verify, persist, answer. Processing happens later
//! in the inbox workers ([`crate::pipeline`]); the answer is sent only after the insert
//! committed, so a crash after 202 loses nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use kici_engine::api::{WebhookAnswer, WebhookStatus};
use kici_engine::provider::{self, Headers};
use kici_engine::signature;
use kici_store::{InsertOutcome, NewDelivery};

use super::AppState;
use crate::error::ApiError;

/// Headers kept with an inbox item: what normalising needs later.
const KEPT_HEADERS: &[&str] = &[
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type",
    "content-type",
];

/// The request headers as the engine sees them (non-UTF-8 values are dropped).
fn engine_headers(headers: &HeaderMap) -> Headers {
    Headers::from_pairs(
        headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
    )
}

/// `POST /webhook/{org_id}/github` (§4.1).
pub async fn github(
    State(state): State<AppState>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let metrics = state.metrics();
    let headers = engine_headers(&headers);
    let app = provider::github_app_headers(&headers).map_err(|e| {
        metrics.webhook_rejected("bad_request");
        ApiError::BadRequest(e.to_string())
    })?;
    let routing_key = app.routing_key();
    let source = state
        .inner
        .sources
        .get(&routing_key)
        .filter(|s| s.org_id == org_id)
        .ok_or_else(|| {
            metrics.webhook_rejected("unknown_source");
            ApiError::NotFound(format!(
                "no GitHub source for {routing_key} in org {org_id}"
            ))
        })?;
    let secrets = source.webhook_secrets();
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.expose().as_bytes()).collect();
    signature::verify_github_signature(
        headers.get(signature::GITHUB_SIGNATURE_HEADER),
        &body,
        &secrets,
    )
    .map_err(|e| {
        metrics.webhook_rejected("signature");
        tracing::info!(%routing_key, delivery = %app.delivery_id, error = %e, "webhook refused");
        ApiError::Unauthorized(e.to_string())
    })?;
    if provider::is_unstored_github_event(&app.event) {
        return Ok(answer(StatusCode::OK, WebhookStatus::Ignored, None));
    }
    let payload = provider::parse_body(&body).map_err(|e| {
        metrics.webhook_rejected("malformed_json");
        ApiError::BadRequest(e.to_string())
    })?;
    let mut delivery = NewDelivery::inline(
        &source.org_id,
        &routing_key,
        &app.delivery_id,
        "direct",
        source.provider(),
        &app.event,
        body.to_vec(),
        crate::now_ms(),
    );
    delivery.source_id = Some(source.id.clone());
    delivery.action = payload
        .get("action")
        .and_then(|a| a.as_str())
        .map(str::to_string);
    delivery.headers = serde_json::Value::Object(headers.retain_for_inbox(KEPT_HEADERS));

    match state.store().insert_delivery(&delivery).await? {
        InsertOutcome::Inserted { id } | InsertOutcome::Revived { id } => {
            metrics.webhook_received("direct", &app.event);
            state.inner.inbox_wake.notify_one();
            Ok(answer(
                StatusCode::ACCEPTED,
                WebhookStatus::Accepted,
                Some(id),
            ))
        }
        InsertOutcome::Duplicate { .. } => {
            metrics.dedup_hit();
            Ok(answer(StatusCode::OK, WebhookStatus::Duplicate, None))
        }
    }
}

fn answer(
    status: StatusCode,
    webhook: WebhookStatus,
    id: Option<String>,
) -> (StatusCode, Json<WebhookAnswer>) {
    (
        status,
        Json(WebhookAnswer {
            status: webhook,
            id,
        }),
    )
}
