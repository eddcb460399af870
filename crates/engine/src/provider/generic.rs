//! Generic sources (`triggers.md` §9.4): any body, an event name from configuration, and an
//! event of type `generic_webhook` (plus the raw-typed twin for `webhook` triggers).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{dot_path, scalar_string};
use super::{Headers, Normalised, NormalisedEvent, Revision};
use crate::event::Event;

/// The generic source's `targetBranch`: such events belong to no branch.
pub const GENERIC_TARGET_BRANCH: &str = "__generic__";
/// The fallback event-name header.
pub const EVENT_TYPE_HEADER: &str = "X-Event-Type";

/// The parts of a generic source's `config` that ingress and normalisation read
/// (`orchestrator.md` §4.3); other keys are ignored here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_header: Option<String>,
    /// A dot-path into the JSON body (`event.type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_events: Option<Vec<String>>,
}

/// The delivery's event name: the configured header, else the configured dot-path of the
/// JSON body, else `X-Event-Type`, else `"default"`. Empty values count as absent.
pub fn generic_event_name(
    config: &GenericConfig,
    headers: &Headers,
    body: Option<&Value>,
) -> String {
    let from_header = |name: &str| headers.get_non_empty(name).map(str::to_string);
    config
        .event_type_header
        .as_deref()
        .and_then(from_header)
        .or_else(|| {
            let path = config.event_type_path.as_deref()?;
            dot_path(body?, path)
                .and_then(scalar_string)
                .filter(|s| !s.is_empty())
        })
        .or_else(|| from_header(EVENT_TYPE_HEADER))
        .unwrap_or_else(|| "default".to_string())
}

/// `allowed_events` filter of the ingress (`orchestrator.md` §4.2 step 5): unset allows all.
pub fn is_allowed_event(config: &GenericConfig, event_name: &str) -> bool {
    match &config.allowed_events {
        None => true,
        Some(allowed) => allowed.iter().any(|e| e == event_name),
    }
}

pub(crate) fn normalise(
    source_name: &str,
    config: &GenericConfig,
    headers: &Headers,
    body: &[u8],
) -> Normalised {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let name = generic_event_name(config, headers, parsed.as_ref());
    let payload = match parsed {
        Some(Value::Object(mut map)) => {
            if !map.contains_key("source") {
                map.insert("source".into(), source_name.into());
            }
            if !map.contains_key("eventType") {
                map.insert("eventType".into(), name.as_str().into());
            }
            Value::Object(map)
        }
        other => {
            let body =
                other.unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned()));
            let mut map = Map::new();
            map.insert("source".into(), source_name.into());
            map.insert("eventType".into(), name.as_str().into());
            map.insert("body".into(), body);
            Value::Object(map)
        }
    };
    // `P.action ?? ''`: the payload's own action, for the raw-typed twin only.
    let raw_action = payload
        .get("action")
        .and_then(scalar_string)
        .unwrap_or_default();
    let event = Event {
        event_type: "generic_webhook".into(),
        action: Some(name.clone()),
        payload: payload.clone(),
        target_branch: Some(GENERIC_TARGET_BRANCH.into()),
        provider: Some("generic".into()),
        ..Event::default()
    };
    let webhook_event = Event {
        event_type: name,
        action: Some(raw_action),
        payload,
        target_branch: Some(GENERIC_TARGET_BRANCH.into()),
        provider: Some("generic".into()),
        ..Event::default()
    };
    let mut n = NormalisedEvent::new(event, Revision::Registration);
    n.webhook_event = Some(webhook_event);
    Normalised::Event(Box::new(n))
}
