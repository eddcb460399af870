//! Step logs (`orchestrator.md` §17, `protocol.md` §11–12), kept in the database: one row
//! per `log.chunk`, keyed by `(job, step, seq)` so a chunk resent after a reconnect is
//! stored once. Each chunk records the number of its first line, so a reader can start at
//! any line offset (live tail) without scanning the chunks before it.
//!
//! Ours: the spec's v1 layout is one file per step; a table gives the same reads (by line
//! offset, in order, while the step runs) on every node of a PostgreSQL cluster and no
//! read-modify-write appends.

use crate::{Error, Result, RowExt, Store, in_tx, on_reader};

/// One `log.chunk` as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub run_id: String,
    pub job_id: String,
    /// −1 for the prepare log.
    pub step_index: i64,
    /// The frame's `seq`; the dedup key within a step.
    pub seq: i64,
    /// The chunk timestamp (Unix ms).
    pub ts: i64,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// 0-based line number within the step.
    pub n: i64,
    pub ts: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// The offset to ask for next (= `offset` when nothing new).
    pub next_offset: i64,
    /// Lines stored for the step so far.
    pub total_lines: i64,
}

impl Store {
    /// Appends a chunk. `false` when a chunk with this `seq` was already stored for the
    /// step (nothing written). Appends for one step are numbered in arrival order.
    pub async fn append_log_chunk(&self, chunk: &LogChunk) -> Result<bool> {
        let lines = serde_json::to_string(&chunk.lines).map_err(|e| Error::Corrupt {
            column: "lines",
            message: e.to_string(),
        })?;
        let count = i64::try_from(chunk.lines.len()).unwrap_or(i64::MAX);
        let bytes: i64 = chunk
            .lines
            .iter()
            .map(|l| i64::try_from(l.len()).unwrap_or(i64::MAX))
            .fold(0, i64::saturating_add);
        // Two appends racing on one step (PostgreSQL) would compute the same first line; the
        // unique (job, step, first_line) constraint turns the loser into an error, and a
        // retry numbers it after the winner.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<bool> = in_tx!(self, |tx| {
                let inserted = sqlx::query(
                    "INSERT INTO step_log_chunks (run_id, job_id, step_index, seq, first_line, line_count, ts, lines, bytes)
                     SELECT $1, $2, $3, $4,
                            COALESCE((SELECT MAX(first_line + line_count) FROM step_log_chunks WHERE job_id = $2 AND step_index = $3), 0),
                            $5, $6, $7, $8
                     ON CONFLICT (job_id, step_index, seq) DO NOTHING",
                )
                .bind(&chunk.run_id)
                .bind(&chunk.job_id)
                .bind(chunk.step_index)
                .bind(chunk.seq)
                .bind(count)
                .bind(chunk.ts)
                .bind(&lines)
                .bind(bytes)
                .execute(&mut *tx)
                .await?;
                let new = inserted.rows_affected() == 1;
                if new {
                    sqlx::query(
                        "UPDATE execution_jobs SET log_bytes = log_bytes + $2 WHERE job_id = $1",
                    )
                    .bind(&chunk.job_id)
                    .bind(bytes)
                    .execute(&mut *tx)
                    .await?;
                }
                Ok(new)
            });
            match result {
                Err(Error::Database(sqlx::Error::Database(e)))
                    if e.is_unique_violation() && attempt < 5 =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Up to `limit` lines of a step's log from line `offset`, in order.
    pub async fn read_step_log(
        &self,
        job_id: &str,
        step_index: i64,
        offset: i64,
        limit: i64,
    ) -> Result<LogPage> {
        let offset = offset.max(0);
        let limit = limit.clamp(1, 10_000);
        on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT first_line, line_count, ts, lines FROM step_log_chunks
                 WHERE job_id = $1 AND step_index = $2 AND first_line + line_count > $3 AND first_line < $4
                 ORDER BY first_line",
            )
            .bind(job_id)
            .bind(step_index)
            .bind(offset)
            .bind(offset.saturating_add(limit))
            .fetch_all(pool)
            .await?;
            let total = sqlx::query(
                "SELECT COALESCE(MAX(first_line + line_count), 0) AS n FROM step_log_chunks WHERE job_id = $1 AND step_index = $2",
            )
            .bind(job_id)
            .bind(step_index)
            .fetch_one(pool)
            .await?
            .int("n")?;
            let mut lines = Vec::new();
            for row in &rows {
                let first = row.int("first_line")?;
                let ts = row.int("ts")?;
                let texts: Vec<String> =
                    serde_json::from_str(&row.text("lines")?).map_err(|e| Error::Corrupt {
                        column: "lines",
                        message: e.to_string(),
                    })?;
                for (i, text) in texts.into_iter().enumerate() {
                    let n = first + i64::try_from(i).unwrap_or(i64::MAX);
                    if n >= offset && n < offset + limit {
                        lines.push(LogLine { n, ts, text });
                    }
                }
            }
            let next_offset = lines.last().map_or(offset, |l| l.n + 1);
            Ok(LogPage {
                lines,
                next_offset,
                total_lines: total,
            })
        })
    }
}
