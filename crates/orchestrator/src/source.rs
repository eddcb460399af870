//! The sources the orchestrator accepts webhooks for, looked up by routing key
//! (`orchestrator.md` §2, §4.3).

use std::collections::HashMap;
use std::sync::Arc;

use kici_engine::protocol::Secret;

use crate::config::{LockSourceConfig, SourceConfig, SourceKind};
use crate::lock_source::{LocalFile, LockSource};

/// One source with its lock reader.
pub struct Source {
    /// Stored as the inbox item's `source_id`.
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub routing_key: String,
    pub kind: SourceKind,
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

impl Source {
    /// A source whose lock comes from `lock` (tests inject failing readers here).
    pub fn new(config: &SourceConfig, lock: Arc<dyn LockSource>) -> Source {
        let routing_key = match &config.kind {
            SourceKind::GitHubApp { app_id, .. } => format!("github:{app_id}"),
        };
        Source {
            id: config.name.clone(),
            name: config.name.clone(),
            org_id: config.org_id.clone(),
            routing_key,
            kind: config.kind.clone(),
            lock,
        }
    }

    /// A source with the lock reader its configuration names.
    pub fn from_config(config: &SourceConfig) -> Source {
        let lock: Arc<dyn LockSource> = match &config.lock {
            LockSourceConfig::LocalFile { base } => Arc::new(LocalFile::new(base.clone())),
        };
        Source::new(config, lock)
    }

    /// The webhook secrets to try: the current one, then the previous one.
    pub fn webhook_secrets(&self) -> Vec<&Secret> {
        match &self.kind {
            SourceKind::GitHubApp {
                webhook_secret,
                previous_webhook_secret,
                ..
            } => std::iter::once(webhook_secret)
                .chain(previous_webhook_secret.as_ref())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    /// The URL an agent clones `repo` (`owner/name`) from, without credentials
    /// (`orchestrator.md` §4.3, §4.4): the path on disk for local-file locks, else the
    /// forge's HTTPS URL.
    pub fn clone_url(&self, repo: &str) -> String {
        match self.lock.local_base() {
            Some(base) => base.join(repo).display().to_string(),
            None => format!("https://github.com/{repo}.git"),
        }
    }

    /// Credentials an agent needs to clone from this source; `None` when it needs none
    /// (local sources). Sent in `job.dispatch` `sourceAuth`, never in the URL.
    pub fn clone_auth(&self) -> Option<kici_engine::protocol::GitAuth> {
        None
    }

    /// The inbox `provider` column.
    pub fn provider(&self) -> &'static str {
        match self.kind {
            SourceKind::GitHubApp { .. } => "github",
        }
    }
}

/// Every source, by routing key.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    by_routing_key: HashMap<String, Arc<Source>>,
}

impl Sources {
    pub fn from_config(configs: &[SourceConfig]) -> Sources {
        let mut sources = Sources::default();
        for config in configs {
            sources.insert(Source::from_config(config));
        }
        sources
    }

    pub fn insert(&mut self, source: Source) {
        self.by_routing_key
            .insert(source.routing_key.clone(), Arc::new(source));
    }

    pub fn get(&self, routing_key: &str) -> Option<Arc<Source>> {
        self.by_routing_key.get(routing_key).cloned()
    }
}
