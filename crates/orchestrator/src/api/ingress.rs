//! Webhook ingress (`orchestrator.md` §4): verify, persist, answer. Processing happens later
//! in the inbox workers ([`crate::pipeline`]); the answer is sent only after the insert
//! committed, so a crash after 202 loses nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use kici_engine::api::{WebhookAnswer, WebhookStatus};
use kici_engine::provider::{self, Headers};
use kici_engine::signature;
use kici_store::{InsertOutcome, NewDelivery};

use super::AppState;
use crate::config::SourceKind;
use crate::error::ApiError;
use crate::provider::IngressLimits;

/// Headers kept with an inbox item: what normalising needs later.
const KEPT_HEADERS: &[&str] = &[
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type",
    "content-type",
];

/// The request headers as the engine sees them (non-UTF-8 values are dropped).
fn engine_headers(headers: &HeaderMap) -> Headers {
    Headers::from_pairs(
        headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
    )
}

/// `POST /webhook/{org_id}/github` (§4.1).
pub async fn github(
    State(state): State<AppState>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let metrics = state.metrics();
    let headers = engine_headers(&headers);
    let app = provider::github_app_headers(&headers).map_err(|e| {
        metrics.webhook_rejected("bad_request");
        ApiError::BadRequest(e.to_string())
    })?;
    let routing_key = app.routing_key();
    let source = state
        .inner
        .sources
        .get(&routing_key)
        .filter(|s| s.org_id == org_id)
        .ok_or_else(|| {
            metrics.webhook_rejected("unknown_source");
            ApiError::NotFound(format!(
                "no GitHub source for {routing_key} in org {org_id}"
            ))
        })?;
    let secrets = source.webhook_secrets();
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.expose().as_bytes()).collect();
    signature::verify_github_signature(
        headers.get(signature::GITHUB_SIGNATURE_HEADER),
        &body,
        &secrets,
    )
    .map_err(|e| {
        metrics.webhook_rejected("signature");
        tracing::info!(%routing_key, delivery = %app.delivery_id, error = %e, "webhook refused");
        ApiError::Unauthorized(e.to_string())
    })?;
    if provider::is_unstored_github_event(&app.event) {
        return Ok(answer(StatusCode::OK, WebhookStatus::Ignored, None));
    }
    let payload = provider::parse_body(&body).map_err(|e| {
        metrics.webhook_rejected("malformed_json");
        ApiError::BadRequest(e.to_string())
    })?;
    let mut delivery = NewDelivery::inline(
        &source.org_id,
        &routing_key,
        &app.delivery_id,
        "direct",
        source.provider(),
        &app.event,
        body.to_vec(),
        crate::now_ms(),
    );
    delivery.source_id = Some(source.id.clone());
    delivery.action = payload
        .get("action")
        .and_then(|a| a.as_str())
        .map(str::to_string);
    delivery.headers = serde_json::Value::Object(headers.retain_for_inbox(KEPT_HEADERS));

    match state.store().insert_delivery(&delivery).await? {
        InsertOutcome::Inserted { id } | InsertOutcome::Revived { id } => {
            metrics.webhook_received("direct", &app.event);
            state.inner.inbox_wake.notify_one();
            Ok(answer(
                StatusCode::ACCEPTED,
                WebhookStatus::Accepted,
                Some(id),
            ))
        }
        InsertOutcome::Duplicate { .. } => {
            metrics.dedup_hit();
            Ok(answer(StatusCode::OK, WebhookStatus::Duplicate, None))
        }
    }
}

fn answer(
    status: StatusCode,
    webhook: WebhookStatus,
    id: Option<String>,
) -> (StatusCode, Json<WebhookAnswer>) {
    (
        status,
        Json(WebhookAnswer {
            status: webhook,
            id,
        }),
    )
}

/// `POST /webhook/{org_id}/generic/{source_name}` (§4.2): generic, universal-git and local
/// sources. Steps in the spec's order: source, payload cap, rate limit, verification, event
/// name and filter, delivery id, inbox.
pub async fn generic(
    State(state): State<AppState>,
    Path((org_id, source_name)): Path<(String, String)>,
    request: Request,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let metrics = state.metrics();
    let routing_key = provider::generic_routing_key(&org_id, &source_name);
    let source = state
        .sources()
        .get(&routing_key)
        .filter(|s| s.enabled && !matches!(s.kind, SourceKind::GitHubApp { .. }))
        .ok_or_else(|| {
            metrics.webhook_rejected("unknown_source");
            ApiError::NotFound(format!("no source {source_name} in org {org_id}"))
        })?;
    let limits = match &source.kind {
        SourceKind::Git(g) => g.limits,
        SourceKind::Generic(g) => g.limits,
        SourceKind::Local(l) => l.limits,
        SourceKind::GitHubApp { .. } => IngressLimits::default(),
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, limits.max_payload_bytes)
        .await
        .map_err(|_| {
            metrics.webhook_rejected("too_large");
            ApiError::PayloadTooLarge(format!(
                "the body exceeds this source's limit of {} bytes",
                limits.max_payload_bytes
            ))
        })?;
    if let Err(retry_after_secs) = state.inner.rate_limits.check(
        &routing_key,
        limits.rate_limit_rpm,
        std::time::Instant::now(),
    ) {
        metrics.webhook_rejected("rate_limited");
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    let headers = engine_headers(&parts.headers);

    // Without a known peer (no connect info) the address is unspecified: never loopback,
    // never in an allowlist, so `none` and `ip_allowlist` fail closed.
    let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let client_ip = signature::client_ip(
        peer,
        headers.get("x-forwarded-for"),
        &state.inner.trusted_proxies,
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let secrets = source.webhook_secrets();
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.expose().as_bytes()).collect();
    let facts = signature::RequestFacts {
        headers: &headers,
        body: &body,
        client_ip,
    };
    let verified = match &source.kind {
        SourceKind::Generic(g) => signature::verify_request(
            &g.verification,
            &facts,
            &secrets,
            signature::NonePolicy::default(),
        ),
        SourceKind::Local(l) => signature::verify_request(
            &l.verification,
            &facts,
            &secrets,
            signature::NonePolicy {
                source_is_local: true,
                allow_remote_unauthenticated: l.allow_remote_unauthenticated,
            },
        ),
        SourceKind::Git(g) => match (g.preset.signature_scheme(), &g.verification) {
            (Some(scheme), _) => signature::verify_preset(scheme, &headers, &body, &secrets),
            (None, Some(method)) => signature::verify_request(
                method,
                &facts,
                &secrets,
                signature::NonePolicy::default(),
            ),
            (None, None) => Err(signature::VerifyError::NoSecret),
        },
        SourceKind::GitHubApp { .. } => Err(signature::VerifyError::NoSecret),
    };
    verified.map_err(|e| {
        metrics.webhook_rejected("signature");
        tracing::info!(%routing_key, error = %e, "webhook refused");
        ApiError::Unauthorized(e.to_string())
    })?;

    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let (event, keep, idempotency, preset) = match &source.kind {
        SourceKind::Generic(g) => {
            let event = provider::generic_event_name(&g.events, &headers, parsed.as_ref());
            if !provider::is_allowed_event(&g.events, &event) {
                return Ok(answer(StatusCode::OK, WebhookStatus::Filtered, None));
            }
            // Everything but the stripped headers, so a later normalisation sees what the
            // sender sent (`authorization` and `cookie` are never stored anyway).
            let keep: Vec<String> = headers
                .iter()
                .map(|(k, _)| k.to_string())
                .filter(|k| !g.strip_headers.iter().any(|s| s.eq_ignore_ascii_case(k)))
                .collect();
            let idempotency = (
                g.events.idempotency_key_header.clone(),
                g.events.idempotency_key_path.clone(),
            );
            (event, keep, idempotency, None)
        }
        SourceKind::Local(_) => {
            let event = headers
                .get_non_empty("x-event-type")
                .ok_or_else(|| {
                    metrics.webhook_rejected("bad_request");
                    ApiError::BadRequest("missing header x-event-type".into())
                })?
                .to_string();
            let keep = [
                "x-event-type",
                "content-type",
                "x-delivery-id",
                "x-request-id",
            ]
            .map(String::from)
            .to_vec();
            (event, keep, (None, None), None)
        }
        SourceKind::Git(g) => {
            let header = match (&g.custom_mapping, g.preset.event_header()) {
                (Some(mapping), _) => Some(mapping.event_header.as_str()),
                (None, header) => header,
            };
            let event = header
                .and_then(|h| headers.get_non_empty(h))
                .ok_or_else(|| {
                    metrics.webhook_rejected("bad_request");
                    ApiError::BadRequest(format!(
                        "missing event header {}",
                        header.unwrap_or("(none configured)")
                    ))
                })?
                .to_string();
            let mut keep: Vec<String> = ["content-type", "x-delivery-id", "x-request-id"]
                .map(String::from)
                .to_vec();
            keep.extend(header.map(String::from));
            keep.extend(g.preset.delivery_header().map(String::from));
            (event, keep, (None, None), Some(g.preset))
        }
        SourceKind::GitHubApp { .. } => {
            return Err(ApiError::NotFound("no such generic source".into()));
        }
    };
    let raw_id = provider::raw_delivery_id(
        &headers,
        parsed.as_ref(),
        idempotency.0.as_deref(),
        idempotency.1.as_deref(),
        preset,
    )
    .unwrap_or_else(kici_store::new_id);
    let delivery_id = provider::generic_delivery_id(&routing_key, &raw_id);
    let mut delivery = NewDelivery::inline(
        &source.org_id,
        &routing_key,
        &delivery_id,
        "direct",
        source.provider(),
        &event,
        body.to_vec(),
        crate::now_ms(),
    );
    delivery.source_id = Some(source.id.clone());
    delivery.action = parsed
        .as_ref()
        .and_then(|p| p.get("action"))
        .and_then(|a| a.as_str())
        .map(str::to_string);
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    delivery.headers = serde_json::Value::Object(headers.retain_for_inbox(&keep));
    store_delivery(&state, &delivery, &event).await
}

/// Inserts a verified delivery and answers per §3.2.
async fn store_delivery(
    state: &AppState,
    delivery: &NewDelivery,
    event: &str,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let metrics = state.metrics();
    match state.store().insert_delivery(delivery).await? {
        InsertOutcome::Inserted { id } | InsertOutcome::Revived { id } => {
            metrics.webhook_received("direct", event);
            state.inner.inbox_wake.notify_one();
            Ok(answer(
                StatusCode::ACCEPTED,
                WebhookStatus::Accepted,
                Some(id),
            ))
        }
        InsertOutcome::Duplicate { .. } => {
            metrics.dedup_hit();
            Ok(answer(StatusCode::OK, WebhookStatus::Duplicate, None))
        }
    }
}
