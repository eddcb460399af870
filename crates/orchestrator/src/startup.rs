//! What the orchestrator does once at start, after migrating and before serving: check the
//! master key, seed configured sources into the store, load every stored source, and create
//! the bootstrap owner token on first start (`orchestrator.md` §4.3, §15.1, §18.1).

use std::collections::HashSet;

use kici_engine::api::{ADMIN_TOKEN_PREFIX, Role};
use kici_engine::protocol::Secret;
use kici_store::{
    BackendKind, NewAdminToken, NewSource, SYSTEM_ORG, SecretWrite, source_secret_scope,
};

use crate::api::AppState;
use crate::provider::{SecretMap, kind_to_parts, source_type_str};
use crate::secrets::{SecretBox, SecretError};
use crate::source::{LoadError, Source, config_lock_base, load_source_secrets};

/// Why start-up preparation failed.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("secret key: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot seed source {name}: {message}")]
    Seed { name: String, message: String },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Store(#[from] kici_store::Error),
}

/// Encrypts secrets for a source's scope.
pub(crate) fn encrypt_source_secrets(
    secrets: &SecretBox,
    source_id: &str,
    values: &SecretMap,
) -> Result<Vec<SecretWrite>, SecretError> {
    let scope = source_secret_scope(source_id);
    values
        .iter()
        .map(|(key, value)| {
            Ok(SecretWrite {
                key: key.clone(),
                encrypted_value: secrets.encrypt(SYSTEM_ORG, &scope, key, value.expose())?,
                key_version: 1,
            })
        })
        .collect()
}

/// Runs the start-up steps; returns the bootstrap token when one was generated now (the
/// caller shows it once; it is never logged).
pub async fn prepare(state: &AppState) -> Result<Option<Secret>, StartupError> {
    let config = &state.inner.config;
    let store = state.store();
    // The key the state already holds was loaded the same way; loading it again here turns
    // a bad or missing key into a start-up error instead of a silent in-memory key.
    SecretBox::load(
        config.secret_key.as_ref(),
        &config.data_dir,
        store.kind() == BackendKind::Postgres,
    )?;
    let secrets = state.secret_box();
    let now = crate::now_ms();

    let mut seeded = HashSet::new();
    for source in &config.sources {
        let (source_type, json, values) =
            kind_to_parts(&source.kind, config_lock_base(source).as_deref());
        let routing_key = crate::source::routing_key(&source.kind, &source.org_id, &source.name);
        let new = NewSource {
            org_id: source.org_id.clone(),
            name: source.name.clone(),
            source_type: source_type_str(source_type).to_string(),
            routing_key: routing_key.clone(),
            enabled: true,
            config: serde_json::Value::Object(json),
        };
        // Secrets are bound to the row id, which only the upsert reveals: write the row
        // first, then its secrets.
        let record = store
            .upsert_source(&new, &[], now)
            .await
            .map_err(|e| StartupError::Seed {
                name: source.name.clone(),
                message: e.to_string(),
            })?;
        let writes = encrypt_source_secrets(secrets, &record.id, &values)?;
        store.update_source(&record.id, None, &writes, now).await?;
        seeded.insert(routing_key);
    }

    // Stored sources: sources passed in by the caller (tests inject readers) win over
    // stored ones, except the configured ones just seeded, which the store now describes.
    for record in store.list_sources().await? {
        if state.sources().get(&record.routing_key).is_some()
            && !seeded.contains(&record.routing_key)
        {
            continue;
        }
        let values = load_source_secrets(store, secrets, &record.id).await?;
        match Source::from_record(&record, &values) {
            Ok(source) => state.sources().put(source),
            Err(e) => {
                tracing::error!(source = %record.name, error = %e, "stored source is invalid; not serving it");
            }
        }
    }

    if store.has_admin_tokens().await? {
        return Ok(None);
    }
    let owner = NewAdminToken {
        label: "bootstrap".to_string(),
        role: role_str(Role::Owner).to_string(),
        expires_at: None,
    };
    match &config.bootstrap_admin_token {
        Some(token) => {
            store
                .insert_admin_token(&owner, token.expose(), now)
                .await?;
            tracing::info!("created the bootstrap owner token from KICI_BOOTSTRAP_ADMIN_TOKEN");
            Ok(None)
        }
        None => {
            let (_, token) = store.create_admin_token(&owner, now).await?;
            debug_assert!(token.starts_with(ADMIN_TOKEN_PREFIX));
            tracing::info!("created a bootstrap owner token; it is shown once on stderr");
            Ok(Some(Secret::new(token)))
        }
    }
}

pub(crate) fn role_str(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Admin => "admin",
        Role::Auditor => "auditor",
    }
}

pub(crate) fn parse_role(text: &str) -> Option<Role> {
    match text {
        "owner" => Some(Role::Owner),
        "admin" => Some(Role::Admin),
        "auditor" => Some(Role::Auditor),
        _ => None,
    }
}
