//! A small blocking client of the orchestrator's REST API (`orchestrator.md` §18), shared by
//! `kici admin`, `kici run remote` and `kici up`. The admin token travels only in the
//! `Authorization` header; it is read from the environment or a file, never from argv.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Default orchestrator URL (`cli.md` §11).
pub const DEFAULT_URL: &str = "http://127.0.0.1:4000";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the orchestrator at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{method} {path} failed with HTTP {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("{method} {path}: the answer is not the expected JSON: {message}")]
    Decode {
        method: &'static str,
        path: String,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where the token came from does not matter after this point; `Debug` never shows it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    pub fn new(value: impl Into<String>) -> Token {
        Token(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token from `file` (trimmed), else from the environment variable `var`.
    pub fn resolve(file: Option<&Path>, var: &str) -> Result<Option<Token>, ClientError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ClientError::Config(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            })?;
            let value = text.trim();
            if value.is_empty() {
                return Err(ClientError::Config(format!(
                    "the token file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(Token(value.to_string())));
        }
        Ok(std::env::var(var)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(Token))
    }
}

/// One orchestrator.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<Token>,
    agent: ureq::Agent,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl Client {
    pub fn new(base_url: &str, token: Option<Token>) -> Result<Client, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "orchestrator URL {base_url:?} must start with http:// or https://"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .user_agent(concat!("kici/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        Ok(Client { base, token, agent })
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.exchange("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.exchange("POST", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.exchange("DELETE", path, None)
    }

    /// Posts raw bytes with extra headers (webhook routes).
    pub fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Value, ClientError> {
        let mut request = self.request("POST", path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body)
            .map_err(|e| self.connect_error(e.to_string()))?;
        let response = self
            .agent
            .run(request)
            .map_err(|e| self.connect_error(e.to_string()))?;
        self.decode("POST", path, response)
    }

    /// Opens a server-sent event stream; the iterator ends when the server closes it.
    pub fn sse(&self, path: &str) -> Result<SseStream, ClientError> {
        let request = self
            .request("GET", path)
            .header("accept", "text/event-stream")
            .body(())
            .map_err(|e| self.connect_error(e.to_string()))?;
        let response = self
            .agent
            .run(request)
            .map_err(|e| self.connect_error(e.to_string()))?;
        if !response.status().is_success() {
            self.decode("GET", path, response)?;
            return Err(ClientError::Decode {
                method: "GET",
                path: path.to_string(),
                message: "the event stream was refused".into(),
            });
        }
        let reader: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
        Ok(SseStream {
            reader: BufReader::new(reader),
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::http::request::Builder {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("accept", "application/json");
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {}", token.0));
        }
        builder
    }

    fn exchange(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let builder = self.request(method, path);
        let response = match body {
            Some(body) => {
                let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
                    method,
                    path: path.to_string(),
                    message: e.to_string(),
                })?;
                let request = builder
                    .header("content-type", "application/json")
                    .body(bytes)
                    .map_err(|e| self.connect_error(e.to_string()))?;
                self.agent.run(request)
            }
            None => {
                let request = builder
                    .body(())
                    .map_err(|e| self.connect_error(e.to_string()))?;
                self.agent.run(request)
            }
        }
        .map_err(|e| self.connect_error(e.to_string()))?;
        self.decode(method, path, response)
    }

    fn decode(
        &self,
        method: &'static str,
        path: &str,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<Value, ClientError> {
        let status = response.status().as_u16();
        let mut text = String::new();
        response
            .into_body()
            .into_reader()
            .take(64 * 1024 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| ClientError::Decode {
                method,
                path: path.to_string(),
                message: e.to_string(),
            })?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(value) => value,
                Err(_) if status >= 400 => Value::String(text.trim().to_string()),
                Err(e) => {
                    return Err(ClientError::Decode {
                        method,
                        path: path.to_string(),
                        message: e.to_string(),
                    });
                }
            }
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = match &value {
            Value::Object(map) => map
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error message")
                .to_string(),
            Value::String(s) => s.clone(),
            _ => "no error message".to_string(),
        };
        Err(ClientError::Status {
            method,
            path: path.to_string(),
            status,
            code: value
                .get("code")
                .and_then(Value::as_str)
                .map(str::to_string),
            message,
        })
    }

    fn connect_error(&self, message: String) -> ClientError {
        ClientError::Connect {
            url: self.base.clone(),
            message,
        }
    }
}

/// Reads `event:`/`data:` blocks (`text/event-stream`); comments and other fields are skipped.
pub struct SseStream {
    reader: BufReader<Box<dyn Read + Send>>,
}

impl Iterator for SseStream {
    type Item = Result<SseEvent, std::io::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut event = String::new();
        let mut data: Option<String> = None;
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            let trimmed = line.trim_end_matches(['\r', '\n']);
            if trimmed.is_empty() {
                if let Some(data) = data.take() {
                    let event = if event.is_empty() {
                        "message".to_string()
                    } else {
                        std::mem::take(&mut event)
                    };
                    return Some(Ok(SseEvent { event, data }));
                }
                event.clear();
                continue;
            }
            if trimmed.starts_with(':') {
                continue;
            }
            let (field, value) = match trimmed.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (trimmed, ""),
            };
            match field {
                "event" => event = value.to_string(),
                "data" => match &mut data {
                    Some(existing) => {
                        existing.push('\n');
                        existing.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                },
                _ => {}
            }
        }
    }
}

/// Percent-encodes one path segment or query value.
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> SseStream {
        let reader: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        SseStream {
            reader: BufReader::new(reader),
        }
    }

    #[test]
    fn sse_blocks_are_split_and_comments_skipped() {
        let events: Vec<SseEvent> = stream(
            ": heartbeat\n\nevent: job\ndata: {\"a\":1}\n\ndata: one\ndata: two\n\nevent: end\ndata: {}\n\n",
        )
        .map(Result::unwrap)
        .collect();
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "job".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "message".into(),
                    data: "one\ntwo".into()
                },
                SseEvent {
                    event: "end".into(),
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = Token::new("kadm_secret");
        assert!(!format!("{token:?}").contains("secret"));
        let client = Client::new("http://127.0.0.1:1", Some(token)).unwrap();
        assert!(!format!("{client:?}").contains("kadm_secret"));
    }

    #[test]
    fn urls_without_scheme_are_refused() {
        let error = Client::new("127.0.0.1:4000", None).unwrap_err();
        assert!(error.to_string().contains("http://"), "{error}");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode("acme/app x"), "acme%2Fapp%20x");
    }
}
