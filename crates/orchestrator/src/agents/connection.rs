//! One task per agent connection (mini-redis style): the handshake of `protocol.md` §3,
//! then an event loop over the socket, the connection's bounded outgoing queue, a timer
//! (heartbeat monitor, `frames.ack` flushing) and the server's shutdown token.
//!
//! Nothing read from the network can panic this task: every frame goes through
//! `decode_agent_frame`, and every refusal ends in a close code of §14.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use kici_engine::labels;
use kici_engine::protocol::close::{reason, truncate_close_reason};
use kici_engine::protocol::rate::{Admission, RateLimiter};
use kici_engine::protocol::reliability::{CAPABILITY_SEQ_ACK, SeqDecision, seq_decision};
use kici_engine::protocol::{
    AgentMessage, AgentRegister, AuthFailure, AuthSuccess, CloseCode, ErrorCode, ErrorMessage,
    FrameError, FramesAck, OrchestratorMessage, RegisterAck, decode_agent_frame, limits,
};
use kici_store::{AgentToken, AgentTokenKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::liveness;
use super::registry::{AgentEntry, IdCollision, Outgoing};
use super::reports::{self, AgentCtx, Applied};
use crate::api::AppState;
use crate::config::AgentAuth;

/// Frames queued for one connection before senders see it as full.
const OUTGOING_CAPACITY: usize = 256;
/// How often the loop wakes without traffic (ack flushing, heartbeat monitor).
const TICK: Duration = Duration::from_millis(250);
const PRIVILEGED_ROOT: &str = "kici:privileged:root";

/// `GET /ws`: upgrades and hands the socket to its connection task.
pub async fn ws_handler(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    if let Some(peer) = peer
        && plain_from_remote(peer, &headers)
    {
        // `protocol.md` §2: once per such connection; secrets travel in `job.dispatch`.
        tracing::warn!(%peer, "agent connecting over plain ws:// from a non-loopback address; job secrets travel unencrypted, use wss://");
    }
    ws.max_message_size(limits::MAX_FRAME_BYTES)
        .max_frame_size(limits::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve(state, socket))
}

/// Whether an agent connection is plain `ws://` from a non-loopback peer (`protocol.md` §2):
/// the listener itself never speaks TLS, so only a TLS-terminating proxy that says so
/// (`X-Forwarded-Proto: https`) makes a remote connection secure. A proxy on loopback is
/// indistinguishable from a local agent and is not warned about.
pub(crate) fn plain_from_remote(peer: SocketAddr, headers: &HeaderMap) -> bool {
    if peer.ip().to_canonical().is_loopback() {
        return false;
    }
    let forwarded_tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| {
            let proto = proto.trim();
            proto.eq_ignore_ascii_case("https") || proto.eq_ignore_ascii_case("wss")
        });
    !forwarded_tls
}

/// How a connection ended.
enum Ended {
    /// The server is shutting down: jobs are recovered at the next start, not now.
    Shutdown,
    /// The agent went away, or we closed it: its jobs enter recovery.
    Gone,
}

/// What the loop does after a frame.
enum Flow {
    Continue,
    Close(CloseCode, String),
}

async fn serve(state: AppState, socket: WebSocket) {
    let (shutdown, _tracker_guard) = state.agents().connection_guard();
    let mut socket = socket;
    let Some(session) = handshake(&state, &mut socket, &shutdown).await else {
        return;
    };
    let Session {
        ctx,
        mut rx,
        seq_ack,
        instance_id,
        mut last_applied,
    } = session;
    tracing::info!(agent = %ctx.agent_id, connection = ctx.connection_id, "agent registered");
    state
        .metrics()
        .set_agents_connected(state.agents().connected());
    // A job bound to this agent, or the queue, may have work for it right away (§3.1 step 4).
    state.wake_dispatch();

    let mut conn = ConnectionLoop {
        state: &state,
        ctx: &ctx,
        seq_ack,
        last_applied,
        ack_pending: false,
        last_ack: Instant::now(),
        limiter: RateLimiter::new(0),
        started: Instant::now(),
        last_seen: Instant::now(),
        unhealthy_logged: false,
    };
    let ended = conn.run(&mut socket, &mut rx, &shutdown).await;
    last_applied = conn.last_applied;

    if let Some(instance) = &instance_id
        && seq_ack
        && let Err(e) = state
            .store()
            .save_agent_instance(
                &ctx.agent_id,
                instance,
                i64::try_from(last_applied).unwrap_or(i64::MAX),
                &state.inner.config.node_id,
                crate::now_ms(),
            )
            .await
    {
        tracing::warn!(agent = %ctx.agent_id, error = %e, "could not persist the last applied frame");
    }
    let removed = state.agents().remove(&ctx.agent_id, ctx.connection_id);
    state
        .metrics()
        .set_agents_connected(state.agents().connected());
    match (ended, removed) {
        (Ended::Shutdown, _) => {
            tracing::info!(agent = %ctx.agent_id, "agent connection closed for shutdown");
        }
        (Ended::Gone, Some(entry)) => {
            tracing::info!(agent = %ctx.agent_id, jobs = entry.active.len(), "agent disconnected");
            liveness::agent_disconnected(
                &state,
                &entry.agent_id,
                entry.scaler_managed,
                &entry.active,
            )
            .await;
            state.wake_dispatch();
        }
        // A newer connection of the same agent took over its entry and its jobs.
        (Ended::Gone, None) => {}
    }
}

/// A registered connection.
struct Session {
    ctx: AgentCtx,
    rx: mpsc::Receiver<Outgoing>,
    seq_ack: bool,
    instance_id: Option<String>,
    last_applied: u64,
}

/// The next text frame before registration; `Err(())` for a non-text frame, `None` when
/// the socket closed or the server shuts down.
async fn next_text(
    socket: &mut WebSocket,
    shutdown: &CancellationToken,
) -> Option<Result<String, ()>> {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return None,
            message = socket.recv() => message,
        };
        match message? {
            Ok(Message::Text(text)) => return Some(Ok(text.as_str().to_string())),
            Ok(Message::Binary(_)) => return Some(Err(())),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}

async fn send(socket: &mut WebSocket, message: &OrchestratorMessage) -> bool {
    socket
        .send(Message::Text(message.encode().into()))
        .await
        .is_ok()
}

async fn close(socket: &mut WebSocket, code: CloseCode, text: &str) {
    let frame = CloseFrame {
        code: code.code(),
        reason: truncate_close_reason(text).to_string().into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn auth_failure(socket: &mut WebSocket, code: CloseCode, text: &str) {
    let failure = OrchestratorMessage::AuthFailure(AuthFailure {
        reason: text.to_string(),
    });
    send(socket, &failure).await;
    close(socket, code, text).await;
}

async fn invalid(socket: &mut WebSocket, code: CloseCode, text: &str) {
    let error = OrchestratorMessage::Error(ErrorMessage {
        code: ErrorCode::InvalidMessage,
        message: text.to_string(),
    });
    send(socket, &error).await;
    close(socket, code, text).await;
}

/// §3: authentication (token mode), registration and the gates of §3.3. `None` when the
/// connection was refused (and closed) or went away.
async fn handshake(
    state: &AppState,
    socket: &mut WebSocket,
    shutdown: &CancellationToken,
) -> Option<Session> {
    let config = &state.inner.config.agents;
    let token = match config.auth {
        AgentAuth::None { .. } => None,
        AgentAuth::Token => Some(authenticate(state, socket, shutdown).await?),
    };

    let first = match tokio::time::timeout(config.registration_timeout, next_text(socket, shutdown))
        .await
    {
        Err(_) => {
            close(socket, CloseCode::AuthTimeout, reason::REGISTRATION_TIMEOUT).await;
            return None;
        }
        Ok(None) => return None,
        Ok(Some(frame)) => frame,
    };
    let register = match first.map(|text| decode_agent_frame(&text)) {
        Ok(Ok(AgentMessage::AgentRegister(register))) => *register,
        _ => {
            invalid(
                socket,
                CloseCode::InvalidMessage,
                reason::FIRST_MESSAGE_REGISTER,
            )
            .await;
            return None;
        }
    };
    if let Err((code, text)) = registration_gates(&register, token.as_ref()) {
        tracing::warn!(agent = %register.agent_id, code = code.code(), reason = %text, "agent registration refused");
        invalid(socket, code, &text).await;
        return None;
    }

    let mut effective = register.labels.clone();
    let mandatory = token
        .as_ref()
        .map(|t| t.mandatory_labels.clone())
        .unwrap_or_default();
    for label in &mandatory {
        if !effective.contains(label) {
            effective.push(label.clone());
        }
    }
    let scaler_managed = token
        .as_ref()
        .is_some_and(|t| t.kind == AgentTokenKind::Ephemeral);
    let seq_ack = register.has_capability(CAPABILITY_SEQ_ACK) && register.instance_id.is_some();
    let now = crate::now_ms();
    let mut last_applied = 0;
    if let (true, Some(instance)) = (seq_ack, &register.instance_id) {
        match state
            .store()
            .agent_instance_seq(&register.agent_id, instance)
            .await
        {
            Ok(seq) => last_applied = seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            Err(e) => {
                tracing::error!(agent = %register.agent_id, error = %e, "cannot read the agent's last applied frame");
                close(socket, CloseCode::InternalError, "internal error").await;
                return None;
            }
        }
        if let Err(e) = state
            .store()
            .save_agent_instance(
                &register.agent_id,
                instance,
                i64::try_from(last_applied).unwrap_or(i64::MAX),
                &state.inner.config.node_id,
                now,
            )
            .await
        {
            tracing::warn!(agent = %register.agent_id, error = %e, "cannot record the agent instance");
        }
    }

    let (tx, rx) = mpsc::channel(OUTGOING_CAPACITY);
    let connection_id = state.agents().next_connection_id();
    let entry = AgentEntry {
        connection_id,
        agent_id: register.agent_id.clone(),
        token_id: token.as_ref().map(|t| t.id.clone()),
        labels: effective.clone(),
        mandatory_labels: mandatory,
        max_concurrency: register.max_concurrency_or_default(),
        platform: register.platform_or_default().to_string(),
        arch: register.arch_or_default().to_string(),
        version: register.version.clone(),
        hostname: register.hostname.clone(),
        scaler_managed,
        has_capabilities: register
            .capabilities
            .as_ref()
            .is_some_and(|c| !c.is_empty()),
        connected_at: now,
        last_heartbeat_at: None,
        draining: false,
        paused_until: 0,
        last_dispatch: 0,
        active: BTreeSet::new(),
        sender: tx,
    };
    let replaced = match state.agents().register(entry) {
        Ok(replaced) => replaced,
        Err(IdCollision) => {
            tracing::warn!(agent = %register.agent_id, "agent id already connected with another token");
            invalid(
                socket,
                CloseCode::InvalidMessage,
                "agentId is connected with another token",
            )
            .await;
            return None;
        }
    };

    let ack = OrchestratorMessage::RegisterAck(RegisterAck {
        agent_id: register.agent_id.clone(),
        labels: effective,
        scaler_managed,
        pending_dispatch: None,
        capabilities: Some(vec![CAPABILITY_SEQ_ACK.to_string()]),
        acked_seq: seq_ack.then_some(last_applied),
        job_heartbeat_interval_ms: u64::try_from(config.job_heartbeat_interval.as_millis()).ok(),
    });
    let ctx = AgentCtx {
        agent_id: register.agent_id.clone(),
        connection_id,
    };
    if !send(socket, &ack).await {
        state.agents().remove(&ctx.agent_id, connection_id);
        return None;
    }
    if let Some((old_sender, old_jobs)) = replaced {
        let _ = old_sender.try_send(Outgoing::Close(
            CloseCode::InvalidMessage,
            "replaced by a newer connection of this agent".to_string(),
        ));
        liveness::adopt_or_recover(state, &ctx, scaler_managed, &old_jobs, &register).await;
    }
    liveness::reconcile(state, &ctx, &register).await;
    Some(Session {
        ctx,
        rx,
        seq_ack,
        instance_id: register.instance_id.clone(),
        last_applied,
    })
}

/// Token mode (§3.1 steps 1–2). Sends `auth.success` and returns the token record, or
/// refuses and closes.
async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
    shutdown: &CancellationToken,
) -> Option<AgentToken> {
    let timeout = state.inner.config.agents.auth_timeout;
    let first = match tokio::time::timeout(timeout, next_text(socket, shutdown)).await {
        Err(_) => {
            close(socket, CloseCode::AuthTimeout, reason::AUTH_TIMEOUT).await;
            return None;
        }
        Ok(None) => return None,
        Ok(Some(frame)) => frame,
    };
    let request = match first.map(|text| decode_agent_frame(&text)) {
        Ok(Ok(AgentMessage::AuthRequest(request))) => request,
        Ok(Err(e @ FrameError::ProtocolVersion { .. })) => {
            auth_failure(socket, CloseCode::ProtocolError, &e.to_string()).await;
            return None;
        }
        _ => {
            auth_failure(
                socket,
                CloseCode::AgentAuthFailed,
                reason::FIRST_MESSAGE_AUTH,
            )
            .await;
            return None;
        }
    };
    // Only the token's hash is ever looked up or stored; the token itself is never logged.
    match state
        .store()
        .authenticate_agent_token(request.token.expose(), crate::now_ms())
        .await
    {
        Ok(Some(token)) => {
            let success = OrchestratorMessage::AuthSuccess(AuthSuccess {
                connection_id: kici_store::new_id(),
            });
            if !send(socket, &success).await {
                return None;
            }
            Some(token)
        }
        Ok(None) => {
            tracing::warn!("agent presented an invalid or expired token");
            auth_failure(socket, CloseCode::AgentAuthFailed, reason::INVALID_TOKEN).await;
            None
        }
        // A token row whose label columns are malformed fails closed (§3.1).
        Err(kici_store::Error::Corrupt { column, .. }) => {
            tracing::error!(
                column,
                "agent token row is corrupt; refusing the connection"
            );
            auth_failure(socket, CloseCode::AgentAuthFailed, reason::INVALID_TOKEN).await;
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "agent token lookup failed");
            close(socket, CloseCode::InternalError, "internal error").await;
            None
        }
    }
}

/// The gates of §3.3 that need no registry (0, 1, 2, 4); gate 3 is the registry's.
fn registration_gates(
    register: &AgentRegister,
    token: Option<&AgentToken>,
) -> Result<(), (CloseCode, String)> {
    let token_labels = token.and_then(|t| t.labels.as_deref());
    let mandatory = token
        .map(|t| t.mandatory_labels.as_slice())
        .unwrap_or_default();
    let privileged = token.is_some_and(|t| t.privileged_root)
        || register
            .labels
            .iter()
            .chain(token_labels.unwrap_or_default())
            .chain(mandatory)
            .any(|l| l == PRIVILEGED_ROOT);
    if privileged && register.running_as_uid != Some(0) {
        return Err((
            CloseCode::AgentAuthFailed,
            "kici:privileged:root requires an agent running as root".to_string(),
        ));
    }
    if let Some(allowed) = token_labels {
        let outside: Vec<&str> = register
            .labels
            .iter()
            .filter(|l| {
                !["kici:os:", "kici:arch:", "kici:host:"]
                    .iter()
                    .any(|p| l.starts_with(p))
                    && !allowed.contains(*l)
            })
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            return Err((
                CloseCode::AgentAuthFailed,
                format!("labels not allowed by the token: {}", outside.join(", ")),
            ));
        }
    }
    if let Some(token) = token
        && token.kind == AgentTokenKind::Ephemeral
        && let Some(bound) = &token.bound_agent_id
        && bound != &register.agent_id
    {
        return Err((
            CloseCode::AgentAuthFailed,
            "the token is bound to another agent id".to_string(),
        ));
    }
    let ephemeral = token.is_some_and(|t| t.kind == AgentTokenKind::Ephemeral);
    let reserved = labels::disallowed_reserved_labels(&register.labels, token_labels, ephemeral);
    if !reserved.is_empty() {
        return Err((
            CloseCode::AgentAuthFailed,
            format!("reserved labels not allowed: {}", reserved.join(", ")),
        ));
    }
    Ok(())
}

/// The event loop of a registered connection.
struct ConnectionLoop<'a> {
    state: &'a AppState,
    ctx: &'a AgentCtx,
    seq_ack: bool,
    last_applied: u64,
    /// Reliable frames were applied since the last `frames.ack`.
    ack_pending: bool,
    last_ack: Instant,
    limiter: RateLimiter,
    /// Origin of the limiter's monotonic milliseconds.
    started: Instant,
    last_seen: Instant,
    unhealthy_logged: bool,
}

impl ConnectionLoop<'_> {
    async fn run(
        &mut self,
        socket: &mut WebSocket,
        rx: &mut mpsc::Receiver<Outgoing>,
        shutdown: &CancellationToken,
    ) -> Ended {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    close(socket, CloseCode::GoingAway, "orchestrator shutting down").await;
                    return Ended::Shutdown;
                }
                outgoing = rx.recv() => match outgoing {
                    Some(Outgoing::Frame(message)) => {
                        if !send(socket, &message).await {
                            return Ended::Gone;
                        }
                    }
                    Some(Outgoing::Close(code, text)) => {
                        tracing::info!(agent = %self.ctx.agent_id, code = code.code(), reason = %text, "closing agent connection");
                        self.flush_ack(socket).await;
                        close(socket, code, &text).await;
                        return Ended::Gone;
                    }
                    // The registry dropped this connection's sender: it was replaced.
                    None => {
                        close(socket, CloseCode::InvalidMessage, "replaced by a newer connection of this agent").await;
                        return Ended::Gone;
                    }
                },
                message = socket.recv() => {
                    let flow = match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ended::Gone,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                            self.last_seen = Instant::now();
                            Flow::Continue
                        }
                        Some(Ok(Message::Binary(_))) => Flow::Close(CloseCode::InvalidMessage, "binary frames are not part of the protocol".to_string()),
                        Some(Ok(Message::Text(text))) => self.on_text(socket, text.as_str()).await,
                    };
                    if let Flow::Close(code, text) = flow {
                        tracing::warn!(agent = %self.ctx.agent_id, code = code.code(), reason = %text, "closing agent connection");
                        self.flush_ack(socket).await;
                        if code == CloseCode::InvalidMessage {
                            invalid(socket, code, &text).await;
                        } else {
                            close(socket, code, &text).await;
                        }
                        return Ended::Gone;
                    }
                }
                _ = tick.tick() => {
                    if self.ack_pending && self.last_ack.elapsed().as_millis() >= u128::from(kici_engine::protocol::reliability::ACK_INTERVAL_MS) {
                        self.flush_ack(socket).await;
                    }
                    if let Some(code) = self.check_heartbeat() {
                        close(socket, code, "heartbeat timeout").await;
                        return Ended::Gone;
                    }
                }
            }
        }
    }

    /// §10 monitor: unhealthy after 90 s of silence (logged once), closed at 180 s.
    fn check_heartbeat(&mut self) -> Option<CloseCode> {
        let config = &self.state.inner.config.agents;
        let silent = self.last_seen.elapsed();
        if silent >= config.heartbeat_timeout {
            tracing::warn!(agent = %self.ctx.agent_id, silent_ms = silent.as_millis() as u64, "agent heartbeat timeout");
            return Some(CloseCode::HeartbeatTimeout);
        }
        if silent >= config.heartbeat_unhealthy_after && !self.unhealthy_logged {
            self.unhealthy_logged = true;
            tracing::warn!(agent = %self.ctx.agent_id, silent_ms = silent.as_millis() as u64, "agent unhealthy: no heartbeat");
        }
        None
    }

    async fn flush_ack(&mut self, socket: &mut WebSocket) {
        if !self.seq_ack || !self.ack_pending {
            return;
        }
        let ack = OrchestratorMessage::FramesAck(FramesAck {
            up_to: self.last_applied,
        });
        send(socket, &ack).await;
        self.ack_pending = false;
        self.last_ack = Instant::now();
    }

    fn mono_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Flow {
        let message = match decode_agent_frame(text) {
            Ok(message) => message,
            Err(e) => return Flow::Close(e.close_code(), e.close_reason()),
        };
        self.last_seen = Instant::now();
        self.unhealthy_logged = false;
        if message.is_rate_limited() {
            // §15 (ours): stop reading until both buckets have room; no frame is dropped.
            let mut throttled_ms: u64 = 0;
            loop {
                match self.limiter.admit(text.len(), self.mono_ms()) {
                    Admission::Admit => break,
                    Admission::TooLarge => {
                        return Flow::Close(
                            CloseCode::InvalidMessage,
                            reason::MESSAGE_TOO_LARGE.to_string(),
                        );
                    }
                    Admission::WaitMs(ms) => {
                        throttled_ms = throttled_ms.saturating_add(ms);
                        if throttled_ms > limits::RATE_THROTTLE_CLOSE_AFTER_MS {
                            return Flow::Close(
                                CloseCode::InvalidMessage,
                                reason::RATE_LIMIT.to_string(),
                            );
                        }
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                }
            }
        }
        let seq = message.seq();
        if self.seq_ack
            && message.is_reliable()
            && seq_decision(seq, self.last_applied) == SeqDecision::Duplicate
        {
            // Replayed after a reconnect and already applied: acknowledge again only.
            self.ack_pending = true;
            return Flow::Continue;
        }
        let applied = match reports::apply(self.state, self.ctx, message).await {
            Ok(applied) => applied,
            Err(reports::Refusal::Invalid(text)) => {
                return Flow::Close(CloseCode::InvalidMessage, text);
            }
            Err(reports::Refusal::Internal(e)) => {
                // Not acknowledged: the agent replays the frame after reconnecting.
                tracing::error!(agent = %self.ctx.agent_id, error = %e, "could not apply an agent frame");
                return Flow::Close(CloseCode::InternalError, "internal error".to_string());
            }
        };
        if self.seq_ack
            && let Some(seq) = seq
        {
            self.last_applied = self.last_applied.max(seq);
            self.ack_pending = true;
            if applied == Applied::Terminal {
                self.flush_ack(socket).await;
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ws_warning_is_for_remote_peers_without_tls_in_front() {
        let none = HeaderMap::new();
        let peer = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(!plain_from_remote(peer("127.0.0.1:5000"), &none));
        assert!(!plain_from_remote(peer("[::1]:5000"), &none));
        assert!(!plain_from_remote(peer("[::ffff:127.0.0.1]:5000"), &none));
        assert!(plain_from_remote(peer("10.0.0.7:5000"), &none));
        assert!(plain_from_remote(peer("[2001:db8::1]:5000"), &none));
        let mut tls = HeaderMap::new();
        tls.insert("x-forwarded-proto", "https".parse().expect("value"));
        assert!(!plain_from_remote(peer("10.0.0.7:5000"), &tls));
        let mut plain = HeaderMap::new();
        plain.insert("x-forwarded-proto", "http".parse().expect("value"));
        assert!(plain_from_remote(peer("10.0.0.7:5000"), &plain));
    }
}
