//! Multi-statement operations, written once and implemented for both connection types.
//!
//! The public methods open a transaction (or take a pooled connection) and call these on
//! it. `impl_ops!` expands the same bodies for `SqliteConnection` and `PgConnection`, with
//! the few statements that differ between the engines passed in as arguments.

use kici_engine::labels::{CompiledPatterns, LabelPatterns};
use kici_engine::state::{self, Event, Outcome, QueueStatus, RunEvent, RunStatus, State};
use sqlx::{PgConnection, SqliteConnection};

use crate::queue::{AgentProfile, ClaimedJob, EnqueueSpec, Requeue};
use crate::runs::{CreateRunOutcome, JobStart, JobTransition, JobUpdate, NewRun, RunUpdate};
use crate::runs::{StepReport, StepWrite};
use crate::{CAS_ATTEMPTS, Error, QueueLimits, Result, RowExt};

/// How many queue rows one pre-filter page holds (§9.3).
pub(crate) const CLAIM_PAGE: i64 = 50;

pub(crate) trait Ops {
    async fn create_run(&mut self, run: &NewRun, limits: QueueLimits) -> Result<CreateRunOutcome>;
    async fn job_status(&mut self, job_id: &str) -> Result<Option<(State, String)>>;
    async fn job_statuses(&mut self, run_id: &str) -> Result<Vec<State>>;
    async fn transition_job(
        &mut self,
        job_id: &str,
        event: Event,
        update: &JobUpdate,
        now: i64,
    ) -> Result<JobTransition>;
    async fn run_status(&mut self, run_id: &str) -> Result<Option<(RunStatus, Option<String>)>>;
    async fn transition_run(
        &mut self,
        run_id: &str,
        event: RunEvent,
        update: &RunUpdate,
        now: i64,
    ) -> Result<(RunStatus, RunStatus)>;
    async fn record_step(&mut self, report: &StepReport, now: i64) -> Result<StepWrite>;
    async fn pending_depth(&mut self) -> Result<i64>;
    /// ENQUEUE plus the queue row, or [`Error::QueueFull`] with nothing written.
    async fn enqueue(
        &mut self,
        job_id: &str,
        spec: &EnqueueSpec,
        limits: QueueLimits,
        now: i64,
    ) -> Result<()>;
    async fn claim_next(
        &mut self,
        agent: &AgentProfile,
        ack_timeout_ms: i64,
        now: i64,
    ) -> Result<Option<ClaimedJob>>;
    async fn requeue(
        &mut self,
        job_id: &str,
        reason: &str,
        limits: QueueLimits,
        now: i64,
    ) -> Result<Requeue>;
    async fn expire(&mut self, job_id: &str, now: i64) -> Result<bool>;
    /// [`Ops::expire`] with the job's message given by the caller (§9.4 adds why no agent
    /// took the job).
    async fn expire_with_message(&mut self, job_id: &str, message: &str, now: i64) -> Result<bool>;
}

/// The message a job gets when the queue expires it (§9.4).
pub(crate) const QUEUE_EXPIRED: &str =
    "Queue timeout expired (job was never dispatched to an agent)";

pub(crate) const ATTEMPTS_EXHAUSTED: &str = "re-dispatch attempts exhausted";

fn json_array(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

fn text_array(list: &[String]) -> Vec<String> {
    list.to_vec()
}

fn invalid(entity: &'static str, id: &str, source: state::InvalidTransition) -> Error {
    Error::InvalidTransition {
        entity,
        id: id.to_string(),
        source,
    }
}

macro_rules! impl_ops {
    (
        $conn:ty,
        array = $array:path,
        insert_queue = $insert_queue:expr,
        candidates = $candidates:expr,
        fast = $fast:expr,
        claim = $claim:expr $(,)?
    ) => {
        impl Ops for $conn {
            async fn create_run(
                &mut self,
                run: &NewRun,
                limits: QueueLimits,
            ) -> Result<CreateRunOutcome> {
                let status = if run.jobs.is_empty() {
                    RunStatus::Failed
                } else {
                    RunStatus::Pending
                };
                let completed_at = status.is_terminal().then_some(run.created_at);
                let inserted = sqlx::query(
                    "INSERT INTO execution_runs (run_id, org_id, inbox_id, dispatch_key, workflow_name, status, provider, routing_key, repo_identifier, ref, sha, event, decision, matched_trigger, trust_tier, concurrency, workflow_timeout_ms, is_test_run, parent_run_id, triggered_by, init_failure, created_at, completed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
                     ON CONFLICT (inbox_id, dispatch_key) DO NOTHING
                     RETURNING run_id",
                )
                .bind(&run.run_id)
                .bind(&run.org_id)
                .bind(&run.inbox_id)
                .bind(&run.dispatch_key)
                .bind(&run.workflow_name)
                .bind(status.as_str())
                .bind(&run.provider)
                .bind(&run.routing_key)
                .bind(&run.repo_identifier)
                .bind(&run.git_ref)
                .bind(&run.sha)
                .bind(crate::to_json(&run.event))
                .bind(crate::opt_json(run.decision.as_ref()))
                .bind(&run.matched_trigger)
                .bind(&run.trust_tier)
                .bind(crate::opt_json(run.concurrency.as_ref()))
                .bind(run.workflow_timeout_ms)
                .bind(run.is_test_run)
                .bind(&run.parent_run_id)
                .bind(&run.triggered_by)
                .bind(crate::opt_json(run.init_failure.as_ref()))
                .bind(run.created_at)
                .bind(completed_at)
                .fetch_optional(&mut *self)
                .await?;
                if inserted.is_none() {
                    let existing = sqlx::query(
                        "SELECT run_id FROM execution_runs WHERE inbox_id = $1 AND dispatch_key = $2",
                    )
                    .bind(&run.inbox_id)
                    .bind(&run.dispatch_key)
                    .fetch_one(&mut *self)
                    .await?;
                    return Ok(CreateRunOutcome::AlreadyExists {
                        run_id: existing.text("run_id")?,
                    });
                }
                for (order, job) in run.jobs.iter().enumerate() {
                    let status = match job.start {
                        JobStart::Failed => state::transition(State::Pending, Event::Fail)
                            .map_err(|e| invalid("job", &job.job_id, e))?,
                        _ => State::Pending,
                    };
                    let completed_at = status.is_terminal().then_some(run.created_at);
                    sqlx::query(
                        "INSERT INTO execution_jobs (job_id, run_id, job_name, base_job_name, variant_kind, matrix_values, status, job_config, environments, runs_on, wave_gated, init_failure, error_message, created_at, completed_at, job_order)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                    )
                    .bind(&job.job_id)
                    .bind(&run.run_id)
                    .bind(&job.job_name)
                    .bind(&job.base_job_name)
                    .bind(&job.variant_kind)
                    .bind(crate::opt_json(job.matrix_values.as_ref()))
                    .bind(status.as_str())
                    .bind(crate::to_json(&job.job_config))
                    .bind(crate::opt_json(job.environments.as_ref()))
                    .bind(crate::opt_json(job.runs_on.as_ref()))
                    .bind(job.wave_gated)
                    .bind(crate::opt_json(job.init_failure.as_ref()))
                    .bind(&job.error_message)
                    .bind(run.created_at)
                    .bind(completed_at)
                    .bind(i64::try_from(order).unwrap_or(i64::MAX))
                    .execute(&mut *self)
                    .await?;
                }
                for need in &run.needs {
                    sqlx::query(
                        "INSERT INTO execution_job_needs (run_id, job_name, upstream_name, run_on) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&run.run_id)
                    .bind(&need.job_name)
                    .bind(&need.upstream_name)
                    .bind(json_array(&need.run_on))
                    .execute(&mut *self)
                    .await?;
                }
                let mut enqueued = Vec::new();
                let mut queue_full = Vec::new();
                for job in &run.jobs {
                    let JobStart::Enqueue(spec) = &job.start else {
                        continue;
                    };
                    match self.enqueue(&job.job_id, spec, limits, run.created_at).await {
                        Ok(()) => enqueued.push(job.job_id.clone()),
                        Err(err @ Error::QueueFull { .. }) => {
                            let update = JobUpdate {
                                error_message: Some(err.to_string()),
                                ..JobUpdate::default()
                            };
                            self.transition_job(&job.job_id, Event::Fail, &update, run.created_at)
                                .await?;
                            queue_full.push(job.job_id.clone());
                        }
                        Err(other) => return Err(other),
                    }
                }
                Ok(CreateRunOutcome::Created {
                    run_id: run.run_id.clone(),
                    enqueued,
                    queue_full,
                })
            }

            async fn job_status(&mut self, job_id: &str) -> Result<Option<(State, String)>> {
                let row = sqlx::query("SELECT status, run_id FROM execution_jobs WHERE job_id = $1")
                    .bind(job_id)
                    .fetch_optional(&mut *self)
                    .await?;
                row.map(|r| Ok((r.state("status")?, r.text("run_id")?)))
                    .transpose()
            }

            async fn job_statuses(&mut self, run_id: &str) -> Result<Vec<State>> {
                let rows = sqlx::query("SELECT status FROM execution_jobs WHERE run_id = $1")
                    .bind(run_id)
                    .fetch_all(&mut *self)
                    .await?;
                rows.iter().map(|r| r.state("status")).collect()
            }

            async fn transition_job(
                &mut self,
                job_id: &str,
                event: Event,
                update: &JobUpdate,
                now: i64,
            ) -> Result<JobTransition> {
                for _ in 0..CAS_ATTEMPTS {
                    let Some((from, run_id)) = self.job_status(job_id).await? else {
                        return Err(Error::NotFound {
                            entity: "job",
                            id: job_id.to_string(),
                        });
                    };
                    let to = match state::apply(from, event).map_err(|e| invalid("job", job_id, e))? {
                        Outcome::Unchanged => {
                            return Ok(JobTransition {
                                job_id: job_id.to_string(),
                                run_id,
                                from,
                                to: from,
                                changed: false,
                            });
                        }
                        Outcome::Move(to) => to,
                    };
                    let moved = sqlx::query(
                        "UPDATE execution_jobs SET status = $3,
                            agent_id = COALESCE($4, agent_id),
                            error_message = COALESCE($5, error_message),
                            skip_reason = COALESCE($6, skip_reason),
                            outputs = COALESCE($7, outputs),
                            started_at = CASE WHEN $3 = 'running' AND started_at IS NULL THEN $8 ELSE started_at END,
                            last_heartbeat_at = CASE WHEN $3 = 'running' THEN $8 ELSE last_heartbeat_at END,
                            completed_at = CASE WHEN $9 THEN $8 ELSE completed_at END,
                            duration_ms = CASE WHEN $9 AND started_at IS NOT NULL THEN $8 - started_at ELSE duration_ms END
                         WHERE job_id = $1 AND status = $2",
                    )
                    .bind(job_id)
                    .bind(from.as_str())
                    .bind(to.as_str())
                    .bind(&update.agent_id)
                    .bind(&update.error_message)
                    .bind(&update.skip_reason)
                    .bind(crate::opt_json(update.outputs.as_ref()))
                    .bind(now)
                    .bind(to.is_terminal())
                    .execute(&mut *self)
                    .await?;
                    if moved.rows_affected() == 0 {
                        // Another writer moved the job since we read it: re-evaluate.
                        continue;
                    }
                    if to.is_terminal() {
                        sqlx::query(
                            "UPDATE dispatch_queue SET status = $2, ack_deadline = NULL, recovery_deadline = NULL
                             WHERE id = $1 AND status IN ('pending', 'dispatched', 'recovering')",
                        )
                        .bind(job_id)
                        .bind(QueueStatus::for_terminal_job(to).as_str())
                        .execute(&mut *self)
                        .await?;
                    } else if event == Event::Recover {
                        sqlx::query(
                            "UPDATE dispatch_queue SET status = 'recovering', recovery_deadline = $2, recovery_agent_id = agent_id
                             WHERE id = $1 AND status = 'dispatched'",
                        )
                        .bind(job_id)
                        .bind(update.recovery_deadline)
                        .execute(&mut *self)
                        .await?;
                    } else if event == Event::Start {
                        // START settles the dispatch: the ack deadline no longer applies,
                        // and a recovered job is dispatched again.
                        sqlx::query(
                            "UPDATE dispatch_queue SET status = 'dispatched', ack_deadline = NULL, recovery_deadline = NULL, recovery_agent_id = NULL
                             WHERE id = $1 AND status IN ('dispatched', 'recovering')",
                        )
                        .bind(job_id)
                        .execute(&mut *self)
                        .await?;
                    }
                    return Ok(JobTransition {
                        job_id: job_id.to_string(),
                        run_id,
                        from,
                        to,
                        changed: true,
                    });
                }
                Err(Error::Contended {
                    entity: "job",
                    id: job_id.to_string(),
                    attempts: CAS_ATTEMPTS,
                })
            }

            async fn run_status(
                &mut self,
                run_id: &str,
            ) -> Result<Option<(RunStatus, Option<String>)>> {
                let row = sqlx::query(
                    "SELECT status, failure_reason FROM execution_runs WHERE run_id = $1",
                )
                .bind(run_id)
                .fetch_optional(&mut *self)
                .await?;
                row.map(|r| {
                    let status = r.text("status")?;
                    let parsed = RunStatus::parse(&status)
                        .ok_or_else(|| crate::corrupt("status", &status))?;
                    Ok((parsed, r.opt_text("failure_reason")?))
                })
                .transpose()
            }

            async fn transition_run(
                &mut self,
                run_id: &str,
                event: RunEvent,
                update: &RunUpdate,
                now: i64,
            ) -> Result<(RunStatus, RunStatus)> {
                for _ in 0..CAS_ATTEMPTS {
                    let Some((from, _)) = self.run_status(run_id).await? else {
                        return Err(Error::NotFound {
                            entity: "run",
                            id: run_id.to_string(),
                        });
                    };
                    let to = state::run_transition(from, event).map_err(|e| {
                        Error::InvalidRunTransition {
                            id: run_id.to_string(),
                            from: e.from,
                            event: e.event,
                        }
                    })?;
                    let moved = sqlx::query(
                        "UPDATE execution_runs SET status = $3,
                            failure_reason = COALESCE(failure_reason, $4),
                            cancelled_by = COALESCE(cancelled_by, $5),
                            started_at = CASE WHEN $3 = 'running' AND started_at IS NULL THEN $6 ELSE started_at END,
                            completed_at = CASE WHEN $7 THEN $6 ELSE completed_at END,
                            duration_ms = CASE WHEN $7 THEN $6 - COALESCE(started_at, created_at) ELSE duration_ms END
                         WHERE run_id = $1 AND status = $2",
                    )
                    .bind(run_id)
                    .bind(from.as_str())
                    .bind(to.as_str())
                    .bind(&update.failure_reason)
                    .bind(&update.cancelled_by)
                    .bind(now)
                    .bind(to.is_terminal())
                    .execute(&mut *self)
                    .await?;
                    if moved.rows_affected() == 1 {
                        return Ok((from, to));
                    }
                }
                Err(Error::Contended {
                    entity: "run",
                    id: run_id.to_string(),
                    attempts: CAS_ATTEMPTS,
                })
            }

            async fn record_step(&mut self, report: &StepReport, now: i64) -> Result<StepWrite> {
                let running = report.status == kici_engine::state::StepStatus::Running;
                let terminal = report.status.is_terminal();
                let inserted = sqlx::query(
                    "INSERT INTO execution_steps (run_id, job_id, step_index, step_name, step_type, status, concurrency_kind, group_id, attempts, exit_code, error_message, secrets_accessed, log_bytes, started_at, completed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, COALESCE($13, 0), $14, $15)
                     ON CONFLICT (job_id, step_index) DO NOTHING",
                )
                .bind(&report.run_id)
                .bind(&report.job_id)
                .bind(report.step_index)
                .bind(&report.step_name)
                .bind(&report.step_type)
                .bind(report.status.as_str())
                .bind(&report.concurrency_kind)
                .bind(&report.group_id)
                .bind(report.attempts)
                .bind(report.exit_code)
                .bind(&report.error_message)
                .bind(crate::opt_json(report.secrets_accessed.as_ref()))
                .bind(report.log_bytes)
                .bind(running.then_some(now))
                .bind(terminal.then_some(now))
                .execute(&mut *self)
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(StepWrite::Inserted);
                }
                for _ in 0..CAS_ATTEMPTS {
                    let row = sqlx::query(
                        "SELECT status FROM execution_steps WHERE job_id = $1 AND step_index = $2",
                    )
                    .bind(&report.job_id)
                    .bind(report.step_index)
                    .fetch_one(&mut *self)
                    .await?;
                    let text = row.text("status")?;
                    let from = kici_engine::state::StepStatus::parse(&text)
                        .ok_or_else(|| crate::corrupt("status", &text))?;
                    let to = match state::step_transition(from, report.status) {
                        Ok(Some(to)) => to,
                        Ok(None) => return Ok(StepWrite::Unchanged),
                        Err(e) => {
                            return Err(Error::InvalidStepTransition {
                                job_id: report.job_id.clone(),
                                step_index: report.step_index,
                                from: e.from,
                                to: e.to,
                            });
                        }
                    };
                    let moved = sqlx::query(
                        "UPDATE execution_steps SET status = $4,
                            step_type = COALESCE($5, step_type),
                            attempts = COALESCE($6, attempts),
                            exit_code = COALESCE($7, exit_code),
                            error_message = COALESCE($8, error_message),
                            secrets_accessed = COALESCE($9, secrets_accessed),
                            log_bytes = COALESCE($10, log_bytes),
                            started_at = CASE WHEN $4 = 'running' AND started_at IS NULL THEN $11 ELSE started_at END,
                            completed_at = CASE WHEN $12 THEN $11 ELSE completed_at END,
                            duration_ms = CASE WHEN $12 AND started_at IS NOT NULL THEN $11 - started_at ELSE duration_ms END
                         WHERE job_id = $1 AND step_index = $2 AND status = $3",
                    )
                    .bind(&report.job_id)
                    .bind(report.step_index)
                    .bind(from.as_str())
                    .bind(to.as_str())
                    .bind(&report.step_type)
                    .bind(report.attempts)
                    .bind(report.exit_code)
                    .bind(&report.error_message)
                    .bind(crate::opt_json(report.secrets_accessed.as_ref()))
                    .bind(report.log_bytes)
                    .bind(now)
                    .bind(to.is_terminal())
                    .execute(&mut *self)
                    .await?;
                    if moved.rows_affected() == 1 {
                        return Ok(StepWrite::Moved { from });
                    }
                }
                Err(Error::Contended {
                    entity: "step",
                    id: format!("{}/{}", report.job_id, report.step_index),
                    attempts: CAS_ATTEMPTS,
                })
            }

            async fn pending_depth(&mut self) -> Result<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM dispatch_queue WHERE status = 'pending'")
                    .fetch_one(&mut *self)
                    .await?;
                row.int("n")
            }

            async fn enqueue(
                &mut self,
                job_id: &str,
                spec: &EnqueueSpec,
                limits: QueueLimits,
                now: i64,
            ) -> Result<()> {
                let pending = self.pending_depth().await?;
                if pending >= limits.max_depth {
                    return Err(Error::QueueFull {
                        pending,
                        max: limits.max_depth,
                    });
                }
                let Some((from, _)) = self.job_status(job_id).await? else {
                    return Err(Error::NotFound {
                        entity: "job",
                        id: job_id.to_string(),
                    });
                };
                let to = state::transition(from, Event::Enqueue).map_err(|e| invalid("job", job_id, e))?;
                let moved = sqlx::query(
                    "UPDATE execution_jobs SET status = $3 WHERE job_id = $1 AND status = $2",
                )
                .bind(job_id)
                .bind(from.as_str())
                .bind(to.as_str())
                .execute(&mut *self)
                .await?;
                if moved.rows_affected() == 0 {
                    return Err(Error::Contended {
                        entity: "job",
                        id: job_id.to_string(),
                        attempts: 1,
                    });
                }
                let patterns = (!spec.labels.patterns.is_empty())
                    .then(|| serde_json::to_string(&spec.labels.patterns))
                    .transpose()
                    .map_err(|e| Error::Corrupt {
                        column: "patterns",
                        message: e.to_string(),
                    })?;
                sqlx::query($insert_queue)
                    .bind(job_id)
                    .bind(spec.pinned_agent_id.as_deref())
                    .bind(patterns)
                    .bind(now)
                    .bind(spec.expires_at)
                    .execute(&mut *self)
                    .await?;
                for (kind, labels) in [("require", &spec.labels.require), ("exclude", &spec.labels.exclude)] {
                    for label in labels {
                        sqlx::query(
                            "INSERT INTO dispatch_queue_labels (queue_id, kind, label) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        )
                        .bind(job_id)
                        .bind(kind)
                        .bind(label)
                        .execute(&mut *self)
                        .await?;
                    }
                }
                Ok(())
            }

            async fn claim_next(
                &mut self,
                agent: &AgentProfile,
                ack_timeout_ms: i64,
                now: i64,
            ) -> Result<Option<ClaimedJob>> {
                let fast = sqlx::query($fast)
                    .bind(now)
                    .bind($array(&agent.labels))
                    .bind($array(&agent.mandatory_labels))
                    .bind(i64::MIN)
                    .bind(i64::MIN)
                    .bind(1_i64)
                    .bind(&agent.agent_id)
                    .bind(ack_timeout_ms)
                    .fetch_optional(&mut *self)
                    .await?;
                if let Some(row) = fast {
                    return crate::queue::claimed_from_row(&row).map(Some);
                }
                // Rows pinned to this agent first, then the shared FIFO (§9.3).
                for (phase, sql) in $candidates.iter().enumerate() {
                    let pinned = phase == 0;
                    let mut cursor: (i64, i64) = (i64::MIN, i64::MIN);
                    loop {
                        let query = sqlx::query(*sql)
                            .bind(now)
                            .bind($array(&agent.labels))
                            .bind($array(&agent.mandatory_labels))
                            .bind(cursor.0)
                            .bind(cursor.1)
                            .bind(CLAIM_PAGE);
                        let query = if pinned { query.bind(&agent.agent_id) } else { query };
                        let rows = query.fetch_all(&mut *self).await?;
                        let mut matching = Vec::new();
                        for row in &rows {
                            let patterns = match row.opt_text("patterns")? {
                                None => None,
                                Some(text) => Some(
                                    serde_json::from_str::<LabelPatterns>(&text).map_err(|e| {
                                        Error::Corrupt {
                                            column: "patterns",
                                            message: e.to_string(),
                                        }
                                    })?,
                                ),
                            };
                            let ok = match patterns {
                                None => true,
                                // A pattern that does not compile matches no agent; the job
                                // waits and expires rather than failing every claimer.
                                Some(p) => CompiledPatterns::new(&p)
                                    .is_ok_and(|c| c.matches(&agent.labels)),
                            };
                            if ok {
                                matching.push(row.text("id")?);
                            }
                        }
                        if !matching.is_empty() {
                            let claimed = sqlx::query($claim)
                                .bind(&agent.agent_id)
                                .bind(now)
                                .bind(ack_timeout_ms)
                                .bind($array(&matching))
                                .fetch_optional(&mut *self)
                                .await?;
                            if let Some(row) = claimed {
                                return crate::queue::claimed_from_row(&row).map(Some);
                            }
                            // Every matching candidate was taken by a concurrent claimer:
                            // look again from the same position, the page has changed.
                            continue;
                        }
                        let Some(last) = rows.last() else {
                            break;
                        };
                        if i64::try_from(rows.len()).unwrap_or(i64::MAX) < CLAIM_PAGE {
                            break;
                        }
                        cursor = (last.int("created_at")?, last.int("seq")?);
                    }
                }
                Ok(None)
            }

            async fn requeue(
                &mut self,
                job_id: &str,
                reason: &str,
                limits: QueueLimits,
                now: i64,
            ) -> Result<Requeue> {
                let row = sqlx::query(
                    "SELECT status, dispatch_attempts FROM dispatch_queue WHERE id = $1",
                )
                .bind(job_id)
                .fetch_optional(&mut *self)
                .await?;
                let Some(row) = row else {
                    return Err(Error::NotFound {
                        entity: "queue row",
                        id: job_id.to_string(),
                    });
                };
                if row.text("status")? != "dispatched" {
                    return Ok(Requeue::NotDispatched);
                }
                let Some((job_state, _)) = self.job_status(job_id).await? else {
                    return Err(Error::NotFound {
                        entity: "job",
                        id: job_id.to_string(),
                    });
                };
                if job_state != State::Queued {
                    // The agent already started it: that is recovery, not a requeue.
                    return Ok(Requeue::NotDispatched);
                }
                let attempts = row.int("dispatch_attempts")? + 1;
                if attempts >= limits.max_dispatch_attempts {
                    sqlx::query(
                        "UPDATE dispatch_queue SET dispatch_attempts = $2, last_error = $3 WHERE id = $1",
                    )
                    .bind(job_id)
                    .bind(attempts)
                    .bind(reason)
                    .execute(&mut *self)
                    .await?;
                    sqlx::query("UPDATE execution_jobs SET dispatch_attempts = $2 WHERE job_id = $1")
                        .bind(job_id)
                        .bind(attempts)
                        .execute(&mut *self)
                        .await?;
                    let update = JobUpdate {
                        error_message: Some(ATTEMPTS_EXHAUSTED.to_string()),
                        ..JobUpdate::default()
                    };
                    self.transition_job(job_id, Event::Fail, &update, now).await?;
                    return Ok(Requeue::Exhausted { attempts });
                }
                let moved = sqlx::query(
                    "UPDATE dispatch_queue SET status = 'pending', agent_id = NULL, dispatched_at = NULL, ack_deadline = NULL, ack_agent_id = NULL,
                        dispatch_attempts = $2, last_error = $3
                     WHERE id = $1 AND status = 'dispatched'",
                )
                .bind(job_id)
                .bind(attempts)
                .bind(reason)
                .execute(&mut *self)
                .await?;
                if moved.rows_affected() == 0 {
                    return Ok(Requeue::NotDispatched);
                }
                sqlx::query("UPDATE execution_jobs SET dispatch_attempts = $2, agent_id = NULL WHERE job_id = $1")
                    .bind(job_id)
                    .bind(attempts)
                    .execute(&mut *self)
                    .await?;
                Ok(Requeue::Requeued { attempts })
            }

            async fn expire(&mut self, job_id: &str, now: i64) -> Result<bool> {
                let moved = sqlx::query(
                    "UPDATE dispatch_queue SET status = 'expired', last_error = $2 WHERE id = $1 AND status = 'pending'",
                )
                .bind(job_id)
                .bind(QUEUE_EXPIRED)
                .execute(&mut *self)
                .await?;
                if moved.rows_affected() == 0 {
                    return Ok(false);
                }
                let update = JobUpdate {
                    error_message: Some(QUEUE_EXPIRED.to_string()),
                    ..JobUpdate::default()
                };
                self.transition_job(job_id, Event::Stale, &update, now).await?;
                Ok(true)
            }

            async fn expire_with_message(
                &mut self,
                job_id: &str,
                message: &str,
                now: i64,
            ) -> Result<bool> {
                let moved = sqlx::query(
                    "UPDATE dispatch_queue SET status = 'expired', last_error = $2 WHERE id = $1 AND status = 'pending'",
                )
                .bind(job_id)
                .bind(message)
                .execute(&mut *self)
                .await?;
                if moved.rows_affected() == 0 {
                    return Ok(false);
                }
                let update = JobUpdate {
                    error_message: Some(message.to_string()),
                    ..JobUpdate::default()
                };
                self.transition_job(job_id, Event::Stale, &update, now).await?;
                Ok(true)
            }
        }
    };
}

/// SQLite: the single writer (or the file lock) serialises writers, so `MAX(seq) + 1` is
/// race-free here.
const SQLITE_INSERT_QUEUE: &str = "INSERT INTO dispatch_queue (id, seq, run_id, org_id, workflow_name, job_name, status, pinned_agent_id, patterns, created_at, expires_at)
SELECT j.job_id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM dispatch_queue), j.run_id, r.org_id, r.workflow_name, j.job_name, 'pending', $2, $3, $4, $5
FROM execution_jobs j JOIN execution_runs r ON r.run_id = j.run_id WHERE j.job_id = $1";

const PG_INSERT_QUEUE: &str = "INSERT INTO dispatch_queue (id, run_id, org_id, workflow_name, job_name, status, pinned_agent_id, patterns, created_at, expires_at)
SELECT j.job_id, j.run_id, r.org_id, r.workflow_name, j.job_name, 'pending', $2, $3, $4, $5
FROM execution_jobs j JOIN execution_runs r ON r.run_id = j.run_id WHERE j.job_id = $1";

/// §9.3 pre-filter: exact labels, excludes and taints in SQL, FIFO by `(created_at, seq)`
/// with keyset paging, so each page is an index range scan on the pending rows. Two
/// variants: rows pinned to this agent (looked at first), then unpinned rows.
/// Binds: $1 now, $2 agent labels, $3 agent taints, $4 $5 cursor, $6 page size, and for the
/// pinned variant $7 the agent id.
macro_rules! candidates_sql {
    (sqlite, $pin:literal) => {
        concat!(
            "SELECT q.id, q.patterns, q.created_at, q.seq FROM dispatch_queue q
WHERE q.status = 'pending' AND ",
            $pin,
            "
  AND (q.expires_at IS NULL OR q.expires_at >= $1)
  AND NOT EXISTS (SELECT 1 FROM dispatch_queue_labels l
                  WHERE l.queue_id = q.id AND l.kind = 'require' AND l.label NOT IN (SELECT value FROM json_each($2)))
  AND NOT EXISTS (SELECT 1 FROM dispatch_queue_labels l
                  WHERE l.queue_id = q.id AND l.kind = 'exclude' AND l.label IN (SELECT value FROM json_each($2)))
  AND NOT EXISTS (SELECT 1 FROM json_each($3) t
                  WHERE NOT EXISTS (SELECT 1 FROM dispatch_queue_labels l
                                    WHERE l.queue_id = q.id AND l.kind = 'require' AND l.label = t.value))
  AND (q.created_at, q.seq) > ($4, $5)
ORDER BY q.created_at, q.seq
LIMIT $6"
        )
    };
    // `OFFSET 0` keeps PostgreSQL from flattening each label check into an anti-join, which
    // it planned as a scan of every label row per claim (claims slowed down with the queue's
    // depth); as subplans they are per-candidate primary-key lookups.
    (postgres, $pin:literal) => {
        concat!(
            "SELECT q.id, q.patterns, q.created_at, q.seq FROM dispatch_queue q
WHERE q.status = 'pending' AND ",
            $pin,
            "
  AND (q.expires_at IS NULL OR q.expires_at >= $1)
  AND NOT EXISTS (SELECT 1 FROM dispatch_queue_labels l
                  WHERE l.queue_id = q.id AND l.kind = 'require' AND l.label <> ALL($2::text[]) OFFSET 0)
  AND NOT EXISTS (SELECT 1 FROM dispatch_queue_labels l
                  WHERE l.queue_id = q.id AND l.kind = 'exclude' AND l.label = ANY($2::text[]) OFFSET 0)
  AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS t(v)
                  WHERE NOT EXISTS (SELECT 1 FROM dispatch_queue_labels l
                                    WHERE l.queue_id = q.id AND l.kind = 'require' AND l.label = t.v OFFSET 0)
                  OFFSET 0)
  AND (q.created_at, q.seq) > ($4, $5)
ORDER BY q.created_at, q.seq
LIMIT $6"
        )
    };
}

const SQLITE_CANDIDATES: [&str; 2] = [
    candidates_sql!(sqlite, "q.pinned_agent_id = $7"),
    candidates_sql!(sqlite, "q.pinned_agent_id IS NULL"),
];

const PG_CANDIDATES: [&str; 2] = [
    candidates_sql!(postgres, "q.pinned_agent_id = $7"),
    candidates_sql!(postgres, "q.pinned_agent_id IS NULL"),
];

/// The fast path of a pull: one statement claims the first pre-filtered row when it has no
/// regex patterns and no row is pinned to this agent — the common case. Otherwise it
/// claims nothing and the paged path decides. Binds as the candidates (cursor at the
/// start, page 1), plus $7 agent id and $8 ack timeout.
macro_rules! fast_claim_sql {
    ($backend:tt, $lock:literal) => {
        concat!(
            "UPDATE dispatch_queue SET status = 'dispatched', agent_id = $7, dispatched_at = $1, ack_deadline = $1 + $8, ack_agent_id = $7
WHERE status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM dispatch_queue p WHERE p.status = 'pending' AND p.pinned_agent_id = $7)
  AND id = (SELECT c.id FROM (",
            candidates_sql!($backend, "q.pinned_agent_id IS NULL"),
            $lock,
            ") c WHERE c.patterns IS NULL)
RETURNING ",
            crate::queue_columns!()
        )
    };
}

const SQLITE_FAST_CLAIM: &str = fast_claim_sql!(sqlite, "");
const PG_FAST_CLAIM: &str = fast_claim_sql!(postgres, " FOR UPDATE SKIP LOCKED");

/// The claim: one statement that takes the first still-pending row among the matching
/// candidates. On SQLite the statement holds the database write lock from start to end.
/// Binds: $1 agent, $2 now, $3 ack timeout, $4 candidate ids.
const SQLITE_CLAIM: &str = concat!(
    "UPDATE dispatch_queue SET status = 'dispatched', agent_id = $1, dispatched_at = $2, ack_deadline = $2 + $3, ack_agent_id = $1
WHERE status = 'pending' AND id = (
    SELECT id FROM dispatch_queue
    WHERE id IN (SELECT value FROM json_each($4)) AND status = 'pending'
    ORDER BY created_at, seq
    LIMIT 1)
RETURNING ",
    crate::queue_columns!()
);

/// PostgreSQL: `FOR UPDATE SKIP LOCKED` lets concurrent claimers pass over a row another
/// transaction is claiming instead of queueing behind it; the lock re-checks
/// `status = 'pending'` on the newest row version, so a row is never claimed twice.
const PG_CLAIM: &str = concat!(
    "UPDATE dispatch_queue SET status = 'dispatched', agent_id = $1, dispatched_at = $2, ack_deadline = $2 + $3, ack_agent_id = $1
WHERE status = 'pending' AND id = (
    SELECT id FROM dispatch_queue
    WHERE id = ANY($4::text[]) AND status = 'pending'
    ORDER BY created_at, seq
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING ",
    crate::queue_columns!()
);

impl_ops!(
    SqliteConnection,
    array = json_array,
    insert_queue = SQLITE_INSERT_QUEUE,
    candidates = SQLITE_CANDIDATES,
    fast = SQLITE_FAST_CLAIM,
    claim = SQLITE_CLAIM,
);

impl_ops!(
    PgConnection,
    array = text_array,
    insert_queue = PG_INSERT_QUEUE,
    candidates = PG_CANDIDATES,
    fast = PG_FAST_CLAIM,
    claim = PG_CLAIM,
);
