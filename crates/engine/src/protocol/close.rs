//! WebSocket close codes (`protocol.md` §14) and the reasons the spec fixes.

use std::fmt;

/// A close code of the agent link (and, for 4001/4020, the relay link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// Intentional agent disconnect.
    Normal,
    /// Orchestrator shutdown.
    GoingAway,
    /// Relay or peer authentication failure.
    Unauthorized,
    /// No `auth.request` within 5 s or no `agent.register` within 10 s.
    AuthTimeout,
    /// Malformed or schema-invalid frame, unknown type, wrong first frame after auth, agent
    /// id collision, rate-limit disconnect, oversized frame.
    InvalidMessage,
    /// No heartbeat for 180 s.
    HeartbeatTimeout,
    /// `protocolVersion` below the minimum.
    ProtocolError,
    /// Unexpected server error.
    InternalError,
    /// Bad, expired or revoked token, or a failed registration gate. Permanent: the agent
    /// never reconnects.
    AgentAuthFailed,
    /// Reserved.
    ClusterNameConflict,
    /// Reserved (relay).
    PlanLimit,
    /// Reserved.
    RunNotFound,
    /// A `job.dispatch` was not answered in time.
    DispatchAckTimeout,
}

impl CloseCode {
    pub const ALL: [CloseCode; 13] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::Unauthorized,
        CloseCode::AuthTimeout,
        CloseCode::InvalidMessage,
        CloseCode::HeartbeatTimeout,
        CloseCode::ProtocolError,
        CloseCode::InternalError,
        CloseCode::AgentAuthFailed,
        CloseCode::ClusterNameConflict,
        CloseCode::PlanLimit,
        CloseCode::RunNotFound,
        CloseCode::DispatchAckTimeout,
    ];

    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Unauthorized => 4001,
            CloseCode::AuthTimeout => 4002,
            CloseCode::InvalidMessage => 4003,
            CloseCode::HeartbeatTimeout => 4004,
            CloseCode::ProtocolError => 4005,
            CloseCode::InternalError => 4006,
            CloseCode::AgentAuthFailed => 4010,
            CloseCode::ClusterNameConflict => 4011,
            CloseCode::PlanLimit => 4020,
            CloseCode::RunNotFound => 4030,
            CloseCode::DispatchAckTimeout => 4031,
        }
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The spec's name for the code.
    pub fn name(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::GoingAway => "going away",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::AuthTimeout => "auth timeout",
            CloseCode::InvalidMessage => "invalid message",
            CloseCode::HeartbeatTimeout => "heartbeat timeout",
            CloseCode::ProtocolError => "protocol error",
            CloseCode::InternalError => "internal error",
            CloseCode::AgentAuthFailed => "agent auth failed",
            CloseCode::ClusterNameConflict => "cluster name conflict",
            CloseCode::PlanLimit => "plan limit",
            CloseCode::RunNotFound => "run not found",
            CloseCode::DispatchAckTimeout => "dispatch ack timeout",
        }
    }

    /// Whether an agent receiving this close must stop reconnecting for the life of the
    /// process (§13). Only 4010, with or without a preceding `auth.failure`.
    pub fn is_permanent_for_agent(self) -> bool {
        self == CloseCode::AgentAuthFailed
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.name())
    }
}

/// Whether an agent must stop reconnecting after a close with this raw code; unknown codes
/// are transient.
pub fn is_permanent_close(code: u16) -> bool {
    CloseCode::from_code(code).is_some_and(CloseCode::is_permanent_for_agent)
}

/// WebSocket limits a close reason to 123 bytes of UTF-8 (125-byte control payload minus
/// the code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// `reason` cut to [`MAX_CLOSE_REASON_BYTES`] at a character boundary.
pub fn truncate_close_reason(reason: &str) -> &str {
    truncate_utf8(reason, MAX_CLOSE_REASON_BYTES)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Close and failure reasons whose text the spec fixes.
pub mod reason {
    pub const AUTH_TIMEOUT: &str = "Auth timeout";
    pub const REGISTRATION_TIMEOUT: &str = "Registration timeout";
    pub const FIRST_MESSAGE_AUTH: &str = "First message must be auth.request";
    pub const FIRST_MESSAGE_REGISTER: &str = "First message must be agent.register";
    pub const INVALID_TOKEN: &str = "Invalid or expired token";
    pub const AGENT_DISCONNECT: &str = "Agent disconnect";
    pub const MESSAGE_TOO_LARGE: &str = "message too large";
    pub const RATE_LIMIT: &str = "rate limit";
}
