//! `capabilities`, `agents`, `diagnose` and `config` (§18.2).

use axum::Json;
use axum::extract::State;
use kici_engine::api::{AgentInfo, Capabilities, CheckStatus, Diagnosis, DiagnosticCheck};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::auth::{Admin, Permission};
use crate::config::SourceKind;
use crate::error::ApiError;
use crate::provider::CredentialType;
use crate::secrets::KeyOrigin;
use crate::source::Source;

/// What this orchestrator offers beyond the protocol version (ours).
const FEATURES: &[&str] = &[
    "inbox",
    "sources:github",
    "sources:git",
    "sources:generic",
    "sources:local",
    "sse",
    "manual-dispatch",
    "dead-letters",
];

/// `GET /api/v1/capabilities` (unauthenticated).
pub async fn capabilities() -> Json<Capabilities> {
    Json(Capabilities {
        orchestrator_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: kici_engine::protocol::PROTOCOL_VERSION,
        min_protocol_version: kici_engine::protocol::MIN_PROTOCOL_VERSION,
        lock_schema_version: kici_engine::lock::SCHEMA_VERSION,
        features: FEATURES.iter().map(|f| (*f).to_string()).collect(),
    })
}

/// `GET agents`: the connection registry's view.
pub async fn agents(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<AgentInfo>>, ApiError> {
    admin.require(Permission::RunRead)?;
    Ok(Json(state.agents().agents()))
}

fn check(name: &str, status: CheckStatus, detail: impl Into<String>) -> DiagnosticCheck {
    DiagnosticCheck {
        name: name.to_string(),
        status,
        detail: detail.into(),
    }
}

/// Whether a source has the secrets its configuration needs; `None` when it needs none.
fn missing_credentials(source: &Source) -> Vec<&'static str> {
    let mut missing = Vec::new();
    let needs_secret = |m: &kici_engine::signature::Verification| {
        matches!(
            m,
            kici_engine::signature::Verification::HmacSha256 { .. }
                | kici_engine::signature::Verification::BearerToken { .. }
        )
    };
    match &source.kind {
        SourceKind::GitHubApp { webhook_secret, .. } => {
            if webhook_secret.is_empty() {
                missing.push("webhookSecret");
            }
        }
        SourceKind::Git(g) => {
            match (g.credential_type, &g.pat, &g.ssh_key) {
                (CredentialType::Pat, None, _) => missing.push("pat"),
                (CredentialType::Ssh, _, None) => missing.push("sshKey"),
                _ => {}
            }
            if g.preset.signature_scheme().is_some() && g.webhook_secret.is_none() {
                missing.push("webhookSecret");
            }
        }
        SourceKind::Generic(g) => {
            if needs_secret(&g.verification) && g.verification_secret.is_none() {
                missing.push("verificationSecret");
            }
        }
        SourceKind::Local(l) => {
            if needs_secret(&l.verification) && l.verification_secret.is_none() {
                missing.push("verificationSecret");
            }
        }
    }
    missing
}

/// `GET diagnose`: database, migrations, secret key, data directory, agents, sources.
pub async fn diagnose(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Diagnosis>, ApiError> {
    admin.require(Permission::RunRead)?;
    let store = state.store();
    let mut checks = Vec::new();
    checks.push(match store.ping().await {
        Ok(()) => check(
            "database",
            CheckStatus::Pass,
            format!("{:?} answers", store.kind()),
        ),
        Err(e) => check("database", CheckStatus::Fail, e.to_string()),
    });
    checks.push(match store.schema_version().await {
        Ok(v) if v > 0 => check(
            "migrations",
            CheckStatus::Pass,
            format!("schema version {v}"),
        ),
        Ok(_) => check(
            "migrations",
            CheckStatus::Fail,
            "the database is not migrated",
        ),
        Err(e) => check("migrations", CheckStatus::Fail, e.to_string()),
    });
    checks.push(match state.secret_box().origin() {
        KeyOrigin::Configured => check("secret key", CheckStatus::Pass, "KICI_SECRET_KEY"),
        KeyOrigin::File(path) => check(
            "secret key",
            CheckStatus::Pass,
            format!("key file {}", path.display()),
        ),
        KeyOrigin::Ephemeral => check(
            "secret key",
            CheckStatus::Warn,
            "in-memory key: stored secrets will not decrypt after a restart",
        ),
        KeyOrigin::Unavailable => check("secret key", CheckStatus::Fail, "no key available"),
    });
    let data_dir = state.inner.config.data_dir.clone();
    let probe = data_dir.join(format!(".kici-write-probe-{}", kici_store::new_id()));
    checks.push(
        match std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
            Ok(()) => check(
                "data dir",
                CheckStatus::Pass,
                data_dir.display().to_string(),
            ),
            Err(e) => check(
                "data dir",
                CheckStatus::Fail,
                format!("{} is not writable: {e}", data_dir.display()),
            ),
        },
    );
    let connected = state.agents().connected();
    checks.push(if connected == 0 {
        check("agents", CheckStatus::Warn, "no agent is connected")
    } else {
        check(
            "agents",
            CheckStatus::Pass,
            format!("{connected} connected"),
        )
    });
    for source in state.sources().all() {
        let missing = missing_credentials(&source);
        let name = format!("source {}", source.name);
        checks.push(if missing.is_empty() {
            check(&name, CheckStatus::Pass, "credentials present")
        } else {
            check(
                &name,
                CheckStatus::Fail,
                format!("missing secrets: {}", missing.join(", ")),
            )
        });
    }
    Ok(Json(Diagnosis { checks }))
}

const REDACTED: &str = "[redacted]";

fn redact_url(url: &str) -> String {
    // `scheme://user:password@host/…` → the password is replaced.
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:{REDACTED}{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `GET config` (owner): the effective configuration, secrets redacted.
pub async fn config(State(state): State<AppState>, admin: Admin) -> Result<Json<Value>, ApiError> {
    admin.require(Permission::Owner)?;
    let c = &state.inner.config;
    let secret = |s: &Option<kici_engine::protocol::Secret>| {
        if s.is_some() {
            Value::String(REDACTED.into())
        } else {
            Value::Null
        }
    };
    Ok(Json(json!({
        "bind": c.bind.to_string(),
        "dataDir": c.data_dir.display().to_string(),
        "databaseUrl": redact_url(&c.effective_database_url()),
        "autoMigrate": c.auto_migrate,
        "dbMaxConnections": c.db_max_connections,
        "inboxWorkers": c.inbox.workers,
        "inboxMaxAttempts": c.inbox.max_attempts,
        "queueMaxDepth": c.queue_max_depth,
        "queueTimeoutMs": c.queue_timeout.map(|d| d.as_millis() as u64),
        "lockfileCacheMax": c.lock_cache_max,
        "lockfileCacheTtlMs": c.lock_cache_ttl.as_millis() as u64,
        "trustedProxies": c.trusted_proxies,
        "webhookPublicUrl": c.webhook_public_url,
        "secretKey": secret(&c.secret_key),
        "bootstrapAdminToken": secret(&c.bootstrap_admin_token),
        "nodeId": c.node_id,
        "sources": state.sources().all().iter().map(|s| json!({
            "name": s.name,
            "type": s.provider(),
            "routingKey": s.routing_key,
            "enabled": s.enabled,
        })).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            super::redact_url("postgres://u:pw@h/db"),
            "postgres://u:[redacted]@h/db"
        );
        assert_eq!(super::redact_url("sqlite:///d/k.db"), "sqlite:///d/k.db");
    }
}
