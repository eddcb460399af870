//! The HTTP exchange behind the job runtime's global `fetch` (sdk.md §19): one request, no
//! redirects followed (the JavaScript side follows them, so it can apply the fetch rules for
//! methods, bodies and `Authorization` across origins), the whole body buffered up to
//! [`MAX_BODY_BYTES`]. TLS uses the system's root certificates. Runs on its own thread; the
//! caller hands it a flag that stops the body download when the request is aborted.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// Largest response body `fetch` buffers (no streaming bodies in v1).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub(crate) struct FetchRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

pub(crate) struct FetchResponse {
    pub status: u16,
    pub status_text: String,
    /// In arrival order; values are bytes as Latin-1, like browsers and Node.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request failed: `code` is Node's error code for the cause when one applies.
#[derive(Debug)]
pub(crate) struct FetchError {
    pub message: String,
    pub code: Option<&'static str>,
}

impl FetchError {
    fn new(message: impl Into<String>, code: Option<&'static str>) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }
}

/// The system roots, loaded once per process; Mozilla's bundled roots when none load.
fn root_certs() -> RootCerts {
    static ROOTS: OnceLock<RootCerts> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            let certs: Vec<Certificate<'static>> = loaded
                .certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            if certs.is_empty() {
                RootCerts::WebPki
            } else {
                RootCerts::Specific(Arc::new(certs))
            }
        })
        .clone()
}

fn agent() -> ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT
        .get_or_init(|| {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                // Node's fetch ignores proxy variables unless told otherwise.
                .proxy(None)
                .user_agent("kici")
                .accept("*/*")
                .allow_non_standard_methods(true)
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_per_read(Some(Duration::from_secs(300)))
                .tls_config(TlsConfig::builder().root_certs(root_certs()).build())
                .build()
                .new_agent()
        })
        .clone()
}

fn io_code(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => "ECONNREFUSED",
        ConnectionReset => "ECONNRESET",
        ConnectionAborted => "ECONNABORTED",
        TimedOut => "ETIMEDOUT",
        HostUnreachable => "EHOSTUNREACH",
        NetworkUnreachable => "ENETUNREACH",
        AddrNotAvailable => "EADDRNOTAVAIL",
        BrokenPipe => "EPIPE",
        UnexpectedEof => "UND_ERR_SOCKET",
        _ => return None,
    })
}

fn describe(error: ureq::Error, host: &str) -> FetchError {
    match error {
        ureq::Error::Io(e) => match io_code(e.kind()) {
            Some(code) if code.starts_with('E') => {
                FetchError::new(format!("connect {code} {host}"), Some(code))
            }
            code => FetchError::new(e.to_string(), code),
        },
        ureq::Error::HostNotFound => FetchError::new(
            format!("getaddrinfo ENOTFOUND {}", host_name(host)),
            Some("ENOTFOUND"),
        ),
        ureq::Error::Timeout(t) => {
            FetchError::new(format!("timeout ({t}) for {host}"), Some("ETIMEDOUT"))
        }
        ureq::Error::BadUri(u) => FetchError::new(format!("invalid URL: {u}"), None),
        ureq::Error::Http(e) => FetchError::new(format!("invalid request: {e}"), None),
        other => FetchError::new(other.to_string(), None),
    }
}

/// `host:port` → `host` (IPv6 literals keep their brackets).
fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

/// Performs one exchange. `cancel` is polled between body chunks.
pub(crate) fn perform(
    request: FetchRequest,
    cancel: &AtomicBool,
) -> Result<FetchResponse, FetchError> {
    let uri: ureq::http::Uri = request
        .url
        .parse()
        .map_err(|e| FetchError::new(format!("invalid URL {}: {e}", request.url), None))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(FetchError::new(
                format!("unsupported URL scheme in {}", request.url),
                None,
            ));
        }
    }
    let authority = uri
        .authority()
        .map(|a| {
            let port = a.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            format!("{}:{port}", a.host())
        })
        .unwrap_or_default();
    let mut builder = ureq::http::Request::builder()
        .method(request.method.as_str())
        .uri(uri);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let agent = agent();
    let response = match request.body {
        Some(body) => builder
            .body(body)
            .map_err(|e| FetchError::new(format!("invalid request: {e}"), None))
            .and_then(|r| agent.run(r).map_err(|e| describe(e, &authority)))?,
        None => builder
            .body(())
            .map_err(|e| FetchError::new(format!("invalid request: {e}"), None))
            .and_then(|r| agent.run(r).map_err(|e| describe(e, &authority)))?,
    };
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.as_bytes().iter().map(|&b| b as char).collect(),
            )
        })
        .collect();
    let mut reader = response.into_body().into_reader();
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(FetchError::new("aborted", Some("ABORT_ERR")));
        }
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(FetchError::new(
                    format!("reading the response body: {e}"),
                    io_code(e.kind()),
                ));
            }
        };
        if body.len() + n > MAX_BODY_BYTES {
            return Err(FetchError::new(
                format!(
                    "response body exceeds the {} MiB limit of fetch() (bodies are buffered; \
                     download large files with a command through ctx.$)",
                    MAX_BODY_BYTES / (1024 * 1024)
                ),
                Some("ERR_FETCH_BODY_TOO_LARGE"),
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(FetchResponse {
        status: status.as_u16(),
        status_text: status.canonical_reason().unwrap_or("").to_string(),
        headers,
        body,
    })
}
