//! Admin authentication and authorisation (`orchestrator.md` §18.1): `Authorization:
//! Bearer <token>`, looked up by hash (the store keeps only SHA-256 hashes and compares them
//! in constant time), then a role → permission check per endpoint.
//!
//! Tokens are never logged: the extractor logs only the token id and label.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use kici_engine::api::Role;

use super::AppState;
use crate::error::ApiError;
use crate::startup::parse_role;

/// The permissions of §18.1 that v1 endpoints check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    RunRead,
    RunCancel,
    RunDispatch,
    EventLogRead,
    EventLogReadPayload,
    EventDlqManage,
    SourceManage,
    QueueManage,
    TokenManage,
    /// Owner-only endpoints (`GET config`, `db/migrate`).
    Owner,
}

impl Permission {
    fn name(self) -> &'static str {
        match self {
            Permission::RunRead => "run.read",
            Permission::RunCancel => "run.cancel",
            Permission::RunDispatch => "run.dispatch",
            Permission::EventLogRead => "event_log.read",
            Permission::EventLogReadPayload => "event_log.read_payload",
            Permission::EventDlqManage => "event_dlq.manage",
            Permission::SourceManage => "source.manage",
            Permission::QueueManage => "queue.manage",
            Permission::TokenManage => "token.manage",
            Permission::Owner => "owner role",
        }
    }

    /// The table of §18.1.
    pub fn granted_to(self, role: Role) -> bool {
        match self {
            Permission::RunRead | Permission::EventLogRead => true,
            Permission::RunCancel
            | Permission::RunDispatch
            | Permission::EventLogReadPayload
            | Permission::EventDlqManage
            | Permission::SourceManage
            | Permission::QueueManage => matches!(role, Role::Owner | Role::Admin),
            Permission::TokenManage | Permission::Owner => role == Role::Owner,
        }
    }
}

/// An authenticated admin caller.
#[derive(Debug, Clone)]
pub struct Admin {
    pub token_id: String,
    pub label: String,
    pub role: Role,
}

impl Admin {
    /// 403 unless the caller's role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if permission.granted_to(self.role) {
            Ok(())
        } else {
            tracing::info!(token = %self.token_id, permission = permission.name(), "admin request refused");
            Err(ApiError::Forbidden(format!(
                "this token lacks the {} permission",
                permission.name()
            )))
        }
    }

    /// How the caller is recorded as an actor (`cancelledBy`, `requestedBy`).
    pub fn actor(&self) -> String {
        format!("token:{}", self.label)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        let token = match header.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => header[7..].trim(),
            _ => {
                return Err(ApiError::Unauthorized(
                    "expected Authorization: Bearer <token>".into(),
                ));
            }
        };
        if token.is_empty() {
            return Err(ApiError::Unauthorized("missing bearer token".into()));
        }
        let record = state
            .store()
            .authenticate_admin_token(token, crate::now_ms())
            .await?
            .ok_or_else(|| ApiError::Unauthorized("invalid, expired or revoked token".into()))?;
        let role = parse_role(&record.role)
            .ok_or_else(|| ApiError::Forbidden("the token has an unknown role".into()))?;
        Ok(Admin {
            token_id: record.id,
            label: record.label,
            role,
        })
    }
}
