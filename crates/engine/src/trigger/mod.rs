//! Lock-file triggers (`lockfile.md` §4) and the matcher that decides which workflows an
//! event starts, with a decision trace (`triggers.md` §3).
//!
//! The matcher is the single implementation shared by `kici preview`, `kici run local` and
//! the orchestrator.

mod ecma;
mod lock_trigger;
mod matcher;
mod patterns;
#[cfg(test)]
mod tests;

pub use ecma::{EcmaRegex, RegexError};
pub use lock_trigger::*;
pub use matcher::{match_all_workflows, match_workflow};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One executed check of a trigger, in evaluation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The check's name (`event type`, `branch`, `paths`, …).
    pub check: String,
    /// The filter rendered as text.
    pub pattern: String,
    /// The event value the filter was compared with; absent when the event had none and the
    /// reference rendered nothing. Usually a string, but a malformed payload can put any JSON
    /// value here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub passed: bool,
    /// Explains non-obvious failures (`changed files unknown`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of matching one workflow's triggers against one event.
///
/// Serialises to the shape of the reference's `matchAllWorkflows` entries
/// (`workflowName`, `matched`, `matchedTrigger?`, `checks`, `summary`), plus our optional
/// `error` and `inputsError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Empty when produced by [`match_workflow`], which does not know the workflow's name.
    pub workflow_name: String,
    pub matched: bool,
    /// 0-based index of the winning trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_trigger: Option<usize>,
    /// Every check executed, across all triggers tried, in order.
    pub checks: Vec<Check>,
    /// `Matched trigger <i+1> (<_type>)`, `No triggers matched` or `No triggers defined`.
    pub summary: String,
    /// Ours: set by [`match_all_workflows`] when matching this workflow failed (malformed
    /// trigger or event); such a workflow is reported as not matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Ours: set by callers that resolve dispatch/schedule inputs after a match
    /// (`triggers.md` §3 step 5). The matcher itself never sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_error: Option<String>,
}

impl Decision {
    /// The human rendering of the first failed check: `Failed: <check> - <pattern> vs <value>`
    /// plus ` (<reason>)` when there is one.
    pub fn first_failure(&self) -> Option<String> {
        let failed = self.checks.iter().find(|c| !c.passed)?;
        let value = match &failed.value {
            None => "undefined".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let mut line = format!("Failed: {} - {} vs {}", failed.check, failed.pattern, value);
        if let Some(reason) = &failed.reason {
            line.push_str(&format!(" ({reason})"));
        }
        Some(line)
    }
}

/// Why an event could not be matched at all. The reference threw in these situations; we
/// return an error value instead of crashing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("invalid regular expression /{pattern}/{flags}: {message}")]
    InvalidRegex {
        pattern: String,
        flags: String,
        message: String,
    },
    #[error("invalid glob pattern {pattern:?}: {message}")]
    InvalidGlob { pattern: String, message: String },
    #[error("invalid JSONPath {path:?}: {message}")]
    InvalidJsonPath { path: String, message: String },
    #[error("{field}: expected a string, found {found}")]
    NotAString { field: String, found: String },
    #[error("event has no payload")]
    MissingPayload,
    #[error("malformed {trigger_type} trigger: {message}")]
    InvalidTrigger {
        trigger_type: String,
        message: String,
    },
}
