//! Runs, jobs, needs edges and steps (`orchestrator.md` §7, §12, §21), and every status
//! write on them, each checked by `kici_engine::state` and written as a compare-and-set.

use kici_engine::state::{self, Event, RunEvent, RunStatus, State, StepStatus};
use serde_json::Value;

use crate::ops::Ops;
use crate::queue::EnqueueSpec;
use crate::{Error, Result, RowExt, Store, in_tx, on_reader};

/// A run to create, with its jobs and edges, in one transaction (§7).
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: String,
    pub org_id: String,
    /// The inbox item this run came from; with `dispatch_key` it makes creation idempotent.
    pub inbox_id: Option<String>,
    pub dispatch_key: Option<String>,
    pub workflow_name: String,
    pub provider: String,
    pub routing_key: String,
    pub repo_identifier: String,
    pub git_ref: String,
    pub sha: String,
    pub event: Value,
    pub decision: Option<Value>,
    pub matched_trigger: Option<String>,
    pub trust_tier: String,
    pub concurrency: Option<Value>,
    pub workflow_timeout_ms: Option<i64>,
    pub is_test_run: bool,
    pub parent_run_id: Option<String>,
    pub triggered_by: Option<String>,
    /// A run-scoped init failure (§7.6); such a run usually has no jobs.
    pub init_failure: Option<Value>,
    pub created_at: i64,
    /// In lock (expansion) order.
    pub jobs: Vec<NewJob>,
    pub needs: Vec<NewNeed>,
}

/// How a job starts its life.
#[derive(Debug, Clone)]
pub enum JobStart {
    /// Waits for its upstream jobs (or a matrix wave).
    Pending,
    /// A root job: ENQUEUE in the same transaction, creating its queue row.
    Enqueue(EnqueueSpec),
    /// An init failure at planning (`init_failure` set): FAIL from `pending`.
    Failed,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub job_id: String,
    pub job_name: String,
    pub base_job_name: String,
    /// `matrix` for matrix children.
    pub variant_kind: Option<String>,
    pub matrix_values: Option<Value>,
    /// Lock job entry plus dispatch keys, never secrets.
    pub job_config: Value,
    pub environments: Option<Value>,
    pub runs_on: Option<Value>,
    pub wave_gated: bool,
    pub init_failure: Option<Value>,
    pub error_message: Option<String>,
    pub start: JobStart,
}

/// An edge `job_name` needs `upstream_name`, released when the upstream ends in one of
/// `run_on` (`["success"]` for a plain need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNeed {
    pub job_name: String,
    pub upstream_name: String,
    pub run_on: Vec<String>,
}

pub type Need = NewNeed;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRunOutcome {
    Created {
        run_id: String,
        /// Jobs enqueued in the creating transaction (dispatch them now).
        enqueued: Vec<String>,
        /// Root jobs failed because the queue was full (§9.4).
        queue_full: Vec<String>,
    },
    /// A run for this `(inbox_id, dispatch_key)` exists already; nothing was written.
    AlreadyExists { run_id: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub run_id: String,
    pub org_id: String,
    pub inbox_id: Option<String>,
    pub dispatch_key: Option<String>,
    pub workflow_name: String,
    pub status: RunStatus,
    pub provider: String,
    pub routing_key: String,
    pub repo_identifier: String,
    pub git_ref: String,
    pub sha: String,
    pub event: Value,
    pub decision: Option<Value>,
    pub matched_trigger: Option<String>,
    pub trust_tier: String,
    pub concurrency: Option<Value>,
    pub workflow_timeout_ms: Option<i64>,
    pub is_test_run: bool,
    pub parent_run_id: Option<String>,
    pub triggered_by: Option<String>,
    pub cancelled_by: Option<String>,
    pub failure_reason: Option<String>,
    pub init_failure: Option<Value>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub log_bytes: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub job_id: String,
    pub run_id: String,
    pub job_name: String,
    pub base_job_name: String,
    pub variant_kind: Option<String>,
    pub matrix_values: Option<Value>,
    pub status: State,
    pub job_config: Value,
    pub environments: Option<Value>,
    pub runs_on: Option<Value>,
    pub agent_id: Option<String>,
    pub dispatch_attempts: i64,
    pub needs_satisfied: bool,
    pub wave_gated: bool,
    pub skip_reason: Option<String>,
    pub error_message: Option<String>,
    pub init_failure: Option<Value>,
    pub outputs: Option<Value>,
    pub last_heartbeat_at: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub log_bytes: i64,
}

/// Fields written together with a job status change; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct JobUpdate {
    pub agent_id: Option<String>,
    pub error_message: Option<String>,
    pub skip_reason: Option<String>,
    pub outputs: Option<Value>,
    /// For RECOVER: when the recovery window closes.
    pub recovery_deadline: Option<i64>,
}

/// The result of a job status write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTransition {
    pub job_id: String,
    pub run_id: String,
    pub from: State,
    pub to: State,
    /// `false` for the spec's silent no-ops (a repeated terminal status).
    pub changed: bool,
}

/// Fields written together with a run status change.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub failure_reason: Option<String>,
    pub cancelled_by: Option<String>,
}

/// A step status report (`step.status`).
#[derive(Debug, Clone)]
pub struct StepReport {
    pub run_id: String,
    pub job_id: String,
    pub step_index: i64,
    pub step_name: String,
    pub step_type: Option<String>,
    pub status: StepStatus,
    pub concurrency_kind: Option<String>,
    pub group_id: Option<String>,
    pub attempts: Option<i64>,
    pub exit_code: Option<i64>,
    pub error_message: Option<String>,
    pub secrets_accessed: Option<Value>,
    pub log_bytes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub run_id: String,
    pub job_id: String,
    pub step_index: i64,
    pub step_name: String,
    pub step_type: Option<String>,
    pub status: StepStatus,
    pub concurrency_kind: Option<String>,
    pub group_id: Option<String>,
    pub attempts: Option<i64>,
    pub exit_code: Option<i64>,
    pub error_message: Option<String>,
    pub secrets_accessed: Option<Value>,
    pub log_bytes: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepWrite {
    Inserted,
    Moved { from: StepStatus },
    Unchanged,
}

pub(crate) fn run_from_row(row: &impl RowExt) -> Result<Run> {
    let status = row.text("status")?;
    Ok(Run {
        run_id: row.text("run_id")?,
        org_id: row.text("org_id")?,
        inbox_id: row.opt_text("inbox_id")?,
        dispatch_key: row.opt_text("dispatch_key")?,
        workflow_name: row.text("workflow_name")?,
        status: RunStatus::parse(&status).ok_or_else(|| crate::corrupt("status", &status))?,
        provider: row.text("provider")?,
        routing_key: row.text("routing_key")?,
        repo_identifier: row.text("repo_identifier")?,
        git_ref: row.text("ref")?,
        sha: row.text("sha")?,
        event: row.json("event")?.unwrap_or(Value::Null),
        decision: row.json("decision")?,
        matched_trigger: row.opt_text("matched_trigger")?,
        trust_tier: row.text("trust_tier")?,
        concurrency: row.json("concurrency")?,
        workflow_timeout_ms: row.opt_int("workflow_timeout_ms")?,
        is_test_run: row.flag("is_test_run")?,
        parent_run_id: row.opt_text("parent_run_id")?,
        triggered_by: row.opt_text("triggered_by")?,
        cancelled_by: row.opt_text("cancelled_by")?,
        failure_reason: row.opt_text("failure_reason")?,
        init_failure: row.json("init_failure")?,
        created_at: row.int("created_at")?,
        started_at: row.opt_int("started_at")?,
        completed_at: row.opt_int("completed_at")?,
        duration_ms: row.opt_int("duration_ms")?,
        log_bytes: row.int("log_bytes")?,
    })
}

pub(crate) fn job_from_row(row: &impl RowExt) -> Result<Job> {
    Ok(Job {
        job_id: row.text("job_id")?,
        run_id: row.text("run_id")?,
        job_name: row.text("job_name")?,
        base_job_name: row.text("base_job_name")?,
        variant_kind: row.opt_text("variant_kind")?,
        matrix_values: row.json("matrix_values")?,
        status: row.state("status")?,
        job_config: row.json("job_config")?.unwrap_or(Value::Null),
        environments: row.json("environments")?,
        runs_on: row.json("runs_on")?,
        agent_id: row.opt_text("agent_id")?,
        dispatch_attempts: row.int("dispatch_attempts")?,
        needs_satisfied: row.flag("needs_satisfied")?,
        wave_gated: row.flag("wave_gated")?,
        skip_reason: row.opt_text("skip_reason")?,
        error_message: row.opt_text("error_message")?,
        init_failure: row.json("init_failure")?,
        outputs: row.json("outputs")?,
        last_heartbeat_at: row.opt_int("last_heartbeat_at")?,
        created_at: row.int("created_at")?,
        started_at: row.opt_int("started_at")?,
        completed_at: row.opt_int("completed_at")?,
        duration_ms: row.opt_int("duration_ms")?,
        log_bytes: row.int("log_bytes")?,
    })
}

pub(crate) fn step_from_row(row: &impl RowExt) -> Result<Step> {
    let status = row.text("status")?;
    Ok(Step {
        run_id: row.text("run_id")?,
        job_id: row.text("job_id")?,
        step_index: row.int("step_index")?,
        step_name: row.text("step_name")?,
        step_type: row.opt_text("step_type")?,
        status: StepStatus::parse(&status).ok_or_else(|| crate::corrupt("status", &status))?,
        concurrency_kind: row.opt_text("concurrency_kind")?,
        group_id: row.opt_text("group_id")?,
        attempts: row.opt_int("attempts")?,
        exit_code: row.opt_int("exit_code")?,
        error_message: row.opt_text("error_message")?,
        secrets_accessed: row.json("secrets_accessed")?,
        log_bytes: row.int("log_bytes")?,
        started_at: row.opt_int("started_at")?,
        completed_at: row.opt_int("completed_at")?,
        duration_ms: row.opt_int("duration_ms")?,
    })
}

pub(crate) fn need_from_row(row: &impl RowExt) -> Result<Need> {
    let run_on = row.json("run_on")?.unwrap_or(Value::Null);
    Ok(NewNeed {
        job_name: row.text("job_name")?,
        upstream_name: row.text("upstream_name")?,
        run_on: serde_json::from_value(run_on).map_err(|e| Error::Corrupt {
            column: "run_on",
            message: e.to_string(),
        })?,
    })
}

impl Store {
    /// Creates a run with its jobs and edges in one transaction (§7); root jobs with
    /// [`JobStart::Enqueue`] get their queue rows in the same transaction. Idempotent on
    /// `(inbox_id, dispatch_key)`.
    pub async fn create_run(&self, run: &NewRun) -> Result<CreateRunOutcome> {
        let limits = self.options.queue;
        in_tx!(self, |tx| tx.create_run(run, limits).await)
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Option<Run>> {
        on_reader!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                crate::run_columns!(),
                " FROM execution_runs WHERE run_id = $1"
            ))
            .bind(run_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(run_from_row).transpose()
        })
    }

    /// Runs, newest first; `status` filters when given; `before` = `(created_at, run_id)`
    /// of the last run of the previous page.
    pub async fn list_runs(
        &self,
        status: Option<RunStatus>,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<Run>> {
        let (before_at, before_id) = before.unwrap_or((i64::MAX, ""));
        on_reader!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                crate::run_columns!(),
                " FROM execution_runs WHERE ($1 IS NULL OR status = $1)",
                " AND (created_at < $2 OR (created_at = $2 AND run_id < $3 AND $3 <> ''))",
                " ORDER BY created_at DESC, run_id DESC LIMIT $4"
            ))
            .bind(status.map(RunStatus::as_str))
            .bind(before_at)
            .bind(before_id)
            .bind(limit.clamp(1, 200))
            .fetch_all(pool)
            .await?;
            rows.iter().map(run_from_row).collect()
        })
    }

    /// The ids of runs that are not terminal (`pending`, `running`, `cancelling`, `held`),
    /// oldest first: the periodic DAG progression pass re-checks them.
    pub async fn active_run_ids(&self) -> Result<Vec<String>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT run_id FROM execution_runs WHERE status IN ('pending', 'running', 'cancelling', 'held')
                 ORDER BY created_at, run_id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(|r| r.text("run_id")).collect()
        })
    }

    /// A run's jobs in creation (lock expansion) order.
    pub async fn list_jobs(&self, run_id: &str) -> Result<Vec<Job>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                crate::job_columns!(),
                " FROM execution_jobs WHERE run_id = $1 ORDER BY job_order"
            ))
            .bind(run_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(job_from_row).collect()
        })
    }

    pub async fn get_job(&self, job_id: &str) -> Result<Option<Job>> {
        on_reader!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                crate::job_columns!(),
                " FROM execution_jobs WHERE job_id = $1"
            ))
            .bind(job_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(job_from_row).transpose()
        })
    }

    /// A run's needs edges.
    pub async fn list_needs(&self, run_id: &str) -> Result<Vec<Need>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT job_name, upstream_name, run_on FROM execution_job_needs WHERE run_id = $1 ORDER BY job_name, upstream_name",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(need_from_row).collect()
        })
    }

    /// Moves a job by `event` (§6): refused with [`Error::InvalidTransition`] and nothing
    /// written when the machine does not allow it; a compare-and-set on the status read,
    /// re-evaluated when another writer got there first. Terminal states also settle the
    /// queue row; RECOVER and a START from `recovering` move it too. ENQUEUE goes through
    /// [`Store::enqueue_job`].
    pub async fn transition_job(
        &self,
        job_id: &str,
        event: Event,
        update: &JobUpdate,
        now: i64,
    ) -> Result<JobTransition> {
        if event == Event::Enqueue {
            return Err(Error::EnqueueOutsideQueue { event });
        }
        in_tx!(self, |tx| tx
            .transition_job(job_id, event, update, now)
            .await)
    }

    /// Stores a job heartbeat (`job.heartbeat`). `false` when the job is not active.
    pub async fn record_job_heartbeat(&self, job_id: &str, now: i64) -> Result<bool> {
        crate::on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE execution_jobs SET last_heartbeat_at = $2 WHERE job_id = $1 AND status IN ('running', 'cancelling')",
            )
            .bind(job_id)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Moves a run (§6.4), compare-and-set like jobs. Returns `(from, to)`.
    pub async fn transition_run(
        &self,
        run_id: &str,
        event: RunEvent,
        update: &RunUpdate,
        now: i64,
    ) -> Result<(RunStatus, RunStatus)> {
        in_tx!(self, |tx| tx
            .transition_run(run_id, event, update, now)
            .await)
    }

    /// When every job of the run is terminal, computes the run status (§6.4) and writes it.
    /// Returns the terminal status (also when it was already written), `None` while jobs
    /// are still active.
    pub async fn finish_run_if_complete(
        &self,
        run_id: &str,
        now: i64,
    ) -> Result<Option<RunStatus>> {
        in_tx!(self, |tx| {
            let Some((current, failure_reason)) = tx.run_status(run_id).await? else {
                return Err(Error::NotFound {
                    entity: "run",
                    id: run_id.to_string(),
                });
            };
            if current.is_terminal() {
                return Ok(Some(current));
            }
            let jobs = tx.job_statuses(run_id).await?;
            let timeout = failure_reason.as_deref() == Some("workflow_timeout");
            match state::derive_run_status(&jobs, timeout) {
                None => Ok(None),
                Some(status) => {
                    let (_, to) = tx
                        .transition_run(
                            run_id,
                            RunEvent::Finish(status),
                            &RunUpdate::default(),
                            now,
                        )
                        .await?;
                    Ok(Some(to))
                }
            }
        })
    }

    /// Records a step status (`step.status`): inserts the step, or moves it forward as
    /// `state::step_transition` allows (compare-and-set).
    pub async fn record_step(&self, report: &StepReport, now: i64) -> Result<StepWrite> {
        in_tx!(self, |tx| tx.record_step(report, now).await)
    }

    /// A job's steps by index.
    pub async fn list_steps(&self, job_id: &str) -> Result<Vec<Step>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                crate::step_columns!(),
                " FROM execution_steps WHERE job_id = $1 ORDER BY step_index"
            ))
            .bind(job_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(step_from_row).collect()
        })
    }
}
