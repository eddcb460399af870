//! Golden frames of protocol v1 (`test-data/protocol/v1/{agent,orchestrator}/<type>.json`):
//! each decodes into the variant its file names and re-encodes to the same JSON, key order
//! included; every message type has one; malformed frames get their specific error.

use std::path::{Path, PathBuf};

use kici_engine::protocol::relay::{FromRelay, ToRelay};
use kici_engine::protocol::{
    self, AgentMessage, CloseCode, FrameError, OrchestratorMessage, decode_agent_frame,
    decode_orchestrator_frame, decode_relay_frame, decode_to_relay_frame, limits,
};
use serde_json::Value;

fn golden_dir(direction: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-data/protocol/v1")
        .join(direction)
}

/// `(type, file text)` of every golden file of one direction, sorted by type.
fn goldens(direction: &str) -> Vec<(String, String)> {
    let dir = golden_dir(direction);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let stem = path.file_stem().expect("file stem").to_string_lossy();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (stem.into_owned(), text)
        })
        .collect();
    files.sort();
    files
}

/// The file's JSON in compact form, keys in file order: what a faithful re-encode must give.
fn compact(text: &str) -> String {
    let value: Value = serde_json::from_str(text).expect("golden file is JSON");
    serde_json::to_string(&value).expect("re-serialise")
}

fn check_goldens<M>(
    direction: &str,
    types: &[&str],
    decode: impl Fn(&str) -> Result<M, FrameError>,
    message_type: impl Fn(&M) -> &'static str,
    encode: impl Fn(&M) -> String,
) {
    let mut failures = Vec::new();
    let files = goldens(direction);
    for (name, text) in &files {
        match decode(text) {
            Err(err) => failures.push(format!("{direction}/{name}: does not decode: {err}")),
            Ok(message) => {
                if message_type(&message) != name {
                    failures.push(format!(
                        "{direction}/{name}: decoded as `{}`",
                        message_type(&message)
                    ));
                }
                let expected = compact(text);
                let actual = encode(&message);
                if actual != expected {
                    failures.push(format!(
                        "{direction}/{name}: re-encodes differently\n  file:    {expected}\n  encoded: {actual}"
                    ));
                }
            }
        }
    }
    for message_type in types {
        if !files.iter().any(|(name, _)| name == message_type) {
            failures.push(format!(
                "{direction}: message type `{message_type}` has no golden file {message_type}.json"
            ));
        }
    }
    for (name, _) in &files {
        if !types.contains(&name.as_str()) {
            failures.push(format!(
                "{direction}/{name}.json: no such message type in this direction"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn agent_goldens_round_trip() {
    check_goldens(
        "agent",
        &AgentMessage::TYPES,
        decode_agent_frame,
        AgentMessage::message_type,
        AgentMessage::encode,
    );
}

#[test]
fn orchestrator_goldens_round_trip() {
    check_goldens(
        "orchestrator",
        &OrchestratorMessage::TYPES,
        decode_orchestrator_frame,
        OrchestratorMessage::message_type,
        OrchestratorMessage::encode,
    );
}

#[test]
fn relay_goldens_round_trip() {
    check_goldens(
        "to-relay",
        &ToRelay::TYPES,
        decode_to_relay_frame,
        ToRelay::message_type,
        ToRelay::encode,
    );
    check_goldens(
        "from-relay",
        &FromRelay::TYPES,
        decode_relay_frame,
        FromRelay::message_type,
        FromRelay::encode,
    );
    assert_eq!(
        decode_relay_frame(r#"{"type":"dashboard.runs.list","requestId":"r"}"#),
        Err(FrameError::Unsupported {
            message_type: "dashboard.runs.list".into(),
        })
    );
}

/// Every variant serde can decode is listed in `TYPES`: serde's own "expected one of" list
/// for an unknown tag is the source of truth, so a new variant without a `TYPES` entry (and
/// therefore without a golden file) fails here.
#[test]
fn types_lists_match_serde_variants() {
    fn serde_variants<M: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let err = serde_json::from_str::<M>(r#"{"type":"\u0000"}"#).expect_err("bogus tag");
        let text = err.to_string();
        let list = text
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected serde message: {text}"));
        list.split(", ")
            .map(|s| {
                s.trim_matches(|c: char| c == '`' || c.is_whitespace())
                    .split('`')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
    assert_eq!(serde_variants::<AgentMessage>(), AgentMessage::TYPES);
    assert_eq!(
        serde_variants::<OrchestratorMessage>(),
        OrchestratorMessage::TYPES
    );
    assert_eq!(serde_variants::<ToRelay>(), ToRelay::TYPES);
    assert_eq!(serde_variants::<FromRelay>(), FromRelay::TYPES);
}

#[track_caller]
fn check_agent_error(frame: &str, expected: FrameError) {
    assert_eq!(decode_agent_frame(frame), Err(expected), "frame: {frame}");
}

#[test]
fn malformed_agent_frames_get_specific_errors() {
    use FrameError as E;
    check_agent_error(
        "{\"type\":\"heartbeat\",",
        E::Json {
            line: 1,
            column: 20,
            reason: "EOF while parsing a value".into(),
        },
    );
    check_agent_error(
        "{\"type\":\"heartbeat\",\"timestamp\":1} x",
        E::Json {
            line: 1,
            column: 36,
            reason: "trailing characters".into(),
        },
    );
    check_agent_error("[1,2]", E::NotAnObject);
    check_agent_error("\"heartbeat\"", E::NotAnObject);
    check_agent_error(r#"{"timestamp":1}"#, E::MissingType);
    check_agent_error(r#"{"type":7,"timestamp":1}"#, E::TypeNotString);
    check_agent_error(
        r#"{"type":"job.explode","jobId":"j"}"#,
        E::UnknownType {
            message_type: "job.explode".into(),
        },
    );
    // An orchestrator frame sent the wrong way is unknown in this direction.
    check_agent_error(
        r#"{"type":"frames.ack","upTo":3}"#,
        E::UnknownType {
            message_type: "frames.ack".into(),
        },
    );
    check_agent_error(
        r#"{"type":"cache.upload.request","requestId":"r"}"#,
        E::Unsupported {
            message_type: "cache.upload.request".into(),
        },
    );
    check_agent_error(
        r#"{"type":"job.status","messageId":"m","runId":"r","jobId":"j","timestamp":1}"#,
        E::MissingField {
            message_type: "job.status",
            field: "state".into(),
        },
    );
    check_agent_error(
        r#"{"type":"heartbeat","timestamp":"now"}"#,
        E::WrongType {
            message_type: "heartbeat",
            detail: "invalid type: string \"now\", expected u64".into(),
        },
    );
    check_agent_error(
        r#"{"type":"log.chunk","messageId":"m","runId":"r","jobId":"j","stepIndex":0,"lines":"x","timestamp":1}"#,
        E::WrongType {
            message_type: "log.chunk",
            detail: "invalid type: string \"x\", expected a sequence".into(),
        },
    );
    // Agents only report the states they can know.
    check_agent_error(
        r#"{"type":"job.status","messageId":"m","runId":"r","jobId":"j","state":"queued","timestamp":1}"#,
        E::InvalidValue {
            message_type: "job.status",
            detail: "unknown variant `queued`, expected one of `running`, `cancelling`, `success`, `failed`, `cancelled`, `skipped`".into(),
        },
    );
    check_agent_error(
        r#"{"type":"job.reject","messageId":"m","runId":"r","jobId":"j","reason":"tired","timestamp":1}"#,
        E::InvalidValue {
            message_type: "job.reject",
            detail: "unknown variant `tired`, expected `busy` or `draining`".into(),
        },
    );
    check_agent_error(
        r#"{"type":"step.status","messageId":"m","runId":"r","jobId":"j","stepIndex":0,"stepName":"s","state":"success","timestamp":1,"step_type":"hook:onLunch"}"#,
        E::InvalidValue {
            message_type: "step.status",
            detail: "invalid value: string \"hook:onLunch\", expected a step type (step, hook:<name>, init:<n>, cache:restore, cache:save)".into(),
        },
    );
    check_agent_error(
        r#"{"type":"heartbeat","timestamp":-5}"#,
        E::InvalidValue {
            message_type: "heartbeat",
            detail: "invalid value: integer `-5`, expected u64".into(),
        },
    );
}

#[test]
fn agent_frames_violating_spec_limits_are_refused() {
    use FrameError as E;
    let long_id = "x".repeat(limits::MAX_ID_CHARS + 1);
    check_agent_error(
        &format!(r#"{{"type":"job.heartbeat","runId":"{long_id}","jobId":"j","timestamp":1}}"#),
        E::TooLong {
            message_type: "job.heartbeat",
            field: "runId",
            len: 129,
            limit: 128,
        },
    );
    // Limits count characters, not bytes.
    let wide_id = "é".repeat(limits::MAX_ID_CHARS);
    assert!(
        decode_agent_frame(&format!(
            r#"{{"type":"job.heartbeat","runId":"{wide_id}","jobId":"j","timestamp":1}}"#
        ))
        .is_ok()
    );
    let long_name = "s".repeat(limits::MAX_STEP_NAME_CHARS + 1);
    check_agent_error(
        &format!(
            r#"{{"type":"step.status","messageId":"m","runId":"r","jobId":"j","stepIndex":0,"stepName":"{long_name}","state":"running","timestamp":1}}"#
        ),
        E::TooLong {
            message_type: "step.status",
            field: "stepName",
            len: 257,
            limit: 256,
        },
    );
    let long_line = "l".repeat(limits::MAX_LOG_LINE_BYTES + 1);
    check_agent_error(
        &format!(
            r#"{{"type":"log.chunk","messageId":"m","runId":"r","jobId":"j","stepIndex":0,"lines":["ok","{long_line}"],"timestamp":1}}"#
        ),
        E::TooLong {
            message_type: "log.chunk",
            field: "lines",
            len: 65537,
            limit: 65536,
        },
    );
    check_agent_error(
        r#"{"type":"job.ack","messageId":"m","runId":"r","jobId":"j","timestamp":1,"seq":0}"#,
        E::InvalidValue {
            message_type: "job.ack",
            detail: "`seq` must be at least 1".into(),
        },
    );
    check_agent_error(
        r#"{"type":"agent.register","messageId":"m","agentId":"a","labels":[],"maxConcurrency":0}"#,
        E::InvalidValue {
            message_type: "agent.register",
            detail: "`maxConcurrency` must be positive".into(),
        },
    );
    check_agent_error(
        r#"{"type":"auth.request","token":"","protocolVersion":1}"#,
        E::InvalidValue {
            message_type: "auth.request",
            detail: "`token` must not be empty".into(),
        },
    );
    let err = decode_agent_frame(r#"{"type":"auth.request","token":"kat_x","protocolVersion":0}"#)
        .expect_err("version 0");
    assert_eq!(err, E::ProtocolVersion { version: 0 });
    assert_eq!(err.close_code(), CloseCode::ProtocolError);
}

#[test]
fn oversized_frames_are_refused_before_parsing() {
    let padding = " ".repeat(limits::AGENT_FRAME_LIMIT_BYTES);
    let frame = format!(r#"{{"type":"heartbeat","timestamp":1}}{padding}"#);
    let err = decode_agent_frame(&frame).expect_err("too large");
    assert_eq!(
        err,
        FrameError::TooLarge {
            size: frame.len(),
            limit: limits::AGENT_FRAME_LIMIT_BYTES,
        }
    );
    assert_eq!(err.close_code(), CloseCode::InvalidMessage);
    assert_eq!(err.close_reason(), "message too large");
    // The same size is fine from the orchestrator, whose limit is the 25 MiB transport cap.
    let frame = format!(r#"{{"type":"frames.ack","upTo":1}}{padding}"#);
    assert!(decode_orchestrator_frame(&frame).is_ok());
    let frame = " ".repeat(limits::ORCHESTRATOR_FRAME_LIMIT_BYTES + 1);
    assert!(matches!(
        decode_orchestrator_frame(&frame),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn lenient_where_the_spec_is_lenient() {
    // Unknown fields are ignored; `null` optional fields read as absent.
    let message = decode_agent_frame(
        r#"{"type":"job.ack","messageId":"m","runId":"r","jobId":"j","timestamp":1,"seq":null,"futureField":{"a":1}}"#,
    )
    .expect("decodes");
    assert_eq!(
        message.encode(),
        r#"{"type":"job.ack","messageId":"m","runId":"r","jobId":"j","timestamp":1}"#
    );
    // An over-long error text is truncated, not refused.
    let error = "e".repeat(limits::MAX_ERROR_BYTES + 10);
    let frame = format!(
        r#"{{"type":"job.status","messageId":"m","runId":"r","jobId":"j","state":"failed","timestamp":1,"data":{{"error":"{error}"}}}}"#
    );
    let Ok(AgentMessage::JobStatus(status)) = decode_agent_frame(&frame) else {
        panic!("job.status expected");
    };
    let text = status.data.and_then(|d| d.error).expect("error kept");
    assert_eq!(text.len(), limits::MAX_ERROR_BYTES);
    assert!(text.ends_with(limits::TRUNCATED_SUFFIX));
}

#[test]
fn orchestrator_frame_errors() {
    assert_eq!(
        decode_orchestrator_frame(
            r#"{"type":"job.cancel","messageId":"m","runId":"r","jobId":"j"}"#
        ),
        Err(FrameError::MissingField {
            message_type: "job.cancel",
            field: "reason".into(),
        })
    );
    assert_eq!(
        decode_orchestrator_frame(r#"{"type":"heartbeat","timestamp":1}"#),
        Err(FrameError::UnknownType {
            message_type: "heartbeat".into(),
        })
    );
    // A missing field deep inside the dispatch is still named.
    let dispatch = std::fs::read_to_string(golden_dir("orchestrator").join("job.dispatch.json"))
        .expect("golden");
    let broken = dispatch.replacen("\"contentHash\"", "\"contentHashX\"", 1);
    assert_eq!(
        decode_orchestrator_frame(&broken),
        Err(FrameError::MissingField {
            message_type: "job.dispatch",
            field: "contentHash".into(),
        })
    );
}

#[test]
fn secrets_never_show_in_debug_output() {
    for (_, text) in goldens("orchestrator").into_iter().chain(goldens("agent")) {
        let debug = match decode_orchestrator_frame(&text) {
            Ok(message) => format!("{message:?}"),
            Err(_) => format!("{:?}", decode_agent_frame(&text).expect("golden decodes")),
        };
        for secret in ["ghs_16C7e42F", "npm_0123456789abcdef", "kat_4f1c0e9d"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
    }
    assert_eq!(protocol::PROTOCOL_VERSION, 1);
}
