//! The HTTP surface, split by caller: [`health`] (probes and metrics) and [`ingress`]
//! (webhooks). [`app`] builds the router so tests can drive it with `oneshot`.

pub mod admin;
pub mod auth;
pub mod health;
pub mod ingress;
pub mod rate_limit;
pub mod sse;
pub(crate) mod views;

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
    /// Connected agents (`crate::agents`).
    pub agents: crate::agents::Registry,
    /// Signalled when queue rows may be claimable (enqueue, freed slot, new agent).
    pub dispatch_wake: Notify,
    pub started: Instant,
    /// The master key for `scoped_secrets` (§15.1).
    pub secret_box: crate::secrets::SecretBox,
    /// Parsed locks by `<provider>:<repo>:<sha>` (§5.2).
    pub lock_cache: crate::lock_cache::LockCache,
    /// Generic-route rate limits per source (§4.2).
    pub rate_limits: rate_limit::RateLimiter,
    /// `KICI_TRUSTED_PROXIES`, parsed (invalid entries are logged and skipped).
    pub trusted_proxies: Vec<kici_engine::signature::IpRange>,
}

impl AppState {
    pub fn new(store: Store, config: Config, sources: Sources) -> AppState {
        let secret_box = load_secret_box(&store, &config);
        let lock_cache =
            crate::lock_cache::LockCache::new(config.lock_cache_max, config.lock_cache_ttl);
        let trusted_proxies = parse_trusted_proxies(&config.trusted_proxies);
        AppState {
            inner: Arc::new(Shared {
                store,
                sources,
                metrics: Arc::new(Metrics::default()),
                config,
                inbox_wake: Notify::new(),
                events: EventBus::default(),
                agents: crate::agents::Registry::default(),
                dispatch_wake: Notify::new(),
                started: Instant::now(),
                secret_box,
                lock_cache,
                rate_limits: rate_limit::RateLimiter::default(),
                trusted_proxies,
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

    /// The master key for source credentials and secrets.
    pub fn secret_box(&self) -> &crate::secrets::SecretBox {
        &self.inner.secret_box
    }

    /// The parsed-lock cache (hit and miss counters for tests and diagnostics).
    pub fn lock_cache(&self) -> &crate::lock_cache::LockCache {
        &self.inner.lock_cache
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
        .route(
            "/webhook/{org_id}/generic/{source_name}",
            post(ingress::generic),
        )
        .merge(admin::router())
        .route("/ws", get(crate::agents::ws_handler))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The configured key, else the key file; when neither works (no key on PostgreSQL, an
/// unreadable file) an in-memory key, so a state built outside [`crate::Orchestrator::start`]
/// still works. `start` refuses to run in that case (`crate::startup::prepare`).
fn load_secret_box(store: &Store, config: &Config) -> crate::secrets::SecretBox {
    let postgres = store.kind() == kici_store::BackendKind::Postgres;
    let loaded =
        crate::secrets::SecretBox::load(config.secret_key.as_ref(), &config.data_dir, postgres);
    match loaded {
        Ok(secret_box) => secret_box,
        Err(e) => {
            tracing::warn!(error = %e, "using an in-memory secret key");
            crate::secrets::SecretBox::ephemeral()
                .unwrap_or_else(|_| crate::secrets::SecretBox::unavailable())
        }
    }
}

fn parse_trusted_proxies(entries: &[String]) -> Vec<kici_engine::signature::IpRange> {
    entries
        .iter()
        .filter_map(
            |entry| match kici_engine::signature::IpRange::parse(entry) {
                Ok(range) => Some(range),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a trusted proxy entry");
                    None
                }
            },
        )
        .collect()
}
