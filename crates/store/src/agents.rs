//! What the orchestrator's agent side persists besides runs and the queue
//! (`protocol.md` §12–§13, `orchestrator.md` §10): the last applied `seq` per agent
//! process, the recovery of dispatches whose agent went away, and the liveness sweeps
//! (recovery deadlines, stale running jobs).
//!
//! Every status change still goes through `Ops::transition_job` (the state machine, as a
//! compare-and-set); the queue-row moves here are compare-and-sets on the row status, so a
//! reconnect and a sweep racing for the same row settle exactly once.

use kici_engine::state::{self, Event, StepStatus};

use crate::ops::Ops;
use crate::runs::{JobTransition, JobUpdate};
use crate::{Error, Result, RowExt, Store, in_tx, on_backend, on_reader};

/// A queue row held by an agent (`dispatched`), with its job's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchedJob {
    pub job_id: String,
    pub run_id: String,
    pub agent_id: String,
    pub job_status: state::State,
}

/// A running job whose heartbeat is older than the stale threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleJob {
    pub job_id: String,
    pub run_id: String,
    pub agent_id: Option<String>,
}

impl Store {
    /// `lastApplied` of an agent process (`seq-ack`, §12); `None` for an unknown instance.
    pub async fn agent_instance_seq(
        &self,
        agent_id: &str,
        instance_id: &str,
    ) -> Result<Option<i64>> {
        on_reader!(self, |pool| {
            let row = sqlx::query(
                "SELECT last_applied_seq FROM agent_instances WHERE agent_id = $1 AND instance_id = $2",
            )
            .bind(agent_id)
            .bind(instance_id)
            .fetch_optional(pool)
            .await?;
            row.map(|r| r.int("last_applied_seq")).transpose()
        })
    }

    /// Records an agent process and the last reliable frame applied for it. The stored
    /// value never goes backwards.
    pub async fn save_agent_instance(
        &self,
        agent_id: &str,
        instance_id: &str,
        last_applied_seq: i64,
        node: &str,
        now: i64,
    ) -> Result<()> {
        on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO agent_instances (agent_id, instance_id, last_applied_seq, connected_node, first_seen_at, last_seen_at)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (agent_id, instance_id) DO UPDATE SET
                    last_applied_seq = CASE WHEN excluded.last_applied_seq > agent_instances.last_applied_seq
                                            THEN excluded.last_applied_seq ELSE agent_instances.last_applied_seq END,
                    connected_node = excluded.connected_node,
                    last_seen_at = excluded.last_seen_at",
            )
            .bind(agent_id)
            .bind(instance_id)
            .bind(last_applied_seq)
            .bind(node)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Every row an agent holds (`dispatched`), oldest first: start-up recovery moves the
    /// ones whose agent is not connected to `recovering` (`orchestrator.md` §10).
    pub async fn dispatched_jobs(&self) -> Result<Vec<DispatchedJob>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT q.id, q.run_id, q.agent_id, j.status FROM dispatch_queue q JOIN execution_jobs j ON j.job_id = q.id
                 WHERE q.status = 'dispatched' AND q.agent_id IS NOT NULL ORDER BY q.dispatched_at, q.id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(DispatchedJob {
                        job_id: r.text("id")?,
                        run_id: r.text("run_id")?,
                        agent_id: r.text("agent_id")?,
                        job_status: r.state("status")?,
                    })
                })
                .collect()
        })
    }

    /// The agent of a dispatched, not yet started job went away (§13): its row waits in
    /// `recovering` until `deadline`; the job stays `queued`. `false` when the row is not
    /// dispatched to this agent.
    pub async fn recover_dispatch(
        &self,
        job_id: &str,
        agent_id: &str,
        deadline: i64,
    ) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE dispatch_queue SET status = 'recovering', recovery_deadline = $3, recovery_agent_id = agent_id, ack_deadline = NULL
                 WHERE id = $1 AND status = 'dispatched' AND agent_id = $2",
            )
            .bind(job_id)
            .bind(agent_id)
            .bind(deadline)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The agent came back with a dispatched, not yet started job (§13): the row is
    /// `dispatched` to it again. `false` when the row is not recovering for this agent
    /// (the recovery sweep got there first). Started jobs are reclaimed by START instead.
    pub async fn reclaim_dispatch(&self, job_id: &str, agent_id: &str) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE dispatch_queue SET status = 'dispatched', agent_id = $2, recovery_deadline = NULL, recovery_agent_id = NULL
                 WHERE id = $1 AND status = 'recovering' AND recovery_agent_id = $2",
            )
            .bind(job_id)
            .bind(agent_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Moves the recovery deadline of a row recovering for `agent_id` (a job the agent
    /// reported as completed gets a short window for its replayed terminal status).
    pub async fn set_recovery_deadline(
        &self,
        job_id: &str,
        agent_id: &str,
        deadline: i64,
    ) -> Result<bool> {
        on_backend!(self, |pool| {
            let done = sqlx::query(
                "UPDATE dispatch_queue SET recovery_deadline = $3
                 WHERE id = $1 AND status = 'recovering' AND recovery_agent_id = $2",
            )
            .bind(job_id)
            .bind(agent_id)
            .bind(deadline)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The recovery sweep (§13): every row still `recovering` after its deadline is
    /// `failed` and its job FAILs with `reason`, each in its own transaction whose first
    /// statement is `UPDATE … WHERE status = 'recovering'`, so a concurrent reclaim and this
    /// sweep settle a job exactly once. A job the machine refuses to fail is left alone and
    /// reported as the error of its entry.
    pub async fn expire_recoveries(
        &self,
        reason: &str,
        now: i64,
    ) -> Result<Vec<(String, Result<JobTransition>)>> {
        let ids: Vec<String> = on_backend!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id FROM dispatch_queue WHERE status = 'recovering' AND recovery_deadline IS NOT NULL AND recovery_deadline < $1 ORDER BY recovery_deadline, id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| r.text("id"))
                .collect::<Result<Vec<_>>>()?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let update = JobUpdate {
                error_message: Some(reason.to_string()),
                ..JobUpdate::default()
            };
            let result: Result<Option<JobTransition>> = in_tx!(self, |tx| {
                let moved = sqlx::query(
                    "UPDATE dispatch_queue SET status = 'failed', last_error = $3
                     WHERE id = $1 AND status = 'recovering' AND recovery_deadline < $2",
                )
                .bind(&id)
                .bind(now)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() == 0 {
                    Ok(None)
                } else {
                    tx.transition_job(&id, Event::Fail, &update, now)
                        .await
                        .map(Some)
                }
            });
            match result {
                Ok(None) => {}
                Ok(Some(transition)) => out.push((id, Ok(transition))),
                Err(e) => out.push((id, Err(e))),
            }
        }
        Ok(out)
    }

    /// Running jobs whose last heartbeat (or start, when none arrived) is before `before`
    /// (`orchestrator.md` §10). No look-back window (fix F23).
    pub async fn stale_running_jobs(&self, before: i64) -> Result<Vec<StaleJob>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT job_id, run_id, agent_id FROM execution_jobs
                 WHERE status = 'running' AND COALESCE(last_heartbeat_at, started_at, created_at) < $1
                 ORDER BY created_at, job_id",
            )
            .bind(before)
            .fetch_all(pool)
            .await?;
            rows.iter().map(stale_job).collect()
        })
    }

    /// Dispatches the agent acknowledged (`job.ack` cleared the ack deadline) whose job is
    /// still `queued`, dispatched before `before`: the agent never reported the job
    /// `running` (a lost frame, a reclaim after which it never re-reported), so nothing but
    /// the stale detector would ever end them.
    pub async fn stale_acked_dispatches(&self, before: i64) -> Result<Vec<StaleJob>> {
        on_reader!(self, |pool| {
            let rows = sqlx::query(
                "SELECT q.id AS job_id, q.run_id, q.agent_id FROM dispatch_queue q JOIN execution_jobs j ON j.job_id = q.id
                 WHERE q.status = 'dispatched' AND q.ack_deadline IS NULL AND j.status = 'queued'
                   AND q.dispatched_at IS NOT NULL AND q.dispatched_at < $1
                 ORDER BY q.dispatched_at, q.id",
            )
            .bind(before)
            .fetch_all(pool)
            .await?;
            rows.iter().map(stale_job).collect()
        })
    }

    /// Ends every step of a job that is still `running` or `pending` as `cancelled` (a
    /// job that went stale or was cancelled without its agent), each write checked by the
    /// step machine. Returns the step indexes moved.
    pub async fn cancel_open_steps(&self, job_id: &str, now: i64) -> Result<Vec<i64>> {
        in_tx!(self, |tx| {
            let rows = sqlx::query(
                "SELECT step_index, status FROM execution_steps WHERE job_id = $1 AND status IN ('running', 'pending') ORDER BY step_index",
            )
            .bind(job_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut moved = Vec::new();
            for row in &rows {
                let index = row.int("step_index")?;
                let text = row.text("status")?;
                let from =
                    StepStatus::parse(&text).ok_or_else(|| crate::corrupt("status", &text))?;
                let to = match state::step_transition(from, StepStatus::Cancelled) {
                    Ok(Some(to)) => to,
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(Error::InvalidStepTransition {
                            job_id: job_id.to_string(),
                            step_index: index,
                            from: e.from,
                            to: e.to,
                        });
                    }
                };
                let done = sqlx::query(
                    "UPDATE execution_steps SET status = $4, completed_at = $5,
                        duration_ms = CASE WHEN started_at IS NOT NULL THEN $5 - started_at ELSE duration_ms END
                     WHERE job_id = $1 AND step_index = $2 AND status = $3",
                )
                .bind(job_id)
                .bind(index)
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    moved.push(index);
                }
            }
            Ok(moved)
        })
    }
}

fn stale_job(row: &impl RowExt) -> Result<StaleJob> {
    Ok(StaleJob {
        job_id: row.text("job_id")?,
        run_id: row.text("run_id")?,
        agent_id: row.opt_text("agent_id")?,
    })
}
