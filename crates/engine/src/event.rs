//! The normalised event that every source produces and that triggers are matched against
//! (`triggers.md` §1). Key order and omission rules follow the reference's `SimulatedEvent`
//! JSON so that `preview` events round-trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One normalised event. Optional fields are omitted from JSON when absent; in particular an
/// absent `changed_files` means "unknown", which is a different input from an empty list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// One of the trigger event types, or a raw provider event name for `webhook` triggers.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Sub-action; a missing action compares as `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The raw (or synthetic) provider body. `Null` when the input had no payload at all,
    /// which makes payload-reading checks fail with an error rather than silently not match.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub payload: Value,
    /// Always set by our event builders; optional only because hand-written events (and the
    /// reference's conformance inputs) may lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_files: Option<Vec<String>>,
    /// Ours: the provider returned a capped list, so path filters fail open.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed_files_truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    #[serde(default, rename = "isForkPR", skip_serializing_if = "Option::is_none")]
    pub is_fork_pr: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Resolved dispatch inputs (`--input k=v`, `sdk.md` §10), when the builder has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_inputs: Option<Map<String, Value>>,
}

impl Event {
    /// An event of the given type with an empty object payload and everything else absent.
    pub fn new(event_type: impl Into<String>) -> Self {
        Event {
            event_type: event_type.into(),
            payload: Value::Object(Map::new()),
            ..Event::default()
        }
    }

    /// The action as the matcher compares it: a missing action is `""`.
    pub fn action_or_empty(&self) -> &str {
        self.action.as_deref().unwrap_or("")
    }
}
