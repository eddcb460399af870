//! The orchestrator ↔ agent WebSocket protocol, version 1 (`protocol.md`): every frame as a
//! typed enum per direction, the `seq-ack` reliability extension, close codes, limits and
//! the pure rules both tiers share (reconnect backoff, log batching, rate limiting, the step
//! index space).
//!
//! This module is an API boundary: the JSON it produces is what reference agents and older
//! versions of ours read, so every frame type has a golden file under
//! `test-data/protocol/v1/<direction>/<type>.json` (`agent`, `orchestrator`, and for the
//! [later] relay link [`relay`] `to-relay`, `from-relay`) that must keep decoding and
//! re-encoding to the same JSON. Changing a field name or order here is a protocol change.
//!
//! Decoding is strict about what the spec fixes and lenient about the rest: unknown fields
//! are ignored, a `null` optional field reads as absent, but a wrong `type`, a missing
//! required field, a value outside a closed enum or an over-long id is a [`FrameError`]
//! naming what was wrong, so the orchestrator can answer with `error` + 4003 and the agent
//! can log precisely what it ignored.

mod agent;
pub mod close;
mod common;
pub mod limits;
pub mod logs;
mod orchestrator;
pub mod rate;
pub mod relay;
pub mod reliability;
pub mod step_index;
#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use agent::{
    AgentLog, AgentMessage, AgentMetrics, AgentRegister, AgentStatus, AuthRequest, ConfigAck,
    EnvVarCategory, EnvVarInfo, Heartbeat, InitFailure, InitFailureScope, JobAck,
    JobConcurrencyReport, JobContext, JobContextInfo, JobHeartbeat, JobReject, JobSkipReason,
    JobStatusData, JobStatusReport, LogChunk, Metric, MetricBucket, MetricKind, PropertyValue,
    RejectReason, RuleResult, RunEvent, SourceService, StepResult, StepSkipReason, StepStatusData,
    StepStatusReport, TimeoutReason,
};
pub use close::CloseCode;
pub use common::{
    JobRef, JobStatus, ReportedJobState, Secret, StepConcurrencyKind, StepState, StepType,
};
pub use orchestrator::{
    AgentApiResponse, ApprovalOutcome, AuthFailure, AuthSuccess, CacheUploadResponse,
    CacheUserRestoreResponse, CacheUserSaveResponse, ConcurrencyAction, ErrorCode, ErrorMessage,
    EventEmitResponse, FleetLogsRequest, FramesAck, GitAuth, GitAuthKind, JobCancel,
    JobConcurrencyAck, JobConfig, JobConfigType, JobDispatch, JobSource, MatrixChild,
    OrchestratorMessage, ProvenanceUploadResponse, RateLimitWarning, RegisterAck, SshHostKeyPolicy,
    StepApprovalResolved,
};

/// The protocol version this implementation speaks and sends in `auth.request`.
pub const PROTOCOL_VERSION: i64 = 1;
/// The lowest `protocolVersion` the orchestrator accepts; below it closes with 4005.
pub const MIN_PROTOCOL_VERSION: i64 = 1;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message too large: {size} bytes, limit {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed JSON at line {line} column {column}: {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("frame is not a JSON object")]
    NotAnObject,
    #[error("frame has no `type` field")]
    MissingType,
    #[error("`type` is not a string")]
    TypeNotString,
    #[error("unknown message type `{message_type}`")]
    UnknownType { message_type: String },
    /// A type of a later tier that protocol v1 recognises but does not implement.
    #[error("message type `{message_type}` is not supported in protocol v1")]
    Unsupported { message_type: String },
    #[error("{message_type}: missing field `{field}`")]
    MissingField {
        message_type: &'static str,
        field: String,
    },
    #[error("{message_type}: {detail}")]
    WrongType {
        message_type: &'static str,
        detail: String,
    },
    #[error("{message_type}: {detail}")]
    InvalidValue {
        message_type: &'static str,
        detail: String,
    },
    #[error("{message_type}: `{field}` is {len} long, limit {limit}")]
    TooLong {
        message_type: &'static str,
        field: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("protocol version {version} is below the minimum {MIN_PROTOCOL_VERSION}")]
    ProtocolVersion { version: i64 },
}

impl FrameError {
    /// The close code for this error on a registered connection. Before registration the
    /// orchestrator answers differently (§3.1: an invalid first frame in token mode is
    /// `auth.failure` + 4010), which is the caller's phase logic.
    pub fn close_code(&self) -> CloseCode {
        match self {
            FrameError::ProtocolVersion { .. } => CloseCode::ProtocolError,
            _ => CloseCode::InvalidMessage,
        }
    }

    /// The close reason, within the 123-byte limit.
    pub fn close_reason(&self) -> String {
        match self {
            FrameError::TooLarge { .. } => close::reason::MESSAGE_TOO_LARGE.to_owned(),
            other => close::truncate_close_reason(&other.to_string()).to_owned(),
        }
    }
}

/// Decodes a frame received by the orchestrator. Applies the frame limit
/// ([`limits::AGENT_FRAME_LIMIT_BYTES`]), the schema of the frame's type and the string
/// limits of §16; over-long `error` texts are truncated in place rather than refused.
pub fn decode_agent_frame(frame: &str) -> Result<AgentMessage, FrameError> {
    let mut message: AgentMessage = decode(
        frame,
        limits::AGENT_FRAME_LIMIT_BYTES,
        &AgentMessage::TYPES,
        |t| AgentMessage::LATER_TYPES.contains(&t),
    )?;
    validate_agent_message(&mut message)?;
    Ok(message)
}

/// Decodes a frame received by an agent. Only the frame limit and the schema apply; the
/// agent logs and ignores what this refuses (§16).
pub fn decode_orchestrator_frame(frame: &str) -> Result<OrchestratorMessage, FrameError> {
    decode(
        frame,
        limits::ORCHESTRATOR_FRAME_LIMIT_BYTES,
        &OrchestratorMessage::TYPES,
        |t| OrchestratorMessage::LATER_TYPES.contains(&t),
    )
}

/// Decodes a frame an orchestrator receives from the relay [later].
pub fn decode_relay_frame(frame: &str) -> Result<relay::FromRelay, FrameError> {
    decode(
        frame,
        limits::MAX_FRAME_BYTES,
        &relay::FromRelay::TYPES,
        is_dashboard_op,
    )
}

/// Decodes a frame the relay receives from an orchestrator [later].
pub fn decode_to_relay_frame(frame: &str) -> Result<relay::ToRelay, FrameError> {
    decode(
        frame,
        limits::MAX_FRAME_BYTES,
        &relay::ToRelay::TYPES,
        is_dashboard_op,
    )
}

/// `dashboard.<op>` and `dashboard.<op>.response` are open-ended and not modelled.
fn is_dashboard_op(message_type: &str) -> bool {
    message_type.starts_with("dashboard.")
}

impl AgentMessage {
    /// The frame text.
    pub fn encode(&self) -> String {
        // Cannot fail: every map key is a string and no Serialize impl here returns an error.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl OrchestratorMessage {
    /// The frame text.
    pub fn encode(&self) -> String {
        // Cannot fail: every map key is a string and no Serialize impl here returns an error.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn decode<T: DeserializeOwned>(
    frame: &str,
    limit: usize,
    types: &[&'static str],
    later: fn(&str) -> bool,
) -> Result<T, FrameError> {
    if frame.len() > limit {
        return Err(FrameError::TooLarge {
            size: frame.len(),
            limit,
        });
    }
    // The happy path parses once; only a refused frame is parsed again to say why.
    serde_json::from_str(frame).map_err(|err| diagnose(frame, &err, types, later))
}

fn diagnose(
    frame: &str,
    err: &serde_json::Error,
    types: &[&'static str],
    later: fn(&str) -> bool,
) -> FrameError {
    use serde_json::error::Category;
    if matches!(
        err.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        return json_error(err);
    }
    let value: Value = match serde_json::from_str(frame) {
        Ok(value) => value,
        Err(err) => return json_error(&err),
    };
    let Some(object) = value.as_object() else {
        return FrameError::NotAnObject;
    };
    let message_type = match object.get("type") {
        None => return FrameError::MissingType,
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return FrameError::TypeNotString,
    };
    if later(message_type) {
        return FrameError::Unsupported {
            message_type: message_type.to_owned(),
        };
    }
    let Some(message_type) = types.iter().copied().find(|t| *t == message_type) else {
        return FrameError::UnknownType {
            message_type: message_type.to_owned(),
        };
    };
    classify_data_error(message_type, &message_text(err))
}

fn json_error(err: &serde_json::Error) -> FrameError {
    FrameError::Json {
        line: err.line(),
        column: err.column(),
        reason: message_text(err),
    }
}

/// serde_json's message without the ` at line L column C` suffix it appends.
fn message_text(err: &serde_json::Error) -> String {
    let full = err.to_string();
    if err.line() == 0 {
        return full;
    }
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// Sorts serde's data errors into the specific variants. serde only exposes them as text,
/// but the prefixes are fixed by `serde::de::Error`'s provided constructors.
fn classify_data_error(message_type: &'static str, text: &str) -> FrameError {
    if let Some(rest) = text.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        return FrameError::MissingField {
            message_type,
            field,
        };
    }
    let detail = text.to_owned();
    if text.starts_with("invalid type:") || text.starts_with("invalid length") {
        FrameError::WrongType {
            message_type,
            detail,
        }
    } else {
        FrameError::InvalidValue {
            message_type,
            detail,
        }
    }
}

fn validate_agent_message(message: &mut AgentMessage) -> Result<(), FrameError> {
    let message_type = message.message_type();
    let mut check = Checker { message_type };
    if let Some(0) = message.seq() {
        return Err(check.invalid("`seq` must be at least 1"));
    }
    match message {
        AgentMessage::AuthRequest(m) => {
            if m.token.is_empty() {
                return Err(check.invalid("`token` must not be empty"));
            }
            if m.protocol_version < MIN_PROTOCOL_VERSION {
                return Err(FrameError::ProtocolVersion {
                    version: m.protocol_version,
                });
            }
        }
        AgentMessage::AgentRegister(m) => {
            check.id("messageId", &m.message_id)?;
            check.id("agentId", &m.agent_id)?;
            check.opt_id("instanceId", m.instance_id.as_deref())?;
            for job in m.in_flight_jobs.iter().chain(&m.completed_jobs).flatten() {
                check.id("jobId", &job.job_id)?;
                check.id("runId", &job.run_id)?;
            }
            if m.max_concurrency == Some(0) {
                return Err(check.invalid("`maxConcurrency` must be positive"));
            }
        }
        AgentMessage::ConfigAck(m) => {
            check.id("messageId", &m.message_id)?;
            check.id("agentId", &m.agent_id)?;
        }
        AgentMessage::Heartbeat(_) => {}
        AgentMessage::AgentStatus(m) => {
            check.id("messageId", &m.message_id)?;
            check.id("agentId", &m.agent_id)?;
        }
        AgentMessage::JobAck(m) => check.job(&m.message_id, &m.run_id, &m.job_id)?,
        AgentMessage::JobReject(m) => check.job(&m.message_id, &m.run_id, &m.job_id)?,
        AgentMessage::JobStatus(m) => {
            check.job(&m.message_id, &m.run_id, &m.job_id)?;
            if let Some(data) = &mut m.data {
                truncate_in_place(&mut data.error);
                for result in data.step_results.iter_mut().flatten() {
                    truncate_in_place(&mut result.error);
                }
                for result in data.rule_results.iter_mut().flatten() {
                    truncate_in_place(&mut result.error);
                }
            }
        }
        AgentMessage::StepStatus(m) => {
            check.job(&m.message_id, &m.run_id, &m.job_id)?;
            check.len(
                "stepName",
                m.step_name.chars().count(),
                limits::MAX_STEP_NAME_CHARS,
            )?;
            check.opt_id("groupId", m.group_id.as_deref())?;
            if let Some(data) = &mut m.data {
                truncate_in_place(&mut data.error);
            }
        }
        AgentMessage::LogChunk(m) => {
            check.job(&m.message_id, &m.run_id, &m.job_id)?;
            check.lines(&m.lines)?;
        }
        AgentMessage::JobHeartbeat(m) => {
            check.id("runId", &m.run_id)?;
            check.id("jobId", &m.job_id)?;
        }
        AgentMessage::JobConcurrencyReport(m) => check.job(&m.message_id, &m.run_id, &m.job_id)?,
        AgentMessage::AgentLog(m) => {
            check.id("messageId", &m.message_id)?;
            check.id("agentId", &m.agent_id)?;
            check.lines(&m.lines)?;
        }
        AgentMessage::AgentMetrics(m) => {
            check.id("messageId", &m.message_id)?;
            check.id("agentId", &m.agent_id)?;
        }
        AgentMessage::RunEvent(m) => {
            check.id("runId", &m.run_id)?;
            check.id("jobId", &m.job_id)?;
        }
        AgentMessage::JobContext(m) => {
            check.id("runId", &m.run_id)?;
            check.id("jobId", &m.job_id)?;
        }
    }
    Ok(())
}

fn truncate_in_place(text: &mut Option<String>) {
    if let Some(short) = text.as_deref().and_then(limits::truncate_error) {
        *text = Some(short);
    }
}

struct Checker {
    message_type: &'static str,
}

impl Checker {
    fn invalid(&mut self, detail: &str) -> FrameError {
        FrameError::InvalidValue {
            message_type: self.message_type,
            detail: detail.to_owned(),
        }
    }

    fn len(&mut self, field: &'static str, len: usize, limit: usize) -> Result<(), FrameError> {
        if len > limit {
            return Err(FrameError::TooLong {
                message_type: self.message_type,
                field,
                len,
                limit,
            });
        }
        Ok(())
    }

    fn id(&mut self, field: &'static str, id: &str) -> Result<(), FrameError> {
        // Cheap pre-check: a string of at most MAX_ID_CHARS bytes has at most that many chars.
        if id.len() <= limits::MAX_ID_CHARS {
            return Ok(());
        }
        self.len(field, id.chars().count(), limits::MAX_ID_CHARS)
    }

    fn opt_id(&mut self, field: &'static str, id: Option<&str>) -> Result<(), FrameError> {
        id.map_or(Ok(()), |id| self.id(field, id))
    }

    fn job(&mut self, message_id: &str, run_id: &str, job_id: &str) -> Result<(), FrameError> {
        self.id("messageId", message_id)?;
        self.id("runId", run_id)?;
        self.id("jobId", job_id)
    }

    fn lines(&mut self, lines: &[String]) -> Result<(), FrameError> {
        for line in lines {
            self.len("lines", line.len(), limits::MAX_LOG_LINE_BYTES)?;
        }
        Ok(())
    }
}
