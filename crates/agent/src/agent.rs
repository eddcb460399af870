//! The agent's event loop: one task owns the connection, the outbox and the table of running
//! jobs, and wakes for exactly the things listed in its `select!` — a control request, an
//! update from a job thread, a frame from the orchestrator, a finished (re)connect attempt,
//! or one of its timers (heartbeat, job heartbeat, log batch deadline, shutdown phase).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use kici_engine::protocol::limits::{ORCHESTRATOR_FRAME_LIMIT_BYTES, reconnect_delay_ms};
use kici_engine::protocol::reliability::CAPABILITY_SEQ_ACK;
use kici_engine::protocol::{
    AgentMessage, AgentRegister, AgentStatus, AuthRequest, CloseCode, ConfigAck, Heartbeat, JobAck,
    JobCancel, JobDispatch, JobHeartbeat, JobRef, JobReject, JobStatusData, OrchestratorMessage,
    PROTOCOL_VERSION, RegisterAck, RejectReason, ReportedJobState, Secret,
    decode_orchestrator_frame,
};
use kici_executor::Cancel;

use crate::config::{self, AgentConfig};
use crate::job::{self, FrameClock, JobSettings, JobTracker, JobUpdate};
use crate::outbox::Outbox;
use crate::{AgentError, Control, Exit};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type ConnectFuture = Pin<Box<dyn Future<Output = Result<(Ws, RegisterAck), ConnectError>> + Send>>;

/// A connect + handshake attempt may take this long before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// After the last job ended on shutdown: how long to wait for `frames.ack` of the outbox.
const FINAL_ACK_WAIT: Duration = Duration::from_secs(5);
/// After force-killing on shutdown: how long to wait for the job threads to report.
const FORCE_WAIT: Duration = Duration::from_secs(10);
/// Extra time a graceful `job.cancel` gets beyond the grace period before it is forced.
const CANCEL_SLACK: Duration = Duration::from_secs(10);
/// Bound of the cancel hooks when the job has any (`protocol.md` §8).
const CANCEL_HOOKS_BOUND: Duration = Duration::from_secs(300);

/// Why a connect attempt failed.
#[derive(Debug)]
enum ConnectError {
    /// `auth.failure` or close 4010: never reconnect.
    Permanent(String),
    Transient(String),
}

/// The registered connection.
struct Conn {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    last_inbound: Instant,
}

/// Message ids and timestamps.
struct Clock {
    prefix: String,
    counter: u64,
}

impl FrameClock for Clock {
    fn message_id(&mut self) -> String {
        self.counter += 1;
        format!("{}-{}", self.prefix, self.counter)
    }

    fn now_ms(&self) -> u64 {
        unix_ms()
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// One job between dispatch and its terminal status.
struct ActiveJob {
    cancel: watch::Sender<Cancel>,
    tracker: JobTracker,
    running_sent: bool,
    cancelling: bool,
    forced: bool,
    /// A graceful `job.cancel` becomes forced at this point (`agent.md` §10 outer bound).
    force_at: Option<Instant>,
    /// Grace period plus cancel hooks plus slack, for that bound.
    cancel_bound: Duration,
}

/// Progress of a `Control::Terminate`.
struct Terminating {
    started: Instant,
    cancel_sent: bool,
    /// When running jobs were force-killed (the cancel bound passed, or a second terminate).
    forced_at: Option<Instant>,
}

struct Agent {
    config: AgentConfig,
    instance_id: String,
    clock: Clock,
    outbox: Outbox,
    /// Non-reliable frames for the current connection (dropped when there is none).
    live: Vec<AgentMessage>,
    jobs: BTreeMap<String, ActiveJob>,
    /// Finished jobs whose terminal `job.status` (the `seq`) is not acknowledged yet.
    completed: Vec<(JobRef, u64)>,
    draining: bool,
    terminating: Option<Terminating>,
    force_killed: usize,
    /// Job threads that reported their result and are still tearing down (process sweep,
    /// job directory); the agent exits only when they are done.
    cleaning: usize,
    seq_ack: bool,
    job_heartbeat_interval: Duration,
    auth_rejected: Option<String>,
    updates: mpsc::UnboundedSender<(String, JobUpdate)>,
    settings: JobSettings,
    started: Instant,
}

/// Runs the agent until a [`Control`] request has been carried out, or the orchestrator
/// refuses it for good.
pub async fn run(
    config: AgentConfig,
    mut control: mpsc::Receiver<Control>,
) -> Result<Exit, AgentError> {
    if let Err(e) = config.orchestrator_url.as_str().into_client_request() {
        return Err(AgentError::InvalidUrl {
            url: config.orchestrator_url.clone(),
            reason: e.to_string(),
        });
    }
    std::fs::create_dir_all(&config.work_dir).map_err(|source| AgentError::WorkDir {
        path: config.work_dir.clone(),
        source,
    })?;
    // Leftovers of a crashed agent (`agent.md` §2, §17), on a thread of its own: a large
    // stale checkout must not hold up the connection.
    let sweep_dir = config.work_dir.clone();
    if let Err(error) = std::thread::Builder::new()
        .name("kici-sweep".into())
        .spawn(move || {
            let removed = job::sweep_stale_job_dirs(&sweep_dir, job::STALE_JOB_DIR_AGE);
            if removed > 0 {
                tracing::info!(removed, "removed stale job directories");
            }
        })
    {
        tracing::warn!(%error, "cannot start the stale job directory sweep");
    }
    let (updates_tx, mut updates) = mpsc::unbounded_channel();
    let mut agent = Agent::new(config, updates_tx);
    tracing::info!(agent_id = %agent.config.agent_id, instance_id = %agent.instance_id, "agent starting");

    let mut conn: Option<Conn> = None;
    let mut connecting: Option<ConnectFuture> = None;
    let mut attempt: u32 = 0;
    let mut reconnect_at: Option<Instant> = Some(Instant::now());
    let mut control_open = true;
    let mut closing_deadline: Option<Instant> = None;
    let mut heartbeat = tokio::time::interval(agent.config.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut job_heartbeat_every = agent.job_heartbeat_interval;
    let mut job_heartbeat = tokio::time::interval(job_heartbeat_every);
    job_heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let now = Instant::now();
        if let Some(reason) = &agent.auth_rejected
            && agent.jobs.is_empty()
        {
            let reason = reason.clone();
            close(conn.take()).await;
            return Err(AgentError::AuthRejected { reason });
        }
        if agent.stopping() && agent.jobs.is_empty() {
            let deadline = *closing_deadline.get_or_insert(now + FINAL_ACK_WAIT);
            if (agent.outbox.is_empty() && agent.cleaning == 0) || now >= deadline {
                if !agent.outbox.is_empty() {
                    tracing::warn!(
                        frames = agent.outbox.len(),
                        "exiting with unacknowledged frames"
                    );
                }
                close(conn.take()).await;
                return Ok(match agent.terminating {
                    Some(_) => Exit::Terminated {
                        force_killed: agent.force_killed,
                    },
                    None => Exit::Drained,
                });
            }
        }
        if conn.is_none()
            && connecting.is_none()
            && reconnect_at.is_none()
            && agent.auth_rejected.is_none()
        {
            let random = {
                let mut b = [0u8; 8];
                crate::fill_random(&mut b);
                (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
            };
            let max =
                u64::try_from(agent.config.max_reconnect_delay.as_millis()).unwrap_or(u64::MAX);
            let delay = Duration::from_millis(reconnect_delay_ms(attempt, random, max));
            tracing::info!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                "reconnecting after a delay"
            );
            attempt = attempt.saturating_add(1);
            reconnect_at = Some(now + delay);
        }
        if agent.job_heartbeat_interval != job_heartbeat_every {
            job_heartbeat_every = agent.job_heartbeat_interval;
            job_heartbeat = tokio::time::interval(job_heartbeat_every);
            job_heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let flush_at = agent.next_flush();
        let shutdown_at = agent.next_shutdown_step(closing_deadline);
        let may_connect = conn.is_none() && connecting.is_none() && agent.auth_rejected.is_none();

        tokio::select! {
            request = control.recv(), if control_open => match request {
                Some(request) => agent.on_control(request),
                None => {
                    // The binary dropped its sender: nobody can ask for a clean stop any
                    // more, so stop now the way a terminate would.
                    control_open = false;
                    agent.on_control(Control::Terminate);
                }
            },
            Some((job_id, update)) = updates.recv() => agent.on_update(&job_id, update),
            result = poll_connect(&mut connecting) => {
                connecting = None;
                match result {
                    Ok((ws, ack)) => {
                        attempt = 0;
                        let (sink, stream) = ws.split();
                        conn = Some(Conn { sink, stream, last_inbound: Instant::now() });
                        agent.on_registered(&ack);
                    }
                    Err(ConnectError::Permanent(reason)) => {
                        tracing::error!(%reason, "the orchestrator refused the agent; not reconnecting");
                        agent.auth_rejected = Some(reason);
                    }
                    Err(ConnectError::Transient(error)) => {
                        tracing::warn!(%error, "connecting to the orchestrator failed");
                    }
                }
            }
            _ = sleep_until(reconnect_at), if may_connect => {
                reconnect_at = None;
                let register = agent.register_frame();
                connecting = Some(Box::pin(connect(
                    agent.config.orchestrator_url.clone(),
                    agent.config.token.clone(),
                    register,
                )));
            }
            frame = next_frame(&mut conn) => {
                match frame {
                    Inbound::Message(text) => {
                        if let Some(c) = conn.as_mut() {
                            c.last_inbound = Instant::now();
                        }
                        match decode_orchestrator_frame(&text) {
                            Ok(message) => agent.on_message(message),
                            Err(error) => tracing::warn!(%error, "ignoring an orchestrator frame"),
                        }
                    }
                    Inbound::Other => {
                        if let Some(c) = conn.as_mut() {
                            c.last_inbound = Instant::now();
                        }
                    }
                    Inbound::Closed { code, reason } => {
                        tracing::warn!(code, %reason, "connection closed");
                        conn = None;
                        if code == Some(CloseCode::AgentAuthFailed.code()) {
                            agent.auth_rejected = Some(if reason.is_empty() { "agent auth failed".into() } else { reason });
                        }
                    }
                }
            }
            _ = heartbeat.tick() => {
                if let Some(c) = conn.as_mut() {
                    if c.last_inbound.elapsed() > agent.config.silence_timeout {
                        tracing::warn!("nothing received from the orchestrator for too long; reconnecting");
                        conn = None;
                    } else {
                        agent.live.push(AgentMessage::Heartbeat(Heartbeat { timestamp: unix_ms() }));
                        if c.sink.feed(Message::Ping(Bytes::new())).await.is_err() {
                            conn = None;
                        }
                    }
                }
            }
            _ = job_heartbeat.tick() => agent.job_heartbeats(),
            _ = sleep_until(flush_at) => agent.flush_due(),
            _ = sleep_until(shutdown_at) => agent.on_shutdown_step(),
        }

        if let Some(c) = conn.as_mut() {
            if let Err(error) = agent.write(c).await {
                tracing::warn!(%error, "writing to the orchestrator failed");
                conn = None;
            }
        } else {
            agent.live.clear();
            agent.outbox.connection_lost();
        }
    }
}

impl Agent {
    fn new(config: AgentConfig, updates: mpsc::UnboundedSender<(String, JobUpdate)>) -> Self {
        let mut id = [0u8; 16];
        crate::fill_random(&mut id);
        // UUID v4 layout, so the orchestrator can treat it like any other id.
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let instance_id = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        let spill = config
            .work_dir
            .join(format!("kici-outbox-{}.spill", &hex[0..8]));
        let settings = JobSettings {
            work_dir: config.work_dir.clone(),
            default_step_timeout: config.default_step_timeout,
            memory_limit_bytes: config.memory_limit_mb.saturating_mul(1024 * 1024),
        };
        Agent {
            outbox: Outbox::new(config.outbox, spill),
            clock: Clock {
                prefix: hex[0..12].to_string(),
                counter: 0,
            },
            instance_id,
            live: Vec::new(),
            jobs: BTreeMap::new(),
            completed: Vec::new(),
            draining: false,
            terminating: None,
            force_killed: 0,
            cleaning: 0,
            seq_ack: false,
            job_heartbeat_interval: config.job_heartbeat_interval,
            auth_rejected: None,
            updates,
            settings,
            started: Instant::now(),
            config,
        }
    }

    fn stopping(&self) -> bool {
        self.draining || self.terminating.is_some()
    }

    fn register_frame(&self) -> AgentRegister {
        let refs = |pairs: Vec<JobRef>| (!pairs.is_empty()).then_some(pairs);
        AgentRegister {
            message_id: format!("register-{}-{}", self.config.agent_id, unix_ms()),
            agent_id: self.config.agent_id.clone(),
            labels: self.config.effective_labels(),
            platform: Some(config::platform().to_string()),
            arch: Some(config::arch().to_string()),
            version: Some(self.config.version.clone()),
            max_concurrency: Some(self.config.max_concurrent_jobs.max(1)),
            in_flight_jobs: refs(
                self.jobs
                    .values()
                    .map(|j| JobRef {
                        job_id: j.tracker.job_id.clone(),
                        run_id: j.tracker.run_id.clone(),
                    })
                    .collect(),
            ),
            completed_jobs: refs(self.completed.iter().map(|(r, _)| r.clone()).collect()),
            instance_id: Some(self.instance_id.clone()),
            capabilities: Some(vec![CAPABILITY_SEQ_ACK.to_string()]),
            hostname: Some(self.config.hostname.clone()),
            os_release: None,
            os_version: None,
            cpu_count: std::thread::available_parallelism()
                .ok()
                .and_then(|n| u32::try_from(n.get()).ok()),
            total_memory_mb: config::total_memory_mb(),
            running_as_user: None,
            running_as_uid: config::running_as_uid(),
            node_version: None,
            properties: None,
        }
    }

    fn status_frame(&mut self) -> AgentMessage {
        AgentMessage::AgentStatus(AgentStatus {
            message_id: self.clock.message_id(),
            agent_id: self.config.agent_id.clone(),
            active_jobs: u32::try_from(self.jobs.len()).unwrap_or(u32::MAX),
            memory_used_mb: None,
            memory_available_mb: None,
            uptime_seconds: Some(self.started.elapsed().as_secs()),
            draining: self.stopping().then_some(true),
        })
    }

    fn on_registered(&mut self, ack: &RegisterAck) {
        self.seq_ack = ack.has_capability(CAPABILITY_SEQ_ACK);
        let acked = if self.seq_ack {
            ack.acked_seq.unwrap_or(0)
        } else {
            // Without acknowledgements nothing can be replayed safely; carry on after what
            // the last connection was given, like the reference agent.
            self.outbox.sent_up_to()
        };
        self.outbox.reset_for_connection(acked);
        self.release_completed();
        if let Some(ms) = ack.job_heartbeat_interval_ms.filter(|ms| *ms > 0) {
            self.job_heartbeat_interval = Duration::from_millis(ms);
        }
        tracing::info!(
            agent_id = %ack.agent_id,
            seq_ack = self.seq_ack,
            acked,
            replay = self.outbox.len(),
            "registered"
        );
        self.live.push(AgentMessage::ConfigAck(ConfigAck {
            message_id: format!("config-ack-{}-{}", self.config.agent_id, unix_ms()),
            agent_id: self.config.agent_id.clone(),
        }));
        if self.stopping() {
            let status = self.status_frame();
            self.live.push(status);
        }
    }

    fn release_completed(&mut self) {
        let outbox = &self.outbox;
        self.completed.retain(|(_, seq)| outbox.is_pending(*seq));
    }

    fn on_message(&mut self, message: OrchestratorMessage) {
        match message {
            OrchestratorMessage::FramesAck(ack) => {
                self.outbox.ack(ack.up_to);
                self.release_completed();
            }
            OrchestratorMessage::JobDispatch(dispatch) => self.on_dispatch(dispatch),
            OrchestratorMessage::JobCancel(cancel) => self.on_cancel(&cancel),
            OrchestratorMessage::AuthFailure(failure) => {
                self.auth_rejected = Some(failure.reason);
            }
            OrchestratorMessage::Error(error) => {
                tracing::warn!(message = %error.message, "the orchestrator reported an error");
            }
            other => {
                tracing::debug!(
                    message_type = other.message_type(),
                    "ignoring an orchestrator frame"
                );
            }
        }
    }

    fn on_dispatch(&mut self, dispatch: Box<JobDispatch>) {
        let now = self.clock.now_ms();
        let reject = if self.stopping() {
            Some(RejectReason::Draining)
        } else if self.jobs.len() >= self.config.max_concurrent_jobs.max(1) as usize {
            Some(RejectReason::Busy)
        } else {
            None
        };
        if let Some(reason) = reject {
            tracing::info!(job_id = %dispatch.job_id, ?reason, "rejecting a dispatch");
            let frame = AgentMessage::JobReject(JobReject {
                message_id: self.clock.message_id(),
                run_id: dispatch.run_id.clone(),
                job_id: dispatch.job_id.clone(),
                reason,
                timestamp: now,
                seq: None,
            });
            self.outbox.push(frame);
            let status = self.status_frame();
            self.live.push(status);
            return;
        }
        if self.jobs.contains_key(&dispatch.job_id) {
            tracing::warn!(job_id = %dispatch.job_id, "ignoring a second dispatch of a running job");
            return;
        }
        tracing::info!(job_id = %dispatch.job_id, run_id = %dispatch.run_id, job = %dispatch.job_config.name, "job accepted");
        self.outbox.push(AgentMessage::JobAck(JobAck {
            message_id: self.clock.message_id(),
            run_id: dispatch.run_id.clone(),
            job_id: dispatch.job_id.clone(),
            timestamp: now,
            seq: None,
        }));
        let tracker = JobTracker::new(&dispatch);
        let config = &dispatch.job_config;
        let resolves_later = config.checkout_or_default()
            && !dispatch.repo_url.is_empty()
            && (dispatch.sha.is_empty() || dispatch.sha == "HEAD");
        let hooks = if config.has_on_cancel || config.has_cleanup {
            CANCEL_HOOKS_BOUND
        } else {
            Duration::ZERO
        };
        let cancel_bound = Duration::from_secs(config.grace_period_secs()) + hooks + CANCEL_SLACK;
        let (cancel_tx, cancel_rx) = watch::channel(Cancel::None);
        let mut active = ActiveJob {
            cancel: cancel_tx,
            tracker,
            running_sent: false,
            cancelling: false,
            forced: false,
            force_at: None,
            cancel_bound,
        };
        if !resolves_later {
            let frame = active
                .tracker
                .job_status(&mut self.clock, ReportedJobState::Running, None);
            self.outbox.push(frame);
            active.running_sent = true;
        }
        let job_id = dispatch.job_id.clone();
        if let Err(error) = job::spawn(
            dispatch,
            self.settings.clone(),
            cancel_rx,
            self.updates.clone(),
        ) {
            tracing::error!(%error, %job_id, "cannot start the job thread");
            let mut result =
                kici_executor::JobResult::not_run(&job_id, kici_executor::Status::Failed, None);
            result.error = Some(format!("cannot start the job: {error}"));
            self.jobs.insert(job_id.clone(), active);
            self.on_update(
                &job_id,
                JobUpdate::Finished(Box::new(job::JobOutcome { result })),
            );
            return;
        }
        self.cleaning += 1;
        self.jobs.insert(job_id, active);
    }

    fn on_cancel(&mut self, cancel: &JobCancel) {
        let Some(job) = self.jobs.get_mut(&cancel.job_id) else {
            tracing::debug!(job_id = %cancel.job_id, "ignoring a cancel of an unknown job");
            return;
        };
        let force = cancel.force.unwrap_or(false);
        tracing::info!(job_id = %cancel.job_id, force, reason = %cancel.reason, "cancelling a job");
        if force {
            Self::force(job, &mut self.outbox, &mut self.clock);
        } else if !job.cancelling {
            Self::cancel_gracefully(job, &mut self.outbox, &mut self.clock);
        }
    }

    fn mark_cancelling(job: &mut ActiveJob, outbox: &mut Outbox, clock: &mut Clock) {
        if job.cancelling {
            return;
        }
        job.cancelling = true;
        if !job.running_sent {
            outbox.push(
                job.tracker
                    .job_status(clock, ReportedJobState::Running, None),
            );
            job.running_sent = true;
        }
        outbox.push(
            job.tracker
                .job_status(clock, ReportedJobState::Cancelling, None),
        );
    }

    fn cancel_gracefully(job: &mut ActiveJob, outbox: &mut Outbox, clock: &mut Clock) {
        Self::mark_cancelling(job, outbox, clock);
        job.force_at = Some(Instant::now() + job.cancel_bound);
        job.cancel.send_replace(Cancel::Graceful);
    }

    /// Returns whether this call forced the job (it was not forced before).
    fn force(job: &mut ActiveJob, outbox: &mut Outbox, clock: &mut Clock) -> bool {
        Self::mark_cancelling(job, outbox, clock);
        job.force_at = None;
        job.cancel.send_replace(Cancel::Force);
        !std::mem::replace(&mut job.forced, true)
    }

    fn on_update(&mut self, job_id: &str, update: JobUpdate) {
        if let JobUpdate::CleanedUp = update {
            self.cleaning = self.cleaning.saturating_sub(1);
            return;
        }
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        let mut frames = Vec::new();
        match update {
            JobUpdate::Resolved { sha } => {
                if !job.running_sent {
                    frames.push(job.tracker.job_status(
                        &mut self.clock,
                        ReportedJobState::Running,
                        Some(JobStatusData {
                            resolved_sha: Some(sha),
                            ..JobStatusData::default()
                        }),
                    ));
                    job.running_sent = true;
                }
            }
            JobUpdate::Event(event) => job.tracker.on_event(&mut self.clock, event, &mut frames),
            // Handled above: it arrives after the job left `jobs`.
            JobUpdate::CleanedUp => {}
            JobUpdate::Finished(outcome) => {
                if !job.running_sent {
                    frames.push(job.tracker.job_status(
                        &mut self.clock,
                        ReportedJobState::Running,
                        None,
                    ));
                }
                job.tracker
                    .finish(&mut self.clock, &outcome.result, &mut frames);
                let job_ref = JobRef {
                    job_id: job.tracker.job_id.clone(),
                    run_id: job.tracker.run_id.clone(),
                };
                tracing::info!(job_id = %job_ref.job_id, status = outcome.result.status.as_str(), "job finished");
                self.jobs.remove(job_id);
                let mut last = 0;
                for frame in frames {
                    last = self.outbox.push(frame);
                }
                self.completed.push((job_ref, last));
                let status = self.status_frame();
                self.live.push(status);
                return;
            }
        }
        for frame in frames {
            self.outbox.push(frame);
        }
    }

    fn next_flush(&self) -> Option<Instant> {
        let due = self
            .jobs
            .values()
            .filter_map(|j| j.tracker.next_deadline())
            .min()?;
        let wait = due.saturating_sub(unix_ms());
        Some(Instant::now() + Duration::from_millis(wait))
    }

    fn flush_due(&mut self) {
        let mut frames = Vec::new();
        for job in self.jobs.values_mut() {
            job.tracker.flush_due(&mut self.clock, &mut frames);
        }
        for frame in frames {
            self.outbox.push(frame);
        }
    }

    fn job_heartbeats(&mut self) {
        let now = unix_ms();
        for job in self.jobs.values() {
            self.live.push(AgentMessage::JobHeartbeat(JobHeartbeat {
                run_id: job.tracker.run_id.clone(),
                job_id: job.tracker.job_id.clone(),
                timestamp: now,
            }));
        }
    }

    fn on_control(&mut self, request: Control) {
        match request {
            Control::Drain => {
                if !self.draining {
                    tracing::info!(active_jobs = self.jobs.len(), "draining");
                    self.draining = true;
                    let status = self.status_frame();
                    self.live.push(status);
                }
            }
            Control::Terminate => {
                if let Some(t) = self.terminating.as_mut() {
                    // A second terminate skips straight to force-kill.
                    tracing::warn!(
                        active_jobs = self.jobs.len(),
                        "second terminate: force-killing running jobs"
                    );
                    t.cancel_sent = true;
                    if t.forced_at.is_none() {
                        t.forced_at = Some(Instant::now());
                    }
                    self.force_all();
                } else {
                    tracing::info!(active_jobs = self.jobs.len(), "terminating");
                    self.terminating = Some(Terminating {
                        started: Instant::now(),
                        cancel_sent: false,
                        forced_at: None,
                    });
                    let status = self.status_frame();
                    self.live.push(status);
                }
            }
        }
    }

    fn force_all(&mut self) {
        for job in self.jobs.values_mut() {
            if Self::force(job, &mut self.outbox, &mut self.clock) {
                self.force_killed += 1;
            }
        }
    }

    /// The next point at which a shutdown phase or a cancel bound moves on.
    fn next_shutdown_step(&self, closing: Option<Instant>) -> Option<Instant> {
        let mut next: Option<Instant> = closing;
        let mut consider = |at: Instant| {
            next = Some(next.map_or(at, |n| n.min(at)));
        };
        for job in self.jobs.values() {
            if let Some(at) = job.force_at {
                consider(at);
            }
        }
        if let Some(t) = &self.terminating {
            match t.forced_at {
                None if !t.cancel_sent => consider(t.started + self.config.job_stop_grace),
                None => consider(t.started + self.config.shutdown_cancel_timeout),
                Some(at) if !self.jobs.is_empty() => consider(at + FORCE_WAIT),
                Some(_) => {}
            }
        }
        next
    }

    fn on_shutdown_step(&mut self) {
        let now = Instant::now();
        for job in self.jobs.values_mut() {
            if job.force_at.is_some_and(|at| at <= now) {
                tracing::warn!(job_id = %job.tracker.job_id, "graceful cancel took too long; forcing");
                if Self::force(job, &mut self.outbox, &mut self.clock) && self.terminating.is_some()
                {
                    self.force_killed += 1;
                }
            }
        }
        let Some(t) = self.terminating.as_mut() else {
            return;
        };
        if !t.cancel_sent && now >= t.started + self.config.job_stop_grace {
            t.cancel_sent = true;
            tracing::info!(
                active_jobs = self.jobs.len(),
                "shutdown grace over: cancelling running jobs"
            );
            for job in self.jobs.values_mut() {
                if !job.cancelling {
                    Self::cancel_gracefully(job, &mut self.outbox, &mut self.clock);
                }
            }
        }
        let Some(t) = self.terminating.as_mut() else {
            return;
        };
        if t.forced_at.is_none() && now >= t.started + self.config.shutdown_cancel_timeout {
            t.forced_at = Some(now);
            self.force_all();
        }
        let Some(t) = self.terminating.as_ref() else {
            return;
        };
        if t.forced_at.is_some_and(|at| now >= at + FORCE_WAIT) && !self.jobs.is_empty() {
            // The job threads did not come back even after SIGKILL; leave them to the
            // process exit rather than hang the shutdown.
            tracing::error!(
                jobs = self.jobs.len(),
                "jobs did not stop after being killed; abandoning them"
            );
            self.jobs.clear();
        }
    }

    /// Writes the unsent outbox frames, then the live frames, and flushes.
    async fn write(
        &mut self,
        conn: &mut Conn,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let mut wrote = false;
        while let Some((seq, text)) = self.outbox.next_unsent() {
            conn.sink.feed(Message::text(text)).await?;
            self.outbox.mark_sent(seq);
            if !self.seq_ack {
                self.outbox.ack(seq);
            }
            wrote = true;
        }
        if !self.seq_ack && wrote {
            self.release_completed();
        }
        for frame in self.live.drain(..) {
            conn.sink.feed(Message::text(frame.encode())).await?;
            wrote = true;
        }
        if wrote {
            conn.sink.flush().await?;
        }
        Ok(())
    }
}

/// Sends close 1000 (`"Agent disconnect"`) on an intentional stop.
async fn close(conn: Option<Conn>) {
    let Some(mut conn) = conn else {
        return;
    };
    let frame = CloseFrame {
        code: CloseCode::Normal.code().into(),
        reason: "Agent disconnect".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = conn.sink.send(Message::Close(Some(frame))).await;
        // Wait for the peer's close so the frame is not cut off by the drop.
        while let Some(Ok(message)) = conn.stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn poll_connect(
    connecting: &mut Option<ConnectFuture>,
) -> Result<(Ws, RegisterAck), ConnectError> {
    match connecting {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// What arrived on the connection.
enum Inbound {
    Message(String),
    /// Ping, pong, binary: proof of life, nothing to act on.
    Other,
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

async fn next_frame(conn: &mut Option<Conn>) -> Inbound {
    let Some(c) = conn.as_mut() else {
        return std::future::pending().await;
    };
    match c.stream.next().await {
        Some(Ok(Message::Text(text))) => Inbound::Message(text.as_str().to_string()),
        Some(Ok(Message::Close(frame))) => Inbound::Closed {
            code: frame.as_ref().map(|f| u16::from(f.code)),
            reason: frame
                .map(|f| f.reason.as_str().to_string())
                .unwrap_or_default(),
        },
        Some(Ok(_)) => Inbound::Other,
        Some(Err(error)) => Inbound::Closed {
            code: None,
            reason: error.to_string(),
        },
        None => Inbound::Closed {
            code: None,
            reason: "connection ended".into(),
        },
    }
}

/// Dials, authenticates (token mode) and registers; returns the registered socket.
async fn connect(
    url: String,
    token: Option<Secret>,
    register: AgentRegister,
) -> Result<(Ws, RegisterAck), ConnectError> {
    let attempt = async move {
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(16 * 1024)
            .max_message_size(Some(ORCHESTRATOR_FRAME_LIMIT_BYTES))
            .max_frame_size(Some(ORCHESTRATOR_FRAME_LIMIT_BYTES));
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                .await
                .map_err(|e| ConnectError::Transient(e.to_string()))?;
        if let Some(token) = token {
            let auth = AgentMessage::AuthRequest(AuthRequest {
                token,
                protocol_version: PROTOCOL_VERSION,
            });
            send(&mut ws, &auth).await?;
            loop {
                match receive(&mut ws).await? {
                    OrchestratorMessage::AuthSuccess(_) => break,
                    OrchestratorMessage::AuthFailure(f) => {
                        return Err(ConnectError::Permanent(f.reason));
                    }
                    other => tracing::debug!(
                        message_type = other.message_type(),
                        "ignoring a frame before auth.success"
                    ),
                }
            }
        }
        send(&mut ws, &AgentMessage::AgentRegister(Box::new(register))).await?;
        loop {
            match receive(&mut ws).await? {
                OrchestratorMessage::RegisterAck(ack) => return Ok((ws, ack)),
                OrchestratorMessage::AuthFailure(f) => {
                    return Err(ConnectError::Permanent(f.reason));
                }
                OrchestratorMessage::Error(e) => {
                    return Err(ConnectError::Transient(format!(
                        "registration refused: {}",
                        e.message
                    )));
                }
                other => tracing::debug!(
                    message_type = other.message_type(),
                    "ignoring a frame before register.ack"
                ),
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Transient("handshake timed out".into())),
    }
}

async fn send(ws: &mut Ws, message: &AgentMessage) -> Result<(), ConnectError> {
    ws.send(Message::text(message.encode()))
        .await
        .map_err(|e| ConnectError::Transient(e.to_string()))
}

async fn receive(ws: &mut Ws) -> Result<OrchestratorMessage, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => match decode_orchestrator_frame(text.as_str()) {
                Ok(message) => return Ok(message),
                Err(error) => tracing::warn!(%error, "ignoring an orchestrator frame"),
            },
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let reason = frame
                    .map(|f| f.reason.as_str().to_string())
                    .unwrap_or_default();
                return Err(if code == Some(CloseCode::AgentAuthFailed.code()) {
                    ConnectError::Permanent(reason)
                } else {
                    ConnectError::Transient(format!(
                        "closed during the handshake ({code:?}): {reason}"
                    ))
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ConnectError::Transient(e.to_string())),
            None => {
                return Err(ConnectError::Transient(
                    "connection ended during the handshake".into(),
                ));
            }
        }
    }
}
