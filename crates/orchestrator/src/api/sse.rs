//! `GET /api/v1/admin/runs/{runId}/events` (§18.2, ours): a run's changes as server-sent
//! events — `run`, `job`, `step` (the REST JSON, sent when it changed), `log` (new lines) and
//! `end` (the run is terminal and its stored logs were sent) — with a comment heartbeat.
//!
//! The change bus only says *what* changed; the follower re-reads the rows and sends what
//! differs from what it sent before. A lagging subscriber (the bus dropped notifications)
//! therefore loses nothing: it re-reads everything once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use kici_engine::api::{LogEvent, sse as names};
use serde::Serialize;
use tokio::sync::broadcast;

use super::AppState;
use super::admin::QueryArgs;
use super::admin::runs::load_jobs;
use super::auth::{Admin, Permission};
use super::views::run_summary;
use crate::error::ApiError;
use crate::events::Change;

/// Lines per `log` event.
const LOG_BATCH: i64 = 1000;

/// `?fromStart=true` replays the logs stored so far before following.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsQuery {
    #[serde(default)]
    pub from_start: Option<bool>,
}

pub async fn run_events(
    State(state): State<AppState>,
    admin: Admin,
    Path(run_id): Path<String>,
    QueryArgs(query): QueryArgs<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    admin.require(Permission::RunRead)?;
    // Subscribe before the first read, so no change between the read and the
    // subscription is missed.
    let changes = state.events().subscribe();
    if state.store().get_run(&run_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no run {run_id}")));
    }
    let follower = Follower {
        state,
        run_id,
        changes,
        from_start: query.from_start.unwrap_or(false),
        started: false,
        finished: false,
        sent: HashMap::new(),
        log_offsets: HashMap::new(),
        log_keys: BTreeSet::new(),
        queue: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        follower.next().await.map(|event| (Ok(event), follower))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_millis(names::HEARTBEAT_INTERVAL_MS))))
}

struct Follower {
    state: AppState,
    run_id: String,
    changes: broadcast::Receiver<Change>,
    from_start: bool,
    started: bool,
    finished: bool,
    /// Last JSON sent per entity (`run`, `job:<id>`, `step:<job>:<i>`).
    sent: HashMap<String, String>,
    /// Next log line to send per (job, step).
    log_offsets: HashMap<(String, i64), i64>,
    /// Steps known to have logs without a step row yet (the prepare log, early chunks).
    log_keys: BTreeSet<(String, i64)>,
    queue: VecDeque<Event>,
}

impl Follower {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.finished {
                return None;
            }
            if !self.started {
                self.started = true;
                self.sync_or_finish().await;
                continue;
            }
            match self.changes.recv().await {
                Ok(change) if change.run_id() == self.run_id => match change {
                    // New lines of one step: read only those, not the whole run again.
                    Change::Log {
                        job_id, step_index, ..
                    } => {
                        self.log_keys.insert((job_id.clone(), step_index));
                        let store = self.state.store().clone();
                        if let Err(e) = self.read_lines(&store, &job_id, step_index).await {
                            tracing::warn!(run = %self.run_id, error = %e, "run event stream stopped");
                            self.finished = true;
                        }
                    }
                    _ => self.sync_or_finish().await,
                },
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => self.sync_or_finish().await,
                Err(broadcast::error::RecvError::Closed) => self.finished = true,
            }
        }
    }

    async fn sync_or_finish(&mut self) {
        if let Err(e) = self.sync().await {
            // The client reconnects (with `fromStart`) when the stream ends.
            tracing::warn!(run = %self.run_id, error = %e, "run event stream stopped");
            self.finished = true;
        }
    }

    fn push<T: Serialize>(&mut self, key: Option<String>, name: &'static str, data: &T) {
        let Ok(json) = serde_json::to_string(data) else {
            return;
        };
        if let Some(key) = key {
            if self.sent.get(&key) == Some(&json) {
                return;
            }
            self.sent.insert(key, json.clone());
        }
        self.queue
            .push_back(Event::default().event(name).data(json));
    }

    /// Queues the lines of one step's log this follower has not sent yet.
    async fn read_lines(
        &mut self,
        store: &kici_store::Store,
        job_id: &str,
        step_index: i64,
    ) -> Result<(), ApiError> {
        let key = (job_id.to_string(), step_index);
        let mut offset = match self.log_offsets.get(&key) {
            Some(offset) => *offset,
            // First sight of this log: from line 0 with `fromStart` or once the follow began
            // (the lines are new to this follower), else from its current end.
            None if self.from_start || self.sent.contains_key("started") => 0,
            None => {
                store
                    .read_step_log(job_id, step_index, i64::MAX / 2, 1)
                    .await?
                    .total_lines
            }
        };
        loop {
            let page = store
                .read_step_log(job_id, step_index, offset, LOG_BATCH)
                .await?;
            if page.lines.is_empty() {
                break;
            }
            let first_line = page.lines[0].n;
            offset = page.next_offset;
            let event = LogEvent {
                job_id: job_id.to_string(),
                step_index,
                first_line: u64::try_from(first_line).unwrap_or(0),
                lines: page.lines.into_iter().map(|l| l.text).collect(),
            };
            self.push(None, names::LOG, &event);
        }
        self.log_offsets.insert(key, offset);
        Ok(())
    }

    /// Reads the run, its jobs, steps and new log lines, queueing what changed.
    async fn sync(&mut self) -> Result<(), ApiError> {
        let store = self.state.store().clone();
        let Some(run) = store.get_run(&self.run_id).await? else {
            self.finished = true;
            return Ok(());
        };
        self.push(Some("run".into()), names::RUN, &run_summary(&run));
        let jobs = load_jobs(&store, &self.run_id).await?;
        // A step or job that ended is announced after the log lines read below: the agent
        // stores a step's last lines before its final status, so a follower sees every line
        // of a step before the step's end.
        let mut ended: Vec<(String, &'static str, String)> = Vec::new();
        for job in &jobs {
            let job_ended = job.status.is_terminal();
            if !job_ended {
                self.push(Some(format!("job:{}", job.job_id)), names::JOB, job);
            }
            for step in &job.steps {
                let key = format!("step:{}:{}", job.job_id, step.index);
                // Ours: the step event names its job, so a follower needs no other state.
                let mut data = serde_json::to_value(step).unwrap_or_default();
                if let Some(map) = data.as_object_mut() {
                    map.insert("jobId".into(), job.job_id.clone().into());
                }
                if step.status.is_terminal() {
                    ended.push((key, names::STEP, data.to_string()));
                } else {
                    self.push(Some(key), names::STEP, &data);
                }
                self.log_keys.insert((job.job_id.clone(), step.index));
            }
            if job_ended && let Ok(json) = serde_json::to_string(job) {
                ended.push((format!("job:{}", job.job_id), names::JOB, json));
            }
        }
        let keys: Vec<(String, i64)> = self.log_keys.iter().cloned().collect();
        for (job_id, step_index) in keys {
            self.read_lines(&store, &job_id, step_index).await?;
        }
        for (key, name, json) in ended {
            if self.sent.get(&key) != Some(&json) {
                self.sent.insert(key, json.clone());
                self.queue
                    .push_back(Event::default().event(name).data(json));
            }
        }
        // Logs first seen after the initial read are new to this follower: send them whole.
        self.sent.insert("started".into(), String::new());
        if run.status.is_terminal() {
            self.push(
                None,
                names::END,
                &serde_json::json!({ "runId": run.run_id, "status": run.status }),
            );
            self.finished = true;
        }
        Ok(())
    }
}
