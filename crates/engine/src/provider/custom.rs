//! The `custom` universal-git preset (`triggers.md` §9.2, ours): a configured event header,
//! JSONPaths for the push and pull-request fields, and an action map.
//!
//! The spec fixes the ingredients but not the shape; this is the shape of a `git` source's
//! `config.customMapping`:
//!
//! ```json
//! { "eventHeader": "X-Forge-Event",
//!   "pushEvents": ["push"], "pullRequestEvents": ["merge_request"],
//!   "ref": "$.ref", "before": "$.before", "after": "$.after",
//!   "repository": "$.repo.path", "defaultBranch": "$.repo.default",
//!   "sender": "$.user.name",
//!   "pullRequest": { "action": "$.action", "targetBranch": "$.mr.target",
//!                    "sourceBranch": "$.mr.source", "sha": "$.mr.head",
//!                    "number": "$.mr.id", "sourceRepository": "$.mr.source_repo",
//!                    "fetchRef": "refs/pull/{number}/head" },
//!   "actionMap": { "open": "opened" } }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::scalar_string;
use super::{
    GitRef, Headers, IgnoreReason, NormaliseError, Normalised, NormalisedEvent, Revision,
    is_zero_sha, split_ref,
};
use crate::event::Event;
use crate::jsonpath::JsonPath;

const PROVIDER: &str = "git";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomMapping {
    pub event_header: String,
    #[serde(default = "default_push_events")]
    pub push_events: Vec<String>,
    #[serde(default = "default_pr_events")]
    pub pull_request_events: Vec<String>,
    /// Full ref of a push (`refs/heads/B` or `refs/tags/T`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The pushed commit (`sha` is accepted as an alias).
    #[serde(alias = "sha")]
    pub after: String,
    /// `owner/name` of the repository.
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<CustomPrMapping>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub action_map: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomPrMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub target_branch: String,
    pub source_branch: String,
    pub sha: String,
    pub number: String,
    /// `owner/name` of the head repository; without it every PR counts as a fork (never
    /// trusted by accident).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repository: Option<String>,
    /// A ref template with `{number}` that makes the head fetchable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_ref: Option<String>,
}

fn default_push_events() -> Vec<String> {
    vec!["push".into()]
}

fn default_pr_events() -> Vec<String> {
    vec!["pull_request".into()]
}

impl CustomMapping {
    /// Checks every JSONPath, for source creation.
    pub fn validate(&self) -> Result<(), NormaliseError> {
        let mut paths = vec![&self.git_ref, &self.after, &self.repository];
        paths.extend(&self.before);
        paths.extend(&self.default_branch);
        paths.extend(&self.sender);
        if let Some(pr) = &self.pull_request {
            paths.extend([&pr.target_branch, &pr.source_branch, &pr.sha, &pr.number]);
            paths.extend(&pr.action);
            paths.extend(&pr.source_repository);
        }
        for p in paths {
            parse(p)?;
        }
        Ok(())
    }
}

fn parse(path: &str) -> Result<JsonPath, NormaliseError> {
    JsonPath::parse(path).map_err(|e| NormaliseError::InvalidMapping {
        message: e.to_string(),
    })
}

/// The first node at `path`, as text.
fn read(payload: &Value, path: &str) -> Result<Option<String>, NormaliseError> {
    let path_ = parse(path)?;
    Ok(path_
        .query(payload)
        .into_iter()
        .find_map(scalar_string)
        .filter(|s| !s.is_empty()))
}

fn required(payload: &Value, path: &str) -> Result<String, NormaliseError> {
    read(payload, path)?.ok_or_else(|| NormaliseError::MissingField {
        field: path.to_string(),
    })
}

fn optional(payload: &Value, path: Option<&String>) -> Result<Option<String>, NormaliseError> {
    match path {
        Some(p) => read(payload, p),
        None => Ok(None),
    }
}

pub(crate) fn normalise(
    mapping: &CustomMapping,
    headers: &Headers,
    payload: &Value,
) -> Result<Normalised, NormaliseError> {
    let name = headers
        .get_non_empty(&mapping.event_header)
        .ok_or_else(|| NormaliseError::MissingHeader {
            header: mapping.event_header.clone(),
        })?;
    let is_push = mapping.push_events.iter().any(|e| e == name);
    let pr = mapping
        .pull_request
        .as_ref()
        .filter(|_| mapping.pull_request_events.iter().any(|e| e == name));
    if !is_push && pr.is_none() {
        return Ok(Normalised::Ignored {
            reason: IgnoreReason::UnsupportedEvent {
                provider: PROVIDER.into(),
                event: name.into(),
            },
        });
    }
    let base = Event {
        payload: payload.clone(),
        source_repo: Some(required(payload, &mapping.repository)?),
        base_branch: optional(payload, mapping.default_branch.as_ref())?,
        sender_username: optional(payload, mapping.sender.as_ref())?,
        provider: Some(PROVIDER.into()),
        ..Event::default()
    };
    match pr {
        Some(pr) if !is_push => pull_request(mapping, pr, payload, base),
        _ => push(mapping, payload, base),
    }
}

fn push(
    mapping: &CustomMapping,
    payload: &Value,
    mut e: Event,
) -> Result<Normalised, NormaliseError> {
    let git_ref = required(payload, &mapping.git_ref)?;
    let after = required(payload, &mapping.after)?;
    if is_zero_sha(&after) {
        return Ok(Normalised::Ignored {
            reason: IgnoreReason::RefDeleted { git_ref },
        });
    }
    let (event_type, target) = match split_ref(&git_ref) {
        GitRef::Branch(b) => ("push", b.to_string()),
        GitRef::Tag(t) => ("tag", t.to_string()),
        GitRef::Other(_) => {
            return Ok(Normalised::Ignored {
                reason: IgnoreReason::UnsupportedRef { git_ref },
            });
        }
    };
    e.event_type = event_type.into();
    e.target_branch = Some(target);
    e.sha = Some(after.clone());
    let mut n = NormalisedEvent::new(e, Revision::Commit(after));
    n.fetch_ref = Some(git_ref);
    Ok(Normalised::Event(Box::new(n)))
}

fn pull_request(
    mapping: &CustomMapping,
    pr: &CustomPrMapping,
    payload: &Value,
    mut e: Event,
) -> Result<Normalised, NormaliseError> {
    let target = required(payload, &pr.target_branch)?;
    let number_text = required(payload, &pr.number)?;
    let number: u64 = number_text.parse().map_err(|_| NormaliseError::WrongType {
        field: pr.number.clone(),
        expected: "a non-negative integer",
        found: "a string",
    })?;
    let sha = required(payload, &pr.sha)?;
    let action = optional(payload, pr.action.as_ref())?
        .map(|a| mapping.action_map.get(&a).cloned().unwrap_or(a));
    let head_repo = optional(payload, pr.source_repository.as_ref())?;
    e.event_type = "pull_request".into();
    e.action = action;
    e.source_branch = Some(required(payload, &pr.source_branch)?);
    e.is_fork_pr = Some(match (&head_repo, &e.source_repo) {
        (Some(h), Some(b)) => !h.eq_ignore_ascii_case(b),
        _ => true,
    });
    e.sha = Some(sha.clone());
    e.target_branch = Some(target.clone());
    let mut n = NormalisedEvent::new(e, Revision::Commit(sha));
    n.fetch_ref = pr
        .fetch_ref
        .as_ref()
        .map(|t| t.replace("{number}", &number.to_string()));
    n.pull_request_number = Some(number);
    n.base_revision = Some(Revision::Ref(format!("refs/heads/{target}")));
    Ok(Normalised::Event(Box::new(n)))
}
