//! `tokens` and `agent-tokens` (§18.2, permission `token.manage`): secrets are returned once,
//! on creation; lists never contain them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kici_engine::api::{
    AdminTokenInfo, AgentTokenInfo, AgentTokenType, CreateAdminToken, CreateAgentToken,
    CreatedAdminToken, CreatedAgentToken,
};
use kici_engine::protocol::Secret;
use kici_store::{AdminToken, AgentToken, AgentTokenKind, NewAdminToken, NewAgentToken};

use super::JsonBody;
use crate::api::AppState;
use crate::api::auth::{Admin, Permission};
use crate::api::views::{ms, opt_ms};
use crate::error::ApiError;
use crate::startup::{parse_role, role_str};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn admin_info(token: &AdminToken) -> Result<AdminTokenInfo, ApiError> {
    Ok(AdminTokenInfo {
        id: token.id.clone(),
        label: token.label.clone(),
        role: parse_role(&token.role)
            .ok_or_else(|| ApiError::Internal("a stored token has an unknown role".into()))?,
        created_at: ms(token.created_at),
        expires_at: opt_ms(token.expires_at),
        last_used_at: opt_ms(token.last_used_at),
        revoked_at: opt_ms(token.revoked_at),
    })
}

pub async fn create_admin(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<CreateAdminToken>,
) -> Result<(StatusCode, Json<CreatedAdminToken>), ApiError> {
    admin.require(Permission::TokenManage)?;
    if body.label.trim().is_empty() {
        return Err(ApiError::BadRequest("label must not be empty".into()));
    }
    let now = crate::now_ms();
    let new = NewAdminToken {
        label: body.label.clone(),
        role: role_str(body.role).to_string(),
        expires_at: body
            .expires_in_days
            .map(|d| now.saturating_add(i64::from(d).saturating_mul(DAY_MS))),
    };
    let (record, token) = state.store().create_admin_token(&new, now).await?;
    tracing::info!(token = %record.id, role = %record.role, by = %admin.token_id, "admin token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedAdminToken {
            id: record.id,
            token: Secret::new(token),
            label: record.label,
            role: body.role,
            created_at: ms(record.created_at),
            expires_at: opt_ms(record.expires_at),
        }),
    ))
}

pub async fn list_admin(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<AdminTokenInfo>>, ApiError> {
    admin.require(Permission::TokenManage)?;
    let tokens = state.store().list_admin_tokens().await?;
    Ok(Json(
        tokens.iter().map(admin_info).collect::<Result<_, _>>()?,
    ))
}

pub async fn revoke_admin(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require(Permission::TokenManage)?;
    if state
        .store()
        .revoke_admin_token(&id, crate::now_ms())
        .await?
    {
        tracing::info!(token = %id, by = %admin.token_id, "admin token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no active admin token {id}")))
    }
}

fn agent_info(token: &AgentToken) -> AgentTokenInfo {
    AgentTokenInfo {
        id: token.id.clone(),
        prefix: token.token_prefix.clone(),
        label: token.label.clone(),
        labels: token.labels.clone(),
        mandatory_labels: token.mandatory_labels.clone(),
        privileged_root: token.privileged_root,
        agent_type: match token.kind {
            AgentTokenKind::Static => AgentTokenType::Static,
            AgentTokenKind::Ephemeral => AgentTokenType::Ephemeral,
        },
        bound_agent_id: token.bound_agent_id.clone(),
        max_uses: token.max_uses.and_then(|m| u32::try_from(m).ok()),
        uses: u32::try_from(token.uses.max(0)).unwrap_or(u32::MAX),
        created_at: ms(token.created_at),
        expires_at: opt_ms(token.expires_at),
        revoked_at: opt_ms(token.revoked_at),
        last_seen_at: opt_ms(token.last_seen_at),
    }
}

pub async fn create_agent(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<CreateAgentToken>,
) -> Result<(StatusCode, Json<CreatedAgentToken>), ApiError> {
    admin.require(Permission::TokenManage)?;
    let now = crate::now_ms();
    let new = NewAgentToken {
        label: body.label,
        labels: body.labels,
        mandatory_labels: body.mandatory_labels.unwrap_or_default(),
        privileged_root: body.privileged_root.unwrap_or(false),
        kind: AgentTokenKind::Static,
        bound_agent_id: body.agent_id,
        max_uses: body.max_uses.map(i64::from),
        expires_at: body
            .expires_in_seconds
            .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))),
    };
    let (record, token) = state.store().create_agent_token(&new, now).await?;
    tracing::info!(token = %record.id, by = %admin.token_id, "agent token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedAgentToken {
            token: Secret::new(token),
            info: agent_info(&record),
        }),
    ))
}

pub async fn list_agent(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<AgentTokenInfo>>, ApiError> {
    admin.require(Permission::TokenManage)?;
    let tokens = state.store().list_agent_tokens().await?;
    Ok(Json(tokens.iter().map(agent_info).collect()))
}

/// Revocation: the token authenticates nothing from now on, and the agents connected with
/// it are closed with 4010 (their jobs take the disconnect path, §18.2).
pub async fn revoke_agent(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require(Permission::TokenManage)?;
    if state
        .store()
        .revoke_agent_token(&id, crate::now_ms())
        .await?
    {
        let closed = crate::agents::close_agents_of_token(&state, &id).await;
        tracing::info!(token = %id, by = %admin.token_id, closed, "agent token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no active agent token {id}")))
    }
}
