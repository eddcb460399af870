//! Vocabulary shared by both directions: status enums of `protocol.md` §7, job references and
//! the secret wrapper.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A credential or secret value on the wire. `Debug` prints a mask so that logging a whole
/// frame (a `job.dispatch`, an `auth.request`) can never leak it; only [`Secret::expose`]
/// gives the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `{jobId, runId}` in `agent.register.inFlightJobs` / `completedJobs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    pub job_id: String,
    pub run_id: String,
}

/// `JobStatus` on the wire (§7.1): `job.status.state` of other tiers and
/// `job.dispatch.upstreamJobStatuses`. `held` and `waiting` exist only inside the
/// orchestrator and are deliberately absent, so they cannot leak onto this link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Queued,
    Running,
    Recovering,
    Cancelling,
    Success,
    Failed,
    Cancelled,
    Skipped,
    TimedOutStale,
    DriftDropped,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Recovering => "recovering",
            JobStatus::Cancelling => "cancelling",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Skipped => "skipped",
            JobStatus::TimedOutStale => "timed_out_stale",
            JobStatus::DriftDropped => "drift_dropped",
        }
    }
}

/// The states an agent may report in `job.status` (§7.1): the wire enum narrowed to what an
/// agent can know, so a frame claiming `queued` or `timed_out_stale` is a schema error
/// instead of a state the orchestrator has to second-guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedJobState {
    Running,
    Cancelling,
    Success,
    Failed,
    Cancelled,
    Skipped,
}

impl ReportedJobState {
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            ReportedJobState::Running | ReportedJobState::Cancelling
        )
    }

    pub fn as_job_status(self) -> JobStatus {
        match self {
            ReportedJobState::Running => JobStatus::Running,
            ReportedJobState::Cancelling => JobStatus::Cancelling,
            ReportedJobState::Success => JobStatus::Success,
            ReportedJobState::Failed => JobStatus::Failed,
            ReportedJobState::Cancelled => JobStatus::Cancelled,
            ReportedJobState::Skipped => JobStatus::Skipped,
        }
    }
}

/// `StepStatus` (§7.1). `pending` is a parallel child waiting for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Running,
    Success,
    Failed,
    Skipped,
    Pending,
    Cancelled,
}

impl StepState {
    pub fn is_terminal(self) -> bool {
        !matches!(self, StepState::Running | StepState::Pending)
    }
}

/// `StepConcurrencyKind` (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepConcurrencyKind {
    Sequential,
    ParallelChild,
    ParallelGroup,
}

/// `step_type` (§7.1). `init:<n>` carries its number, so the type is a string on the wire
/// with a closed set of shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepType {
    Step,
    HookOnCancel,
    HookCleanup,
    HookOnSuccess,
    HookOnFailure,
    HookBeforeStep,
    HookAfterStep,
    Init(u32),
    /// [later]
    CacheRestore,
    /// [later]
    CacheSave,
}

impl StepType {
    const FIXED: [(StepType, &'static str); 9] = [
        (StepType::Step, "step"),
        (StepType::HookOnCancel, "hook:onCancel"),
        (StepType::HookCleanup, "hook:cleanup"),
        (StepType::HookOnSuccess, "hook:onSuccess"),
        (StepType::HookOnFailure, "hook:onFailure"),
        (StepType::HookBeforeStep, "hook:beforeStep"),
        (StepType::HookAfterStep, "hook:afterStep"),
        (StepType::CacheRestore, "cache:restore"),
        (StepType::CacheSave, "cache:save"),
    ];

    pub fn parse(s: &str) -> Option<StepType> {
        if let Some(n) = s.strip_prefix("init:") {
            // Digits only: `u32::from_str` would also take a leading `+`, which would not
            // survive a round trip.
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return n.parse().ok().map(StepType::Init);
        }
        Self::FIXED
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(t, _)| *t)
    }
}

impl fmt::Display for StepType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let StepType::Init(n) = self {
            return write!(f, "init:{n}");
        }
        let name = Self::FIXED
            .iter()
            .find(|(t, _)| t == self)
            .map_or("step", |(_, name)| name);
        f.write_str(name)
    }
}

impl Serialize for StepType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StepType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        StepType::parse(&s).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&s),
                &"a step type (step, hook:<name>, init:<n>, cache:restore, cache:save)",
            )
        })
    }
}
