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

use super::settings::{
    Flag, Origin, Resolver, SECRET, check_unknown, gather_values, init_service_logging, now_ms,
    parse_bool, redact_url, shutdown_signal,
};
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

fn init_logging(settings: &Settings) {
    init_service_logging(&settings.log_level, settings.json_logs());
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

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
                v.parse::<tracing_subscriber::filter::Targets>()
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
}
