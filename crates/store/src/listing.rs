//! Read-side queries of the admin API (`orchestrator.md` §18.2): runs with filters, inbox
//! items and queue rows with paging, and the operator's queue clear.
//!
//! Paging is keyset paging on the same columns the lists are ordered by, so a page never
//! skips or repeats a row while new rows arrive.

use kici_engine::state::RunStatus;

use crate::inbox::{InboxItem, InboxStatus, item_from_row};
use crate::ops::Ops;
use crate::queue::QueueEntry;
use crate::runs::{Run, run_from_row};
use crate::{Result, RowExt, Store, in_tx, on_reader};

/// Filters of `GET runs`; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub workflow: Option<String>,
    /// `owner/name`.
    pub repo: Option<String>,
    /// Branch name; matches runs whose ref is `refs/heads/<branch>`.
    pub branch: Option<String>,
    /// Runs created at or after (Unix ms).
    pub since: Option<i64>,
}

impl Store {
    /// Runs matching `filter`, newest first. `before` = `(created_at, run_id)` of the last
    /// run of the previous page.
    pub async fn list_runs_filtered(
        &self,
        filter: &RunFilter,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<Run>> {
        let (before_at, before_id) = before.unwrap_or((i64::MAX, ""));
        let branch_ref = filter.branch.as_ref().map(|b| format!("refs/heads/{b}"));
        on_reader!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                crate::run_columns!(),
                " FROM execution_runs WHERE ($1 IS NULL OR status = $1)",
                " AND ($2 IS NULL OR workflow_name = $2)",
                " AND ($3 IS NULL OR repo_identifier = $3)",
                " AND ($4 IS NULL OR ref = $4)",
                " AND ($5 IS NULL OR created_at >= $5)",
                " AND (created_at < $6 OR (created_at = $6 AND run_id < $7 AND $7 <> ''))",
                " ORDER BY created_at DESC, run_id DESC LIMIT $8"
            ))
            .bind(filter.status.map(RunStatus::as_str))
            .bind(&filter.workflow)
            .bind(&filter.repo)
            .bind(&branch_ref)
            .bind(filter.since)
            .bind(before_at)
            .bind(before_id)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?;
            rows.iter().map(run_from_row).collect()
        })
    }

    /// Inbox items, oldest first, optionally of one status. `after` = `(received_at, id)` of
    /// the last item of the previous page.
    pub async fn list_inbox(
        &self,
        status: Option<InboxStatus>,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<InboxItem>> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, ""));
        on_reader!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                crate::inbox_columns!(),
                " FROM webhook_inbox WHERE ($1 IS NULL OR status = $1)",
                " AND (received_at > $2 OR (received_at = $2 AND id > $3))",
                " ORDER BY received_at, id LIMIT $4"
            ))
            .bind(status.map(InboxStatus::as_str))
            .bind(after_at)
            .bind(after_id)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?;
            rows.iter().map(item_from_row).collect()
        })
    }

    /// Queue rows with their labels, oldest first; `pending_only` lists the waiting rows.
    /// `after` = `(created_at, id)` of the last row of the previous page.
    pub async fn list_queue(
        &self,
        pending_only: bool,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<QueueEntry>> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, ""));
        let ids: Vec<String> = on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id FROM dispatch_queue WHERE ($1 = FALSE OR status = 'pending')
                 AND (created_at > $2 OR (created_at = $2 AND id > $3))
                 ORDER BY created_at, id LIMIT $4",
            )
            .bind(pending_only)
            .bind(after_at)
            .bind(after_id)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| r.text("id"))
                .collect::<Result<Vec<_>>>()?
        });
        let mut entries = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(entry) = self.get_queue_entry(&id).await? {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// `POST queue/clear`: every `pending` row becomes `expired` and its job STALE, exactly
    /// as the expiry sweep does it. Returns the expired job ids.
    pub async fn clear_queue(&self, now: i64) -> Result<Vec<String>> {
        let ids: Vec<String> = on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id FROM dispatch_queue WHERE status = 'pending' ORDER BY created_at, id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| r.text("id"))
                .collect::<Result<Vec<_>>>()?
        });
        let mut expired = Vec::new();
        for id in ids {
            if in_tx!(self, |tx| tx.expire(&id, now).await)? {
                expired.push(id);
            }
        }
        Ok(expired)
    }
}
