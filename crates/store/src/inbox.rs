//! The durable webhook inbox (`orchestrator.md` §3): persist first, answer second, process
//! with leases, retries and a dead-letter state.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Error, Result, RowExt, Store, in_tx, on_backend, on_reader};

/// `webhook_inbox.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxStatus {
    Pending,
    Processing,
    Retry,
    Done,
    Dead,
}

impl InboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Pending => "pending",
            InboxStatus::Processing => "processing",
            InboxStatus::Retry => "retry",
            InboxStatus::Done => "done",
            InboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<InboxStatus> {
        [
            InboxStatus::Pending,
            InboxStatus::Processing,
            InboxStatus::Retry,
            InboxStatus::Done,
            InboxStatus::Dead,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// A verified delivery to persist.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub org_id: String,
    pub routing_key: String,
    pub source_id: Option<String>,
    pub delivery_id: String,
    /// `direct` | `relay` | `schedule` | `manual`.
    pub ingress: String,
    pub provider: String,
    pub event: String,
    pub action: Option<String>,
    /// Only the headers needed later; never `authorization` or `cookie`.
    pub headers: Value,
    /// The raw body when it is stored inline.
    pub body: Option<Vec<u8>>,
    /// Where a large body was written instead (`inbox/<id>.body`).
    pub body_ref: Option<String>,
    pub body_sha256: String,
    pub body_size: i64,
    pub received_at: i64,
}

impl NewDelivery {
    /// A delivery whose body is stored inline; hashes and measures the body.
    #[allow(clippy::too_many_arguments)]
    pub fn inline(
        org_id: &str,
        routing_key: &str,
        delivery_id: &str,
        ingress: &str,
        provider: &str,
        event: &str,
        body: Vec<u8>,
        received_at: i64,
    ) -> NewDelivery {
        NewDelivery {
            org_id: org_id.to_string(),
            routing_key: routing_key.to_string(),
            source_id: None,
            delivery_id: delivery_id.to_string(),
            ingress: ingress.to_string(),
            provider: provider.to_string(),
            event: event.to_string(),
            action: None,
            headers: Value::Object(Default::default()),
            body_sha256: sha256_hex(&body),
            body_size: i64::try_from(body.len()).unwrap_or(i64::MAX),
            body: Some(body),
            body_ref: None,
            received_at,
        }
    }
}

/// The answer to an insert (§3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// New delivery: answer 202.
    Inserted { id: String },
    /// Already stored: answer 200 `duplicate`, start nothing.
    Duplicate { id: String },
    /// The earlier delivery was dead; it is `pending` again with `attempts = 0` (answer 202).
    Revived { id: String },
}

/// An inbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    pub id: String,
    pub org_id: String,
    pub routing_key: String,
    pub source_id: Option<String>,
    pub delivery_id: String,
    pub ingress: String,
    pub provider: String,
    pub event: String,
    pub action: Option<String>,
    pub headers: Value,
    pub body: Option<Vec<u8>>,
    pub body_ref: Option<String>,
    pub body_sha256: String,
    pub body_size: i64,
    pub received_at: i64,
    pub status: InboxStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub outcome: Option<String>,
    pub decisions: Option<Value>,
    pub run_ids: Vec<String>,
    pub processed_at: Option<i64>,
}

pub(crate) fn item_from_row(row: &impl RowExt) -> Result<InboxItem> {
    let status = row.text("status")?;
    let run_ids = match row.json("run_ids")? {
        Some(value) => serde_json::from_value(value).map_err(|e| Error::Corrupt {
            column: "run_ids",
            message: e.to_string(),
        })?,
        None => Vec::new(),
    };
    Ok(InboxItem {
        id: row.text("id")?,
        org_id: row.text("org_id")?,
        routing_key: row.text("routing_key")?,
        source_id: row.opt_text("source_id")?,
        delivery_id: row.text("delivery_id")?,
        ingress: row.text("ingress")?,
        provider: row.text("provider")?,
        event: row.text("event")?,
        action: row.opt_text("action")?,
        headers: row.json("headers")?.unwrap_or(Value::Null),
        body: row.opt_bytes("body")?,
        body_ref: row.opt_text("body_ref")?,
        body_sha256: row.text("body_sha256")?,
        body_size: row.int("body_size")?,
        received_at: row.int("received_at")?,
        status: InboxStatus::parse(&status).ok_or_else(|| crate::corrupt("status", &status))?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.int("next_attempt_at")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_until: row.opt_int("lease_until")?,
        last_error: row.opt_text("last_error")?,
        outcome: row.opt_text("outcome")?,
        decisions: row.json("decisions")?,
        run_ids,
        processed_at: row.opt_int("processed_at")?,
    })
}

/// What [`Store::fail_inbox`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Will be retried at `next_attempt_at`.
    Retry { next_attempt_at: i64 },
    /// Attempts exhausted: dead-lettered.
    Dead,
    /// The caller no longer held the lease (it expired and someone else took the item);
    /// nothing was written.
    LeaseLost,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The retry delay after `attempts` failed attempts (§3.3): `b/2 + jitter·b/2` with
/// `b = min(5 s · 2^(attempts-1), 5 min)`. `jitter` in `[0, 1)` comes from the caller,
/// which owns the randomness.
pub fn inbox_backoff_ms(attempts: i64, jitter: f64) -> i64 {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let base = 5_000_i64.saturating_mul(1_i64 << exponent).min(300_000);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // Truncation is fine: the delay is a whole number of milliseconds.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let extra = (jitter * (base / 2) as f64) as i64;
    base / 2 + extra
}

const INSERT: &str = "INSERT INTO webhook_inbox (id, org_id, routing_key, source_id, delivery_id, ingress, provider, event, action, headers, body, body_ref, body_sha256, body_size, received_at, status, attempts, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'pending', 0, $15)
ON CONFLICT (routing_key, delivery_id) DO NOTHING
RETURNING id";

const REVIVE: &str = "UPDATE webhook_inbox SET status = 'pending', attempts = 0, next_attempt_at = $3, lease_owner = NULL, lease_until = NULL
WHERE routing_key = $1 AND delivery_id = $2 AND status = 'dead'
RETURNING id";

const CLAIM_SQLITE: &str = "UPDATE webhook_inbox SET status = 'processing', lease_owner = $1, lease_until = $2 + $3, attempts = attempts + 1
WHERE id = (SELECT id FROM webhook_inbox WHERE status IN ('pending', 'retry') AND next_attempt_at <= $2 ORDER BY received_at, id LIMIT 1)
RETURNING id";

const CLAIM_PG: &str = "UPDATE webhook_inbox SET status = 'processing', lease_owner = $1, lease_until = $2 + $3, attempts = attempts + 1
WHERE id = (SELECT id FROM webhook_inbox WHERE status IN ('pending', 'retry') AND next_attempt_at <= $2 ORDER BY received_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id";

impl Store {
    /// Persists a verified delivery, deduplicated on `(routing_key, delivery_id)` by the
    /// insert itself (`ON CONFLICT DO NOTHING`). A duplicate of a dead item revives it.
    pub async fn insert_delivery(&self, delivery: &NewDelivery) -> Result<InsertOutcome> {
        let id = crate::new_id();
        let inserted: Option<String> = on_backend!(self, |pool| {
            let row = sqlx::query(INSERT)
                .bind(&id)
                .bind(&delivery.org_id)
                .bind(&delivery.routing_key)
                .bind(&delivery.source_id)
                .bind(&delivery.delivery_id)
                .bind(&delivery.ingress)
                .bind(&delivery.provider)
                .bind(&delivery.event)
                .bind(&delivery.action)
                .bind(crate::to_json(&delivery.headers))
                .bind(&delivery.body)
                .bind(&delivery.body_ref)
                .bind(&delivery.body_sha256)
                .bind(delivery.body_size)
                .bind(delivery.received_at)
                .fetch_optional(pool)
                .await?;
            row.map(|r| r.text("id")).transpose()?
        });
        if let Some(id) = inserted {
            return Ok(InsertOutcome::Inserted { id });
        }
        let revived: Option<String> = on_backend!(self, |pool| {
            let row = sqlx::query(REVIVE)
                .bind(&delivery.routing_key)
                .bind(&delivery.delivery_id)
                .bind(delivery.received_at)
                .fetch_optional(pool)
                .await?;
            row.map(|r| r.text("id")).transpose()?
        });
        if let Some(id) = revived {
            return Ok(InsertOutcome::Revived { id });
        }
        let existing: String = on_backend!(self, |pool| {
            sqlx::query("SELECT id FROM webhook_inbox WHERE routing_key = $1 AND delivery_id = $2")
                .bind(&delivery.routing_key)
                .bind(&delivery.delivery_id)
                .fetch_one(pool)
                .await?
                .text("id")?
        });
        Ok(InsertOutcome::Duplicate { id: existing })
    }

    pub async fn get_inbox_item(&self, id: &str) -> Result<Option<InboxItem>> {
        on_reader!(self, |pool| {
            let sql = select_by_id_sql();
            let row = sqlx::query(sql).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(item_from_row).transpose()
        })
    }

    /// Claims the oldest item due for processing with a lease of `lease_ms`, counting the
    /// attempt. One atomic statement on each backend (§3.3).
    pub async fn claim_inbox(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<InboxItem>> {
        let claimed: Option<String> = match &self.backend {
            crate::Backend::Sqlite { write, .. } => sqlx::query(CLAIM_SQLITE)
                .bind(worker)
                .bind(now)
                .bind(lease_ms)
                .fetch_optional(write)
                .await?
                .map(|r| r.text("id"))
                .transpose()?,
            crate::Backend::Postgres(pool) => sqlx::query(CLAIM_PG)
                .bind(worker)
                .bind(now)
                .bind(lease_ms)
                .fetch_optional(pool)
                .await?
                .map(|r| r.text("id"))
                .transpose()?,
        };
        match claimed {
            // Read through the writer so the row is seen even before a reader snapshot
            // would include it.
            Some(id) => on_backend!(self, |pool| {
                let row = sqlx::query(select_by_id_sql())
                    .bind(&id)
                    .fetch_one(pool)
                    .await?;
                item_from_row(&row).map(Some)
            }),
            None => Ok(None),
        }
    }

    /// Extends the lease of an item this worker holds. `false`: the lease was lost.
    pub async fn renew_inbox_lease(
        &self,
        id: &str,
        worker: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE webhook_inbox SET lease_until = $3 + $4 WHERE id = $1 AND status = 'processing' AND lease_owner = $2",
            )
            .bind(id)
            .bind(worker)
            .bind(now)
            .bind(lease_ms)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Marks an item this worker holds as processed. `false`: the lease was lost and
    /// nothing was written.
    pub async fn complete_inbox(
        &self,
        id: &str,
        worker: &str,
        outcome: &str,
        decisions: Option<&Value>,
        run_ids: &[String],
        now: i64,
    ) -> Result<bool> {
        let run_ids = serde_json::to_string(run_ids).map_err(|e| Error::Corrupt {
            column: "run_ids",
            message: e.to_string(),
        })?;
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE webhook_inbox SET status = 'done', outcome = $3, decisions = $4, run_ids = $5, processed_at = $6, lease_owner = NULL, lease_until = NULL, last_error = NULL
                 WHERE id = $1 AND status = 'processing' AND lease_owner = $2",
            )
            .bind(id)
            .bind(worker)
            .bind(outcome)
            .bind(crate::opt_json(decisions))
            .bind(&run_ids)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Records a retryable failure of an item this worker holds: back to `retry` at
    /// `now + retry_delay_ms` (see [`inbox_backoff_ms`]), or `dead` once the attempt
    /// budget (`StoreOptions::inbox_max_attempts`) is spent.
    pub async fn fail_inbox(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        now: i64,
        retry_delay_ms: i64,
    ) -> Result<FailOutcome> {
        let max = self.options.inbox_max_attempts;
        let next = now.saturating_add(retry_delay_ms.max(0));
        on_backend!(self, |pool| {
            let row = sqlx::query(
                "UPDATE webhook_inbox SET
                    status = CASE WHEN attempts >= $4 THEN 'dead' ELSE 'retry' END,
                    next_attempt_at = $5, last_error = $3, lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND status = 'processing' AND lease_owner = $2
                 RETURNING status",
            )
            .bind(id)
            .bind(worker)
            .bind(error)
            .bind(max)
            .bind(next)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                None => FailOutcome::LeaseLost,
                Some(row) if row.text("status")? == "dead" => FailOutcome::Dead,
                Some(_) => FailOutcome::Retry {
                    next_attempt_at: next,
                },
            })
        })
    }

    /// Returns items whose lease expired to `retry` (the leader sweeper, §3.3).
    pub async fn requeue_expired_inbox_leases(&self, now: i64) -> Result<u64> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE webhook_inbox SET status = 'retry', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
                    last_error = COALESCE(last_error, 'lease expired')
                 WHERE status = 'processing' AND lease_until < $1",
            )
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Returns to `retry` the items leased by the workers of node `node` (lease owners
    /// `<node>/…`), whatever their lease says: called at start, when nothing of this node
    /// can still be processing them, so that a crash does not hold a delivery back until its
    /// lease expires.
    pub async fn requeue_inbox_leases_of_node(&self, node: &str, now: i64) -> Result<u64> {
        let prefix = format!("{node}/");
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE webhook_inbox SET status = 'retry', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
                    last_error = COALESCE(last_error, 'orchestrator restarted while processing')
                 WHERE status = 'processing' AND substr(lease_owner, 1, length($2)) = $2",
            )
            .bind(now)
            .bind(&prefix)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Dead letters, oldest first.
    pub async fn list_dead_letters(&self, limit: i64) -> Result<Vec<InboxItem>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(select_dead_sql())
                .bind(limit.clamp(1, 1000))
                .fetch_all(pool)
                .await?;
            rows.iter().map(item_from_row).collect()
        })
    }

    /// Admin retry: a `dead` or `retry` item goes back to `pending` with `attempts = 0`.
    pub async fn retry_inbox(&self, id: &str, now: i64) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE webhook_inbox SET status = 'pending', attempts = 0, next_attempt_at = $2, lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND status IN ('dead', 'retry')",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Admin replay: copies the item with delivery id `<orig>:replay:<n>` for a full
    /// re-processing (new runs). Returns the new item's id.
    pub async fn replay_inbox(&self, id: &str, now: i64) -> Result<String> {
        let new_id = crate::new_id();
        in_tx!(self, |tx| {
            let original =
                sqlx::query("SELECT routing_key, delivery_id FROM webhook_inbox WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| Error::NotFound {
                        entity: "inbox item",
                        id: id.to_string(),
                    })?;
            let routing_key = original.text("routing_key")?;
            let delivery_id = original.text("delivery_id")?;
            // The replay number counts earlier replays of the same original; a replay of a
            // replay gets its own suffix chain, which is still unique.
            let prefix = format!("{delivery_id}:replay:");
            let count = sqlx::query(
                "SELECT COUNT(*) AS n FROM webhook_inbox WHERE routing_key = $1 AND substr(delivery_id, 1, length($2)) = $2",
            )
            .bind(&routing_key)
            .bind(&prefix)
            .fetch_one(&mut *tx)
            .await?
            .int("n")?;
            let replay_id = format!("{prefix}{}", count + 1);
            sqlx::query(
                "INSERT INTO webhook_inbox (id, org_id, routing_key, source_id, delivery_id, ingress, provider, event, action, headers, body, body_ref, body_sha256, body_size, received_at, status, attempts, next_attempt_at)
                 SELECT $1, org_id, routing_key, source_id, $2, ingress, provider, event, action, headers, body, body_ref, body_sha256, body_size, $3, 'pending', 0, $3
                 FROM webhook_inbox WHERE id = $4",
            )
            .bind(&new_id)
            .bind(&replay_id)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            Ok(new_id)
        })
    }

    /// Deletes items received before `cutoff` (retention, §3.4). Returns how many.
    pub async fn delete_inbox_before(&self, cutoff: i64) -> Result<u64> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "DELETE FROM webhook_inbox WHERE received_at < $1 AND status IN ('done', 'dead')",
            )
            .bind(cutoff)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }
}

fn select_by_id_sql() -> &'static str {
    concat!(
        "SELECT ",
        crate::inbox_columns!(),
        " FROM webhook_inbox WHERE id = $1"
    )
}

fn select_dead_sql() -> &'static str {
    concat!(
        "SELECT ",
        crate::inbox_columns!(),
        " FROM webhook_inbox WHERE status = 'dead' ORDER BY received_at, id LIMIT $1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_and_caps_at_five_minutes() {
        assert_eq!(inbox_backoff_ms(1, 0.0), 2_500);
        assert_eq!(inbox_backoff_ms(1, 0.999_999), 4_999);
        assert_eq!(inbox_backoff_ms(2, 0.0), 5_000);
        assert_eq!(inbox_backoff_ms(3, 0.5), 15_000);
        assert_eq!(inbox_backoff_ms(7, 0.0), 150_000);
        assert_eq!(inbox_backoff_ms(40, 0.0), 150_000);
        assert_eq!(inbox_backoff_ms(0, f64::NAN), 2_500);
    }
}
