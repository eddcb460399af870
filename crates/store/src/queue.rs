//! The dispatch queue (`orchestrator.md` §9): enqueue with label requirements, atomic
//! claim with label routing, ack deadline, requeue with an attempt budget, expiry.

use kici_engine::labels::{JobLabels, LabelPatterns};
use kici_engine::state::QueueStatus;

use crate::ops::Ops;
use crate::{Backend, Error, Result, RowExt, Store, in_tx, on_reader};

/// What a job needs from its agent, given at ENQUEUE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueSpec {
    pub labels: JobLabels,
    pub pinned_agent_id: Option<String>,
    /// `created_at + KICI_QUEUE_TIMEOUT_MS`; `None` = never.
    pub expires_at: Option<i64>,
}

/// The agent asking for work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentProfile {
    pub agent_id: String,
    /// Effective labels.
    pub labels: Vec<String>,
    /// Taints from the agent's token or scaler.
    pub mandatory_labels: Vec<String>,
}

/// A row this agent now holds, `dispatched`, with an ack deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub job_id: String,
    pub run_id: String,
    pub org_id: String,
    pub workflow_name: String,
    pub job_name: String,
    pub agent_id: String,
    pub dispatched_at: i64,
    pub ack_deadline: i64,
    pub dispatch_attempts: i64,
    /// When the row entered the queue (the dispatch latency starts there).
    pub queued_at: i64,
}

/// A queue row with its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub job_id: String,
    pub run_id: String,
    pub org_id: String,
    pub workflow_name: String,
    pub job_name: String,
    pub status: QueueStatus,
    pub pinned_agent_id: Option<String>,
    pub patterns: LabelPatterns,
    pub require: Vec<String>,
    pub exclude: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub agent_id: Option<String>,
    pub dispatched_at: Option<i64>,
    pub ack_deadline: Option<i64>,
    pub ack_agent_id: Option<String>,
    pub recovery_deadline: Option<i64>,
    pub recovery_agent_id: Option<String>,
    pub dispatch_attempts: i64,
    pub last_error: Option<String>,
}

/// What a requeue did (§9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Back to `pending`, for any agent.
    Requeued { attempts: i64 },
    /// Budget spent: row `failed`, job FAIL `re-dispatch attempts exhausted`.
    Exhausted { attempts: i64 },
    /// The row is not (or no longer) dispatched to an agent that has not started it.
    NotDispatched,
}

pub(crate) fn claimed_from_row(row: &impl RowExt) -> Result<ClaimedJob> {
    Ok(ClaimedJob {
        job_id: row.text("id")?,
        run_id: row.text("run_id")?,
        org_id: row.text("org_id")?,
        workflow_name: row.text("workflow_name")?,
        job_name: row.text("job_name")?,
        agent_id: row.opt_text("agent_id")?.unwrap_or_default(),
        dispatched_at: row.opt_int("dispatched_at")?.unwrap_or_default(),
        ack_deadline: row.opt_int("ack_deadline")?.unwrap_or_default(),
        dispatch_attempts: row.int("dispatch_attempts")?,
        queued_at: row.int("created_at")?,
    })
}

fn entry_from_row(
    row: &impl RowExt,
    require: Vec<String>,
    exclude: Vec<String>,
) -> Result<QueueEntry> {
    let status = row.text("status")?;
    let patterns = match row.opt_text("patterns")? {
        None => LabelPatterns::default(),
        Some(text) => serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            column: "patterns",
            message: e.to_string(),
        })?,
    };
    Ok(QueueEntry {
        job_id: row.text("id")?,
        run_id: row.text("run_id")?,
        org_id: row.text("org_id")?,
        workflow_name: row.text("workflow_name")?,
        job_name: row.text("job_name")?,
        status: QueueStatus::parse(&status).ok_or_else(|| crate::corrupt("status", &status))?,
        pinned_agent_id: row.opt_text("pinned_agent_id")?,
        patterns,
        require,
        exclude,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        agent_id: row.opt_text("agent_id")?,
        dispatched_at: row.opt_int("dispatched_at")?,
        ack_deadline: row.opt_int("ack_deadline")?,
        ack_agent_id: row.opt_text("ack_agent_id")?,
        recovery_deadline: row.opt_int("recovery_deadline")?,
        recovery_agent_id: row.opt_text("recovery_agent_id")?,
        dispatch_attempts: row.int("dispatch_attempts")?,
        last_error: row.opt_text("last_error")?,
    })
}

const CLAIM_ONE: &str = concat!(
    "UPDATE dispatch_queue SET status = 'dispatched', agent_id = $2, dispatched_at = $3, ack_deadline = $3 + $4, ack_agent_id = $2
WHERE id = $1 AND status = 'pending' AND (pinned_agent_id IS NULL OR pinned_agent_id = $2) AND (expires_at IS NULL OR expires_at >= $3)
RETURNING ",
    crate::queue_columns!()
);

impl Store {
    /// ENQUEUE a `pending` job (§6, §9): the job becomes `queued` and its queue row is
    /// created with its label requirements, in one transaction. When `pending` rows already
    /// number `QueueLimits::max_depth`, returns [`Error::QueueFull`] and writes nothing
    /// (the caller then FAILs the job with that message, §9.4).
    pub async fn enqueue_job(&self, job_id: &str, spec: &EnqueueSpec, now: i64) -> Result<()> {
        let limits = self.options.queue;
        in_tx!(self, |tx| tx.enqueue(job_id, spec, limits, now).await)
    }

    /// Pull path (§9.3): claims the oldest row this agent may take — pinned rows first,
    /// then FIFO — atomically, or `None`. Exact labels, excludes and taints are filtered
    /// in SQL, regexes with `kici_engine::labels`; the claim itself is one statement.
    pub async fn claim_next(&self, agent: &AgentProfile, now: i64) -> Result<Option<ClaimedJob>> {
        let ack = self.options.queue.ack_timeout_ms;
        match &self.backend {
            Backend::Sqlite { write, .. } => {
                let mut conn = write.acquire().await?;
                conn.claim_next(agent, ack, now).await
            }
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                conn.claim_next(agent, ack, now).await
            }
        }
    }

    /// Push path (§9.3): claims one specific row for an agent the caller already matched.
    /// `None` when the row is no longer pending (someone else claimed it), pinned to
    /// another agent, or expired.
    pub async fn claim_job(
        &self,
        job_id: &str,
        agent_id: &str,
        now: i64,
    ) -> Result<Option<ClaimedJob>> {
        let ack = self.options.queue.ack_timeout_ms;
        crate::on_backend!(self, |pool| {
            let row = sqlx::query(CLAIM_ONE)
                .bind(job_id)
                .bind(agent_id)
                .bind(now)
                .bind(ack)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(claimed_from_row).transpose()
        })
    }

    /// The agent accepted the dispatch (`job.ack`) before its deadline. `false` when the
    /// row is not dispatched to this agent or the deadline has passed (the sweeper will
    /// requeue it).
    pub async fn ack_dispatch(&self, job_id: &str, agent_id: &str, now: i64) -> Result<bool> {
        crate::on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE dispatch_queue SET ack_deadline = NULL
                 WHERE id = $1 AND status = 'dispatched' AND ack_agent_id = $2 AND ack_deadline IS NOT NULL AND ack_deadline >= $3",
            )
            .bind(job_id)
            .bind(agent_id)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Puts a dispatched, not yet started job back to `pending` (reject, ack timeout, agent
    /// lost before start), counting the attempt; at the budget the job FAILs (§9.4).
    pub async fn requeue_job(&self, job_id: &str, reason: &str, now: i64) -> Result<Requeue> {
        let limits = self.options.queue;
        in_tx!(self, |tx| tx.requeue(job_id, reason, limits, now).await)
    }

    /// The ack-deadline sweep (§10): requeues every dispatch whose deadline passed.
    pub async fn requeue_expired_acks(&self, now: i64) -> Result<Vec<(String, Requeue)>> {
        let ids = self
            .ids(
                "SELECT id FROM dispatch_queue WHERE status = 'dispatched' AND ack_deadline IS NOT NULL AND ack_deadline < $1 ORDER BY ack_deadline, id",
                now,
            )
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let result = self.requeue_job(&id, "dispatch ack timeout", now).await?;
            out.push((id, result));
        }
        Ok(out)
    }

    /// The queue-expiry sweep (§9.4): `pending` rows past `expires_at` become `expired` and
    /// their jobs STALE. Returns the expired job ids.
    pub async fn expire_queue(&self, now: i64) -> Result<Vec<String>> {
        let ids = self
            .ids(
                "SELECT id FROM dispatch_queue WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at < $1 ORDER BY created_at, seq",
                now,
            )
            .await?;
        let mut expired = Vec::new();
        for id in ids {
            if in_tx!(self, |tx| tx.expire(&id, now).await)? {
                expired.push(id);
            }
        }
        Ok(expired)
    }

    /// The ids of `pending` rows past `expires_at` (§9.4), oldest first, for a sweep that
    /// words each expiry itself ([`Store::expire_queue_entry`]).
    pub async fn expired_queue_ids(&self, now: i64) -> Result<Vec<String>> {
        self.ids(
            "SELECT id FROM dispatch_queue WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at < $1 ORDER BY created_at, seq",
            now,
        )
        .await
    }

    /// Expires one `pending` row (row `expired`, job STALE with `message`) in one
    /// transaction. `false` when the row is no longer pending (claimed or settled first).
    pub async fn expire_queue_entry(&self, job_id: &str, message: &str, now: i64) -> Result<bool> {
        in_tx!(self, |tx| tx
            .expire_with_message(job_id, message, now)
            .await)
    }

    /// Moves a row this dispatcher just claimed for agent `from`, not yet sent, to agent
    /// `to` (`runsOnPick: any`, §9.3), with the same ack deadline. `false` when the row is
    /// no longer dispatched to `from`.
    pub async fn reassign_dispatch(&self, job_id: &str, from: &str, to: &str) -> Result<bool> {
        crate::on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE dispatch_queue SET agent_id = $3, ack_agent_id = $3
                 WHERE id = $1 AND status = 'dispatched' AND agent_id = $2 AND ack_agent_id = $2",
            )
            .bind(job_id)
            .bind(from)
            .bind(to)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Rows waiting for an agent.
    pub async fn queue_depth(&self) -> Result<i64> {
        on_reader!(self, |pool| {
            let mut conn = pool.acquire().await?;
            conn.pending_depth().await
        })
    }

    pub async fn get_queue_entry(&self, job_id: &str) -> Result<Option<QueueEntry>> {
        on_reader!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                crate::queue_columns!(),
                " FROM dispatch_queue WHERE id = $1"
            ))
            .bind(job_id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let labels = sqlx::query(
                "SELECT kind, label FROM dispatch_queue_labels WHERE queue_id = $1 ORDER BY kind, label",
            )
            .bind(job_id)
            .fetch_all(pool)
            .await?;
            let mut require = Vec::new();
            let mut exclude = Vec::new();
            for label in &labels {
                match label.text("kind")?.as_str() {
                    "require" => require.push(label.text("label")?),
                    _ => exclude.push(label.text("label")?),
                }
            }
            entry_from_row(&row, require, exclude).map(Some)
        })
    }

    async fn ids(&self, sql: &'static str, now: i64) -> Result<Vec<String>> {
        crate::on_backend!(self, |pool| {
            let rows = sqlx::query(sql).bind(now).fetch_all(pool).await?;
            rows.iter().map(|r| r.text("id")).collect()
        })
    }
}
