//! Orchestrator ↔ relay frames (`protocol.md` §18) [later]. Typed now so that the names and
//! shapes are fixed before the relay is built; no v1 tier sends them. `dashboard.<op>`
//! requests and responses are open-ended and not modelled: decoding them gives
//! [`super::FrameError::Unsupported`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::agent::{InitFailure, JobContext, LogChunk, RunEvent, StepStatusData};
use super::common::{JobStatus, Secret, StepConcurrencyKind, StepState};
use crate::state::RunStatus;

/// Frames an orchestrator sends to the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToRelay {
    #[serde(rename = "auth.request")]
    AuthRequest(RelayAuthRequest),
    #[serde(rename = "heartbeat")]
    Heartbeat(super::agent::Heartbeat),
    #[serde(rename = "source.register")]
    SourceRegister(SourceRegister),
    #[serde(rename = "source.deregister")]
    SourceDeregister(SourceDeregister),
    #[serde(rename = "orch.capabilities.update")]
    CapabilitiesUpdate(CapabilitiesUpdate),
    #[serde(rename = "webhook.ack")]
    WebhookAck(WebhookAck),
    #[serde(rename = "execution.status")]
    ExecutionStatus(Box<ExecutionStatus>),
    #[serde(rename = "job.status.forward")]
    JobStatusForward(Box<JobStatusForward>),
    #[serde(rename = "step.status.forward")]
    StepStatusForward(Box<StepStatusForward>),
    #[serde(rename = "state.replay")]
    StateReplay(StateReplay),
    #[serde(rename = "execution.event")]
    ExecutionEvent(ExecutionEvent),
    /// The live view; sent without `seq`.
    #[serde(rename = "log.chunk")]
    LogChunk(LogChunk),
    #[serde(rename = "run.event")]
    RunEvent(Box<RunEvent>),
    #[serde(rename = "job.context")]
    JobContext(Box<JobContext>),
}

impl ToRelay {
    pub const TYPES: [&'static str; 14] = [
        "auth.request",
        "heartbeat",
        "source.register",
        "source.deregister",
        "orch.capabilities.update",
        "webhook.ack",
        "execution.status",
        "job.status.forward",
        "step.status.forward",
        "state.replay",
        "execution.event",
        "log.chunk",
        "run.event",
        "job.context",
    ];

    pub fn message_type(&self) -> &'static str {
        match self {
            ToRelay::AuthRequest(_) => "auth.request",
            ToRelay::Heartbeat(_) => "heartbeat",
            ToRelay::SourceRegister(_) => "source.register",
            ToRelay::SourceDeregister(_) => "source.deregister",
            ToRelay::CapabilitiesUpdate(_) => "orch.capabilities.update",
            ToRelay::WebhookAck(_) => "webhook.ack",
            ToRelay::ExecutionStatus(_) => "execution.status",
            ToRelay::JobStatusForward(_) => "job.status.forward",
            ToRelay::StepStatusForward(_) => "step.status.forward",
            ToRelay::StateReplay(_) => "state.replay",
            ToRelay::ExecutionEvent(_) => "execution.event",
            ToRelay::LogChunk(_) => "log.chunk",
            ToRelay::RunEvent(_) => "run.event",
            ToRelay::JobContext(_) => "job.context",
        }
    }

    /// The frame text.
    pub fn encode(&self) -> String {
        // Cannot fail: every map key is a string and no Serialize impl here returns an error.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Frames the relay sends to an orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FromRelay {
    #[serde(rename = "auth.success")]
    AuthSuccess(RelayAuthSuccess),
    #[serde(rename = "auth.failure")]
    AuthFailure(super::orchestrator::AuthFailure),
    #[serde(rename = "source.register.ack")]
    SourceRegisterAck(SourceRegisterAck),
    #[serde(rename = "source.deregister.ack")]
    SourceDeregisterAck(SourceDeregisterAck),
    #[serde(rename = "webhook.relay.start")]
    WebhookRelayStart(Box<WebhookRelayStart>),
    #[serde(rename = "webhook.relay.chunk")]
    WebhookRelayChunk(WebhookRelayChunk),
    #[serde(rename = "trust_policy.update")]
    TrustPolicyUpdate(Box<TrustPolicyUpdate>),
    #[serde(rename = "peer.discover")]
    PeerDiscover(PeerDiscover),
    #[serde(rename = "peer.update")]
    PeerUpdate(PeerUpdate),
    #[serde(rename = "run.cancel.request")]
    RunCancelRequest(RunCancelRequest),
    #[serde(rename = "run.rerun.request")]
    RunRerunRequest(RunRerunRequest),
}

impl FromRelay {
    pub const TYPES: [&'static str; 11] = [
        "auth.success",
        "auth.failure",
        "source.register.ack",
        "source.deregister.ack",
        "webhook.relay.start",
        "webhook.relay.chunk",
        "trust_policy.update",
        "peer.discover",
        "peer.update",
        "run.cancel.request",
        "run.rerun.request",
    ];

    pub fn message_type(&self) -> &'static str {
        match self {
            FromRelay::AuthSuccess(_) => "auth.success",
            FromRelay::AuthFailure(_) => "auth.failure",
            FromRelay::SourceRegisterAck(_) => "source.register.ack",
            FromRelay::SourceDeregisterAck(_) => "source.deregister.ack",
            FromRelay::WebhookRelayStart(_) => "webhook.relay.start",
            FromRelay::WebhookRelayChunk(_) => "webhook.relay.chunk",
            FromRelay::TrustPolicyUpdate(_) => "trust_policy.update",
            FromRelay::PeerDiscover(_) => "peer.discover",
            FromRelay::PeerUpdate(_) => "peer.update",
            FromRelay::RunCancelRequest(_) => "run.cancel.request",
            FromRelay::RunRerunRequest(_) => "run.rerun.request",
        }
    }

    /// The frame text.
    pub fn encode(&self) -> String {
        // Cannot fail: every map key is a string and no Serialize impl here returns an error.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A key that may be absent, `null` or a value: absent is the outer `None`, `null` the inner.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayAuthRequest {
    /// An orchestrator key `kici_ok_<…>` issued by the relay.
    pub token: Secret,
    pub protocol_version: i64,
    /// Unknown keys are preserved, so the map is carried verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayAuthSuccess {
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_public_alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub provenance_issuer: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRegister {
    pub message_id: String,
    pub sources: Vec<RelaySource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub address: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OrchestratorMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelaySource {
    pub provider: RelayProvider,
    pub routing_key: String,
    pub name: String,
    pub subtype: RelaySourceSubtype,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayProvider {
    Github,
    Gitlab,
    Bitbucket,
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelaySourceSubtype {
    GithubApp,
    GenericWebhook,
    UniversalGit,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrchestratorMode {
    Platform,
    Hybrid,
    Independent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRegisterAck {
    pub message_id: String,
    pub accepted: Vec<AcceptedSource>,
    pub rejected: Vec<RejectedSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<Peer>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedSource {
    pub routing_key: String,
    /// Nullable.
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedSource {
    pub routing_key: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Nullable.
    pub address: Option<String>,
    pub routing_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceDeregister {
    pub message_id: String,
    pub routing_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceDeregisterAck {
    pub message_id: String,
    pub removed: Vec<String>,
}

/// Replaces the relay's copy of the capabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapabilitiesUpdate {
    pub capabilities: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRelayStart {
    pub message_id: String,
    pub routing_key: String,
    pub delivery_id: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Lower-case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    /// 0 … 25 MiB.
    pub total_size: u64,
    /// At least 1.
    pub chunk_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRelayChunk {
    pub message_id: String,
    /// 0-based.
    pub sequence: u64,
    /// Base64 of a raw body slice.
    pub data: String,
    #[serde(rename = "final")]
    pub is_final: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAck {
    pub message_id: String,
    pub delivery_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<WebhookAckResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookAckResult {
    Accepted,
    RejectedSignature,
    RejectedUnknownSource,
    RejectedMisconfigured,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatus {
    pub message_id: String,
    pub run_id: String,
    pub workflow_name: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_count: Option<u32>,
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_failure: Option<InitFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusForward {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    pub job_name: String,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_values: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_id: Option<String>,
    /// At most 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on_labels: Option<Vec<String>>,
    /// At most 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_failure: Option<InitFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStatusForward {
    pub message_id: String,
    pub run_id: String,
    pub job_id: String,
    pub job_name: String,
    pub step_index: i64,
    pub step_name: String,
    pub state: StepState,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<StepStatusData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_accessed: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_kind: Option<StepConcurrencyKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// Active runs plus recently finished ones (at most 500 runs of at most 1000 jobs). The run
/// shape is not fixed by the spec yet, so runs are carried verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateReplay {
    pub message_id: String,
    pub runs: Vec<Value>,
    pub timestamp: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionEvent {
    pub message_id: String,
    pub run_id: String,
    pub event: ExecutionEventKind,
    /// Decision traces.
    pub data: Value,
    pub timestamp: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionEventKind {
    Started,
    JobDispatched,
    JobCompleted,
    Finished,
}

/// The relay's trust data for the orchestrator's org. Only the policy keys are named by the
/// spec; the lists are carried verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustPolicyUpdate {
    pub org_id: String,
    pub policy: TrustPolicy,
    pub identity_links: Vec<Value>,
    pub member_ci_trust_levels: Value,
    pub team_memberships: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustPolicy {
    pub fork_policy: Value,
    pub unknown_contributor_policy: Value,
    pub workflow_change_policy: Value,
    pub approval_expiry_hours: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDiscover {
    pub peer: Peer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerUpdate {
    pub peers: Vec<Peer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCancelRequest {
    pub run_id: String,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRerunRequest {
    pub run_id: String,
    pub routing_key: String,
}
