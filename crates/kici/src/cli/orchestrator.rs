//! `kici orchestrator [--config <yaml>] [--check-config] [--migrate-only]` (spec/cli.md §10):
//! reads the configuration of orchestrator.md §19 (environment > YAML file > defaults), then
//! checks it, migrates the database, or runs the server until SIGINT/SIGTERM.
//!
//! Every problem with the configuration is collected and reported together, each naming the
//! variable and the form it expects. Unknown `KICI_*` variables are an error (a warning with
//! `KICI_DEV=true`), checked against the variables of every role of the binary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use kici_engine::protocol::Secret;
use kici_orchestrator::config::AgentAuth;
use kici_orchestrator::secrets::parse_key;
use kici_orchestrator::{Config, Orchestrator};
use tokio_util::sync::CancellationToken;

use super::{GlobalArgs, exit};

#[derive(Debug, Args)]
pub struct OrchestratorArgs {
    /// A YAML file of settings (keys: the variable names without `KICI_`, lower-cased; also
    /// KICI_CONFIG). Environment variables take precedence.
    #[arg(long, value_name = "YAML")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print it with secrets redacted, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Apply the database migrations and exit.
    #[arg(long, conflicts_with = "check_config")]
    pub migrate_only: bool,
    /// Address to listen on (overrides KICI_BIND).
    #[arg(long, value_name = "IP")]
    pub bind: Option<String>,
    /// Port to listen on (overrides KICI_PORT).
    #[arg(long)]
    pub port: Option<String>,
    /// Data directory (overrides KICI_DATA_DIR).
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<String>,
}

/// How long a graceful shutdown may take before the process gives up on it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub fn run(global: &GlobalArgs, args: &OrchestratorArgs) -> u8 {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let flags = [
        ("KICI_BIND", "--bind", args.bind.clone()),
        ("KICI_PORT", "--port", args.port.clone()),
        ("KICI_DATA_DIR", "--data-dir", args.data_dir.clone()),
    ];
    let settings = match Settings::load_with_flags(&env, args.config.as_deref(), &flags) {
        Ok(settings) => settings,
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            eprintln!(
                "error: invalid orchestrator configuration ({} problem{})",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return exit::FAILURE;
        }
    };
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
    if args.check_config {
        settings.print(global.json);
        return exit::OK;
    }
    init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kici-orchestrator")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    if args.migrate_only {
        runtime.block_on(migrate_only(settings.config))
    } else {
        runtime.block_on(serve(settings))
    }
}

async fn migrate_only(config: Config) -> u8 {
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        eprintln!(
            "error: cannot create the data directory {}: {e}",
            config.data_dir.display()
        );
        return exit::FAILURE;
    }
    let options = kici_store::StoreOptions {
        max_connections: config.db_max_connections,
        ..kici_store::StoreOptions::default()
    };
    let url = config.effective_database_url();
    let store = match kici_store::Store::connect(&url, options).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: cannot open the database {}: {e}", redact_url(&url));
            return exit::FAILURE;
        }
    };
    let outcome = store.migrate(now_ms()).await;
    store.close().await;
    match outcome {
        Ok(report) if report.applied.is_empty() => {
            eprintln!(
                "database {} is up to date (schema version {})",
                redact_url(&url),
                report.current
            );
            exit::OK
        }
        Ok(report) => {
            eprintln!(
                "database {}: applied migrations {:?}; schema version {}",
                redact_url(&url),
                report.applied,
                report.current
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: migrating {} failed: {e}", redact_url(&url));
            exit::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> u8 {
    let plain = !settings.json_logs();
    let cancel = CancellationToken::new();
    let handle = match Orchestrator::start(settings.config, cancel.clone()).await {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!(error = %e, "orchestrator failed to start");
            if plain {
                eprintln!("error: {e}");
            }
            return exit::FAILURE;
        }
    };
    if let Some(token) = handle.bootstrap_admin_token() {
        // Printed once, to the terminal only: never through the logger.
        eprintln!(
            "Created the owner admin token (shown only now; store it, e.g. in KICI_ADMIN_TOKEN):\n  {}",
            token.expose()
        );
    }
    if plain {
        eprintln!("kici orchestrator listening on {}", handle.local_addr());
    }
    let signal = tokio::select! {
        signal = shutdown_signal() => Some(signal),
        () = handle.wait() => None,
    };
    let Some(signal) = signal else {
        // The tasks ended without being asked to: the server failed (already logged).
        handle.shutdown().await;
        eprintln!("error: the orchestrator stopped unexpectedly");
        return exit::FAILURE;
    };
    tracing::info!(signal, "shutting down");
    if plain {
        eprintln!("received {signal}, shutting down");
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, handle.shutdown()).await {
        Ok(()) => exit::OK,
        Err(_) => {
            eprintln!(
                "error: graceful shutdown did not finish within {}s",
                SHUTDOWN_GRACE.as_secs()
            );
            exit::FAILURE
        }
    }
}

/// Resolves with the name of the first SIGINT or SIGTERM (SIGINT only when the SIGTERM
/// handler cannot be installed).
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

fn init_logging(settings: &Settings) {
    init_service_logging(&settings.log_level, settings.json_logs());
}

/// Installs the service logger: JSON lines when `json`, else human text on stderr.
pub(super) fn init_service_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        builder.with_ansi(ansi).try_init()
    };
    if let Err(e) = result {
        eprintln!("warning: cannot set up logging: {e}");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Every `KICI_*` variable some role of the binary knows (orchestrator, agent, CLI, admin,
/// relay, and the variables a step sees), from the spec; the unknown-variable check uses it.
const KNOWN: &[&str] = &[
    "KICI_ADMIN_TOKEN",
    "KICI_ADMIN_URL",
    "KICI_AGENT_AUTH",
    "KICI_AGENT_AUTH_NONE_ALLOW_REMOTE",
    "KICI_AGENT_BIND",
    "KICI_AGENT_ID",
    "KICI_AGENT_IS_ORCHESTRATOR_HOST",
    "KICI_AGENT_MAX_RECONNECT_DELAY_MS",
    "KICI_AGENT_PORT",
    "KICI_AGENT_SHUTDOWN_CANCEL_MS",
    "KICI_AGENT_SHUTDOWN_GRACE_MS",
    "KICI_AGENT_TOKEN",
    "KICI_AGENT_TOKEN_TTL_MS",
    "KICI_ATTEMPT",
    "KICI_AUTO_MIGRATE",
    "KICI_BACKPRESSURE_MODE",
    "KICI_BASE_PATH",
    "KICI_BIND",
    "KICI_BOOTSTRAP_ADMIN_TOKEN",
    "KICI_BRANCH",
    "KICI_CONCURRENCY_WAIT_TIMEOUT_MS",
    "KICI_CONFIG",
    "KICI_CONTAINER_PULL_POLICY",
    "KICI_DASHBOARD_URL",
    "KICI_DATABASE_URL",
    "KICI_DATA_DIR",
    "KICI_DB_MAX_CONNECTIONS",
    "KICI_DEBUG",
    "KICI_DEFAULT_CONTAINER_IMAGE",
    "KICI_DEFAULT_STEP_TIMEOUT_MS",
    "KICI_DEV",
    "KICI_DIR",
    "KICI_DISPATCH_ACK_TIMEOUT_MS",
    "KICI_DOCKER_HOST",
    "KICI_DOCKER_KEEP_FAILED",
    "KICI_ENV",
    "KICI_EVENT_ACTION",
    "KICI_EVENT_TYPE",
    "KICI_EXECUTION_MODE",
    "KICI_GENERIC_FANOUT_MAX",
    "KICI_GIT_COMMIT",
    "KICI_HOOK_TIMEOUT_MS",
    "KICI_INBOX_INLINE_MAX_BYTES",
    "KICI_INBOX_MAX_ATTEMPTS",
    "KICI_INBOX_RETENTION_DAYS",
    "KICI_INBOX_WORKERS",
    "KICI_INLINE_EVAL_TIMEOUT_MS",
    "KICI_IS_TEST_RUN",
    "KICI_JOB_HEARTBEAT_INTERVAL_MS",
    "KICI_JOB_ID",
    "KICI_JOB_NAME",
    "KICI_KEEP_WORKDIR_ON_FAILURE",
    "KICI_LABELS",
    "KICI_LOAD_TIMEOUT_MS",
    "KICI_LOCAL_LOCK_KILL_GRACE_MS",
    "KICI_LOCKFILE_CACHE_MAX",
    "KICI_LOCKFILE_CACHE_TTL_MS",
    "KICI_LOG_DIR",
    "KICI_LOG_FORMAT",
    "KICI_LOG_LEVEL",
    "KICI_LOG_MAX_SIZE",
    "KICI_LOG_RETENTION_DAYS",
    "KICI_MACHINE_LEDGER_DIR",
    "KICI_MAX_CONCURRENT_JOBS",
    "KICI_MAX_LOG_SIZE_BYTES",
    "KICI_MODE",
    "KICI_ORCHESTRATOR_URL",
    "KICI_PATH",
    "KICI_PORT",
    "KICI_PROPERTIES",
    "KICI_PROVIDER",
    "KICI_QUEUE_BACKPRESSURE_THRESHOLD",
    "KICI_QUEUE_DRAIN_INTERVAL_MS",
    "KICI_QUEUE_MAX_DEPTH",
    "KICI_QUEUE_TIMEOUT_MS",
    "KICI_REF",
    "KICI_RELAY_REPLAY_WINDOW_HOURS",
    "KICI_RELAY_TOKEN",
    "KICI_RELAY_URL",
    "KICI_REPO",
    "KICI_ROLES",
    "KICI_RUNNER_MEMORY_LIMIT_MB",
    "KICI_RUN_DIR",
    "KICI_RUN_ID",
    "KICI_RUN_RETENTION_DAYS",
    "KICI_SANDBOX",
    "KICI_SANDBOX_NETWORK",
    "KICI_SECRET_KEY",
    "KICI_SECRET_KEY_FILE",
    "KICI_SECRET_KEY_OLD",
    "KICI_SECRET_KEY_OLD_FILE",
    "KICI_SHA",
    "KICI_SKIP_STORAGE_SENTINEL",
    "KICI_STALE_DETECTOR_SCAN_INTERVAL_MS",
    "KICI_STALE_DETECTOR_THRESHOLD_MULTIPLIER",
    "KICI_STATE_DIR",
    "KICI_TARGET",
    "KICI_TOKEN",
    "KICI_TRUSTED_PROXIES",
    "KICI_UNTRUSTED_PR_POLICY",
    "KICI_WEBHOOK_PUBLIC_URL",
    "KICI_WORKFLOW_NAME",
    "KICI_WORKSPACE",
    "KICI_WORK_DIR",
];

/// Families of variables known by prefix.
const KNOWN_PREFIXES: &[&str] = &[
    "KICI_AGENT_ENV_",
    "KICI_CLUSTER_",
    "KICI_SCALER_",
    "KICI_STORAGE_",
];

/// Orchestrator settings of §19 that are accepted but not implemented yet: setting one is a
/// warning, so nobody believes it took effect.
const NOT_YET: &[&str] = &[
    "KICI_AGENT_TOKEN_TTL_MS",
    "KICI_BASE_PATH",
    "KICI_CONCURRENCY_WAIT_TIMEOUT_MS",
    "KICI_DASHBOARD_URL",
    "KICI_GENERIC_FANOUT_MAX",
    "KICI_INBOX_INLINE_MAX_BYTES",
    "KICI_INBOX_RETENTION_DAYS",
    "KICI_INLINE_EVAL_TIMEOUT_MS",
    "KICI_LOG_DIR",
    "KICI_LOG_MAX_SIZE",
    "KICI_LOG_RETENTION_DAYS",
    "KICI_QUEUE_BACKPRESSURE_THRESHOLD",
    "KICI_RUN_RETENTION_DAYS",
    "KICI_SECRET_KEY_OLD",
    "KICI_SECRET_KEY_OLD_FILE",
    "KICI_UNTRUSTED_PR_POLICY",
];

/// Values never printed.
const SECRET: &[&str] = &[
    "KICI_ADMIN_TOKEN",
    "KICI_AGENT_TOKEN",
    "KICI_BOOTSTRAP_ADMIN_TOKEN",
    "KICI_RELAY_TOKEN",
    "KICI_SECRET_KEY",
    "KICI_SECRET_KEY_OLD",
    "KICI_TOKEN",
];

fn is_known(name: &str) -> bool {
    KNOWN.contains(&name) || KNOWN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Where a value came from.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    Default,
    Env,
    File(PathBuf),
    Flag(&'static str),
}

impl Origin {
    pub(super) fn describe(&self, name: &str) -> String {
        match self {
            Origin::Default => format!("the default of {name}"),
            Origin::Env => format!("environment variable {name}"),
            Origin::Flag(flag) => flag.to_string(),
            Origin::File(path) => format!(
                "{} in {}",
                name.trim_start_matches("KICI_").to_ascii_lowercase(),
                path.display()
            ),
        }
    }

    pub(super) fn label(&self) -> String {
        match self {
            Origin::Default => "default".into(),
            Origin::Env => "env".into(),
            Origin::Flag(flag) => format!("flag {flag}"),
            Origin::File(path) => format!("file {}", path.display()),
        }
    }
}

/// The resolved configuration.
#[derive(Debug)]
struct Settings {
    config: Config,
    log_level: String,
    log_format: String,
    /// (variable, printable value, origin) in print order.
    effective: Vec<(&'static str, String, Origin)>,
    warnings: Vec<String>,
}

impl Settings {
    fn json_logs(&self) -> bool {
        match self.log_format.as_str() {
            "json" => true,
            "plain" => false,
            _ => !std::io::stderr().is_terminal(),
        }
    }

    /// Resolves `env` > the YAML file (`--config`, else `KICI_CONFIG`) > defaults.
    #[cfg(test)]
    fn load(
        env: &BTreeMap<String, String>,
        config_flag: Option<&Path>,
    ) -> Result<Self, Vec<String>> {
        Settings::load_with_flags(env, config_flag, &[])
    }

    /// Resolves flags > `env` > the YAML file > defaults.
    fn load_with_flags(
        env: &BTreeMap<String, String>,
        config_flag: Option<&Path>,
        flags: &[Flag],
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let values = gather_values(env, config_flag, flags, &mut errors);
        let mut r = Resolver {
            values: &values,
            errors: &mut errors,
            effective: Vec::new(),
        };
        check_unknown(&mut r, &mut warnings);

        let _mode = r.parse(
            "KICI_MODE",
            "independent",
            "independent (hybrid and platform are not supported yet)",
            |v| (v == "independent").then(|| v.to_string()),
        );
        let bind = r.parse(
            "KICI_BIND",
            "127.0.0.1",
            "an IP address such as 127.0.0.1 or 0.0.0.0",
            |v| v.parse::<IpAddr>().ok(),
        );
        let port = r.parse("KICI_PORT", "4000", "a port number from 0 to 65535", |v| {
            v.parse::<u16>().ok()
        });
        let default_data_dir = default_data_dir(env);
        let data_dir = match &default_data_dir {
            Some(dir) => r.parse(
                "KICI_DATA_DIR",
                &dir.display().to_string(),
                "a directory path",
                parse_path,
            ),
            None => {
                if r.values.contains_key("KICI_DATA_DIR") {
                    r.parse("KICI_DATA_DIR", "", "a directory path", parse_path)
                } else {
                    r.errors.push(
                        "KICI_DATA_DIR is not set and HOME is unknown: set KICI_DATA_DIR to a directory path"
                            .into(),
                    );
                    None
                }
            }
        };
        let database_url = r.optional(
            "KICI_DATABASE_URL",
            "sqlite://<path>, postgres://… or postgresql://…",
            |v| {
                ["sqlite:", "postgres://", "postgresql://"]
                    .iter()
                    .any(|p| v.starts_with(p))
                    .then(|| v.to_string())
            },
        );
        let auto_migrate = r.parse("KICI_AUTO_MIGRATE", "true", "true or false", parse_bool);
        let db_max = r.parse(
            "KICI_DB_MAX_CONNECTIONS",
            "10",
            "a whole number from 1 to 1000",
            |v| v.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)),
        );
        let workers = r.parse(
            "KICI_INBOX_WORKERS",
            "4",
            "a whole number from 1 to 256",
            |v| v.parse::<usize>().ok().filter(|n| (1..=256).contains(n)),
        );
        let max_attempts = r.parse(
            "KICI_INBOX_MAX_ATTEMPTS",
            "8",
            "a whole number from 1 to 1000",
            |v| v.parse::<i64>().ok().filter(|n| (1..=1000).contains(n)),
        );
        let queue_max_depth = r.parse(
            "KICI_QUEUE_MAX_DEPTH",
            "1000",
            "a whole number of at least 1",
            |v| v.parse::<i64>().ok().filter(|n| *n >= 1),
        );
        let queue_timeout = r.parse(
            "KICI_QUEUE_TIMEOUT_MS",
            "3600000",
            "milliseconds as a whole number (0 = never)",
            |v| v.parse::<u64>().ok(),
        );
        let agent_auth = r.parse("KICI_AGENT_AUTH", "token", "token or none", |v| {
            matches!(v, "token" | "none").then(|| v.to_string())
        });
        let allow_remote = r.parse(
            "KICI_AGENT_AUTH_NONE_ALLOW_REMOTE",
            "false",
            "true or false",
            parse_bool,
        );
        let ms = |v: &str| v.parse::<u64>().ok().map(Duration::from_millis);
        let ack_timeout = r.parse(
            "KICI_DISPATCH_ACK_TIMEOUT_MS",
            "10000",
            "milliseconds as a whole number of at least 1000",
            |v| ms(v).filter(|d| *d >= Duration::from_secs(1)),
        );
        let max_reconnect = r.parse(
            "KICI_AGENT_MAX_RECONNECT_DELAY_MS",
            "60000",
            "milliseconds as a whole number of at least 1000",
            |v| ms(v).filter(|d| *d >= Duration::from_secs(1)),
        );
        let job_heartbeat = r.parse(
            "KICI_JOB_HEARTBEAT_INTERVAL_MS",
            "60000",
            "milliseconds as a whole number of at least 1000",
            |v| ms(v).filter(|d| *d >= Duration::from_secs(1)),
        );
        let stale_multiplier = r.parse(
            "KICI_STALE_DETECTOR_THRESHOLD_MULTIPLIER",
            "2",
            "a whole number from 1 to 100",
            |v| v.parse::<u32>().ok().filter(|n| (1..=100).contains(n)),
        );
        let stale_scan = r.parse(
            "KICI_STALE_DETECTOR_SCAN_INTERVAL_MS",
            "60000",
            "milliseconds as a whole number of at least 100",
            |v| ms(v).filter(|d| *d >= Duration::from_millis(100)),
        );
        let drain_interval = r.parse(
            "KICI_QUEUE_DRAIN_INTERVAL_MS",
            "5000",
            "milliseconds as a whole number of at least 100",
            |v| ms(v).filter(|d| *d >= Duration::from_millis(100)),
        );
        let lock_cache_max = r.parse(
            "KICI_LOCKFILE_CACHE_MAX",
            "500",
            "a whole number of entries (0 disables the cache)",
            |v| v.parse::<usize>().ok(),
        );
        let lock_cache_ttl = r.parse(
            "KICI_LOCKFILE_CACHE_TTL_MS",
            "3600000",
            "milliseconds as a whole number",
            ms,
        );
        let trusted_proxies = r.parse(
            "KICI_TRUSTED_PROXIES",
            "",
            "a comma-separated list of IP addresses or CIDR ranges",
            |v| {
                let list: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect();
                list.iter().all(|e| is_ip_or_cidr(e)).then_some(list)
            },
        );
        let webhook_public_url = r.optional(
            "KICI_WEBHOOK_PUBLIC_URL",
            "an http:// or https:// URL",
            |v| {
                (v.starts_with("http://") || v.starts_with("https://"))
                    .then(|| v.trim_end_matches('/').to_string())
            },
        );
        let secret_key = match (
            values.get("KICI_SECRET_KEY"),
            values.get("KICI_SECRET_KEY_FILE"),
        ) {
            (Some(_), Some(_)) => {
                r.errors
                    .push("KICI_SECRET_KEY and KICI_SECRET_KEY_FILE are both set: keep one".into());
                None
            }
            (Some(_), None) => r
                .optional(
                    "KICI_SECRET_KEY",
                    "64 hex characters or the base64 of 32 bytes",
                    |v| parse_key(v).map(|_| Secret::new(v.to_string())),
                )
                .flatten(),
            (None, Some((path, origin))) => match std::fs::read_to_string(path.trim()) {
                Ok(text) if parse_key(text.trim()).is_some() => {
                    r.effective
                        .push(("KICI_SECRET_KEY_FILE", path.clone(), origin.clone()));
                    Some(Secret::new(text.trim().to_string()))
                }
                Ok(_) => {
                    r.errors.push(format!(
                        "{} names {path}, which does not hold 64 hex characters or the base64 of 32 bytes",
                        origin.describe("KICI_SECRET_KEY_FILE")
                    ));
                    None
                }
                Err(e) => {
                    r.errors.push(format!(
                        "{} names {path}, which cannot be read: {e}",
                        origin.describe("KICI_SECRET_KEY_FILE")
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        let bootstrap_token = values.get("KICI_BOOTSTRAP_ADMIN_TOKEN").map(|(v, origin)| {
            r.effective.push((
                "KICI_BOOTSTRAP_ADMIN_TOKEN",
                "<redacted>".into(),
                origin.clone(),
            ));
            Secret::new(v.trim().to_string())
        });
        let log_level = r.parse(
            "KICI_LOG_LEVEL",
            "info",
            "a level (trace, debug, info, warn, error) or a tracing filter such as info,sqlx=warn",
            |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .ok()
                    .map(|_| v.to_string())
            },
        );
        let log_format = r.parse("KICI_LOG_FORMAT", "auto", "auto, json or plain", |v| {
            matches!(v, "auto" | "json" | "plain").then(|| v.to_string())
        });

        // Known orchestrator settings that do nothing yet, and secrets (shown as set).
        for &name in NOT_YET {
            if let Some((value, origin)) = values.get(name) {
                warnings.push(format!(
                    "{} is not implemented yet and is ignored",
                    origin.describe(name)
                ));
                let shown = if SECRET.contains(&name) {
                    "<redacted>".to_string()
                } else {
                    value.clone()
                };
                r.effective.push((name, shown, origin.clone()));
            }
        }
        let effective = r.effective;
        if !errors.is_empty() {
            return Err(errors);
        }
        let (
            Some(bind),
            Some(port),
            Some(data_dir),
            Some(auto_migrate),
            Some(db_max),
            Some(workers),
            Some(max_attempts),
            Some(queue_max_depth),
            Some(queue_timeout),
            Some(log_level),
            Some(log_format),
            Some(agent_auth),
            Some(allow_remote),
            Some(ack_timeout),
            Some(max_reconnect),
            Some(job_heartbeat),
            Some(stale_multiplier),
            Some(stale_scan),
            Some(drain_interval),
            Some(lock_cache_max),
            Some(lock_cache_ttl),
            Some(trusted_proxies),
            Some(webhook_public_url),
        ) = (
            bind,
            port,
            data_dir,
            auto_migrate,
            db_max,
            workers,
            max_attempts,
            queue_max_depth,
            queue_timeout,
            log_level,
            log_format,
            agent_auth,
            allow_remote,
            ack_timeout,
            max_reconnect,
            job_heartbeat,
            stale_multiplier,
            stale_scan,
            drain_interval,
            lock_cache_max,
            lock_cache_ttl,
            trusted_proxies,
            webhook_public_url,
        )
        else {
            return Err(vec!["invalid orchestrator configuration".into()]);
        };
        let mut config = Config::new(data_dir);
        config.bind = SocketAddr::new(bind, port);
        config.database_url = database_url.flatten();
        config.auto_migrate = auto_migrate;
        config.db_max_connections = db_max;
        config.inbox.workers = workers;
        config.inbox.max_attempts = max_attempts;
        config.queue_max_depth = queue_max_depth;
        config.queue_timeout = (queue_timeout > 0).then(|| Duration::from_millis(queue_timeout));
        config.agents.auth = if agent_auth == "none" {
            AgentAuth::None { allow_remote }
        } else {
            AgentAuth::Token
        };
        config.agents.dispatch_ack_timeout = ack_timeout;
        config.agents.max_reconnect_delay = max_reconnect;
        config.agents.job_heartbeat_interval = job_heartbeat;
        config.agents.stale_threshold_multiplier = stale_multiplier;
        config.agents.stale_scan_interval = stale_scan;
        config.agents.queue_drain_interval = drain_interval;
        config.lock_cache_max = lock_cache_max;
        config.lock_cache_ttl = lock_cache_ttl;
        config.trusted_proxies = trusted_proxies;
        config.webhook_public_url = webhook_public_url;
        config.secret_key = secret_key;
        config.bootstrap_admin_token = bootstrap_token;
        Ok(Settings {
            config,
            log_level,
            log_format,
            effective,
            warnings,
        })
    }

    fn print(&self, json: bool) {
        let mut rows: Vec<(String, String, String)> = self
            .effective
            .iter()
            .map(|(name, value, origin)| (name.to_string(), value.clone(), origin.label()))
            .collect();
        rows.push((
            "(database)".into(),
            redact_url(&self.config.effective_database_url()),
            "effective".into(),
        ));
        rows.push((
            "(listen)".into(),
            self.config.bind.to_string(),
            "effective".into(),
        ));
        if json {
            let map: serde_json::Map<String, serde_json::Value> = rows
                .iter()
                .map(|(name, value, origin)| {
                    (
                        name.clone(),
                        serde_json::json!({ "value": value, "source": origin }),
                    )
                })
                .collect();
            println!("{}", serde_json::Value::Object(map));
        } else {
            let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            for (name, value, origin) in rows {
                println!("{name:<width$} = {value}  ({origin})");
            }
            println!("configuration OK");
        }
    }
}

/// A command-line flag standing for a variable: (variable, flag, value when given).
pub(super) type Flag = (&'static str, &'static str, Option<String>);

/// `KICI_*` values from flags over the environment over the YAML file (`--config`, else
/// `KICI_CONFIG`), with where each came from. Shared by every service command.
pub(super) fn gather_values(
    env: &BTreeMap<String, String>,
    config_flag: Option<&Path>,
    flags: &[Flag],
    errors: &mut Vec<String>,
) -> BTreeMap<String, (String, Origin)> {
    let mut values: BTreeMap<String, (String, Origin)> = BTreeMap::new();
    let file = config_flag.map(Path::to_path_buf).or_else(|| {
        env.get("KICI_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = &file {
        match std::fs::read_to_string(path) {
            Ok(text) => match parse_flat_yaml(&text) {
                Ok(entries) => {
                    for (key, value) in entries {
                        let name = format!("KICI_{}", key.to_ascii_uppercase());
                        values.insert(name, (value, Origin::File(path.clone())));
                    }
                }
                Err(e) => errors.push(format!("config file {}: {e}", path.display())),
            },
            Err(e) => errors.push(format!("cannot read config file {}: {e}", path.display())),
        }
    }
    for (name, value) in env {
        if name.starts_with("KICI_") {
            values.insert(name.clone(), (value.clone(), Origin::Env));
        }
    }
    for (name, flag, value) in flags {
        if let Some(value) = value {
            values.insert((*name).to_string(), (value.clone(), Origin::Flag(flag)));
        }
    }
    values
}

/// Unknown variables: an error unless `KICI_DEV=true` (§19), then only a warning.
pub(super) fn check_unknown(r: &mut Resolver<'_>, warnings: &mut Vec<String>) {
    let dev = r.parse("KICI_DEV", "false", "true or false", parse_bool);
    for (name, (_, origin)) in r.values {
        if is_known(name) {
            continue;
        }
        let suggestions = close_matches(name);
        let hint = if suggestions.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", suggestions.join(", "))
        };
        let message = format!("unknown variable {}{hint}", origin.describe(name));
        if dev == Some(true) {
            warnings.push(message);
        } else {
            r.errors.push(format!(
                "{message}; set KICI_DEV=true to only warn about unknown variables"
            ));
        }
    }
}

/// Reads one variable after another, collecting errors and the effective values.
pub(super) struct Resolver<'a> {
    pub(super) values: &'a BTreeMap<String, (String, Origin)>,
    pub(super) errors: &'a mut Vec<String>,
    pub(super) effective: Vec<(&'static str, String, Origin)>,
}

impl Resolver<'_> {
    /// The value of `name` (or `default`) parsed; `None` after recording an error.
    pub(super) fn parse<T>(
        &mut self,
        name: &'static str,
        default: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let (value, origin) = match self.values.get(name) {
            Some((value, origin)) => (value.trim().to_string(), origin.clone()),
            None => (default.to_string(), Origin::Default),
        };
        match parse(&value) {
            Some(parsed) => {
                let shown = if SECRET.contains(&name) {
                    "<redacted>".into()
                } else {
                    value
                };
                self.effective.push((name, shown, origin));
                Some(parsed)
            }
            None => {
                self.errors.push(format!(
                    "{} has the invalid value {value:?}: expected {expected}",
                    origin.describe(name)
                ));
                None
            }
        }
    }

    /// Like [`Resolver::parse`] for a variable without a default: `Some(None)` when unset.
    pub(super) fn optional<T>(
        &mut self,
        name: &'static str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Option<T>> {
        let Some((value, origin)) = self.values.get(name) else {
            return Some(None);
        };
        let value = value.trim();
        match parse(value) {
            Some(parsed) => {
                self.effective
                    .push((name, redact_url(value), origin.clone()));
                Some(Some(parsed))
            }
            None => {
                self.errors.push(format!(
                    "{} has the invalid value {:?}: expected {expected}",
                    origin.describe(name),
                    redact_url(value)
                ));
                None
            }
        }
    }
}

fn is_ip_or_cidr(entry: &str) -> bool {
    match entry.split_once('/') {
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(bits)) => bits <= 32,
            (Ok(IpAddr::V6(_)), Ok(bits)) => bits <= 128,
            _ => false,
        },
        None => entry.parse::<IpAddr>().is_ok(),
    }
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// `/var/lib/kici` for root, else `~/.local/state/kici` (§19); `None` without a home.
fn default_data_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/var/lib/kici"));
    }
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(home).join(".local/state/kici"))
}

/// Replaces the password of a `scheme://user:password@host` URL.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:<redacted>{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// Known variables within a small edit distance of `name`, closest first (at most three).
fn close_matches(name: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = KNOWN
        .iter()
        .map(|known| (levenshtein(name, known), *known))
        .filter(|(d, _)| *d <= 3)
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The YAML subset the settings file needs: one `key: scalar` per line, `#` comments,
/// optional quotes. Nested mappings and lists are refused with the line number.
fn parse_flat_yaml(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = raw.trim_end();
        let content = trimmed.trim_start();
        if content.is_empty() || content.starts_with('#') || content == "---" {
            continue;
        }
        if content.len() != trimmed.len() {
            return Err(format!(
                "line {line_no}: nested values are not supported; use flat `key: value` lines"
            ));
        }
        let Some((key, value)) = content.split_once(':') else {
            return Err(format!("line {line_no}: expected `key: value`"));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "line {line_no}: key {key:?} is not a lower-case setting name such as queue_max_depth"
            ));
        }
        let value = value.trim();
        let value = if let Some(inner) = value
            .strip_prefix('"')
            .and_then(|v| v.split_once('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.split_once('\'')))
        {
            let (quoted, after) = inner;
            let after = after.trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(format!(
                    "line {line_no}: unexpected text after the quoted value"
                ));
            }
            quoted.to_string()
        } else {
            let value = match value.find(" #") {
                Some(i) => value[..i].trim_end(),
                None => value,
            };
            if value.is_empty() || value.starts_with('[') || value.starts_with('{') {
                return Err(format!(
                    "line {line_no}: {key} needs a single value (lists and mappings are not supported)"
                ));
            }
            value.to_string()
        };
        entries.push((key.to_string(), value));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("HOME".into())
            .or_insert_with(|| "/home/test".into());
        map
    }

    #[test]
    fn defaults() {
        let s = Settings::load(&env(&[("KICI_DATA_DIR", "/d")]), None).expect("valid");
        assert_eq!(s.config.bind.to_string(), "127.0.0.1:4000");
        assert_eq!(s.config.effective_database_url(), "sqlite:///d/kici.db");
        assert_eq!(s.config.queue_timeout, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn malformed_and_unknown_values_are_all_reported() {
        let errors = Settings::load(
            &env(&[("KICI_PORT", "eighty"), ("KICI_QUEUE_MAX_DEPT", "5")]),
            None,
        )
        .expect_err("invalid");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("KICI_PORT") && e.contains("port number")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("did you mean KICI_QUEUE_MAX_DEPTH")),
            "{errors:?}"
        );
        let dev = Settings::load(&env(&[("KICI_DEV", "true"), ("KICI_NOPE", "1")]), None)
            .expect("dev mode only warns");
        assert_eq!(dev.warnings.len(), 1);
    }

    #[test]
    fn redaction_and_yaml() {
        assert_eq!(
            redact_url("postgres://kici:hunter2@db:5432/kici"),
            "postgres://kici:<redacted>@db:5432/kici"
        );
        assert_eq!(redact_url("sqlite:///x/kici.db"), "sqlite:///x/kici.db");
        let entries = parse_flat_yaml("# c\nport: 5000 # x\nbind: \"0.0.0.0\"\n").expect("ok");
        assert_eq!(
            entries,
            vec![
                ("port".into(), "5000".into()),
                ("bind".into(), "0.0.0.0".into())
            ]
        );
        assert!(parse_flat_yaml("a:\n  b: 1\n").is_err());
    }
}
