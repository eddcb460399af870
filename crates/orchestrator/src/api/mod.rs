//! The HTTP surface, split by caller: [`health`] (probes and metrics) and [`ingress`]
//! (webhooks). [`app`] builds the router so tests can drive it with `oneshot`.

pub mod health;
pub mod ingress;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use kici_store::Store;
use tokio::sync::Notify;

use crate::config::Config;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::source::Sources;

/// Global request body limit (`orchestrator.md` §4): 25 MiB, answered with 413.
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;

/// What handlers and background tasks share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Shared>,
}

pub(crate) struct Shared {
    pub store: Store,
    pub sources: Sources,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    /// Signalled after an inbox insert so a worker picks the item up at once.
    pub inbox_wake: Notify,
    /// Run, job, step and log changes for live followers.
    pub events: EventBus,
    pub started: Instant,
}

impl AppState {
    pub fn new(store: Store, config: Config, sources: Sources) -> AppState {
        AppState {
            inner: Arc::new(Shared {
                store,
                sources,
                metrics: Arc::new(Metrics::default()),
                config,
                inbox_wake: Notify::new(),
                events: EventBus::default(),
                started: Instant::now(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn sources(&self) -> &Sources {
        &self.inner.sources
    }

    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// The router with every route.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/webhook/{org_id}/github", post(ingress::github))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
