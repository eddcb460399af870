//! The in-memory registry of connected agents (`orchestrator.md` §9.3): labels, slots,
//! draining, which jobs each connection holds, and the channel to its connection task.
//!
//! A `std::sync::Mutex` guards the map: every critical section is a few map operations and
//! never spans an `.await`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use kici_engine::api::AgentInfo;
use kici_engine::labels::{self, AgentLabels, CompiledJobLabels};
use kici_engine::protocol::{CloseCode, OrchestratorMessage};
use kici_store::AgentProfile;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a connection task is asked to do by the rest of the server.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame(Box<OrchestratorMessage>),
    /// Close the socket with this code and reason, then end the connection.
    Close(CloseCode, String),
}

/// One registered connection.
#[derive(Debug)]
pub(crate) struct AgentEntry {
    /// Distinguishes this connection from an earlier or later one of the same agent id.
    pub connection_id: u64,
    pub agent_id: String,
    /// The token the connection authenticated with; `None` in no-auth mode.
    pub token_id: Option<String>,
    /// Effective labels (advertised ∪ the token's mandatory labels).
    pub labels: Vec<String>,
    /// Taints from the token.
    pub mandatory_labels: Vec<String>,
    pub max_concurrency: u32,
    pub platform: String,
    pub arch: String,
    pub version: Option<String>,
    pub hostname: Option<String>,
    /// Registered with an ephemeral (scaler) token: its jobs are not recovered (§13).
    pub scaler_managed: bool,
    /// The agent advertised capabilities (ours); agents without any get the reference's
    /// dispatch shape (short ref name, legacy `token`).
    pub has_capabilities: bool,
    pub connected_at: i64,
    pub last_heartbeat_at: Option<i64>,
    pub draining: bool,
    /// After a `busy` reject the agent gets no dispatch until this time (Unix ms), so a
    /// disagreement about slots does not turn into a dispatch loop.
    pub paused_until: i64,
    /// When this connection last got a dispatch, as a registry-wide sequence number (0:
    /// never): `runsOnPick: any` picks the least recently dispatched-to agent (§9.3).
    pub last_dispatch: u64,
    /// Jobs dispatched to this connection and not yet finished: the slot count and the
    /// ownership check of `protocol.md` §6.
    pub active: BTreeSet<String>,
    pub sender: mpsc::Sender<Outgoing>,
}

/// An agent with room for work, as the dispatcher sees it.
#[derive(Debug, Clone)]
pub(crate) struct FreeAgent {
    pub profile: AgentProfile,
    pub connection_id: u64,
}

/// The connection a registration replaced: its sender (to close it) and its jobs.
pub(crate) type Replaced = (mpsc::Sender<Outgoing>, BTreeSet<String>);

/// Why a registration was refused by the registry itself (gate 3 of §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdCollision;

/// Connected agents. Cheap to share inside `AppState`.
#[derive(Debug, Default)]
pub struct Registry {
    agents: Mutex<HashMap<String, AgentEntry>>,
    next_connection: AtomicU64,
    /// The sequence behind [`AgentEntry::last_dispatch`].
    dispatch_seq: AtomicU64,
    /// The server's task tracker and shutdown token, attached when the server starts.
    runtime: OnceLock<(TaskTracker, CancellationToken)>,
    /// A token that never fires, for states that were never attached to a server.
    detached: CancellationToken,
    /// Held by a dispatch pass, and by the ack sweep while it requeues and evicts, so a
    /// requeued job is never handed back to the agent that is being dropped for losing it.
    pub(crate) dispatch_lock: tokio::sync::Mutex<()>,
    /// Jobs sent a forced `job.cancel`: job id → (run id, Unix ms after which the job is
    /// cancelled without the agent's report, §13 step 3).
    forced_cancels: Mutex<HashMap<String, (String, i64)>>,
}

impl Registry {
    /// The REST shape of every connected agent, by agent id (`GET /api/v1/admin/agents`).
    pub fn agents(&self) -> Vec<AgentInfo> {
        let agents = self.lock();
        let mut out: Vec<AgentInfo> = agents
            .values()
            .map(|a| AgentInfo {
                agent_id: a.agent_id.clone(),
                labels: a.labels.clone(),
                mandatory_labels: a.mandatory_labels.clone(),
                connected: true,
                active_jobs: u32::try_from(a.active.len()).unwrap_or(u32::MAX),
                max_concurrency: a.max_concurrency,
                platform: a.platform.clone(),
                arch: a.arch.clone(),
                version: a.version.clone(),
                hostname: a.hostname.clone(),
                token_id: a.token_id.clone(),
                connected_at: u64::try_from(a.connected_at).ok(),
                last_heartbeat_at: a.last_heartbeat_at.and_then(|t| u64::try_from(t).ok()),
                draining: a.draining,
            })
            .collect();
        out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        out
    }

    /// How many agents are connected and registered.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// Whether an agent with this id is connected.
    pub fn is_connected(&self, agent_id: &str) -> bool {
        self.lock().contains_key(agent_id)
    }

    /// Remembers that `job_id` was sent a forced cancel; it ends at `deadline` at the latest.
    pub(crate) fn note_forced_cancel(&self, job_id: &str, run_id: &str, deadline: i64) {
        self.forced_cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job_id.to_string())
            .or_insert_with(|| (run_id.to_string(), deadline));
    }

    /// Forced cancels past their deadline at `now`, removed from the list: (job id, run id).
    pub(crate) fn take_overdue_forced_cancels(&self, now: i64) -> Vec<(String, String)> {
        let mut forced = self
            .forced_cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let overdue: Vec<String> = forced
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(job, _)| job.clone())
            .collect();
        overdue
            .into_iter()
            .filter_map(|job| forced.remove(&job).map(|(run, _)| (job, run)))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, AgentEntry>> {
        // A poisoned lock means a panic elsewhere mid-update of plain collections; the map
        // itself is still consistent enough to serve (and to close connections).
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn attach(&self, tracker: TaskTracker, shutdown: CancellationToken) {
        let _ = self.runtime.set((tracker, shutdown));
    }

    /// The token that stops connections, and a tracker token keeping the server's
    /// shutdown waiting for this connection.
    pub(crate) fn connection_guard(
        &self,
    ) -> (
        CancellationToken,
        Option<tokio_util::task::task_tracker::TaskTrackerToken>,
    ) {
        match self.runtime.get() {
            Some((tracker, shutdown)) => (shutdown.clone(), Some(tracker.token())),
            None => (self.detached.clone(), None),
        }
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a connection. Another live connection of the same agent id that
    /// authenticated with a different token refuses the registration (gate 3); one with
    /// the same token is replaced (a reconnect the old socket has not noticed yet) and its
    /// sender is returned so the caller can close it.
    pub(crate) fn register(&self, entry: AgentEntry) -> Result<Option<Replaced>, IdCollision> {
        let mut agents = self.lock();
        if let Some(existing) = agents.get(&entry.agent_id)
            && existing.token_id != entry.token_id
        {
            return Err(IdCollision);
        }
        let replaced = agents
            .insert(entry.agent_id.clone(), entry)
            .map(|old| (old.sender, old.active));
        Ok(replaced)
    }

    /// Removes the agent if `connection_id` is still its connection; returns the jobs it
    /// held. `None` when a newer connection took over (its jobs are not this one's to
    /// recover).
    pub(crate) fn remove(&self, agent_id: &str, connection_id: u64) -> Option<AgentEntry> {
        let mut agents = self.lock();
        match agents.get(agent_id) {
            Some(entry) if entry.connection_id == connection_id => agents.remove(agent_id),
            _ => None,
        }
    }

    /// Removes the agent whatever its connection (it is being dropped by the server).
    pub(crate) fn evict(&self, agent_id: &str) -> Option<AgentEntry> {
        self.lock().remove(agent_id)
    }

    /// Removes every agent that authenticated with `token_id` (its token was revoked,
    /// `orchestrator.md` §18.2); the caller closes them (4010) and moves their jobs.
    pub(crate) fn evict_token(&self, token_id: &str) -> Vec<AgentEntry> {
        let mut agents = self.lock();
        let ids: Vec<String> = agents
            .values()
            .filter(|a| a.token_id.as_deref() == Some(token_id))
            .map(|a| a.agent_id.clone())
            .collect();
        let mut out: Vec<AgentEntry> = ids.iter().filter_map(|id| agents.remove(id)).collect();
        out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        out
    }

    /// Free slots of the connection right now (0 when it is gone, draining or paused).
    pub(crate) fn free_slots(&self, agent_id: &str, connection_id: u64, now: i64) -> u32 {
        let agents = self.lock();
        match agents.get(agent_id) {
            Some(a) if a.connection_id == connection_id && !a.draining && a.paused_until <= now => {
                let used = u32::try_from(a.active.len()).unwrap_or(u32::MAX);
                a.max_concurrency.saturating_sub(used)
            }
            _ => 0,
        }
    }

    /// `runsOnPick: any` (§9.3, ours): among the agents with a free slot (not draining,
    /// not paused) that `job` may run on, the least recently dispatched-to one; ties (never
    /// dispatched to) go to the smallest agent id.
    pub(crate) fn least_recently_dispatched(
        &self,
        job: &CompiledJobLabels,
        now: i64,
    ) -> Option<(String, u64)> {
        let agents = self.lock();
        agents
            .values()
            .filter(|a| !a.draining && a.paused_until <= now)
            .filter(|a| u32::try_from(a.active.len()).unwrap_or(u32::MAX) < a.max_concurrency)
            .filter(|a| {
                labels::agent_matches(
                    job,
                    AgentLabels {
                        labels: &a.labels,
                        mandatory: &a.mandatory_labels,
                    },
                )
            })
            .min_by(|a, b| (a.last_dispatch, &a.agent_id).cmp(&(b.last_dispatch, &b.agent_id)))
            .map(|a| (a.agent_id.clone(), a.connection_id))
    }

    /// Whether any connected agent (draining or not, busy or not) could run `job` (§9.4:
    /// the queue-expiry message says so when none can).
    pub(crate) fn any_matches(&self, job: &CompiledJobLabels) -> bool {
        self.lock().values().any(|a| {
            labels::agent_matches(
                job,
                AgentLabels {
                    labels: &a.labels,
                    mandatory: &a.mandatory_labels,
                },
            )
        })
    }

    /// Records that the connection just got a dispatch (for `runsOnPick: any`).
    pub(crate) fn note_dispatch(&self, agent_id: &str, connection_id: u64) {
        let seq = self.dispatch_seq.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(entry) = self.lock().get_mut(agent_id)
            && entry.connection_id == connection_id
        {
            entry.last_dispatch = seq;
        }
    }

    /// Agents with a free slot that are neither draining nor paused, by agent id (the
    /// deterministic pick of §9.3: the smallest id first).
    pub(crate) fn free_agents(&self, now: i64) -> Vec<FreeAgent> {
        let agents = self.lock();
        let mut out: Vec<FreeAgent> = agents
            .values()
            .filter(|a| !a.draining && a.paused_until <= now)
            .filter_map(|a| {
                let used = u32::try_from(a.active.len()).unwrap_or(u32::MAX);
                let free = a.max_concurrency.saturating_sub(used);
                (free > 0).then(|| FreeAgent {
                    profile: AgentProfile {
                        agent_id: a.agent_id.clone(),
                        labels: a.labels.clone(),
                        mandatory_labels: a.mandatory_labels.clone(),
                    },
                    connection_id: a.connection_id,
                })
            })
            .collect();
        out.sort_by(|a, b| a.profile.agent_id.cmp(&b.profile.agent_id));
        out
    }

    /// Takes a slot of the connection for `job_id`. `false` when that connection is gone.
    pub(crate) fn add_active(&self, agent_id: &str, connection_id: u64, job_id: &str) -> bool {
        let mut agents = self.lock();
        match agents.get_mut(agent_id) {
            Some(entry) if entry.connection_id == connection_id => {
                entry.active.insert(job_id.to_string());
                true
            }
            _ => false,
        }
    }

    /// Frees the slot `job_id` holds, wherever it is; returns the agent that held it.
    pub(crate) fn release(&self, job_id: &str) -> Option<String> {
        let mut agents = self.lock();
        for entry in agents.values_mut() {
            if entry.active.remove(job_id) {
                return Some(entry.agent_id.clone());
            }
        }
        None
    }

    /// The agent holding `job_id`, if any.
    pub(crate) fn holder(&self, job_id: &str) -> Option<String> {
        let agents = self.lock();
        agents
            .values()
            .find(|a| a.active.contains(job_id))
            .map(|a| a.agent_id.clone())
    }

    /// Whether the connection holds `job_id` (the fast path of the ownership check).
    pub(crate) fn owns(&self, agent_id: &str, connection_id: u64, job_id: &str) -> bool {
        let agents = self.lock();
        agents
            .get(agent_id)
            .is_some_and(|a| a.connection_id == connection_id && a.active.contains(job_id))
    }

    pub(crate) fn has_capabilities(&self, agent_id: &str) -> bool {
        self.lock()
            .get(agent_id)
            .is_some_and(|a| a.has_capabilities)
    }

    pub(crate) fn heartbeat(&self, agent_id: &str, connection_id: u64, now: i64) {
        if let Some(entry) = self.lock().get_mut(agent_id)
            && entry.connection_id == connection_id
        {
            entry.last_heartbeat_at = Some(now);
        }
    }

    pub(crate) fn set_draining(&self, agent_id: &str, connection_id: u64, draining: bool) {
        if let Some(entry) = self.lock().get_mut(agent_id)
            && entry.connection_id == connection_id
        {
            entry.draining = draining;
        }
    }

    pub(crate) fn pause(&self, agent_id: &str, connection_id: u64, until: i64) {
        if let Some(entry) = self.lock().get_mut(agent_id)
            && entry.connection_id == connection_id
        {
            entry.paused_until = until;
        }
    }

    /// Lifts a `busy` pause (the agent reported spare capacity).
    pub(crate) fn unpause(&self, agent_id: &str, connection_id: u64) {
        self.pause(agent_id, connection_id, 0);
    }

    /// Queues a frame for the agent's connection. `false` when the agent is not connected
    /// or its outgoing queue is full (a consumer that slow is treated as gone by callers
    /// that need delivery, such as dispatch).
    pub(crate) fn send(&self, agent_id: &str, message: OrchestratorMessage) -> bool {
        let sender = self.lock().get(agent_id).map(|a| a.sender.clone());
        match sender {
            Some(sender) => sender.try_send(Outgoing::Frame(Box::new(message))).is_ok(),
            None => false,
        }
    }
}
