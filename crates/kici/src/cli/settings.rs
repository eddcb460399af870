//! Settings of the service commands (`kici orchestrator`, `kici agent`; `cli.md` §10): values
//! from flags over `KICI_*` variables over a flat YAML file over defaults, each with its origin;
//! the role-union check of unknown variables; the service logger and shutdown signals.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Resolves with the name of the first SIGINT or SIGTERM (SIGINT only when the SIGTERM
/// handler cannot be installed).
pub(super) async fn shutdown_signal() -> &'static str {
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

/// Installs the service logger: JSON lines when `json`, else human text on stderr.
pub(super) fn init_service_logging(level: &str, json: bool) {
    // `Targets` (`info,kici_store=debug`) rather than `EnvFilter`, whose span and field
    // filters the services never use but whose regex engine every process would map.
    let filter: Targets = level
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    let result = if json {
        builder.json().finish().with(filter).try_init()
    } else {
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        builder.with_ansi(ansi).finish().with(filter).try_init()
    };
    if let Err(e) = result {
        eprintln!("warning: cannot set up logging: {e}");
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

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

/// Values never printed.
pub(super) const SECRET: &[&str] = &[
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

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Replaces the password of a `scheme://user:password@host` URL.
pub(super) fn redact_url(url: &str) -> String {
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
pub(super) fn parse_flat_yaml(text: &str) -> Result<Vec<(String, String)>, String> {
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
