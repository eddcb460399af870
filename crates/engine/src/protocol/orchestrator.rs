//! Orchestrator → agent frames (`protocol.md` §4), including the dispatch frame and the job
//! configuration it carries (§4.1–§4.2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{JobStatus, Secret};
use crate::event::Event;
use crate::lock::{LabelMatcher, LockContainer, LockMatrix, LockRule, LockStepEntry, RunsOnPick};

/// Every frame an orchestrator may send. Variants marked [later] are decoded so that a newer
/// orchestrator's frames are recognised; v1 agents ignore them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrchestratorMessage {
    #[serde(rename = "auth.success")]
    AuthSuccess(AuthSuccess),
    #[serde(rename = "auth.failure")]
    AuthFailure(AuthFailure),
    #[serde(rename = "register.ack")]
    RegisterAck(RegisterAck),
    #[serde(rename = "job.dispatch")]
    JobDispatch(Box<JobDispatch>),
    #[serde(rename = "job.cancel")]
    JobCancel(JobCancel),
    #[serde(rename = "job.concurrency.ack")]
    JobConcurrencyAck(JobConcurrencyAck),
    #[serde(rename = "frames.ack")]
    FramesAck(FramesAck),
    #[serde(rename = "error")]
    Error(ErrorMessage),
    /// Compatibility only: never sent by our orchestrator (§15); agents ignore it.
    #[serde(rename = "rate.limit.warning")]
    RateLimitWarning(RateLimitWarning),
    /// [later]
    #[serde(rename = "cache.upload.response")]
    CacheUploadResponse(CacheUploadResponse),
    /// [later]
    #[serde(rename = "cache.user.restore.response")]
    CacheUserRestoreResponse(CacheUserRestoreResponse),
    /// [later]
    #[serde(rename = "cache.user.save.response")]
    CacheUserSaveResponse(CacheUserSaveResponse),
    /// [later]
    #[serde(rename = "provenance.upload.response")]
    ProvenanceUploadResponse(ProvenanceUploadResponse),
    /// [later]
    #[serde(rename = "event.emit.response")]
    EventEmitResponse(EventEmitResponse),
    /// [later]
    #[serde(rename = "agent.api.response")]
    AgentApiResponse(AgentApiResponse),
    /// [later]
    #[serde(rename = "step.approval-resolved")]
    StepApprovalResolved(StepApprovalResolved),
    /// [later]
    #[serde(rename = "fleet.logs.request")]
    FleetLogsRequest(FleetLogsRequest),
}

impl OrchestratorMessage {
    /// Every `type` this enum decodes, in declaration order. A unit test keeps it equal to
    /// the variants serde knows.
    pub const TYPES: [&'static str; 17] = [
        "auth.success",
        "auth.failure",
        "register.ack",
        "job.dispatch",
        "job.cancel",
        "job.concurrency.ack",
        "frames.ack",
        "error",
        "rate.limit.warning",
        "cache.upload.response",
        "cache.user.restore.response",
        "cache.user.save.response",
        "provenance.upload.response",
        "event.emit.response",
        "agent.api.response",
        "step.approval-resolved",
        "fleet.logs.request",
    ];

    /// No orchestrator frame type is recognised without being decoded.
    pub const LATER_TYPES: [&'static str; 0] = [];

    pub fn message_type(&self) -> &'static str {
        match self {
            OrchestratorMessage::AuthSuccess(_) => "auth.success",
            OrchestratorMessage::AuthFailure(_) => "auth.failure",
            OrchestratorMessage::RegisterAck(_) => "register.ack",
            OrchestratorMessage::JobDispatch(_) => "job.dispatch",
            OrchestratorMessage::JobCancel(_) => "job.cancel",
            OrchestratorMessage::JobConcurrencyAck(_) => "job.concurrency.ack",
            OrchestratorMessage::FramesAck(_) => "frames.ack",
            OrchestratorMessage::Error(_) => "error",
            OrchestratorMessage::RateLimitWarning(_) => "rate.limit.warning",
            OrchestratorMessage::CacheUploadResponse(_) => "cache.upload.response",
            OrchestratorMessage::CacheUserRestoreResponse(_) => "cache.user.restore.response",
            OrchestratorMessage::CacheUserSaveResponse(_) => "cache.user.save.response",
            OrchestratorMessage::ProvenanceUploadResponse(_) => "provenance.upload.response",
            OrchestratorMessage::EventEmitResponse(_) => "event.emit.response",
            OrchestratorMessage::AgentApiResponse(_) => "agent.api.response",
            OrchestratorMessage::StepApprovalResolved(_) => "step.approval-resolved",
            OrchestratorMessage::FleetLogsRequest(_) => "fleet.logs.request",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSuccess {
    pub connection_id: String,
}

/// Followed by a close with 4010 or 4005.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFailure {
    pub reason: String,
}

/// `register.ack` (§4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterAck {
    pub agent_id: String,
    /// The effective labels.
    pub labels: Vec<String>,
    pub scaler_managed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_dispatch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// `seq-ack`: the last reliable frame applied for this agent instance (`0` when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_seq: Option<u64>,
    /// Overrides the agent's local `KICI_JOB_HEARTBEAT_INTERVAL_MS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_heartbeat_interval_ms: Option<u64>,
}

impl RegisterAck {
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities
            .as_deref()
            .is_some_and(|caps| caps.iter().any(|c| c == capability))
    }
}

/// `job.dispatch` (§4.1). Later fields (`sourceTarUrl`, `depsUrl`, …) are not modelled and
/// are ignored on input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDispatch {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    /// Without credentials; `""` when `checkout` is false.
    pub repo_url: String,
    /// Full ref name (or a short name for agents without capabilities, which use
    /// `git clone --branch`); `""` allowed.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// `""` or `HEAD` means the tip of `ref`.
    pub sha: String,
    /// Informational.
    pub lock_file_url: String,
    pub timestamp: u64,
    /// Legacy clone token, only for agents without capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_auth: Option<GitAuth>,
    /// [later] global workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_auth: Option<GitAuth>,
    /// Resolved when the frame is built; never persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<BTreeMap<String, Secret>>,
    /// [later] secret contexts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaced_secrets: Option<BTreeMap<String, BTreeMap<String, Secret>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_log_size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Keyed by expanded job name; each value flat or step-keyed (`sdk.md` §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_job_outputs: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_job_statuses: Option<BTreeMap<String, JobStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_id: Option<String>,
    pub job_config: JobConfig,
}

impl JobDispatch {
    /// `maxLogSizeBytes`, default 10 MiB.
    pub fn max_log_size_bytes_or_default(&self) -> u64 {
        self.max_log_size_bytes
            .unwrap_or(super::logs::DEFAULT_MAX_LOG_SIZE_BYTES)
    }
}

/// One matrix child among a job's upstreams: `<base> (<suffix>)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixChild {
    pub base: String,
    pub suffix: String,
}

impl MatrixChild {
    /// The child of `base` that `name` names, if `name` is `<base> (<suffix>)`.
    pub fn of(name: &str, base: &str) -> Option<MatrixChild> {
        let suffix = name
            .strip_prefix(base)?
            .strip_prefix(" (")?
            .strip_suffix(')')?;
        Some(MatrixChild {
            base: base.to_string(),
            suffix: suffix.to_string(),
        })
    }
}

/// `GitAuth` (§4.1): clone credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitAuth {
    pub kind: GitAuthKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub secret: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_host_key_policy: Option<SshHostKeyPolicy>,
    /// Required by `pinned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_known_hosts_pem: Option<String>,
}

impl GitAuth {
    /// Default user for `basic` is `x-access-token`.
    pub fn user_or_default(&self) -> Option<&str> {
        match (self.kind, self.user.as_deref()) {
            (_, Some(user)) => Some(user),
            (GitAuthKind::Basic, None) => Some("x-access-token"),
            (GitAuthKind::Ssh, None) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GitAuthKind {
    Basic,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SshHostKeyPolicy {
    AcceptNew,
    Pinned,
}

/// `_type` of a dispatched job: dynamic job entries are expanded before dispatch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobConfigType {
    #[default]
    #[serde(rename = "static")]
    Static,
}

/// `jobConfig` (§4.2): the job's lock entry with the expanded name, plus what the
/// orchestrator adds. Several keys share a lock key's name but not its meaning (`needs` are
/// expanded names, `env` the system variables, `environments` resolved names), so this is
/// its own struct rather than a flattened [`crate::lock::LockJob`]. Lock keys that matter
/// only at planning time (`include`, `exclude`, `concurrencyGroup`, …) and later keys are
/// ignored on input. Never contains secret values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConfig {
    #[serde(rename = "_type", default)]
    pub job_type: JobConfigType,
    /// Expanded name, `<base> (<suffix>)` for matrix children.
    pub name: String,
    pub base_job_name: String,
    pub workflow_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<Vec<LabelMatcher>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_labels: Option<Vec<LabelMatcher>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on_pick: Option<RunsOnPick>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
    /// Expanded upstream job names.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Ours: the matrix children among `needs` (expanded name → base name and suffix), so the
    /// agent hands `jobOutputs(base)` and `ctx.needs.base` the `{byMatrix, merged}` shape that
    /// `kici run local` builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_matrix: Option<BTreeMap<String, MatrixChild>>,
    #[serde(default)]
    pub steps: Vec<LockStepEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<LockMatrix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<LockRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_cancel: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_cleanup: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_success: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_failure: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_before_step: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_after_step: bool,
    pub source: JobSource,
    /// Workflow content hash the agent verifies against the checkout.
    pub content_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_hash_files: Option<Vec<String>>,
    /// The normalised event, including `payload`.
    pub event: Event,
    pub provider: String,
    /// Present for matrix children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_values: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_inputs: Option<Map<String, Value>>,
    /// KiCI system variables (`sdk.md` §14 layer 3), not the job's `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_vars: Option<BTreeMap<String, String>>,
    /// The job `env` when static or inline-evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_env: Option<BTreeMap<String, String>>,
    /// The job `env` is an impure function the runner evaluates. Only ever `true` on the
    /// wire.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dynamic_env_at_runtime: bool,
    /// First environment name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// All resolved environment names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<LockContainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_concurrency_group: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_evaluation_timeout_ms: Option<u64>,
    /// Dispatch attempt, 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl JobConfig {
    /// `checkout` defaults to `true`.
    pub fn checkout_or_default(&self) -> bool {
        self.checkout.unwrap_or(true)
    }

    /// `concurrencyEvaluationTimeoutMs` defaults to 30 s.
    pub fn concurrency_evaluation_timeout_ms_or_default(&self) -> u64 {
        self.concurrency_evaluation_timeout_ms.unwrap_or(30_000)
    }

    /// `gracePeriod` in seconds: default 30, at most 300 (§8).
    pub fn grace_period_secs(&self) -> u64 {
        self.grace_period.unwrap_or(30).min(300)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `jobConfig.source`: the workflow entry file and its export in the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSource {
    pub file: String,
    /// `#default`, `#default[1]` or `#<name>`.
    pub export_name: String,
}

/// `job.cancel`: no reply; the outcome is the job's later terminal `job.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCancel {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    pub reason: String,
    /// Immediate SIGKILL, no hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// `job.concurrency.ack`: a reply (`requestId` = the report's `messageId`) or an unsolicited
/// wake-up `proceed` with a fresh `requestId` and `runId`/`jobId` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConcurrencyAck {
    pub request_id: String,
    pub action: ConcurrencyAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyAction {
    Proceed,
    Wait,
    Cancel,
}

/// `frames.ack` (`seq-ack`): cumulative; every reliable frame with `seq <= upTo` is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FramesAck {
    pub up_to: u64,
}

/// `error`, sent right before a 4003 close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    #[serde(rename = "INVALID_MESSAGE")]
    InvalidMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitWarning {
    pub retry_after_ms: u64,
}

/// [later] `uploadUrl` `""` = unavailable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheUploadResponse {
    pub request_id: String,
    pub upload_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheUserRestoreResponse {
    pub request_id: String,
    pub hit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheUserSaveResponse {
    pub request_id: String,
    pub skip: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceUploadResponse {
    pub request_id: String,
    pub upload_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEmitResponse {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// [later] `result` and `error` are operation-specific.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentApiResponse {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepApprovalResolved {
    pub request_id: String,
    pub run_id: String,
    pub job_id: String,
    pub step_index: i64,
    pub outcome: ApprovalOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalOutcome {
    Approved,
    Rejected,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetLogsRequest {
    pub request_id: String,
    pub log_window_hours: u64,
    pub max_bytes: u64,
}
