//! Webhook sources (`orchestrator.md` §4.3) and their encrypted credentials in
//! `scoped_secrets` (§15; org `__system__`, scope `__source__/<id>`).
//!
//! The store never sees a plaintext secret or a key: callers hand in ciphertexts and get
//! ciphertexts back. A source and its secrets are written in one transaction, so a source is
//! never visible with half of its credentials.
//!
//! Soft delete keeps the row (runs and inbox items still name it) and moves its routing key
//! aside (`<routing key>#deleted:<id>`), because the column is unique: a source of the same
//! name can be created again at once.

use serde_json::Value;

use crate::{Error, Result, RowExt, Store, in_tx, on_backend, on_reader};

/// The org that owns source credentials.
pub const SYSTEM_ORG: &str = "__system__";

/// The `scoped_secrets` scope of a source's credentials.
pub fn source_secret_scope(source_id: &str) -> String {
    format!("__source__/{source_id}")
}

/// A source to create (or, for seeding, to upsert by routing key).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSource {
    pub org_id: String,
    pub name: String,
    /// `github` | `git` | `generic` | `local`.
    pub source_type: String,
    pub routing_key: String,
    pub enabled: bool,
    /// Non-secret configuration (JSON object).
    pub config: Value,
}

/// A `sources` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub source_type: String,
    pub routing_key: String,
    pub enabled: bool,
    pub config: Value,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

/// An encrypted secret value as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub key: String,
    /// Opaque to the store (`base64(IV ‖ tag ‖ ciphertext)`).
    pub encrypted_value: String,
    pub key_version: i64,
    pub updated_at: i64,
}

/// A secret to write: the key and its ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretWrite {
    pub key: String,
    pub encrypted_value: String,
    pub key_version: i64,
}

macro_rules! source_columns {
    () => {
        "id, org_id, name, type, routing_key, enabled, config, created_at, updated_at, deleted_at"
    };
}

fn source_from_row(row: &impl RowExt) -> Result<SourceRecord> {
    Ok(SourceRecord {
        id: row.text("id")?,
        org_id: row.text("org_id")?,
        name: row.text("name")?,
        source_type: row.text("type")?,
        routing_key: row.text("routing_key")?,
        enabled: row.flag("enabled")?,
        config: row
            .json("config")?
            .unwrap_or(Value::Object(Default::default())),
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        deleted_at: row.opt_int("deleted_at")?,
    })
}

fn secret_from_row(row: &impl RowExt) -> Result<StoredSecret> {
    Ok(StoredSecret {
        key: row.text("key")?,
        encrypted_value: row.text("encrypted_value")?,
        key_version: row.int("key_version")?,
        updated_at: row.int("updated_at")?,
    })
}

/// A unique violation on a source's name or routing key is a conflict the caller can act
/// on; anything else stays a database error.
fn conflict(e: sqlx::Error, name: &str) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict {
            entity: "source",
            id: name.to_string(),
        },
        _ => Error::Database(e),
    }
}

const UPSERT_SECRET: &str = "INSERT INTO scoped_secrets (id, org_id, scope, key, encrypted_value, key_version, created_at, updated_at)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
 ON CONFLICT (org_id, scope, key) DO UPDATE SET encrypted_value = excluded.encrypted_value, key_version = excluded.key_version, updated_at = excluded.updated_at";

impl Store {
    /// Creates a source with its secrets in one transaction. A live source with the same
    /// routing key or the same `(org, name)` → [`Error::Conflict`].
    /// `id` is chosen by the caller (a fresh [`crate::new_id`]) because the secrets are
    /// encrypted for the scope `__source__/<id>` before they reach the store.
    pub async fn create_source(
        &self,
        id: &str,
        new: &NewSource,
        secrets: &[SecretWrite],
        now: i64,
    ) -> Result<SourceRecord> {
        let id = id.to_string();
        let scope = source_secret_scope(&id);
        let config = crate::to_json(&new.config);
        in_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO sources (id, org_id, name, type, routing_key, enabled, config, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&id)
            .bind(&new.org_id)
            .bind(&new.name)
            .bind(&new.source_type)
            .bind(&new.routing_key)
            .bind(new.enabled)
            .bind(&config)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, &new.name))?;
            for secret in secrets {
                sqlx::query(UPSERT_SECRET)
                    .bind(crate::new_id())
                    .bind(SYSTEM_ORG)
                    .bind(&scope)
                    .bind(&secret.key)
                    .bind(&secret.encrypted_value)
                    .bind(secret.key_version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })?;
        Ok(SourceRecord {
            id,
            org_id: new.org_id.clone(),
            name: new.name.clone(),
            source_type: new.source_type.clone(),
            routing_key: new.routing_key.clone(),
            enabled: new.enabled,
            config: new.config.clone(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        })
    }

    /// Creates or updates (by routing key) a source from static configuration, replacing
    /// its type, name, configuration and the given secrets; `enabled` is kept on update
    /// (an operator's disable survives a restart). Used to seed configured sources at start.
    pub async fn upsert_source(
        &self,
        new: &NewSource,
        secrets: &[SecretWrite],
        now: i64,
    ) -> Result<SourceRecord> {
        let config = crate::to_json(&new.config);
        let id = crate::new_id();
        in_tx!(self, |tx| {
            let row = sqlx::query(concat!(
                "INSERT INTO sources (id, org_id, name, type, routing_key, enabled, config, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                 ON CONFLICT (routing_key) DO UPDATE SET org_id = excluded.org_id, name = excluded.name, type = excluded.type,
                    config = excluded.config, updated_at = excluded.updated_at
                 RETURNING ",
                source_columns!()
            ))
            .bind(&id)
            .bind(&new.org_id)
            .bind(&new.name)
            .bind(&new.source_type)
            .bind(&new.routing_key)
            .bind(new.enabled)
            .bind(&config)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let record = source_from_row(&row)?;
            let scope = source_secret_scope(&record.id);
            for secret in secrets {
                sqlx::query(UPSERT_SECRET)
                    .bind(crate::new_id())
                    .bind(SYSTEM_ORG)
                    .bind(&scope)
                    .bind(&secret.key)
                    .bind(&secret.encrypted_value)
                    .bind(secret.key_version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(record)
        })
    }

    /// Live (not deleted) sources, by org and name.
    pub async fn list_sources(&self) -> Result<Vec<SourceRecord>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                source_columns!(),
                " FROM sources WHERE deleted_at IS NULL ORDER BY org_id, name"
            ))
            .fetch_all(pool)
            .await?;
            rows.iter().map(source_from_row).collect()
        })
    }

    /// A live source by org and name.
    pub async fn get_source_by_name(
        &self,
        org_id: &str,
        name: &str,
    ) -> Result<Option<SourceRecord>> {
        on_reader!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                source_columns!(),
                " FROM sources WHERE org_id = $1 AND name = $2 AND deleted_at IS NULL"
            ))
            .bind(org_id)
            .bind(name)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(source_from_row).transpose()
        })
    }

    /// A source by id, deleted or not.
    pub async fn get_source(&self, id: &str) -> Result<Option<SourceRecord>> {
        on_reader!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                source_columns!(),
                " FROM sources WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(source_from_row).transpose()
        })
    }

    /// Replaces a live source's configuration (when given) and writes the given secrets, in
    /// one transaction. `false` when the source does not exist or is deleted.
    pub async fn update_source(
        &self,
        id: &str,
        config: Option<&Value>,
        secrets: &[SecretWrite],
        now: i64,
    ) -> Result<bool> {
        let config = config.map(crate::to_json);
        let scope = source_secret_scope(id);
        in_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE sources SET config = COALESCE($2, config), updated_at = $3 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(&config)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            for secret in secrets {
                sqlx::query(UPSERT_SECRET)
                    .bind(crate::new_id())
                    .bind(SYSTEM_ORG)
                    .bind(&scope)
                    .bind(&secret.key)
                    .bind(&secret.encrypted_value)
                    .bind(secret.key_version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(true)
        })
    }

    /// Enables or disables a live source. `false` when it does not exist or is deleted.
    pub async fn set_source_enabled(&self, id: &str, enabled: bool, now: i64) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE sources SET enabled = $2, updated_at = $3 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(enabled)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Soft-deletes a source and deletes its secrets (a deleted source needs no
    /// credentials, and keeping them would only widen what a leak exposes).
    pub async fn delete_source(&self, id: &str, now: i64) -> Result<bool> {
        let scope = source_secret_scope(id);
        in_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE sources SET deleted_at = $2, updated_at = $2, enabled = FALSE, routing_key = routing_key || '#deleted:' || id
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM scoped_secrets WHERE org_id = $1 AND scope = $2")
                .bind(SYSTEM_ORG)
                .bind(&scope)
                .execute(&mut *tx)
                .await?;
            Ok(true)
        })
    }

    /// The encrypted secrets of one scope, by key.
    pub async fn list_secrets(&self, org_id: &str, scope: &str) -> Result<Vec<StoredSecret>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT key, encrypted_value, key_version, updated_at FROM scoped_secrets WHERE org_id = $1 AND scope = $2 ORDER BY key",
            )
            .bind(org_id)
            .bind(scope)
            .fetch_all(pool)
            .await?;
            rows.iter().map(secret_from_row).collect()
        })
    }

    /// Writes one encrypted secret (insert or replace).
    pub async fn put_secret(
        &self,
        org_id: &str,
        scope: &str,
        secret: &SecretWrite,
        now: i64,
    ) -> Result<()> {
        on_backend!(self, |pool| {
            sqlx::query(UPSERT_SECRET)
                .bind(crate::new_id())
                .bind(org_id)
                .bind(scope)
                .bind(&secret.key)
                .bind(&secret.encrypted_value)
                .bind(secret.key_version)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Deletes one secret; `false` when it did not exist.
    pub async fn delete_secret(&self, org_id: &str, scope: &str, key: &str) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "DELETE FROM scoped_secrets WHERE org_id = $1 AND scope = $2 AND key = $3",
            )
            .bind(org_id)
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
