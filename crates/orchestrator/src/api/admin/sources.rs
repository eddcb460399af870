//! `sources` (§18.2, §4.3): create, list, show, patch, delete, enable, disable. Secrets are
//! write-only: they are encrypted before they reach the store, and answers list only the
//! names of the secrets that are set. Every change refreshes the in-memory [`Sources`] the
//! ingress reads.
//!
//! [`Sources`]: crate::source::Sources

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kici_engine::api::{CreateSource, PatchSource, SourceInfo, SourceType};
use kici_store::{NewSource, SYSTEM_ORG, SourceRecord, source_secret_scope};
use serde_json::{Map, Value};

use super::JsonBody;
use crate::api::AppState;
use crate::api::auth::{Admin, Permission};
use crate::api::views::ms;
use crate::error::ApiError;
use crate::provider::{
    SecretMap, SourceConfigError, check_secret_names, parse_kind, parse_source_type,
    source_type_str, validate_source_name,
};
use crate::source::{load_source_secrets, routing_key};
use crate::startup::encrypt_source_secrets;

/// v1 is single-tenant (§1).
const ORG: &str = "default";

fn bad(e: SourceConfigError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "source secrets unavailable");
    ApiError::Internal("the source's secrets could not be read or written".into())
}

/// The URL a forge posts to for this source.
pub(crate) fn webhook_url(state: &AppState, record: &SourceRecord) -> String {
    let config = &state.inner.config;
    let base = config
        .webhook_public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.bind));
    let base = base.trim_end_matches('/');
    if record.source_type == "github" {
        format!("{base}/webhook/{}/github", record.org_id)
    } else {
        format!("{base}/webhook/{}/generic/{}", record.org_id, record.name)
    }
}

async fn info(state: &AppState, record: &SourceRecord) -> Result<SourceInfo, ApiError> {
    let scope = source_secret_scope(&record.id);
    let secret_keys = state
        .store()
        .list_secrets(SYSTEM_ORG, &scope)
        .await?
        .into_iter()
        .map(|s| s.key)
        .collect();
    Ok(SourceInfo {
        id: record.id.clone(),
        name: record.name.clone(),
        source_type: parse_source_type(&record.source_type).unwrap_or(SourceType::Generic),
        routing_key: record.routing_key.clone(),
        enabled: record.enabled,
        config: record.config.as_object().cloned().unwrap_or_default(),
        webhook_url: webhook_url(state, record),
        secret_keys,
        created_at: ms(record.created_at),
        updated_at: ms(record.updated_at),
    })
}

async fn find(state: &AppState, name: &str) -> Result<SourceRecord, ApiError> {
    state
        .store()
        .get_source_by_name(ORG, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no source {name}")))
}

async fn refresh(state: &AppState, id: &str) -> Result<(), ApiError> {
    state
        .sources()
        .refresh(state.store(), state.secret_box(), id)
        .await
        .map_err(internal)
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<CreateSource>,
) -> Result<(StatusCode, Json<SourceInfo>), ApiError> {
    admin.require(Permission::SourceManage)?;
    validate_source_name(&body.name).map_err(bad)?;
    let secrets: SecretMap = body.secrets.clone();
    check_secret_names(&secrets).map_err(bad)?;
    // Parsing validates the configuration with the secrets it needs.
    let (kind, _) = parse_kind(body.source_type, &body.config, &secrets).map_err(bad)?;
    let id = kici_store::new_id();
    let writes = encrypt_source_secrets(state.secret_box(), &id, &secrets).map_err(internal)?;
    let new = NewSource {
        org_id: ORG.to_string(),
        name: body.name.clone(),
        source_type: source_type_str(body.source_type).to_string(),
        routing_key: routing_key(&kind, ORG, &body.name),
        enabled: true,
        config: Value::Object(body.config.clone()),
    };
    let record = match state
        .store()
        .create_source(&id, &new, &writes, crate::now_ms())
        .await
    {
        Err(kici_store::Error::Conflict { .. }) => {
            return Err(ApiError::Conflict(format!(
                "a source named {} (or with routing key {}) exists",
                body.name, new.routing_key
            )));
        }
        other => other?,
    };
    refresh(&state, &record.id).await?;
    tracing::info!(source = %record.name, r#type = %record.source_type, by = %admin.token_id, "source created");
    Ok((StatusCode::CREATED, Json(info(&state, &record).await?)))
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<SourceInfo>>, ApiError> {
    admin.require(Permission::RunRead)?;
    let mut out = Vec::new();
    for record in state.store().list_sources().await? {
        out.push(info(&state, &record).await?);
    }
    Ok(Json(out))
}

pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<SourceInfo>, ApiError> {
    admin.require(Permission::RunRead)?;
    let record = find(&state, &name).await?;
    Ok(Json(info(&state, &record).await?))
}

/// Present keys replace, absent keys stay; `null` secrets are not supported (write-only).
pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<PatchSource>,
) -> Result<Json<SourceInfo>, ApiError> {
    admin.require(Permission::SourceManage)?;
    let record = find(&state, &name).await?;
    let source_type = parse_source_type(&record.source_type)
        .ok_or_else(|| ApiError::Internal("stored source has an unknown type".into()))?;
    let mut config: Map<String, Value> = record.config.as_object().cloned().unwrap_or_default();
    if let Some(patch) = &body.config {
        for (k, v) in patch {
            if v.is_null() {
                config.remove(k);
            } else {
                config.insert(k.clone(), v.clone());
            }
        }
    }
    let new_secrets = body.secrets.clone().unwrap_or_default();
    check_secret_names(&new_secrets).map_err(bad)?;
    let mut merged = load_source_secrets(state.store(), state.secret_box(), &record.id)
        .await
        .map_err(internal)?;
    merged.extend(new_secrets.clone());
    let (kind, _) = parse_kind(source_type, &config, &merged).map_err(bad)?;
    if routing_key(&kind, &record.org_id, &record.name) != record.routing_key {
        return Err(ApiError::BadRequest(
            "the change would move the source to another routing key; create a new source".into(),
        ));
    }
    let writes =
        encrypt_source_secrets(state.secret_box(), &record.id, &new_secrets).map_err(internal)?;
    let config = Value::Object(config);
    state
        .store()
        .update_source(&record.id, Some(&config), &writes, crate::now_ms())
        .await?;
    refresh(&state, &record.id).await?;
    tracing::info!(source = %record.name, by = %admin.token_id, "source updated");
    let record = find(&state, &name).await?;
    Ok(Json(info(&state, &record).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require(Permission::SourceManage)?;
    let record = find(&state, &name).await?;
    state
        .store()
        .delete_source(&record.id, crate::now_ms())
        .await?;
    refresh(&state, &record.id).await?;
    tracing::info!(source = %record.name, by = %admin.token_id, "source deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    admin: &Admin,
    name: &str,
    enabled: bool,
) -> Result<Json<SourceInfo>, ApiError> {
    admin.require(Permission::SourceManage)?;
    let record = find(state, name).await?;
    state
        .store()
        .set_source_enabled(&record.id, enabled, crate::now_ms())
        .await?;
    refresh(state, &record.id).await?;
    tracing::info!(source = %record.name, enabled, by = %admin.token_id, "source toggled");
    let record = find(state, name).await?;
    Ok(Json(info(state, &record).await?))
}

pub async fn enable(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<SourceInfo>, ApiError> {
    set_enabled(&state, &admin, &name, true).await
}

pub async fn disable(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<SourceInfo>, ApiError> {
    set_enabled(&state, &admin, &name, false).await
}
