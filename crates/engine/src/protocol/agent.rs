//! Agent → orchestrator frames (`protocol.md` §5). Struct field order is the emission order
//! of the spec's examples, so a golden frame re-encodes byte for byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::common::{JobRef, ReportedJobState, Secret, StepConcurrencyKind, StepState, StepType};

/// Every frame an agent may send. Variants marked [later] are decoded (so that an agent that
/// sends them, such as the reference agent's periodic metrics, is not disconnected) but v1
/// tiers ignore them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AgentMessage {
    #[serde(rename = "auth.request")]
    AuthRequest(AuthRequest),
    #[serde(rename = "agent.register")]
    AgentRegister(Box<AgentRegister>),
    #[serde(rename = "config.ack")]
    ConfigAck(ConfigAck),
    #[serde(rename = "heartbeat")]
    Heartbeat(Heartbeat),
    #[serde(rename = "agent.status")]
    AgentStatus(AgentStatus),
    #[serde(rename = "job.ack")]
    JobAck(JobAck),
    #[serde(rename = "job.reject")]
    JobReject(JobReject),
    #[serde(rename = "job.status")]
    JobStatus(Box<JobStatusReport>),
    #[serde(rename = "step.status")]
    StepStatus(Box<StepStatusReport>),
    #[serde(rename = "log.chunk")]
    LogChunk(LogChunk),
    #[serde(rename = "job.heartbeat")]
    JobHeartbeat(JobHeartbeat),
    #[serde(rename = "job.concurrency.report")]
    JobConcurrencyReport(JobConcurrencyReport),
    /// [later]
    #[serde(rename = "agent.log")]
    AgentLog(AgentLog),
    /// [later]
    #[serde(rename = "agent.metrics")]
    AgentMetrics(AgentMetrics),
    /// [later]
    #[serde(rename = "run.event")]
    RunEvent(Box<RunEvent>),
    /// [later]
    #[serde(rename = "job.context")]
    JobContext(Box<JobContext>),
}

impl AgentMessage {
    /// Every `type` this enum decodes, in declaration order. A unit test keeps it equal to
    /// the variants serde knows.
    pub const TYPES: [&'static str; 16] = [
        "auth.request",
        "agent.register",
        "config.ack",
        "heartbeat",
        "agent.status",
        "job.ack",
        "job.reject",
        "job.status",
        "step.status",
        "log.chunk",
        "job.heartbeat",
        "job.concurrency.report",
        "agent.log",
        "agent.metrics",
        "run.event",
        "job.context",
    ];

    /// Types of the reference catalogue that exist only in a later tier and whose fields the
    /// spec leaves to the reference: recognised, so they get a precise "not supported"
    /// error rather than "unknown type".
    pub const LATER_TYPES: [&'static str; 12] = [
        "cache.upload.request",
        "cache.upload.complete",
        "cache.user.restore.request",
        "cache.user.save.request",
        "cache.user.save.complete",
        "provenance.upload.request",
        "provenance.upload.complete",
        "event.emit",
        "agent.api.request",
        "step.approval-request",
        "fleet.bundle.chunk",
        "fleet.bundle.error",
    ];

    pub fn message_type(&self) -> &'static str {
        match self {
            AgentMessage::AuthRequest(_) => "auth.request",
            AgentMessage::AgentRegister(_) => "agent.register",
            AgentMessage::ConfigAck(_) => "config.ack",
            AgentMessage::Heartbeat(_) => "heartbeat",
            AgentMessage::AgentStatus(_) => "agent.status",
            AgentMessage::JobAck(_) => "job.ack",
            AgentMessage::JobReject(_) => "job.reject",
            AgentMessage::JobStatus(_) => "job.status",
            AgentMessage::StepStatus(_) => "step.status",
            AgentMessage::LogChunk(_) => "log.chunk",
            AgentMessage::JobHeartbeat(_) => "job.heartbeat",
            AgentMessage::JobConcurrencyReport(_) => "job.concurrency.report",
            AgentMessage::AgentLog(_) => "agent.log",
            AgentMessage::AgentMetrics(_) => "agent.metrics",
            AgentMessage::RunEvent(_) => "run.event",
            AgentMessage::JobContext(_) => "job.context",
        }
    }

    /// The job this frame is about, for the ownership check of §6.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            AgentMessage::JobAck(m) => Some(&m.job_id),
            AgentMessage::JobReject(m) => Some(&m.job_id),
            AgentMessage::JobStatus(m) => Some(&m.job_id),
            AgentMessage::StepStatus(m) => Some(&m.job_id),
            AgentMessage::LogChunk(m) => Some(&m.job_id),
            AgentMessage::JobHeartbeat(m) => Some(&m.job_id),
            AgentMessage::JobConcurrencyReport(m) => Some(&m.job_id),
            AgentMessage::RunEvent(m) => Some(&m.job_id),
            AgentMessage::JobContext(m) => Some(&m.job_id),
            AgentMessage::AuthRequest(_)
            | AgentMessage::AgentRegister(_)
            | AgentMessage::ConfigAck(_)
            | AgentMessage::Heartbeat(_)
            | AgentMessage::AgentStatus(_)
            | AgentMessage::AgentLog(_)
            | AgentMessage::AgentMetrics(_) => None,
        }
    }

    /// Whether this frame belongs to the reliable stream of the `seq-ack` extension (§12):
    /// kept in the agent's outbox until acknowledged, deduplicated by the orchestrator.
    pub fn is_reliable(&self) -> bool {
        matches!(
            self,
            AgentMessage::JobAck(_)
                | AgentMessage::JobReject(_)
                | AgentMessage::JobStatus(_)
                | AgentMessage::StepStatus(_)
                | AgentMessage::LogChunk(_)
                | AgentMessage::RunEvent(_)
                | AgentMessage::JobContext(_)
        )
    }

    /// `seq` of a reliable frame, when the agent assigned one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            AgentMessage::JobAck(m) => m.seq,
            AgentMessage::JobReject(m) => m.seq,
            AgentMessage::JobStatus(m) => m.seq,
            AgentMessage::StepStatus(m) => m.seq,
            AgentMessage::LogChunk(m) => m.seq,
            AgentMessage::RunEvent(m) => m.seq,
            AgentMessage::JobContext(m) => m.seq,
            _ => None,
        }
    }

    /// Stamps `seq` on a reliable frame; returns `false` (and changes nothing) for the
    /// others, which are never sequenced.
    pub fn set_seq(&mut self, seq: u64) -> bool {
        let slot = match self {
            AgentMessage::JobAck(m) => &mut m.seq,
            AgentMessage::JobReject(m) => &mut m.seq,
            AgentMessage::JobStatus(m) => &mut m.seq,
            AgentMessage::StepStatus(m) => &mut m.seq,
            AgentMessage::LogChunk(m) => &mut m.seq,
            AgentMessage::RunEvent(m) => &mut m.seq,
            AgentMessage::JobContext(m) => &mut m.seq,
            _ => return false,
        };
        *slot = Some(seq);
        true
    }

    /// `heartbeat` is exempt from the rate limits (§15).
    pub fn is_rate_limited(&self) -> bool {
        !matches!(self, AgentMessage::Heartbeat(_))
    }
}

/// `auth.request` (§3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthRequest {
    pub token: Secret,
    /// Signed so that `0` and negative versions decode and get the dedicated 4005 answer
    /// instead of a generic schema error.
    pub protocol_version: i64,
}

/// `agent.register` (§5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRegister {
    pub message_id: String,
    pub agent_id: String,
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_jobs: Option<Vec<JobRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_jobs: Option<Vec<JobRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_as_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_as_uid: Option<u32>,
    /// Sent by the reference agent only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, PropertyValue>>,
}

/// A value of `agent.register.properties`: scalars only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Bool(bool),
    Number(Number),
    String(String),
}

impl AgentRegister {
    /// §3.3: `platform` defaults to `linux`.
    pub fn platform_or_default(&self) -> &str {
        self.platform.as_deref().unwrap_or("linux")
    }

    /// §3.3: `arch` defaults to `x64`.
    pub fn arch_or_default(&self) -> &str {
        self.arch.as_deref().unwrap_or("x64")
    }

    /// §3.3: `maxConcurrency` defaults to 1.
    pub fn max_concurrency_or_default(&self) -> u32 {
        self.max_concurrency.unwrap_or(1)
    }

    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities
            .as_deref()
            .is_some_and(|caps| caps.iter().any(|c| c == capability))
    }
}

/// `config.ack`, sent after every `register.ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigAck {
    pub message_id: String,
    pub agent_id: String,
}

/// Connection heartbeat (§10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub timestamp: u64,
}

/// `agent.status`: the agent's view of its slots. Advisory: the orchestrator's own slot count
/// stays authoritative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub message_id: String,
    pub agent_id: String,
    pub active_jobs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_available_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining: Option<bool>,
}

/// `job.ack`: dispatch accepted, sent before any work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobAck {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Why an agent refused a dispatch (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RejectReason {
    Busy,
    Draining,
}

/// `job.reject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReject {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    pub reason: RejectReason,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `job.status` (§7.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusReport {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    pub state: ReportedJobState,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<JobStatusData>,
    /// [later] dynamic jobs; the spec fixes no shape, so it is carried verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_jobs: Option<Value>,
    /// [later] secret outputs; carried verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_outputs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `job.status.data` (§7.2); every key optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusData {
    /// Already masked by the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Raw per-step outputs, keyed by step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_results: Option<Vec<StepResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<JobSkipReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_reason: Option<TimeoutReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_failure: Option<InitFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_results: Option<Vec<RuleResult>>,
    /// On `running`: the commit checked out when the dispatch asked for `HEAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_sha: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub name: String,
    pub status: StepState,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobSkipReason {
    JobRules,
    WorkflowRules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutReason {
    JobTimeout,
}

/// `initFailure` (§7.2; the orchestrator also stores it on runs and jobs, §7.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitFailure {
    pub scope: InitFailureScope,
    pub category: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitFailureScope {
    Run,
    Job,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleResult {
    pub label: String,
    pub passed: bool,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `step.status` (§7.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStatusReport {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    /// Signed: the index space has `-1` for the workflow "prepare" pseudo-step
    /// ([`super::step_index`]).
    pub step_index: i64,
    pub step_name: String,
    pub state: StepState,
    pub timestamp: u64,
    #[serde(rename = "step_type", default, skip_serializing_if = "Option::is_none")]
    pub step_type: Option<StepType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<StepStatusData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_accessed: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_kind: Option<StepConcurrencyKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Terminal states only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes_streamed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl StepStatusReport {
    /// The step type wherever the sender put it: our agents use the top-level `step_type`,
    /// older agents `data.step_type` or `data.stepType` (the reference wrote one spelling and
    /// read the other, fix F48). Absent everywhere means a plain step.
    pub fn effective_step_type(&self) -> StepType {
        self.step_type
            .or_else(|| {
                self.data
                    .as_ref()
                    .and_then(|d| d.step_type.or(d.step_type_camel))
            })
            .unwrap_or(StepType::Step)
    }
}

/// `step.status.data` (§7.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStatusData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<StepSkipReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued_on_error: Option<bool>,
    /// Legacy placement of the step type (older agents); read through
    /// [`StepStatusReport::effective_step_type`].
    #[serde(rename = "step_type", default, skip_serializing_if = "Option::is_none")]
    pub step_type: Option<StepType>,
    /// Legacy spelling, see `step_type`.
    #[serde(rename = "stepType", default, skip_serializing_if = "Option::is_none")]
    pub step_type_camel: Option<StepType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepSkipReason {
    StepRules,
}

/// `log.chunk` (§11): one flush of one step's batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogChunk {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    pub step_index: i64,
    pub lines: Vec<String>,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `job.heartbeat`: per running job; deliberately has no `messageId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobHeartbeat {
    pub run_id: String,
    pub job_id: String,
    pub timestamp: u64,
}

/// `job.concurrency.report`: the evaluated workflow concurrency key, answered by
/// `job.concurrency.ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConcurrencyReport {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    pub group: String,
}

/// `agent.log` [later]: the agent's own log lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentLog {
    pub message_id: String,
    pub agent_id: String,
    pub lines: Vec<String>,
    pub timestamp: u64,
}

/// `agent.metrics` [later].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMetrics {
    pub message_id: String,
    pub agent_id: String,
    pub metrics: Vec<Metric>,
    pub timestamp: u64,
}

/// One sample of `agent.metrics`. Numbers stay [`Number`] so integers and floats survive a
/// round trip unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<MetricBucket>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<Number>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricKind {
    Counter,
    Histogram,
    Gauge,
    UpDownCounter,
}

/// A histogram bucket. `le` is a [`Value`] because the reference's `+Inf` bound does not
/// survive `JSON.stringify` as a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricBucket {
    pub le: Value,
    pub count: Number,
}

/// `run.event` [later]: a timeline event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    pub run_id: String,
    pub event_type: String,
    pub timestamp_ms: u64,
    pub source_service: SourceService,
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceService {
    Agent,
}

/// `job.context` [later]: a job summary. Secret values are never included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobContext {
    pub run_id: String,
    pub job_id: String,
    pub context: JobContextInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobContextInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_vars: Option<Vec<EnvVarInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The spec gives no type; carried verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_file_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVarInfo {
    pub name: String,
    /// For `secret` variables the agent sends a mask, never the value.
    pub value: String,
    pub category: EnvVarCategory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvVarCategory {
    System,
    User,
    Inherited,
    Secret,
}
