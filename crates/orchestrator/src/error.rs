//! The two error types: [`ApiError`], every refusal an HTTP handler can answer with, mapped
//! to a response in exactly one place; and [`Error`], why the server could not start.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kici_engine::api::ErrorBody;

/// An HTTP refusal. Messages never carry secrets or the values a sender presented.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed request (headers, JSON).
    #[error("{0}")]
    BadRequest(String),
    /// 401: signature or token check failed.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but the role lacks the permission.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: the name (or id) is taken, or the state forbids the change.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body exceeds the source's payload limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429 with `Retry-After`: the source's rate limit is spent.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 500: something on our side failed; the message is safe to show.
    #[error("{0}")]
    Internal(String),
    /// 409 `run_terminal`: a cancel of a run (or job) that already ended (§13).
    #[error("{0}")]
    RunTerminal(String),
    /// 503 with `Retry-After: 5`: the database did not answer.
    #[error("temporarily unavailable")]
    Unavailable(#[source] kici_store::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RunTerminal(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The machine code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Internal(_) => "internal",
            ApiError::RunTerminal(_) => "run_terminal",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<kici_store::Error> for ApiError {
    fn from(e: kici_store::Error) -> Self {
        ApiError::Unavailable(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Unavailable(source) = &self {
            tracing::warn!(error = %source, "database unavailable while answering a request");
        }
        let status = self.status();
        let body = ErrorBody::new(self.code(), self.to_string());
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = &self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// Why [`crate::Orchestrator::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Store(#[from] kici_store::Error),
    #[error(transparent)]
    Startup(#[from] crate::startup::StartupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "KICI_AGENT_AUTH=none is refused on the non-loopback address {addr} unless KICI_AGENT_AUTH_NONE_ALLOW_REMOTE=true"
    )]
    UnauthenticatedAgentsOnRemoteBind { addr: std::net::SocketAddr },
}
