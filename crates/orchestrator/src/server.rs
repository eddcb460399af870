//! Starting and stopping the server (mini-redis style): [`Orchestrator::start`] opens the
//! store, migrates, binds, and spawns the HTTP server and the inbox workers on one
//! [`TaskTracker`]; cancelling the token (or [`Handle::shutdown`]) drains them.

use std::net::SocketAddr;

use kici_store::{QueueLimits, Store, StoreOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{AppState, app};
use crate::config::Config;
use crate::error::Error;
use crate::pipeline;
use crate::source::Sources;

/// The orchestrator process.
#[derive(Debug)]
pub struct Orchestrator;

/// A running orchestrator.
#[derive(Debug)]
pub struct Handle {
    local_addr: SocketAddr,
    /// The owner token generated on this (first) start, to be shown once.
    bootstrap_admin_token: Option<kici_engine::protocol::Secret>,
    state: AppState,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Orchestrator {
    /// Opens the store named by the configuration and starts serving.
    pub async fn start(config: Config, cancel: CancellationToken) -> Result<Handle, Error> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let options = StoreOptions {
            max_connections: config.db_max_connections,
            queue: QueueLimits {
                max_depth: config.queue_max_depth,
                ack_timeout_ms: i64::try_from(
                    kici_engine::protocol::limits::dispatch_ack_timeout_ms(
                        u64::try_from(config.agents.dispatch_ack_timeout.as_millis())
                            .unwrap_or(u64::MAX),
                    ),
                )
                .unwrap_or(i64::MAX),
                ..QueueLimits::default()
            },
            inbox_max_attempts: config.inbox.max_attempts,
            ..StoreOptions::default()
        };
        let store = Store::connect(&config.effective_database_url(), options).await?;
        let sources = Sources::from_config(&config.sources);
        Orchestrator::start_with(config, store, sources, cancel).await
    }

    /// Starts serving on an already opened store with the given sources (tests inject lock
    /// readers through `sources`).
    pub async fn start_with(
        config: Config,
        store: Store,
        sources: Sources,
        cancel: CancellationToken,
    ) -> Result<Handle, Error> {
        if config.auto_migrate {
            let report = store.migrate(crate::now_ms()).await?;
            if !report.applied.is_empty() {
                tracing::info!(applied = ?report.applied, current = report.current, "database migrated");
            }
        }
        if let crate::config::AgentAuth::None { allow_remote } = config.agents.auth {
            if !allow_remote && !config.bind.ip().is_loopback() {
                return Err(Error::UnauthenticatedAgentsOnRemoteBind { addr: config.bind });
            }
            tracing::warn!("agents are not authenticated (KICI_AGENT_AUTH=none)");
        }
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
        let state = AppState::new(store, config, sources);
        // Sources from the store, seeded configuration, and the first owner token.
        let bootstrap_admin_token = crate::startup::prepare(&state).await?;
        let tracker = TaskTracker::new();
        // Dispatches whose agents are gone enter recovery before any agent can connect.
        crate::agents::recover_at_start(&state).await?;
        pipeline::recover_leases_at_start(&state).await?;
        pipeline::spawn_workers(&state, &tracker, &cancel);
        crate::agents::spawn_tasks(&state, &tracker, &cancel);
        let router = app(state.clone());
        let shutdown = cancel.clone();
        // TCP_NODELAY on every accepted socket: without it a small frame written while an
        // earlier one is unacknowledged (`job.dispatch` shortly after a `frames.ack`) waits
        // for the peer's delayed ACK, up to 40 ms on Linux (`cargo xtask bench --only
        // agent-loop` showed it between "job dispatched" and the agent's "job accepted").
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        tracker.spawn(async move {
            let served = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        tracker.close();
        tracing::info!(%local_addr, "orchestrator listening");
        Ok(Handle {
            bootstrap_admin_token,
            local_addr,
            state,
            tracker,
            cancel,
        })
    }
}

impl Handle {
    /// The bootstrap owner token when this start generated it (first start without
    /// `KICI_BOOTSTRAP_ADMIN_TOKEN`); the binary prints it once to stderr. Never logged.
    pub fn bootstrap_admin_token(&self) -> Option<&kici_engine::protocol::Secret> {
        self.bootstrap_admin_token.as_ref()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Waits until every task ended (after the token was cancelled).
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// Cancels, drains the tasks, and closes the database connections.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.wait().await;
        self.state.store().close().await;
    }
}
