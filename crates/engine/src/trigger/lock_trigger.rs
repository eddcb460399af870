//! The lock file's trigger objects (`lockfile.md` §4).
//!
//! Field order in every struct is the lock's emission order, so serialising a parsed lock
//! reproduces it byte for byte. A trigger whose JSON does not re-serialise identically (an
//! unknown `_type`, extra or reordered keys, a hand-edited lock) is kept verbatim as
//! [`LockTrigger::Unknown`] and interpreted leniently at match time.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A branch/tag/ref/repo pattern: `{type: "glob", pattern}` or
/// `{type: "regex", pattern, flags?}` (`pattern` is the `RegExp.source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LockBranchPattern {
    Glob {
        pattern: String,
    },
    Regex {
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flags: Option<String>,
    },
}

impl LockBranchPattern {
    pub fn glob(pattern: impl Into<String>) -> Self {
        LockBranchPattern::Glob {
            pattern: pattern.into(),
        }
    }

    pub fn regex(pattern: impl Into<String>, flags: Option<String>) -> Self {
        LockBranchPattern::Regex {
            pattern: pattern.into(),
            flags,
        }
    }

    /// The pattern text (glob text or regex source).
    pub fn pattern(&self) -> &str {
        match self {
            LockBranchPattern::Glob { pattern } | LockBranchPattern::Regex { pattern, .. } => {
                pattern
            }
        }
    }
}

fn default_pr_events() -> Vec<String> {
    ["opened", "synchronize", "reopened", "closed"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrTrigger {
    #[serde(default = "default_pr_events")]
    pub events: Vec<String>,
    #[serde(default)]
    pub target_branches: Vec<LockBranchPattern>,
    #[serde(default)]
    pub source_branches: Vec<LockBranchPattern>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

impl Default for PrTrigger {
    fn default() -> Self {
        PrTrigger {
            events: default_pr_events(),
            target_branches: Vec::new(),
            source_branches: Vec::new(),
            paths: Vec::new(),
            repos: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushTrigger {
    #[serde(default)]
    pub branches: Vec<LockBranchPattern>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagTrigger {
    #[serde(default)]
    pub patterns: Vec<LockBranchPattern>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentTrigger {
    #[serde(default)]
    pub actions: Vec<String>,
    /// `"issue"` or `"pr"`; kept as text so a hand-edited value is reported, not rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A glob or regex for the comment body. The reference's locks write it like any other
    /// pattern (`type` first), whatever `lockfile.md` §4 says about the key order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_match: Option<LockBranchPattern>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewTrigger {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub states: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

/// `review_comment`, `release`, `star` and `watch`: an action filter and `repos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionsTrigger {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatchTrigger {
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
    /// `InputsDescriptorMap` (`sdk.md` §10), kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Map<String, Value>>,
}

/// `create` and `delete`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefTrigger {
    #[serde(default)]
    pub ref_types: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<LockBranchPattern>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusTrigger {
    /// Glob strings.
    #[serde(default)]
    pub contexts: Vec<String>,
    #[serde(default)]
    pub states: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRunTrigger {
    #[serde(default)]
    pub actions: Vec<String>,
    /// Exact workflow names.
    #[serde(default)]
    pub workflows: Vec<String>,
    #[serde(default)]
    pub conclusions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForkTrigger {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookTrigger {
    /// Raw provider event names.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<LockBranchPattern>,
}

/// JSONPath → expected value (`triggers.md` §7), in lock order.
pub type JsonPathFilter = Map<String, Value>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KiciEventTrigger {
    #[serde(default)]
    pub event_name: String,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_filter: Option<JsonPathFilter>,
    #[serde(default, rename = "not", skip_serializing_if = "Option::is_none")]
    pub not_filter: Option<JsonPathFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowCompleteTrigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobCompleteTrigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `genericWebhook({auth})`: informational in v1 (verification is configured on the source).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericWebhookAuth {
    pub method: String,
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenericWebhookTrigger {
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_filter: Option<JsonPathFilter>,
    #[serde(default, rename = "not", skip_serializing_if = "Option::is_none")]
    pub not_filter: Option<JsonPathFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<GenericWebhookAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

fn default_timezone() -> String {
    "UTC".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleTrigger {
    #[serde(default)]
    pub cron_expression: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `InputsDescriptorMap` (`sdk.md` §10), kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Map<String, Value>>,
}

impl Default for ScheduleTrigger {
    fn default() -> Self {
        ScheduleTrigger {
            cron_expression: String::new(),
            timezone: default_timezone(),
            description: None,
            inputs: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleTrigger {
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Declares [`LockTrigger`] and its strict (typed-only) deserialisation mirror from one list,
/// so the two can never disagree about tags.
macro_rules! lock_triggers {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty) = $tag:literal, )*) => {
        /// One element of a workflow's `triggers` list in the lock.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "_type")]
        pub enum LockTrigger {
            $( $(#[$doc])* #[serde(rename = $tag)] $variant($ty), )*
            /// A trigger kept verbatim: unknown `_type`, or a shape that would not
            /// re-serialise identically. Matched leniently (unknown types never match).
            #[serde(untagged)]
            Unknown(Value),
        }

        #[derive(Deserialize)]
        #[serde(tag = "_type")]
        enum StrictTrigger {
            $( #[serde(rename = $tag)] $variant($ty), )*
        }

        impl From<StrictTrigger> for LockTrigger {
            fn from(strict: StrictTrigger) -> Self {
                match strict {
                    $( StrictTrigger::$variant(t) => LockTrigger::$variant(t), )*
                }
            }
        }

        /// Every `_type` the matcher knows.
        pub const KNOWN_TRIGGER_TYPES: &[&str] = &[$($tag),*];

        impl LockTrigger {
            /// The lock's `_type` (for [`LockTrigger::Unknown`], whatever string it holds).
            pub fn trigger_type(&self) -> &str {
                match self {
                    $( LockTrigger::$variant(_) => $tag, )*
                    LockTrigger::Unknown(raw) => {
                        raw.get("_type").and_then(Value::as_str).unwrap_or("")
                    }
                }
            }
        }
    };
}

lock_triggers! {
    Pr(PrTrigger) = "pr",
    Push(PushTrigger) = "push",
    Tag(TagTrigger) = "tag",
    Comment(CommentTrigger) = "comment",
    Review(ReviewTrigger) = "review",
    ReviewComment(ActionsTrigger) = "review_comment",
    Release(ActionsTrigger) = "release",
    Dispatch(DispatchTrigger) = "dispatch",
    Create(RefTrigger) = "create",
    Delete(RefTrigger) = "delete",
    Status(StatusTrigger) = "status",
    WorkflowRun(WorkflowRunTrigger) = "workflow_run",
    Fork(ForkTrigger) = "fork",
    Star(ActionsTrigger) = "star",
    Watch(ActionsTrigger) = "watch",
    Webhook(WebhookTrigger) = "webhook",
    GenericWebhook(GenericWebhookTrigger) = "generic_webhook",
    Schedule(ScheduleTrigger) = "schedule",
    KiciEvent(KiciEventTrigger) = "kici_event",
    WorkflowComplete(WorkflowCompleteTrigger) = "workflow_complete",
    JobComplete(JobCompleteTrigger) = "job_complete",
    Lifecycle(LifecycleTrigger) = "lifecycle",
}

/// How a trigger is seen by the matcher after the lenient interpretation of
/// [`LockTrigger::Unknown`].
pub(crate) enum Interpreted<'a> {
    Typed(&'a LockTrigger),
    /// An [`LockTrigger::Unknown`] of a known type, read leniently.
    Lenient(Box<LockTrigger>),
    /// An unknown `_type`: never matches, executes no checks.
    UnknownType,
    /// A known `_type` whose fields have the wrong shape.
    Malformed(String),
}

impl LockTrigger {
    /// Whether matching this trigger reads the event's changed files (a `paths` filter):
    /// the orchestrator computes them only then (`orchestrator.md` §5 step 8). Unknown
    /// shapes with a `paths` list count, to stay on the safe side.
    pub fn reads_changed_files(&self) -> bool {
        match self {
            LockTrigger::Push(t) => !t.paths.is_empty(),
            LockTrigger::Pr(t) => !t.paths.is_empty(),
            LockTrigger::Unknown(raw) => raw
                .get("paths")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty()),
            _ => false,
        }
    }

    /// Parses a trigger from lock JSON. Never fails: anything that is not an exact typed
    /// trigger becomes [`LockTrigger::Unknown`].
    pub fn from_value(raw: Value) -> Self {
        let Ok(strict) = serde_json::from_value::<StrictTrigger>(raw.clone()) else {
            return LockTrigger::Unknown(raw);
        };
        let typed = LockTrigger::from(strict);
        match serde_json::to_value(&typed) {
            Ok(again) if json_identical(&again, &raw) => typed,
            _ => LockTrigger::Unknown(raw),
        }
    }

    /// Reads an [`LockTrigger::Unknown`] as a typed trigger where possible (extra keys
    /// ignored, missing lists empty), as the reference's matcher would.
    pub(crate) fn interpret(&self) -> Interpreted<'_> {
        let LockTrigger::Unknown(raw) = self else {
            return Interpreted::Typed(self);
        };
        let known = raw
            .get("_type")
            .and_then(Value::as_str)
            .is_some_and(|t| KNOWN_TRIGGER_TYPES.contains(&t));
        if !known {
            return Interpreted::UnknownType;
        }
        match serde_json::from_value::<StrictTrigger>(raw.clone()) {
            Ok(strict) => Interpreted::Lenient(Box::new(strict.into())),
            Err(err) => Interpreted::Malformed(err.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for LockTrigger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(LockTrigger::from_value)
    }
}

/// Structural equality that also requires the same key order in every object, because the
/// lock's key order is part of its bytes.
fn json_identical(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && json_identical(va, vb))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(va, vb)| json_identical(va, vb))
        }
        _ => a == b,
    }
}
