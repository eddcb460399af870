//! `kici agent [--config <yaml>] [--check-config]` (`cli.md` §10, `agent.md` §2): reads the
//! agent's `KICI_*` configuration (environment > YAML > defaults), maps SIGTERM/SIGINT to
//! [`Control::Terminate`] and SIGUSR1 to [`Control::Drain`], and runs [`kici_agent::run`].

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use kici_agent::{AgentConfig, Control, Exit};
use kici_engine::protocol::Secret;
use tokio::sync::mpsc;

use super::settings::{Flag, Resolver, check_unknown, gather_values, init_service_logging};
use super::{GlobalArgs, exit};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// YAML file with settings (keys are the variable names without KICI_, lower-cased; also
    /// KICI_CONFIG). Environment variables take precedence.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print it with secrets redacted, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Orchestrator URL, e.g. ws://ci.example:4000/ws (overrides KICI_ORCHESTRATOR_URL).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Read the agent token from this file (instead of KICI_AGENT_TOKEN; never pass a token
    /// as an argument, other users can read it).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Labels, comma-separated (overrides KICI_LABELS).
    #[arg(long)]
    pub labels: Option<String>,
    /// Jobs run at once (overrides KICI_MAX_CONCURRENT_JOBS).
    #[arg(long, value_name = "N")]
    pub max_jobs: Option<String>,
    /// Parent of the per-job directories (overrides KICI_WORK_DIR).
    #[arg(long, value_name = "PATH")]
    pub work_dir: Option<String>,
    /// Agent id (overrides KICI_AGENT_ID).
    #[arg(long)]
    pub id: Option<String>,
}

/// The resolved agent settings.
#[derive(Debug)]
pub struct AgentSettings {
    pub config: AgentConfig,
    pub log_level: String,
    pub json_logs: bool,
    /// (variable, printable value, where it came from).
    pub effective: Vec<(&'static str, String, String)>,
    pub warnings: Vec<String>,
}

pub fn run(_global: &GlobalArgs, args: &AgentArgs) -> u8 {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let token = match &args.token_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim().to_string()),
            Err(e) => {
                eprintln!("error: cannot read the token file {}: {e}", path.display());
                return exit::FAILURE;
            }
        },
    };
    let flags = [
        ("KICI_ORCHESTRATOR_URL", "--url", args.url.clone()),
        ("KICI_AGENT_TOKEN", "--token-file", token),
        ("KICI_LABELS", "--labels", args.labels.clone()),
        (
            "KICI_MAX_CONCURRENT_JOBS",
            "--max-jobs",
            args.max_jobs.clone(),
        ),
        ("KICI_WORK_DIR", "--work-dir", args.work_dir.clone()),
        ("KICI_AGENT_ID", "--id", args.id.clone()),
    ];
    let settings = match load(&env, args.config.as_deref(), &flags) {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!(
                "error: invalid agent configuration ({} problem{})",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            for e in errors {
                eprintln!("  - {e}");
            }
            return exit::FAILURE;
        }
    };
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
    if args.check_config {
        let width = settings
            .effective
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0);
        for (name, value, origin) in &settings.effective {
            println!("{name:<width$} = {value}  ({origin})");
        }
        println!(
            "{:<width$} = {}",
            "(connects to)", settings.config.orchestrator_url
        );
        println!("{:<width$} = {}", "(agent id)", settings.config.agent_id);
        println!(
            "{:<width$} = {}",
            "(labels)",
            settings.config.effective_labels().join(",")
        );
        println!("configuration OK");
        return exit::OK;
    }
    init_service_logging(&settings.log_level, settings.json_logs);
    // One thread drives the connection; each job gets its own thread inside the agent.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    runtime.block_on(serve(settings.config))
}

/// Runs the agent until a signal or a permanent refusal ends it.
pub async fn serve(config: AgentConfig) -> u8 {
    let (control, receiver) = mpsc::channel(4);
    tokio::spawn(forward_signals(control));
    match kici_agent::run(config, receiver).await {
        Ok(Exit::Drained) | Ok(Exit::Terminated { force_killed: 0 }) => exit::OK,
        Ok(Exit::Terminated { force_killed }) => {
            eprintln!("error: {force_killed} job(s) had to be killed without their hooks");
            exit::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            eprintln!("error: {e}");
            exit::FAILURE
        }
    }
}

async fn forward_signals(control: mpsc::Sender<Control>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the agent with SIGKILL");
        return;
    };
    loop {
        let message = tokio::select! {
            _ = term.recv() => Control::Terminate,
            _ = int.recv() => Control::Terminate,
            _ = usr1.recv() => Control::Drain,
        };
        tracing::info!(?message, "signal received");
        if control.send(message).await.is_err() {
            return;
        }
    }
}

/// Resolves `env` > the YAML file > defaults into an [`AgentConfig`].
pub fn load(
    env: &BTreeMap<String, String>,
    config_flag: Option<&Path>,
    flags: &[Flag],
) -> Result<AgentSettings, Vec<String>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let values = gather_values(env, config_flag, flags, &mut errors);
    let mut r = Resolver {
        values: &values,
        errors: &mut errors,
        effective: Vec::new(),
    };
    check_unknown(&mut r, &mut warnings);

    let url = match values.get("KICI_ORCHESTRATOR_URL") {
        Some(_) => r
            .optional(
                "KICI_ORCHESTRATOR_URL",
                "a ws://, wss://, http:// or https:// URL such as ws://127.0.0.1:4000/ws",
                websocket_url,
            )
            .flatten(),
        None => {
            r.errors
                .push("KICI_ORCHESTRATOR_URL is required, e.g. ws://127.0.0.1:4000/ws".to_string());
            None
        }
    };
    let token = values.get("KICI_AGENT_TOKEN").and_then(|(value, origin)| {
        let value = value.trim();
        if value.is_empty() {
            r.errors
                .push(format!("{} is empty", origin.describe("KICI_AGENT_TOKEN")));
            return None;
        }
        r.effective
            .push(("KICI_AGENT_TOKEN", "<redacted>".into(), origin.clone()));
        Some(Secret::new(value.to_string()))
    });
    let labels = r.parse("KICI_LABELS", "", "a comma-separated list of labels", |v| {
        let labels: Vec<String> = v
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        labels
            .iter()
            .all(|l| !l.starts_with("kici:") && !l.contains(char::is_whitespace))
            .then_some(labels)
    });
    let slots = r.parse(
        "KICI_MAX_CONCURRENT_JOBS",
        "1",
        "a whole number from 1 to 256",
        |v| v.parse::<u32>().ok().filter(|n| (1..=256).contains(n)),
    );
    let default_work = std::env::temp_dir().join("kici-agent");
    let work_dir = r.parse(
        "KICI_WORK_DIR",
        &default_work.display().to_string(),
        "a directory path",
        |v| (!v.is_empty()).then(|| PathBuf::from(v)),
    );
    let state_dir = r.parse(
        "KICI_STATE_DIR",
        &default_state_dir(env).display().to_string(),
        "a directory path",
        |v| (!v.is_empty()).then(|| PathBuf::from(v)),
    );
    let agent_id = r
        .optional(
            "KICI_AGENT_ID",
            "1 to 128 characters from [A-Za-z0-9._-]",
            |v| {
                (!v.is_empty()
                    && v.len() <= 128
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                .then(|| v.to_string())
            },
        )
        .flatten();
    let ms = |v: &str| v.parse::<u64>().ok().map(Duration::from_millis);
    let step_timeout = r.parse(
        "KICI_DEFAULT_STEP_TIMEOUT_MS",
        "1800000",
        "milliseconds as a whole number of at least 1",
        |v| ms(v).filter(|d| !d.is_zero()),
    );
    let job_heartbeat = r.parse(
        "KICI_JOB_HEARTBEAT_INTERVAL_MS",
        "60000",
        "milliseconds as a whole number of at least 100",
        |v| ms(v).filter(|d| *d >= Duration::from_millis(100)),
    );
    let max_reconnect = r.parse(
        "KICI_AGENT_MAX_RECONNECT_DELAY_MS",
        "60000",
        "milliseconds as a whole number of at least 100",
        |v| ms(v).filter(|d| *d >= Duration::from_millis(100)),
    );
    let grace = r.parse(
        "KICI_AGENT_SHUTDOWN_GRACE_MS",
        "10000",
        "milliseconds as a whole number",
        ms,
    );
    let cancel_timeout = r.parse(
        "KICI_AGENT_SHUTDOWN_CANCEL_MS",
        "60000",
        "milliseconds as a whole number",
        ms,
    );
    let memory = r.parse(
        "KICI_RUNNER_MEMORY_LIMIT_MB",
        "1024",
        "a whole number of MiB from 16 to 65536",
        |v| v.parse::<usize>().ok().filter(|n| (16..=65536).contains(n)),
    );
    let log_level = r.parse(
        "KICI_LOG_LEVEL",
        "info",
        "a level (trace, debug, info, warn, error) or a tracing filter",
        |v| {
            v.parse::<tracing_subscriber::filter::Targets>()
                .ok()
                .map(|_| v.to_string())
        },
    );
    let log_format = r.parse("KICI_LOG_FORMAT", "auto", "auto, json or plain", |v| {
        matches!(v, "auto" | "json" | "plain").then(|| v.to_string())
    });
    let effective: Vec<(&'static str, String, String)> = r
        .effective
        .iter()
        .map(|(n, v, o)| (*n, v.clone(), o.label()))
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let (
        Some(url),
        Some(labels),
        Some(slots),
        Some(work_dir),
        Some(state_dir),
        Some(step_timeout),
        Some(job_heartbeat),
        Some(max_reconnect),
        Some(grace),
        Some(cancel_timeout),
        Some(memory),
        Some(log_level),
        Some(log_format),
    ) = (
        url,
        labels,
        slots,
        work_dir,
        state_dir,
        step_timeout,
        job_heartbeat,
        max_reconnect,
        grace,
        cancel_timeout,
        memory,
        log_level,
        log_format,
    )
    else {
        return Err(vec!["invalid agent configuration".into()]);
    };
    let hostname = kici_agent::local_hostname();
    let agent_id = match agent_id {
        Some(id) => id,
        None => persistent_agent_id(&state_dir, &hostname).map_err(|e| vec![e])?,
    };
    let mut config = AgentConfig::new(url, agent_id, work_dir);
    config.token = token;
    config.labels = labels;
    config.max_concurrent_jobs = slots;
    config.default_step_timeout = step_timeout;
    config.job_heartbeat_interval = job_heartbeat;
    config.max_reconnect_delay = max_reconnect;
    config.job_stop_grace = grace;
    config.shutdown_cancel_timeout = cancel_timeout;
    config.memory_limit_mb = memory;
    config.hostname = hostname;
    let json_logs = match log_format.as_str() {
        "json" => true,
        "plain" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    Ok(AgentSettings {
        config,
        log_level,
        json_logs,
        effective,
        warnings,
    })
}

/// `ws(s)://…`; `http(s)://host:port` becomes `ws(s)://host:port/ws`.
fn websocket_url(v: &str) -> Option<String> {
    let (scheme, rest) = v.split_once("://")?;
    let scheme = match scheme {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return None,
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains('@') {
        return None;
    }
    let rest = rest.trim_end_matches('/');
    let rest = if rest.contains('/') {
        rest.to_string()
    } else {
        format!("{rest}/ws")
    };
    Some(format!("{scheme}://{rest}"))
}

fn default_state_dir(env: &BTreeMap<String, String>) -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/kici-agent");
    }
    match env.get("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Path::new(home).join(".local/state/kici-agent"),
        None => std::env::temp_dir().join("kici-agent-state"),
    }
}

/// `<hostname>-<8 hex>`, the hex kept in `<state dir>/agent-id` so restarts keep the id.
fn persistent_agent_id(state_dir: &Path, hostname: &str) -> Result<String, String> {
    let file = state_dir.join("agent-id");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let suffix = text.trim();
        if suffix.len() == 8 && suffix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(format!("{}-{suffix}", host_part(hostname)));
        }
    }
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| format!("cannot make an agent id: {e}"))?;
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(state_dir)
        .and_then(|()| std::fs::write(&file, format!("{suffix}\n")))
        .map_err(|e| {
            format!(
                "cannot keep the agent id in {} ({e}); set KICI_AGENT_ID or KICI_STATE_DIR",
                file.display()
            )
        })?;
    Ok(format!("{}-{suffix}", host_part(hostname)))
}

fn host_part(hostname: &str) -> String {
    let cleaned: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "agent".into()
    } else {
        cleaned
    }
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
            .or_insert_with(|| "/nonexistent-home".into());
        map
    }

    #[test]
    fn websocket_urls_are_normalised() {
        assert_eq!(
            websocket_url("http://127.0.0.1:4000").as_deref(),
            Some("ws://127.0.0.1:4000/ws")
        );
        assert_eq!(
            websocket_url("https://ci.example/").as_deref(),
            Some("wss://ci.example/ws")
        );
        assert_eq!(
            websocket_url("ws://h:1/custom").as_deref(),
            Some("ws://h:1/custom")
        );
        assert_eq!(websocket_url("ftp://h"), None);
        assert_eq!(
            websocket_url("ws://user:pw@h/ws"),
            None,
            "credentials never go in URLs"
        );
    }

    #[test]
    fn required_url_and_bad_values_are_all_reported() {
        let errors = load(
            &env(&[
                ("KICI_MAX_CONCURRENT_JOBS", "0"),
                ("KICI_LABELS", "kici:os:linux"),
                ("KICI_AGENT_ID", "x"),
            ]),
            None,
            &[],
        )
        .unwrap_err();
        let text = errors.join("\n");
        assert!(text.contains("KICI_ORCHESTRATOR_URL is required"), "{text}");
        assert!(text.contains("KICI_MAX_CONCURRENT_JOBS"), "{text}");
        assert!(text.contains("KICI_LABELS"), "{text}");
    }

    #[test]
    fn token_is_redacted_and_settings_apply() {
        let settings = load(
            &env(&[
                ("KICI_ORCHESTRATOR_URL", "http://127.0.0.1:4000"),
                ("KICI_AGENT_TOKEN", "kat_secret"),
                ("KICI_AGENT_ID", "builder-1"),
                ("KICI_LABELS", "linux, gpu"),
                ("KICI_MAX_CONCURRENT_JOBS", "3"),
            ]),
            None,
            &[],
        )
        .unwrap();
        assert_eq!(settings.config.orchestrator_url, "ws://127.0.0.1:4000/ws");
        assert_eq!(settings.config.agent_id, "builder-1");
        assert_eq!(settings.config.labels, vec!["linux", "gpu"]);
        assert_eq!(settings.config.max_concurrent_jobs, 3);
        assert!(
            settings
                .effective
                .iter()
                .all(|(_, v, _)| !v.contains("kat_secret"))
        );
        assert!(!format!("{:?}", settings.config).contains("kat_secret"));
    }

    #[test]
    fn unknown_variables_are_refused() {
        let errors = load(
            &env(&[
                ("KICI_ORCHESTRATOR_URL", "ws://127.0.0.1:4000/ws"),
                ("KICI_AGENT_ID", "a"),
                ("KICI_LABLES", "x"),
            ]),
            None,
            &[],
        )
        .unwrap_err();
        assert!(errors.join("\n").contains("KICI_LABELS"), "{errors:?}");
    }

    #[test]
    fn the_generated_agent_id_is_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = persistent_agent_id(dir.path(), "host.example").unwrap();
        let second = persistent_agent_id(dir.path(), "host.example").unwrap();
        assert_eq!(first, second);
        assert!(first.starts_with("host-example-"), "{first}");
    }
}
