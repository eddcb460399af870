//! Agent and admin tokens (`orchestrator.md` §18, §21). Only SHA-256 hashes are stored: a
//! leaked database does not leak credentials. Lookup is by hash through the unique index;
//! the fetched hash is then compared in constant time, so a timing difference in the
//! database's index comparison cannot be turned into an oracle on our side either.

use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::{Error, Result, RowExt, Store, on_backend, on_reader};

/// SHA-256 of a token, lower-case hex: the only form that is stored.
pub fn hash_token(token: &str) -> String {
    crate::sha256_hex(token.as_bytes())
}

/// A fresh secret token: `prefix` + 64 lower-case hex characters (32 random bytes), as in
/// `kat_…` (agent) and `kadm_…` (admin).
pub fn generate_token(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

fn hashes_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// `agent_tokens.agent_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTokenKind {
    Static,
    Ephemeral,
}

impl AgentTokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentTokenKind::Static => "static",
            AgentTokenKind::Ephemeral => "ephemeral",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewAgentToken {
    pub label: Option<String>,
    /// `None` = unscoped (any labels may be advertised).
    pub labels: Option<Vec<String>>,
    pub mandatory_labels: Vec<String>,
    pub privileged_root: bool,
    pub kind: AgentTokenKind,
    pub bound_agent_id: Option<String>,
    pub max_uses: Option<i64>,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentToken {
    pub id: String,
    pub label: Option<String>,
    /// The first 12 characters of the token, for display.
    pub token_prefix: String,
    pub labels: Option<Vec<String>>,
    pub mandatory_labels: Vec<String>,
    pub privileged_root: bool,
    pub kind: AgentTokenKind,
    pub bound_agent_id: Option<String>,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_seen_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewAdminToken {
    pub label: String,
    /// `owner` | `admin` | `auditor`.
    pub role: String,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub id: String,
    pub label: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn string_list(value: Option<Value>, column: &'static str) -> Result<Option<Vec<String>>> {
    value
        .map(|v| {
            serde_json::from_value(v).map_err(|e| Error::Corrupt {
                column,
                message: e.to_string(),
            })
        })
        .transpose()
}

macro_rules! agent_token_columns {
    () => {
        "id, label, token_hash, token_prefix, labels, mandatory_labels, privileged_root, agent_type, bound_agent_id, max_uses, uses, created_at, expires_at, revoked_at, last_seen_at"
    };
}

fn agent_token_from_row(row: &impl RowExt) -> Result<AgentToken> {
    let kind = row.text("agent_type")?;
    Ok(AgentToken {
        id: row.text("id")?,
        label: row.opt_text("label")?,
        token_prefix: row.text("token_prefix")?,
        labels: string_list(row.json("labels")?, "labels")?,
        mandatory_labels: string_list(row.json("mandatory_labels")?, "mandatory_labels")?
            .unwrap_or_default(),
        privileged_root: row.flag("privileged_root")?,
        kind: match kind.as_str() {
            "static" => AgentTokenKind::Static,
            "ephemeral" => AgentTokenKind::Ephemeral,
            _ => return Err(crate::corrupt("agent_type", &kind)),
        },
        bound_agent_id: row.opt_text("bound_agent_id")?,
        max_uses: row.opt_int("max_uses")?,
        uses: row.int("uses")?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        revoked_at: row.opt_int("revoked_at")?,
        last_seen_at: row.opt_int("last_seen_at")?,
    })
}

fn admin_token_from_row(row: &impl RowExt) -> Result<AdminToken> {
    Ok(AdminToken {
        id: row.text("id")?,
        label: row.text("label")?,
        role: row.text("role")?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        last_used_at: row.opt_int("last_used_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

impl Store {
    /// Creates an agent token; returns the record and the token itself, which is shown
    /// once and never stored.
    pub async fn create_agent_token(
        &self,
        new: &NewAgentToken,
        now: i64,
    ) -> Result<(AgentToken, String)> {
        let token = generate_token("kat_")?;
        let id = crate::new_id();
        let prefix: String = token.chars().take(12).collect();
        let labels = new
            .labels
            .as_ref()
            .map(|l| Value::from(l.clone()).to_string());
        let mandatory = Value::from(new.mandatory_labels.clone()).to_string();
        on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO agent_tokens (id, label, token_hash, token_prefix, labels, mandatory_labels, privileged_root, agent_type, bound_agent_id, max_uses, uses, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12)",
            )
            .bind(&id)
            .bind(&new.label)
            .bind(hash_token(&token))
            .bind(&prefix)
            .bind(&labels)
            .bind(&mandatory)
            .bind(new.privileged_root)
            .bind(new.kind.as_str())
            .bind(&new.bound_agent_id)
            .bind(new.max_uses)
            .bind(now)
            .bind(new.expires_at)
            .execute(pool)
            .await?;
        });
        let record = AgentToken {
            id,
            label: new.label.clone(),
            token_prefix: prefix,
            labels: new.labels.clone(),
            mandatory_labels: new.mandatory_labels.clone(),
            privileged_root: new.privileged_root,
            kind: new.kind,
            bound_agent_id: new.bound_agent_id.clone(),
            max_uses: new.max_uses,
            uses: 0,
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            last_seen_at: None,
        };
        Ok((record, token))
    }

    /// Authenticates an agent connection: the token must exist, be neither revoked nor
    /// expired, and have uses left; the use is counted atomically (so `max_uses` holds
    /// under concurrent connections). `None` for any failure, without saying which.
    pub async fn authenticate_agent_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<AgentToken>> {
        let hash = hash_token(token);
        on_backend!(self, |pool| {
            let row = sqlx::query(concat!(
                "UPDATE agent_tokens SET uses = uses + 1, last_seen_at = $2
                 WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
                   AND (max_uses IS NULL OR uses < max_uses)
                 RETURNING ",
                agent_token_columns!()
            ))
            .bind(&hash)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) if hashes_equal(&row.text("token_hash")?, &hash) => {
                    agent_token_from_row(&row).map(Some)
                }
                _ => Ok(None),
            }
        })
    }

    pub async fn list_agent_tokens(&self) -> Result<Vec<AgentToken>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                agent_token_columns!(),
                " FROM agent_tokens ORDER BY created_at, id"
            ))
            .fetch_all(pool)
            .await?;
            rows.iter().map(agent_token_from_row).collect()
        })
    }

    /// `false` when the token does not exist or was already revoked.
    pub async fn revoke_agent_token(&self, id: &str, now: i64) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE agent_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Creates an admin token with a fresh secret (`kadm_` + 64 hex).
    pub async fn create_admin_token(
        &self,
        new: &NewAdminToken,
        now: i64,
    ) -> Result<(AdminToken, String)> {
        let token = generate_token("kadm_")?;
        let record = self.insert_admin_token(new, &token, now).await?;
        Ok((record, token))
    }

    /// Stores an admin token whose secret the operator chose (the bootstrap token from
    /// `KICI_BOOTSTRAP_ADMIN_TOKEN`). Only its hash is written.
    pub async fn insert_admin_token(
        &self,
        new: &NewAdminToken,
        token: &str,
        now: i64,
    ) -> Result<AdminToken> {
        let id = crate::new_id();
        on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO admin_tokens (id, label, role, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(&new.label)
            .bind(&new.role)
            .bind(hash_token(token))
            .bind(now)
            .bind(new.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(AdminToken {
            id,
            label: new.label.clone(),
            role: new.role.clone(),
            created_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
        })
    }

    /// The admin token for a bearer secret, if valid (not revoked, not expired); records
    /// the use.
    pub async fn authenticate_admin_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<AdminToken>> {
        let hash = hash_token(token);
        on_backend!(self, |pool| {
            let row = sqlx::query(
                "UPDATE admin_tokens SET last_used_at = $2
                 WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
                 RETURNING id, label, role, token_hash, created_at, expires_at, last_used_at, revoked_at",
            )
            .bind(&hash)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) if hashes_equal(&row.text("token_hash")?, &hash) => {
                    admin_token_from_row(&row).map(Some)
                }
                _ => Ok(None),
            }
        })
    }

    /// Whether any admin token exists (first start creates the bootstrap owner token).
    pub async fn has_admin_tokens(&self) -> Result<bool> {
        on_reader!(self, |pool| {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM admin_tokens")
                .fetch_one(pool)
                .await?;
            Ok(row.int("n")? > 0)
        })
    }

    pub async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id, label, role, created_at, expires_at, last_used_at, revoked_at FROM admin_tokens ORDER BY created_at, id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(admin_token_from_row).collect()
        })
    }

    pub async fn revoke_admin_token(&self, id: &str, now: i64) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE admin_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape_and_hash_to_hex() {
        let token = generate_token("kadm_").unwrap();
        assert_eq!(token.len(), 5 + 64);
        assert!(
            token[5..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(token, generate_token("kadm_").unwrap());
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hashes_equal("ab", "ab"));
        assert!(!hashes_equal("ab", "ac"));
        assert!(!hashes_equal("ab", "abc"));
    }
}
