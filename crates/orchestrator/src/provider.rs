//! Source types and the provider interface (`orchestrator.md` §4.3, §5).
//!
//! A source's settings are parsed once, from its stored `config` JSON plus its decrypted
//! secrets, into the typed settings of this module; everything downstream (ingress
//! verification, normalising, lock fetch, clone credentials) reads the typed form. The
//! [`Provider`] trait is the one interface the pipeline and the agent side talk to; the
//! repository half of it (lock, refs, changed files) is a [`LockSource`], so tests and future
//! forge APIs plug in there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kici_engine::api::SourceType;
use kici_engine::protocol::{GitAuth, GitAuthKind, Secret, SshHostKeyPolicy};
use kici_engine::provider::{CustomMapping, GenericConfig, GitPreset};
use kici_engine::signature::Verification;
use serde_json::{Map, Value};

use crate::lock_source::{BoxFuture, FetchError, Fetched};

/// Default and hard cap of a generic-route payload (§4.2).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
pub const HARD_MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
/// Default requests per minute of a generic-route source (§4.2).
pub const DEFAULT_RATE_LIMIT_RPM: u32 = 600;

/// Secret key names of `scoped_secrets` (§4.3).
pub mod secret_keys {
    pub const PRIVATE_KEY: &str = "privateKey";
    pub const WEBHOOK_SECRET: &str = "webhookSecret";
    pub const WEBHOOK_SECRET_PREVIOUS: &str = "webhookSecretPrevious";
    pub const PAT: &str = "pat";
    pub const SSH_KEY: &str = "sshKey";
    pub const KNOWN_HOSTS: &str = "knownHosts";
    pub const VERIFICATION_SECRET: &str = "verificationSecret";
    pub const ALL: &[&str] = &[
        PRIVATE_KEY,
        WEBHOOK_SECRET,
        WEBHOOK_SECRET_PREVIOUS,
        PAT,
        SSH_KEY,
        KNOWN_HOSTS,
        VERIFICATION_SECRET,
    ];
}

/// Why a source's configuration was refused (an API 400, or a start-up error for seeded
/// sources).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceConfigError {
    #[error("source name {0:?} must match ^[a-z0-9][a-z0-9-]{{0,62}}$")]
    BadName(String),
    #[error("config.{key} is required")]
    Missing { key: &'static str },
    #[error("config.{key} is invalid: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("unknown secret {0:?} (known: {known})", known = secret_keys::ALL.join(", "))]
    UnknownSecret(String),
}

/// `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn validate_source_name(name: &str) -> Result<(), SourceConfigError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SourceConfigError::BadName(name.to_string()))
    }
}

/// Limits every generic-route source shares (§4.2 steps 2–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressLimits {
    /// `maxPayloadBytes`, at most [`HARD_MAX_PAYLOAD_BYTES`].
    pub max_payload_bytes: usize,
    /// `rateLimitRpm`; 0 = unlimited.
    pub rate_limit_rpm: u32,
}

impl Default for IngressLimits {
    fn default() -> Self {
        IngressLimits {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            rate_limit_rpm: DEFAULT_RATE_LIMIT_RPM,
        }
    }
}

/// `credentialType` of a `git` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialType {
    None,
    Pat,
    Ssh,
}

/// A universal-git source (`type: git`).
#[derive(Debug, Clone)]
pub struct GitSettings {
    pub preset: GitPreset,
    /// `https://host/{owner}/{name}.git`, `ssh://git@host/{owner}/{name}.git`, `file://…`.
    pub url_template: String,
    pub credential_type: CredentialType,
    pub pat_user: Option<String>,
    pub pat: Option<Secret>,
    pub ssh_key: Option<Secret>,
    pub known_hosts: Option<Secret>,
    pub ssh_host_key_policy: SshHostKeyPolicy,
    /// Signature secret of the preset's scheme (current, then previous).
    pub webhook_secret: Option<Secret>,
    pub webhook_secret_previous: Option<Secret>,
    /// `custom` preset only: the configured verification and its secret.
    pub verification: Option<Verification>,
    pub verification_secret: Option<Secret>,
    pub custom_mapping: Option<CustomMapping>,
    pub limits: IngressLimits,
}

impl GitSettings {
    /// A source on `url_template` with the given preset and no credentials.
    pub fn new(preset: GitPreset, url_template: impl Into<String>) -> GitSettings {
        GitSettings {
            preset,
            url_template: url_template.into(),
            credential_type: CredentialType::None,
            pat_user: None,
            pat: None,
            ssh_key: None,
            known_hosts: None,
            ssh_host_key_policy: SshHostKeyPolicy::AcceptNew,
            webhook_secret: None,
            webhook_secret_previous: None,
            verification: None,
            verification_secret: None,
            custom_mapping: None,
            limits: IngressLimits::default(),
        }
    }

    /// How git authenticates to the forge, for the orchestrator's own fetches.
    pub fn git_credentials(&self) -> crate::git::GitCredentials {
        use crate::git::GitCredentials;
        match (self.credential_type, &self.pat, &self.ssh_key) {
            (CredentialType::Pat, Some(pat), _) => GitCredentials::Basic {
                user: self.pat_user_or_default().to_string(),
                secret: pat.clone(),
            },
            (CredentialType::Ssh, _, Some(key)) => GitCredentials::Ssh {
                key: key.clone(),
                known_hosts: self.known_hosts.as_ref().map(|k| k.expose().to_string()),
                strict: self.ssh_host_key_policy == SshHostKeyPolicy::Pinned,
            },
            _ => GitCredentials::None,
        }
    }

    fn pat_user_or_default(&self) -> &str {
        self.pat_user.as_deref().unwrap_or("x-access-token")
    }
}

/// A generic JSON webhook source (`type: generic`).
#[derive(Debug, Clone)]
pub struct GenericSettings {
    pub verification: Verification,
    pub verification_secret: Option<Secret>,
    /// Event name, idempotency key and allowed events.
    pub events: GenericConfig,
    /// Headers never stored with the inbox item (besides `authorization` and `cookie`).
    pub strip_headers: Vec<String>,
    pub limits: IngressLimits,
}

impl GenericSettings {
    pub fn new(verification: Verification, secret: Option<Secret>) -> GenericSettings {
        GenericSettings {
            verification,
            verification_secret: secret,
            events: GenericConfig::default(),
            strip_headers: default_strip_headers(),
            limits: IngressLimits::default(),
        }
    }
}

fn default_strip_headers() -> Vec<String> {
    ["authorization", "cookie", "x-signature-256"]
        .map(String::from)
        .to_vec()
}

/// A local source (`type: local`, §4.4).
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Absolute base directory; repositories at `<path>/<owner>/<name>`.
    pub path: PathBuf,
    /// `file://` (default: agents clone the absolute path), or `git://`/`http://` bases.
    pub clone_url_base: Option<String>,
    pub verification: Verification,
    pub verification_secret: Option<Secret>,
    pub allow_remote_unauthenticated: bool,
    pub limits: IngressLimits,
}

impl LocalSettings {
    /// Repositories under `path`, unauthenticated from loopback only.
    pub fn new(path: impl Into<PathBuf>) -> LocalSettings {
        LocalSettings {
            path: path.into(),
            clone_url_base: None,
            verification: Verification::None,
            verification_secret: None,
            allow_remote_unauthenticated: false,
            limits: IngressLimits::default(),
        }
    }
}

// --- parsing from the stored form ---

fn get_str<'a>(config: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn req_str<'a>(
    config: &'a Map<String, Value>,
    key: &'static str,
) -> Result<&'a str, SourceConfigError> {
    get_str(config, key).ok_or(SourceConfigError::Missing { key })
}

fn get_bool(config: &Map<String, Value>, key: &'static str) -> Result<bool, SourceConfigError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(SourceConfigError::Invalid {
            key,
            problem: "expected true or false".into(),
        }),
    }
}

fn parse_value<T: serde::de::DeserializeOwned>(
    config: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<T>, SourceConfigError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| SourceConfigError::Invalid {
                    key,
                    problem: e.to_string(),
                })
        }
    }
}

fn limits(config: &Map<String, Value>) -> Result<IngressLimits, SourceConfigError> {
    let mut limits = IngressLimits::default();
    if let Some(max) = parse_value::<u64>(config, "maxPayloadBytes")? {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        if max == 0 || max > HARD_MAX_PAYLOAD_BYTES {
            return Err(SourceConfigError::Invalid {
                key: "maxPayloadBytes",
                problem: format!("must be between 1 and {HARD_MAX_PAYLOAD_BYTES}"),
            });
        }
        limits.max_payload_bytes = max;
    }
    if let Some(rpm) = parse_value::<u32>(config, "rateLimitRpm")? {
        limits.rate_limit_rpm = rpm;
    }
    Ok(limits)
}

fn verification(
    config: &Map<String, Value>,
    default: Option<Verification>,
) -> Result<Verification, SourceConfigError> {
    let parsed: Option<Verification> = parse_value(config, "verification")?;
    let method = parsed.or(default).ok_or(SourceConfigError::Missing {
        key: "verification",
    })?;
    method.validate().map_err(|e| SourceConfigError::Invalid {
        key: "verification",
        problem: e.to_string(),
    })?;
    Ok(method)
}

/// Secrets by key, as decrypted from `scoped_secrets` (or given to the API).
pub type SecretMap = BTreeMap<String, Secret>;

/// Refuses secret names outside the spec's list.
pub fn check_secret_names(secrets: &SecretMap) -> Result<(), SourceConfigError> {
    match secrets
        .keys()
        .find(|k| !secret_keys::ALL.contains(&k.as_str()))
    {
        Some(unknown) => Err(SourceConfigError::UnknownSecret(unknown.clone())),
        None => Ok(()),
    }
}

/// The typed source kind from the stored `type`, `config` and decrypted secrets.
pub fn parse_kind(
    source_type: SourceType,
    config: &Map<String, Value>,
    secrets: &SecretMap,
) -> Result<(crate::config::SourceKind, Option<PathBuf>), SourceConfigError> {
    use crate::config::SourceKind;
    let secret = |key: &str| secrets.get(key).filter(|s| !s.is_empty()).cloned();
    match source_type {
        SourceType::Github => {
            let app_id = match config.get("appId") {
                Some(Value::Number(n)) => n.to_string(),
                _ => req_str(config, "appId")?.to_string(),
            };
            let kind = SourceKind::GitHubApp {
                app_id,
                webhook_secret: secret(secret_keys::WEBHOOK_SECRET)
                    .unwrap_or_else(|| Secret::new("")),
                previous_webhook_secret: secret(secret_keys::WEBHOOK_SECRET_PREVIOUS),
            };
            // Ours: a GitHub App source may read locks from repositories on disk (tests and
            // the all-in-one mode) until the contents API client exists.
            let lock_base = get_str(config, "localLockBase").map(PathBuf::from);
            Ok((kind, lock_base))
        }
        SourceType::Git => {
            let preset: GitPreset = parse_value(config, "preset")?
                .ok_or(SourceConfigError::Missing { key: "preset" })?;
            let url_template = req_str(config, "urlTemplate")?.to_string();
            if !url_template.contains("{owner}") || !url_template.contains("{name}") {
                return Err(SourceConfigError::Invalid {
                    key: "urlTemplate",
                    problem: "must contain {owner} and {name}".into(),
                });
            }
            let mut settings = GitSettings::new(preset, url_template);
            settings.credential_type = match get_str(config, "credentialType").unwrap_or("none") {
                "none" => CredentialType::None,
                "pat" => CredentialType::Pat,
                "ssh" => CredentialType::Ssh,
                other => {
                    return Err(SourceConfigError::Invalid {
                        key: "credentialType",
                        problem: format!("{other:?} is not none, pat or ssh"),
                    });
                }
            };
            settings.pat_user = get_str(config, "patUser").map(String::from);
            settings.ssh_host_key_policy =
                parse_value(config, "sshHostKeyPolicy")?.unwrap_or(SshHostKeyPolicy::AcceptNew);
            settings.pat = secret(secret_keys::PAT);
            settings.ssh_key = secret(secret_keys::SSH_KEY);
            settings.known_hosts = secret(secret_keys::KNOWN_HOSTS);
            settings.webhook_secret = secret(secret_keys::WEBHOOK_SECRET);
            settings.webhook_secret_previous = secret(secret_keys::WEBHOOK_SECRET_PREVIOUS);
            settings.verification_secret = secret(secret_keys::VERIFICATION_SECRET);
            if preset == GitPreset::Custom {
                let mapping: CustomMapping =
                    parse_value(config, "customMapping")?.ok_or(SourceConfigError::Missing {
                        key: "customMapping",
                    })?;
                mapping.validate().map_err(|e| SourceConfigError::Invalid {
                    key: "customMapping",
                    problem: e.to_string(),
                })?;
                settings.custom_mapping = Some(mapping);
                settings.verification = Some(verification(config, None)?);
            }
            settings.limits = limits(config)?;
            Ok((SourceKind::Git(Box::new(settings)), None))
        }
        SourceType::Generic => {
            let method = verification(config, None)?;
            let mut settings = GenericSettings::new(
                method,
                secret(secret_keys::VERIFICATION_SECRET)
                    .or_else(|| secret(secret_keys::WEBHOOK_SECRET)),
            );
            settings.events =
                serde_json::from_value(Value::Object(config.clone())).map_err(|e| {
                    SourceConfigError::Invalid {
                        key: "eventTypeHeader",
                        problem: e.to_string(),
                    }
                })?;
            if let Some(strip) = parse_value::<Vec<String>>(config, "stripHeaders")? {
                settings.strip_headers = strip.iter().map(|h| h.to_ascii_lowercase()).collect();
            }
            settings.limits = limits(config)?;
            Ok((SourceKind::Generic(Box::new(settings)), None))
        }
        SourceType::Local => {
            let path = PathBuf::from(req_str(config, "path")?);
            if !path.is_absolute() {
                return Err(SourceConfigError::Invalid {
                    key: "path",
                    problem: "must be an absolute directory".into(),
                });
            }
            let mut settings = LocalSettings::new(path);
            settings.clone_url_base = get_str(config, "cloneUrlBase").map(String::from);
            settings.verification = verification(config, Some(Verification::None))?;
            settings.verification_secret = secret(secret_keys::VERIFICATION_SECRET);
            settings.allow_remote_unauthenticated = get_bool(config, "allowRemoteUnauthenticated")?;
            settings.limits = limits(config)?;
            Ok((SourceKind::Local(Box::new(settings)), None))
        }
    }
}

fn verification_json(method: &Verification) -> Value {
    serde_json::to_value(method).unwrap_or(Value::Null)
}

fn put_limits(config: &mut Map<String, Value>, limits: &IngressLimits) {
    config.insert("maxPayloadBytes".into(), limits.max_payload_bytes.into());
    config.insert("rateLimitRpm".into(), limits.rate_limit_rpm.into());
}

/// The stored form of a source kind: its type, non-secret `config` and secrets; the inverse
/// of [`parse_kind`] (used to seed configured sources into the store).
pub fn kind_to_parts(
    kind: &crate::config::SourceKind,
    local_lock_base: Option<&std::path::Path>,
) -> (SourceType, Map<String, Value>, SecretMap) {
    use crate::config::SourceKind;
    let mut config = Map::new();
    let mut secrets = SecretMap::new();
    let mut put_secret = |key: &str, value: &Option<Secret>| {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            secrets.insert(key.to_string(), value.clone());
        }
    };
    let source_type = match kind {
        SourceKind::GitHubApp {
            app_id,
            webhook_secret,
            previous_webhook_secret,
        } => {
            config.insert("appId".into(), app_id.clone().into());
            if let Some(base) = local_lock_base {
                config.insert("localLockBase".into(), base.display().to_string().into());
            }
            put_secret(secret_keys::WEBHOOK_SECRET, &Some(webhook_secret.clone()));
            put_secret(
                secret_keys::WEBHOOK_SECRET_PREVIOUS,
                previous_webhook_secret,
            );
            SourceType::Github
        }
        SourceKind::Git(s) => {
            config.insert("preset".into(), s.preset.as_str().into());
            config.insert("urlTemplate".into(), s.url_template.clone().into());
            let credential = match s.credential_type {
                CredentialType::None => "none",
                CredentialType::Pat => "pat",
                CredentialType::Ssh => "ssh",
            };
            config.insert("credentialType".into(), credential.into());
            if let Some(user) = &s.pat_user {
                config.insert("patUser".into(), user.clone().into());
            }
            config.insert(
                "sshHostKeyPolicy".into(),
                serde_json::to_value(s.ssh_host_key_policy).unwrap_or(Value::Null),
            );
            if let Some(v) = &s.verification {
                config.insert("verification".into(), verification_json(v));
            }
            if let Some(m) = &s.custom_mapping {
                config.insert(
                    "customMapping".into(),
                    serde_json::to_value(m).unwrap_or(Value::Null),
                );
            }
            put_limits(&mut config, &s.limits);
            put_secret(secret_keys::PAT, &s.pat);
            put_secret(secret_keys::SSH_KEY, &s.ssh_key);
            put_secret(secret_keys::KNOWN_HOSTS, &s.known_hosts);
            put_secret(secret_keys::WEBHOOK_SECRET, &s.webhook_secret);
            put_secret(
                secret_keys::WEBHOOK_SECRET_PREVIOUS,
                &s.webhook_secret_previous,
            );
            put_secret(secret_keys::VERIFICATION_SECRET, &s.verification_secret);
            SourceType::Git
        }
        SourceKind::Generic(s) => {
            if let Ok(Value::Object(events)) = serde_json::to_value(&s.events) {
                config.extend(events);
            }
            config.insert("verification".into(), verification_json(&s.verification));
            config.insert("stripHeaders".into(), s.strip_headers.clone().into());
            put_limits(&mut config, &s.limits);
            put_secret(secret_keys::VERIFICATION_SECRET, &s.verification_secret);
            SourceType::Generic
        }
        SourceKind::Local(s) => {
            config.insert("path".into(), s.path.display().to_string().into());
            if let Some(base) = &s.clone_url_base {
                config.insert("cloneUrlBase".into(), base.clone().into());
            }
            config.insert("verification".into(), verification_json(&s.verification));
            config.insert(
                "allowRemoteUnauthenticated".into(),
                s.allow_remote_unauthenticated.into(),
            );
            put_limits(&mut config, &s.limits);
            put_secret(secret_keys::VERIFICATION_SECRET, &s.verification_secret);
            SourceType::Local
        }
    };
    (source_type, config, secrets)
}

/// `sourceType` → the `sources.type` column.
pub fn source_type_str(source_type: SourceType) -> &'static str {
    match source_type {
        SourceType::Github => "github",
        SourceType::Git => "git",
        SourceType::Generic => "generic",
        SourceType::Local => "local",
    }
}

pub fn parse_source_type(text: &str) -> Option<SourceType> {
    match text {
        "github" => Some(SourceType::Github),
        "git" => Some(SourceType::Git),
        "generic" => Some(SourceType::Generic),
        "local" => Some(SourceType::Local),
        _ => None,
    }
}

// --- the provider interface ---

/// A commit status or check-run update (§16). GitHub check runs come later; the type gives
/// them their place in [`Provider`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub repo: String,
    pub sha: String,
    /// `kici/<workflow>` or `kici/<workflow>/job/<job>`.
    pub name: String,
    pub run_id: String,
    /// A run or job status as the API spells it.
    pub status: String,
    pub details_url: Option<String>,
}

/// What the orchestrator needs from a forge (GitHub App, universal-git, local, generic).
pub trait Provider: Send + Sync {
    fn source_type(&self) -> SourceType;

    /// The inbox `provider` column.
    fn inbox_provider(&self) -> &'static str;

    /// A stored delivery → the normalised event (`triggers.md` §9).
    fn normalise(
        &self,
        headers: &kici_engine::provider::Headers,
        body: &[u8],
    ) -> Result<kici_engine::provider::Normalised, kici_engine::provider::NormaliseError>;

    /// The lock at commit `sha` of `repo`.
    fn fetch_lock<'a>(
        &'a self,
        repo: &'a str,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>>;

    /// The commit a ref points at now.
    fn resolve_ref<'a>(
        &'a self,
        repo: &'a str,
        git_ref: &'a str,
    ) -> BoxFuture<'a, Result<String, FetchError>>;

    /// Files changed between two commits.
    fn changed_files<'a>(
        &'a self,
        repo: &'a str,
        base: &'a str,
        head: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, FetchError>>;

    /// Where agents clone `repo` from, without credentials; `None` when `repo` is not a
    /// repository this source can serve.
    fn repo_url(&self, repo: &str) -> Option<String>;

    /// Clone credentials for agents (`job.dispatch` `sourceAuth`); minted per dispatch for
    /// forges with short-lived tokens (GitHub App installation tokens, later).
    fn clone_token<'a>(
        &'a self,
        repo: &'a str,
    ) -> BoxFuture<'a, Result<Option<GitAuth>, FetchError>>;

    /// Reports a run or job status to the forge. Default: nothing to report to.
    fn post_status<'a>(
        &'a self,
        _update: &'a StatusUpdate,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Static clone credentials of a `git` source.
pub(crate) fn git_clone_auth(settings: &GitSettings) -> Option<GitAuth> {
    match settings.credential_type {
        CredentialType::None => None,
        CredentialType::Pat => settings.pat.as_ref().map(|pat| GitAuth {
            kind: GitAuthKind::Basic,
            user: Some(settings.pat_user_or_default().to_string()),
            secret: pat.clone(),
            ssh_host_key_policy: None,
            ssh_known_hosts_pem: None,
        }),
        CredentialType::Ssh => settings.ssh_key.as_ref().map(|key| GitAuth {
            kind: GitAuthKind::Ssh,
            user: None,
            secret: key.clone(),
            ssh_host_key_policy: Some(settings.ssh_host_key_policy),
            ssh_known_hosts_pem: settings
                .known_hosts
                .as_ref()
                .map(|k| k.expose().to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceKind;

    #[test]
    fn names_follow_the_pattern() {
        assert!(validate_source_name("forge-1").is_ok());
        for bad in ["", "-a", "A", "a_b", &"a".repeat(64)] {
            assert!(validate_source_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_round_trip_through_the_stored_form() {
        let mut local = LocalSettings::new("/srv/git");
        local.allow_remote_unauthenticated = true;
        let mut git = GitSettings::new(GitPreset::Gitea, "https://h/{owner}/{name}.git");
        git.credential_type = CredentialType::Pat;
        git.pat = Some(Secret::new("p"));
        let generic = GenericSettings::new(
            Verification::BearerToken {
                header_name: "authorization".into(),
            },
            Some(Secret::new("t")),
        );
        for kind in [
            SourceKind::Local(Box::new(local)),
            SourceKind::Git(Box::new(git)),
            SourceKind::Generic(Box::new(generic)),
        ] {
            let (t, config, secrets) = kind_to_parts(&kind, None);
            let (parsed, _) = parse_kind(t, &config, &secrets).expect("parses");
            assert_eq!(kind_to_parts(&parsed, None), (t, config, secrets));
        }
        let missing = parse_kind(SourceType::Local, &Map::new(), &SecretMap::new());
        assert_eq!(
            missing.unwrap_err(),
            SourceConfigError::Missing { key: "path" }
        );
    }
}
