//! The sources the orchestrator accepts webhooks for, looked up by routing key
//! (`orchestrator.md` §2, §4.3).
//!
//! The store is the truth; [`Sources`] is the in-memory view the ingress and the pipeline
//! read on every delivery. It is loaded at start and refreshed whenever the admin API
//! changes a source, so readers never wait on the database for a lookup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use kici_engine::api::SourceType;
use kici_engine::protocol::{GitAuth, Secret};
use kici_engine::provider::{self as engine_provider, Headers, NormaliseError, Normalised};
use kici_store::{SYSTEM_ORG, SourceRecord, Store, source_secret_scope};

use crate::config::{LockSourceConfig, SourceConfig, SourceKind};
use crate::git::UniversalGit;
use crate::lock_source::{BoxFuture, FetchError, Fetched, LocalFile, LockSource};
use crate::provider::{Provider, SecretMap, SourceConfigError, git_clone_auth, parse_kind};
use crate::secrets::SecretBox;

/// One source with its repository reader.
pub struct Source {
    /// The `sources` row id (the configured name for sources built from configuration
    /// only); stored as the inbox item's `source_id`.
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub routing_key: String,
    /// Disabled sources refuse new deliveries (404); stored items are still processed.
    pub enabled: bool,
    pub kind: SourceKind,
    /// Lock, refs and changed files of the source's repositories.
    pub lock: Arc<dyn LockSource>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("routing_key", &self.routing_key)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Lock reads for GitHub App sources without a local lock base: the contents API client
/// comes later, and until then the fetch fails retryably rather than reading as "no lock".
#[derive(Debug)]
struct GitHubApiPending;

impl LockSource for GitHubApiPending {
    fn fetch<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(async { Err(pending()) })
    }
    fn resolve<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<String, FetchError>> {
        Box::pin(async { Err(pending()) })
    }
    fn changed_files<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, FetchError>> {
        Box::pin(async { Err(pending()) })
    }
}

fn pending() -> FetchError {
    FetchError::Git {
        operation: "contents API",
        dir: String::new(),
        message: "reading locks through the GitHub API is not implemented yet".into(),
    }
}

/// The routing key of a source (`orchestrator.md` §2).
pub fn routing_key(kind: &SourceKind, org_id: &str, name: &str) -> String {
    match kind {
        SourceKind::GitHubApp { app_id, .. } => format!("github:{app_id}"),
        SourceKind::Git(_) | SourceKind::Generic(_) | SourceKind::Local(_) => {
            engine_provider::generic_routing_key(org_id, name)
        }
    }
}

/// The repository reader a kind implies; `local_lock_base` serves GitHub App sources from
/// disk.
fn default_lock(kind: &SourceKind, local_lock_base: Option<&Path>) -> Arc<dyn LockSource> {
    match kind {
        SourceKind::GitHubApp { .. } => match local_lock_base {
            Some(base) => Arc::new(LocalFile::new(base.to_path_buf())),
            None => Arc::new(GitHubApiPending),
        },
        SourceKind::Local(local) => Arc::new(LocalFile::new(local.path.clone())),
        SourceKind::Git(git) => Arc::new(UniversalGit::new(
            git.url_template.clone(),
            git.git_credentials(),
        )),
        // Generic deliveries belong to no repository (registration dispatch, §8.2).
        SourceKind::Generic(_) => Arc::new(GitHubApiPending),
    }
}

impl Source {
    /// A source whose lock comes from `lock` (tests inject failing readers here).
    pub fn new(config: &SourceConfig, lock: Arc<dyn LockSource>) -> Source {
        Source {
            id: config.name.clone(),
            name: config.name.clone(),
            org_id: config.org_id.clone(),
            routing_key: routing_key(&config.kind, &config.org_id, &config.name),
            enabled: true,
            kind: config.kind.clone(),
            lock,
        }
    }

    /// A source with the reader its configuration names.
    pub fn from_config(config: &SourceConfig) -> Source {
        let LockSourceConfig::LocalFile { base } = &config.lock;
        let lock = match &config.kind {
            SourceKind::GitHubApp { .. } => default_lock(&config.kind, Some(base)),
            other => default_lock(other, None),
        };
        Source::new(config, lock)
    }

    /// A source from its stored row and decrypted secrets.
    pub fn from_record(
        record: &SourceRecord,
        secrets: &SecretMap,
    ) -> Result<Source, SourceConfigError> {
        let source_type = crate::provider::parse_source_type(&record.source_type).ok_or(
            SourceConfigError::Invalid {
                key: "type",
                problem: format!("unknown source type {:?}", record.source_type),
            },
        )?;
        let empty = serde_json::Map::new();
        let config = record.config.as_object().unwrap_or(&empty);
        let (kind, lock_base) = parse_kind(source_type, config, secrets)?;
        let lock = default_lock(&kind, lock_base.as_deref());
        Ok(Source {
            id: record.id.clone(),
            name: record.name.clone(),
            org_id: record.org_id.clone(),
            routing_key: record.routing_key.clone(),
            enabled: record.enabled,
            kind,
            lock,
        })
    }

    /// The webhook secrets to try: the current one, then the previous one.
    pub fn webhook_secrets(&self) -> Vec<&Secret> {
        let (current, previous) = match &self.kind {
            SourceKind::GitHubApp {
                webhook_secret,
                previous_webhook_secret,
                ..
            } => (Some(webhook_secret), previous_webhook_secret.as_ref()),
            SourceKind::Git(git) => match git.preset.signature_scheme() {
                Some(_) => (
                    git.webhook_secret.as_ref(),
                    git.webhook_secret_previous.as_ref(),
                ),
                None => (git.verification_secret.as_ref(), None),
            },
            SourceKind::Generic(g) => (g.verification_secret.as_ref(), None),
            SourceKind::Local(l) => (l.verification_secret.as_ref(), None),
        };
        current
            .into_iter()
            .chain(previous)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The URL an agent clones `repo` (`owner/name`) from, without credentials
    /// (`orchestrator.md` §4.3, §4.4): the path on disk for local repositories (or
    /// `<cloneUrlBase>/<owner>/<name>`), the `urlTemplate` for universal-git, else the
    /// forge's HTTPS URL.
    pub fn clone_url(&self, repo: &str) -> String {
        if let SourceKind::Local(local) = &self.kind
            && let Some(base) = local
                .clone_url_base
                .as_deref()
                .filter(|b| !b.starts_with("file:"))
        {
            return format!("{}/{repo}", base.trim_end_matches('/'));
        }
        if let SourceKind::Git(git) = &self.kind {
            return engine_provider::repo_url(&git.url_template, repo).unwrap_or_default();
        }
        match self.lock.local_base() {
            Some(base) => base.join(repo).display().to_string(),
            None => format!("https://github.com/{repo}.git"),
        }
    }

    /// Credentials an agent needs to clone from this source; `None` when it needs none
    /// (local sources, public forges). Sent in `job.dispatch` `sourceAuth`, never in the URL.
    pub fn clone_auth(&self) -> Option<GitAuth> {
        match &self.kind {
            SourceKind::Git(git) => git_clone_auth(git),
            // Installation tokens are minted per dispatch once the GitHub client exists.
            SourceKind::GitHubApp { .. } | SourceKind::Generic(_) | SourceKind::Local(_) => None,
        }
    }

    /// The inbox `provider` column.
    pub fn provider(&self) -> &'static str {
        match self.kind {
            SourceKind::GitHubApp { .. } => "github",
            SourceKind::Git(_) => "git",
            SourceKind::Generic(_) => "generic",
            SourceKind::Local(_) => "local",
        }
    }

    pub fn source_type(&self) -> SourceType {
        match self.kind {
            SourceKind::GitHubApp { .. } => SourceType::Github,
            SourceKind::Git(_) => SourceType::Git,
            SourceKind::Generic(_) => SourceType::Generic,
            SourceKind::Local(_) => SourceType::Local,
        }
    }
}

impl Provider for Source {
    fn source_type(&self) -> SourceType {
        Source::source_type(self)
    }

    fn inbox_provider(&self) -> &'static str {
        self.provider()
    }

    fn normalise(&self, headers: &Headers, body: &[u8]) -> Result<Normalised, NormaliseError> {
        let source = match &self.kind {
            SourceKind::GitHubApp { .. } => engine_provider::Source::GitHubApp,
            SourceKind::Git(git) => engine_provider::Source::UniversalGit {
                preset: git.preset,
                custom: git.custom_mapping.as_ref(),
            },
            SourceKind::Generic(generic) => engine_provider::Source::Generic {
                name: &self.name,
                config: &generic.events,
            },
            SourceKind::Local(_) => engine_provider::Source::Local,
        };
        engine_provider::normalise(source, headers, body)
    }

    fn fetch_lock<'a>(
        &'a self,
        repo: &'a str,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        self.lock.fetch(repo, sha)
    }

    fn resolve_ref<'a>(
        &'a self,
        repo: &'a str,
        git_ref: &'a str,
    ) -> BoxFuture<'a, Result<String, FetchError>> {
        self.lock.resolve(repo, git_ref)
    }

    fn changed_files<'a>(
        &'a self,
        repo: &'a str,
        base: &'a str,
        head: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, FetchError>> {
        self.lock.changed_files(repo, base, head)
    }

    fn repo_url(&self, repo: &str) -> Option<String> {
        let url = self.clone_url(repo);
        (!url.is_empty()).then_some(url)
    }

    fn clone_token<'a>(
        &'a self,
        _repo: &'a str,
    ) -> BoxFuture<'a, Result<Option<GitAuth>, FetchError>> {
        Box::pin(async move { Ok(self.clone_auth()) })
    }
}

/// Why stored sources could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] kici_store::Error),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

/// Decrypts the secrets of one source.
pub async fn load_source_secrets(
    store: &Store,
    secrets: &SecretBox,
    source_id: &str,
) -> Result<SecretMap, LoadError> {
    let scope = source_secret_scope(source_id);
    let mut out = SecretMap::new();
    for stored in store.list_secrets(SYSTEM_ORG, &scope).await? {
        let value = secrets.decrypt(SYSTEM_ORG, &scope, &stored.key, &stored.encrypted_value)?;
        out.insert(stored.key, value);
    }
    Ok(out)
}

/// Every source, by routing key. Interior-mutable: the admin API swaps entries while the
/// ingress reads them (short critical sections, never held across `.await`).
#[derive(Default)]
pub struct Sources {
    by_routing_key: RwLock<HashMap<String, Arc<Source>>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.all().iter().map(|s| &s.routing_key))
            .finish()
    }
}

impl Clone for Sources {
    /// A snapshot: later changes to either copy do not reach the other.
    fn clone(&self) -> Self {
        Sources {
            by_routing_key: RwLock::new(self.read().clone()),
        }
    }
}

impl Sources {
    pub fn from_config(configs: &[SourceConfig]) -> Sources {
        let mut sources = Sources::default();
        for config in configs {
            sources.insert(Source::from_config(config));
        }
        sources
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Source>>> {
        self.by_routing_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Source>>> {
        self.by_routing_key
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&mut self, source: Source) {
        self.put(source);
    }

    /// Adds or replaces the source with this routing key.
    pub fn put(&self, source: Source) {
        self.write()
            .insert(source.routing_key.clone(), Arc::new(source));
    }

    /// Removes the source with this routing key.
    pub fn remove(&self, routing_key: &str) -> Option<Arc<Source>> {
        self.write().remove(routing_key)
    }

    /// Removes the source with this id (whatever its routing key).
    pub fn remove_id(&self, id: &str) {
        self.write().retain(|_, s| s.id != id);
    }

    pub fn get(&self, routing_key: &str) -> Option<Arc<Source>> {
        self.read().get(routing_key).cloned()
    }

    /// A source by org and name.
    pub fn by_name(&self, org_id: &str, name: &str) -> Option<Arc<Source>> {
        self.read()
            .values()
            .find(|s| s.org_id == org_id && s.name == name)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Source>> {
        let mut all: Vec<_> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.routing_key.cmp(&b.routing_key));
        all
    }

    /// Re-reads one source from the store (after the API changed it): replaces the
    /// in-memory entry, or removes it when the source is gone or deleted.
    pub async fn refresh(
        &self,
        store: &Store,
        secrets: &SecretBox,
        id: &str,
    ) -> Result<(), LoadError> {
        self.remove_id(id);
        let Some(record) = store.get_source(id).await? else {
            return Ok(());
        };
        if record.deleted_at.is_some() {
            return Ok(());
        }
        let values = load_source_secrets(store, secrets, id).await?;
        match Source::from_record(&record, &values) {
            Ok(source) => self.put(source),
            Err(e) => {
                tracing::error!(source = %record.name, error = %e, "stored source is invalid; not serving it");
            }
        }
        Ok(())
    }
}

/// The lock base a configured GitHub App source reads from (seeded as `localLockBase`).
pub(crate) fn config_lock_base(config: &SourceConfig) -> Option<PathBuf> {
    match (&config.kind, &config.lock) {
        (SourceKind::GitHubApp { .. }, LockSourceConfig::LocalFile { base }) => Some(base.clone()),
        _ => None,
    }
}
