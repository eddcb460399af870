//! The orchestrator's REST bodies, version 1 (`orchestrator.md` §18, all under
//! `<KICI_BASE_PATH>/api/v1`): what the orchestrator answers and what `kici admin`,
//! `kici run remote` and the dashboard send and read.
//!
//! An API boundary like [`crate::protocol`]: passive data with public fields, camelCase keys,
//! absent values omitted (the one nullable key is a page's `nextCursor`). Statuses reuse the
//! vocabularies of [`crate::state`]; the `initFailure` shape is the wire one of
//! [`crate::protocol`]. The spec leaves the admin response shapes to us (open point O16), so
//! where §18 says only "list" or "objects", the shapes here are ours and say so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lock::LabelMatcher;
use crate::protocol::{InitFailure, Secret, StepType};
use crate::state::{QueueStatus, RunStatus, State, StepStatus};

/// Path prefix of every JSON endpoint below the base path.
pub const API_PREFIX: &str = "/api/v1";
/// Admin endpoints live below this prefix.
pub const ADMIN_PREFIX: &str = "/api/v1/admin";
/// Admin tokens: this prefix plus 64 lowercase hex digits (ours).
pub const ADMIN_TOKEN_PREFIX: &str = "kadm_";
/// Agent tokens: this prefix plus 64 lowercase hex digits.
pub const AGENT_TOKEN_PREFIX: &str = "kat_";
/// An agent token's display prefix is its first 12 characters.
pub const AGENT_TOKEN_DISPLAY_PREFIX_CHARS: usize = 12;

// --- errors and paging ---

/// Every 4xx/5xx answer: `{"error": "<message>", "code": "<machine code>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, error: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
            code: code.into(),
        }
    }
}

/// Machine codes the spec names.
pub mod code {
    /// Cancel of a run that already ended (409).
    pub const RUN_TERMINAL: &str = "run_terminal";
}

pub const DEFAULT_PAGE_LIMIT: u32 = 50;
pub const MAX_PAGE_LIMIT: u32 = 200;

/// A page of a list endpoint. `nextCursor` is `null` on the last page (the only nullable key
/// of the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `limit` and `cursor` of a list endpoint's query string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Opaque; only ever echoed from a previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `limit` with its default, clamped to 1 ..= the maximum.
pub fn page_limit(requested: Option<u32>) -> u32 {
    requested
        .unwrap_or(DEFAULT_PAGE_LIMIT)
        .clamp(1, MAX_PAGE_LIMIT)
}

// --- unauthenticated ---

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub version: String,
    pub commit: String,
    pub uptime_seconds: u64,
    /// `orchestrator`.
    pub role: String,
}

/// `GET /ready`: 200 with `true`, or 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub ready: bool,
}

/// `GET /api/v1/capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub orchestrator_version: String,
    pub protocol_version: i64,
    pub min_protocol_version: i64,
    pub lock_schema_version: u32,
    pub features: Vec<String>,
}

/// The answer to a webhook delivery (§3.2, §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAnswer {
    pub status: WebhookStatus,
    /// The inbox id, with `accepted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    /// 202: stored, processed asynchronously.
    Accepted,
    /// 200: the delivery id was seen before; nothing starts.
    Duplicate,
    /// 200: `ping`/`installation*`, not stored.
    Ignored,
    /// 200: not in the source's `allowedEvents`, not stored.
    Filtered,
}

// --- tokens ---

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Auditor,
}

/// `POST tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAdminToken {
    pub label: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// The answer to `POST tokens`; the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAdminToken {
    pub id: String,
    pub token: Secret,
    pub label: String,
    pub role: Role,
    pub created_at: u64,
    /// Absent: never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// An element of `GET tokens` (ours: the spec says "without secrets").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminTokenInfo {
    pub id: String,
    pub label: String,
    pub role: Role,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

/// `POST agent-tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAgentToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Absent: the token may advertise any labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Taints: the agent only takes jobs that require all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandatory_labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged_root: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// Binds the token to one agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// `static` agents keep their token; `ephemeral` tokens are minted for scaler agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentTokenType {
    Static,
    Ephemeral,
}

/// An agent token without its secret (`GET agent-tokens`; ours beyond `id` and `prefix`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentTokenInfo {
    pub id: String,
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub mandatory_labels: Vec<String>,
    pub privileged_root: bool,
    pub agent_type: AgentTokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<u64>,
}

/// The answer to `POST agent-tokens`: the stored token plus, once, its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAgentToken {
    pub token: Secret,
    #[serde(flatten)]
    pub info: AgentTokenInfo,
}

// --- agents ---

/// An element of `GET agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub agent_id: String,
    pub labels: Vec<String>,
    pub mandatory_labels: Vec<String>,
    pub connected: bool,
    pub active_jobs: u32,
    pub max_concurrency: u32,
    pub platform: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Absent in no-auth mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_at: Option<u64>,
    pub draining: bool,
}

// --- sources (§4.3) ---

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// GitHub App.
    Github,
    /// universal-git: any git forge by URL template and preset.
    Git,
    Generic,
    /// A repository on the orchestrator's disk.
    Local,
}

/// `POST sources`. `config` keys depend on `type` (§4.3); secrets are write-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSource {
    #[serde(rename = "type")]
    pub source_type: SourceType,
    pub name: String,
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Secret>,
}

/// `PATCH sources/:name`: present keys replace, absent keys stay (ours).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<BTreeMap<String, Secret>>,
}

/// A source as the API shows it: never its secrets, always its webhook URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceInfo {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub source_type: SourceType,
    pub routing_key: String,
    pub enabled: bool,
    pub config: Map<String, Value>,
    pub webhook_url: String,
    /// Names of the secrets that are set (ours), so an operator can see what is missing.
    #[serde(default)]
    pub secret_keys: Vec<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

// --- secrets (§15) ---

/// An element of `GET secrets/scopes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretScopeInfo {
    pub scope: String,
    pub key_count: u32,
    pub updated_at: u64,
}

/// An element of `GET secrets/:scope`: never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyInfo {
    pub key: String,
    pub updated_at: u64,
    pub key_version: u32,
}

/// `PUT secrets/:scope/:key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutSecret {
    pub value: Secret,
}

// --- environments (§14.1) ---

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentType {
    Fixed,
    Glob,
}

/// An environment as the API shows it (ours: columns of §14.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    pub name: String,
    #[serde(rename = "type")]
    pub environment_type: EnvironmentType,
    pub enabled: bool,
    pub branch_restrictions: Vec<String>,
    pub trigger_type_filters: Vec<String>,
    pub repo_patterns: Vec<String>,
    #[serde(default)]
    pub variables: Vec<EnvironmentVariable>,
    #[serde(default)]
    pub bindings: Vec<EnvironmentBinding>,
    pub created_at: u64,
    pub updated_at: u64,
}

/// `POST environments` (and, every key optional, `PATCH environments/:name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub environment_type: Option<EnvironmentType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_restrictions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_type_filters: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_patterns: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    pub key: String,
    pub value: String,
    pub locked: bool,
}

/// `PUT environments/:name/variables/:key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutVariable {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentBinding {
    pub id: String,
    pub scope_pattern: String,
}

/// `POST environments/:name/bindings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBinding {
    pub scope_pattern: String,
}

// --- runs, jobs, steps ---

/// `GET runs` query: filters plus paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Epoch ms: runs created at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustTier {
    Trusted,
    Untrusted,
}

/// The event of a run summary: the normalised event reduced to what identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEventSummary {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
}

/// Run summary JSON: an element of `GET runs`, and the SSE `run` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run_id: String,
    pub workflow_name: String,
    pub status: RunStatus,
    pub repo: String,
    pub provider: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    pub event: RunEventSummary,
    /// 0-based index of the trigger that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_trigger: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_tier: Option<TrustTier>,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_failure: Option<InitFailure>,
    /// A token label or `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_test_run: Option<bool>,
    /// Ours: the run this one re-runs (`POST runs/:runId/rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    /// Ours: who started a manual run or re-run (a token label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
}

/// `GET runs/:runId`: the summary with its jobs and the match decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub jobs: Vec<JobInfo>,
    /// The decision trace (`triggers.md` §3.2), verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Value>,
}

/// Job JSON: an element of `GET runs/:runId/jobs`, of a run detail, and the SSE `job` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub job_id: String,
    pub name: String,
    pub base_name: String,
    pub status: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_values: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_failure: Option<InitFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<Vec<LabelMatcher>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    /// The stored job outputs (flat or step-keyed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Map<String, Value>>,
    #[serde(default)]
    pub steps: Vec<StepInfo>,
}

/// An element of a job's `steps`, and the SSE `step` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInfo {
    /// The wire step index ([`crate::protocol::step_index`]).
    pub index: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub step_type: StepType,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_accessed: Option<Vec<String>>,
}

/// `POST runs/:runId/cancel` (and, without `reason`, the job cancel).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// 202 answer to a cancel (`orchestrator.md` §13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelAnswer {
    pub status: CancelOutcome,
    pub cancelled_jobs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CancelOutcome {
    Cancelling,
    Cancelled,
}

/// `POST dispatch`: a manual run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchRequest {
    /// Source name.
    pub source: String,
    /// `owner/name`.
    pub repo: String,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Map<String, Value>>,
    /// Ours: only this workflow may start (`kici run remote --workflow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Ours: the complete event to match, as `kici run remote` simulates it locally (the
    /// same builder as `kici run local`); then `sha` is required and `type` is informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
}

/// 202 answer to `POST dispatch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchAccepted {
    pub inbox_id: String,
}

// --- logs ---

pub const DEFAULT_LOG_LIMIT: u32 = 1000;
pub const MAX_LOG_LIMIT: u32 = 10_000;

/// `GET …/steps/:stepIndex/logs` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// Line offset, 0-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `limit` of a log read with its default, clamped to 1 ..= the maximum.
pub fn log_limit(requested: Option<u32>) -> u32 {
    requested
        .unwrap_or(DEFAULT_LOG_LIMIT)
        .clamp(1, MAX_LOG_LIMIT)
}

/// A page of one step's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    pub next_offset: u64,
    pub total_lines: u64,
    /// The step has ended and every line is stored: following can stop.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Line number, 0-based (the offset of this line).
    pub n: u64,
    /// ISO-8601 with milliseconds, from the chunk timestamp.
    pub ts: String,
    pub text: String,
}

/// The SSE `log` event of `GET runs/:runId/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    pub job_id: String,
    pub step_index: i64,
    /// Line number of `lines[0]`.
    pub first_line: u64,
    pub lines: Vec<String>,
}

/// SSE event names of `GET runs/:runId/events`; the data of `run`, `job` and `step` is
/// [`RunSummary`], [`JobInfo`] and [`StepInfo`], of `log` a [`LogEvent`].
pub mod sse {
    pub const RUN: &str = "run";
    pub const JOB: &str = "job";
    pub const STEP: &str = "step";
    pub const LOG: &str = "log";
    /// The run is terminal and its logs flushed.
    pub const END: &str = "end";
    /// Comment heartbeat period.
    pub const HEARTBEAT_INTERVAL_MS: u64 = 15_000;
}

// --- queue ---

/// An element of `GET queue` and the answer of `GET queue/:id` (ours: columns of §9.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueItem {
    /// The job id.
    pub id: String,
    pub run_id: String,
    pub workflow_name: String,
    pub job_name: String,
    pub status: QueueStatus,
    /// Exact labels the job requires.
    #[serde(default)]
    pub require_labels: Vec<String>,
    /// Exact labels the job excludes.
    #[serde(default)]
    pub exclude_labels: Vec<String>,
    /// Regex matchers, required and excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patterns: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub dispatch_attempts: u32,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_deadline: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_deadline: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `POST queue/clear`; `confirm` must be `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueClearRequest {
    pub confirm: bool,
}

/// Answer to `POST queue/clear` (ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueClearAnswer {
    pub expired: u64,
}

// --- inbox and dead letters (§3) ---

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxStatus {
    Pending,
    Processing,
    Retry,
    Done,
    /// The dead-letter state.
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ingress {
    Direct,
    Relay,
    Schedule,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxOutcome {
    Matched,
    NoMatch,
    NoLock,
    LockCorrupt,
    UnsupportedEvent,
    NoRepository,
    Ignored,
}

/// `GET inbox` query: `status=dead` lists the dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<InboxStatus>,
    /// With `GET inbox/:id`: include the body (needs `event_log.read_payload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// An inbox item (ours: columns of §3.1 without body, lease and headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxItem {
    pub id: String,
    pub routing_key: String,
    pub delivery_id: String,
    pub ingress: Ingress,
    pub provider: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub status: InboxStatus,
    pub attempts: u32,
    pub received_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<InboxOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<u64>,
    #[serde(default)]
    pub run_ids: Vec<String>,
    pub body_size: u64,
    /// Decision traces, with `GET inbox/:id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Value>,
    /// The body as JSON (or `{rawBody, contentType}`), with `?payload=true` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// Answer to `POST inbox/:id/retry` and `POST inbox/:id/replay` (ours): the item that will
/// be processed (the same one for retry, a copy for replay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxRequeued {
    pub id: String,
    pub delivery_id: String,
    pub status: InboxStatus,
}

// --- operations ---

/// Answer to `POST rotate-key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateKeyAnswer {
    pub reencrypted: u64,
}

/// Answer to `GET diagnose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub checks: Vec<DiagnosticCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticCheck {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

/// Answer to `GET db/migrate` / `POST db/migrate` (ours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Absent on an empty database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    pub latest: i64,
    pub pending: Vec<i64>,
}

#[cfg(test)]
mod tests {
    //! Golden bodies under `test-data/api/v1/<name>.json`: each decodes as its type and
    //! re-encodes to the same JSON, key order included.

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;

    fn check<T: Serialize + DeserializeOwned>(name: &str, failures: &mut Vec<String>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test-data/api/v1")
            .join(format!("{name}.json"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => return failures.push(format!("{name}: {err}")),
        };
        let expected = serde_json::from_str::<Value>(&text)
            .and_then(|v| serde_json::to_string(&v))
            .unwrap_or_else(|e| format!("{name}: not JSON: {e}"));
        match serde_json::from_str::<T>(&text) {
            Err(err) => failures.push(format!("{name}: does not decode: {err}")),
            Ok(body) => {
                let actual = serde_json::to_string(&body).unwrap_or_default();
                if actual != expected {
                    failures.push(format!(
                        "{name}: re-encodes differently\n  file:    {expected}\n  encoded: {actual}"
                    ));
                }
            }
        }
    }

    #[test]
    fn golden_bodies_round_trip() {
        let mut failures = Vec::new();
        check::<ErrorBody>("error", &mut failures);
        check::<Health>("health", &mut failures);
        check::<Capabilities>("capabilities", &mut failures);
        check::<WebhookAnswer>("webhook-accepted", &mut failures);
        check::<CreateAdminToken>("create-admin-token", &mut failures);
        check::<CreatedAdminToken>("created-admin-token", &mut failures);
        check::<CreateAgentToken>("create-agent-token", &mut failures);
        check::<CreatedAgentToken>("created-agent-token", &mut failures);
        check::<Vec<AgentInfo>>("agents", &mut failures);
        check::<CreateSource>("create-source", &mut failures);
        check::<SourceInfo>("source", &mut failures);
        check::<Page<RunSummary>>("runs", &mut failures);
        check::<RunDetail>("run", &mut failures);
        check::<Vec<JobInfo>>("jobs", &mut failures);
        check::<LogPage>("logs", &mut failures);
        check::<LogEvent>("sse-log", &mut failures);
        check::<CancelAnswer>("cancel-answer", &mut failures);
        check::<DispatchRequest>("dispatch", &mut failures);
        check::<Page<QueueItem>>("queue", &mut failures);
        check::<Page<InboxItem>>("inbox-dead", &mut failures);
        check::<Environment>("environment", &mut failures);
        check::<Diagnosis>("diagnose", &mut failures);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(page_limit(None), 50);
        assert_eq!(page_limit(Some(0)), 1);
        assert_eq!(page_limit(Some(5000)), 200);
        assert_eq!(log_limit(None), 1000);
        assert_eq!(log_limit(Some(20_000)), 10_000);
    }

    #[test]
    fn created_tokens_mask_their_secret_in_debug() {
        let token = CreatedAdminToken {
            id: "t".into(),
            token: Secret::new("kadm_0123"),
            label: "ci".into(),
            role: Role::Admin,
            created_at: 1,
            expires_at: None,
        };
        assert!(!format!("{token:?}").contains("kadm_0123"));
    }
}
