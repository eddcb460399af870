//! Unauthenticated probes: `/health`, `/ready`, `/metrics` (`orchestrator.md` §18.2, §20).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use kici_engine::api::{Health, Ready};

use super::AppState;

pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: option_env!("KICI_GIT_COMMIT")
            .unwrap_or("unknown")
            .to_string(),
        uptime_seconds: state.inner.started.elapsed().as_secs(),
        role: "orchestrator".to_string(),
    })
}

/// 200 when the database answers and has been migrated, else 503.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let store = state.store();
    let ready = store.ping().await.is_ok() && store.schema_version().await.is_ok_and(|v| v > 0);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Ready { ready }))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let depth = state.store().queue_depth().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(depth),
    )
}
