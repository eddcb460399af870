//! The admin REST API under `/api/v1/admin` (`orchestrator.md` §18), split by resource.
//! Every handler takes an [`Admin`](super::auth::Admin) (401 without a valid token) and
//! checks its permission first (403).

pub mod inbox;
pub mod queue;
pub mod runs;
pub mod sources;
pub mod system;
pub mod tokens;

use axum::Router;
use axum::routing::{get, post};
use kici_engine::api::{ADMIN_PREFIX, API_PREFIX};

use super::AppState;
use super::sse;
use crate::error::ApiError;

/// Every `/api/v1` route of this module.
pub fn router() -> Router<AppState> {
    let admin = Router::new()
        .route(
            "/tokens",
            post(tokens::create_admin).get(tokens::list_admin),
        )
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke_admin))
        .route(
            "/agent-tokens",
            post(tokens::create_agent).get(tokens::list_agent),
        )
        .route(
            "/agent-tokens/{id}",
            axum::routing::delete(tokens::revoke_agent),
        )
        .route("/sources", post(sources::create).get(sources::list))
        .route(
            "/sources/{name}",
            get(sources::show)
                .patch(sources::update)
                .delete(sources::delete),
        )
        .route("/sources/{name}/enable", post(sources::enable))
        .route("/sources/{name}/disable", post(sources::disable))
        .route("/runs", get(runs::list))
        .route("/runs/{run_id}", get(runs::show))
        .route("/runs/{run_id}/jobs", get(runs::jobs))
        .route(
            "/runs/{run_id}/jobs/{job_id}/steps/{step_index}/logs",
            get(runs::logs),
        )
        .route("/runs/{run_id}/events", get(sse::run_events))
        .route("/runs/{run_id}/cancel", post(runs::cancel))
        .route("/runs/{run_id}/rerun", post(runs::rerun))
        .route(
            "/runs/{run_id}/jobs/{job_id}/cancel",
            post(runs::cancel_job),
        )
        .route("/agents", get(system::agents))
        .route("/dispatch", post(runs::dispatch))
        .route("/queue", get(queue::list))
        .route("/queue/clear", post(queue::clear))
        .route("/queue/{id}", get(queue::show))
        .route("/inbox", get(inbox::list))
        .route("/inbox/{id}", get(inbox::show))
        .route("/inbox/{id}/retry", post(inbox::retry))
        .route("/inbox/{id}/replay", post(inbox::replay))
        .route("/diagnose", get(system::diagnose))
        .route("/config", get(system::config));
    Router::new().nest(ADMIN_PREFIX, admin).route(
        &format!("{API_PREFIX}/capabilities"),
        get(system::capabilities),
    )
}

/// Keyset cursor `<ms>:<id>`: opaque to clients, echoed back from `nextCursor`.
pub(crate) fn encode_cursor(at: i64, id: &str) -> String {
    format!("{at}:{id}")
}

pub(crate) fn decode_cursor(cursor: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let bad = || ApiError::BadRequest("invalid cursor".into());
    let (at, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok(Some((at.parse().map_err(|_| bad())?, id.to_string())))
}

/// A JSON body that answers 400 (with serde's reason) instead of axum's 422 text.
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// A query string that answers 400 instead of axum's plain-text rejection.
pub struct QueryArgs<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for QueryArgs<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryArgs(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}
