//! Local event simulation for `kici preview` and `kici run local` (`triggers.md` §10).
//!
//! Turns an event argument (`push`, `pr:open`, `tag:v1.2.3`, `schedule:0 3 * * *`, …) plus the
//! command-line options (`--branch`, `--sha`, `--files`, `--payload`, `--input`) and facts the
//! caller gathered from git into the normalised [`Event`] the matcher receives.
//!
//! Everything here is pure: the caller reads the `--payload` file, runs git and passes the
//! results in. With empty [`GitFacts`] the builder reproduces the reference's
//! `buildEventPayload` exactly (its built-in GitHub-shaped fixture bodies, `main` as the
//! default branch, `changedFiles: []` unless `--files` is given); the conformance corpus'
//! `event.json` files pin that down. Facts from git are layered on top (ours): the current
//! branch, `HEAD`, the `origin` repository and the changed files.
//!
//! Deliberate differences from the reference (all "ours" in the spec):
//! * `dispatch:<type>` sets the event `action` (and `payload.action`) so typed dispatch
//!   triggers can match (F66); plain `dispatch` keeps the reference's action-less event.
//! * `tag:<name>`, `webhook:<event>` (a raw provider event, not a generic-webhook alias),
//!   `pr:<any pull_request action>` and bare `pr` (= `pr:opened`) are accepted.
//! * Only the event kind is case-insensitive; free-form parameters (tag names, cron
//!   expressions, dispatch types, event names, sources) keep their case. The reference
//!   lower-cased the whole argument, so `schedule:0 0 * * MON` could never equal the lock's
//!   cron text.
//! * Unknown arguments are a usage error listing the accepted forms.
//! * `sha` and `sourceRepo` are set on the event when known.

use serde_json::{Map, Value, json};

use crate::event::Event;

/// The `pull_request` actions a `pr:<action>` argument may name (`triggers.md` §2).
pub const PR_ACTIONS: &[&str] = &[
    "opened",
    "synchronize",
    "reopened",
    "closed",
    "assigned",
    "unassigned",
    "labeled",
    "unlabeled",
    "edited",
    "converted_to_draft",
    "ready_for_review",
    "locked",
    "unlocked",
    "review_requested",
    "review_request_removed",
    "auto_merge_enabled",
    "auto_merge_disabled",
];

const COMMENT_ACTIONS: &[&str] = &["created", "edited", "deleted"];
const REVIEW_ACTIONS: &[&str] = &["submitted", "edited", "dismissed"];
const RELEASE_ACTIONS: &[&str] = &[
    "published",
    "unpublished",
    "created",
    "edited",
    "deleted",
    "prereleased",
    "released",
];
const REF_TYPES: &[&str] = &["branch", "tag"];
const WORKFLOW_RUN_ACTIONS: &[&str] = &["completed", "requested", "in_progress"];
const STAR_ACTIONS: &[&str] = &["created", "deleted"];
const WATCH_ACTIONS: &[&str] = &["started"];

/// The accepted event-argument forms, as printed with an unknown-event error.
pub const ACCEPTED_FORMS: &str = "push, pr:<action> (open|opened, sync|synchronize, \
close|closed, reopen|reopened, or any pull_request action), tag[:<name>], \
comment[:created|edited|deleted], review[:submitted|edited|dismissed], \
review_comment[:created|edited|deleted], \
release[:published|unpublished|created|edited|deleted|prereleased|released], \
dispatch[:<type>], create[:branch|tag], delete[:branch|tag], status, \
workflow_run[:completed|requested|in_progress], fork, star[:created|deleted], watch[:started], \
webhook:<event>, generic_webhook[:<source>], schedule[:<cron>], kici_event[:<name>], \
workflow_complete[:<status>], job_complete[:<status>], lifecycle[:<event>]";

/// A parsed event argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSpec {
    /// `pr:<action>`: a `pull_request` event.
    PullRequest { action: String },
    /// `push`.
    Push,
    /// `tag[:<name>]`; the name defaults to `--branch`, else the fixture's `v1.0.0`.
    Tag { name: Option<String> },
    /// `comment[:<action>]`.
    Comment { action: String },
    /// `review[:<action>]`.
    Review { action: String },
    /// `review_comment[:<action>]`.
    ReviewComment { action: String },
    /// `release[:<action>]`.
    Release { action: String },
    /// `dispatch[:<type>]`.
    Dispatch { dispatch_type: Option<String> },
    /// `create[:branch|tag]`.
    Create { ref_type: Option<String> },
    /// `delete[:branch|tag]`.
    Delete { ref_type: Option<String> },
    /// `status`.
    Status,
    /// `workflow_run[:<action>]`.
    WorkflowRun { action: String },
    /// `fork`.
    Fork,
    /// `star[:<action>]`.
    Star { action: String },
    /// `watch[:started]`.
    Watch { action: String },
    /// `webhook:<event>`: a raw provider event that only `webhook` triggers can match.
    Webhook { event: String },
    /// `generic_webhook[:<source>]`.
    GenericWebhook { source: Option<String> },
    /// `schedule[:<cron>]`. Without a cron the payload carries `"*"`; callers that want the
    /// "any schedule in the lock" behaviour check [`EventSpec::is_unspecified_schedule`].
    Schedule { cron: Option<String> },
    /// `kici_event[:<name>]` (default `test-event`).
    KiciEvent { name: String },
    /// `workflow_complete[:<status>]` (default `success`).
    WorkflowComplete { status: String },
    /// `job_complete[:<status>]` (default `success`).
    JobComplete { status: String },
    /// `lifecycle[:<event>]` (default `workflow_complete`).
    Lifecycle { event: String },
}

impl EventSpec {
    /// The normalised event `type` this argument produces.
    pub fn event_type(&self) -> &str {
        match self {
            EventSpec::PullRequest { .. } => "pull_request",
            EventSpec::Push => "push",
            EventSpec::Tag { .. } => "tag",
            EventSpec::Comment { .. } => "comment",
            EventSpec::Review { .. } => "review",
            EventSpec::ReviewComment { .. } => "review_comment",
            EventSpec::Release { .. } => "release",
            EventSpec::Dispatch { .. } => "dispatch",
            EventSpec::Create { .. } => "create",
            EventSpec::Delete { .. } => "delete",
            EventSpec::Status => "status",
            EventSpec::WorkflowRun { .. } => "workflow_run",
            EventSpec::Fork => "fork",
            EventSpec::Star { .. } => "star",
            EventSpec::Watch { .. } => "watch",
            EventSpec::Webhook { event } => event,
            EventSpec::GenericWebhook { .. } => "generic_webhook",
            EventSpec::Schedule { .. } => "schedule",
            EventSpec::KiciEvent { .. } => "kici_event",
            EventSpec::WorkflowComplete { .. } => "workflow_complete",
            EventSpec::JobComplete { .. } => "job_complete",
            EventSpec::Lifecycle { .. } => "lifecycle",
        }
    }

    /// The event `action`, when the argument implies one.
    pub fn action(&self) -> Option<&str> {
        match self {
            EventSpec::PullRequest { action }
            | EventSpec::Comment { action }
            | EventSpec::Review { action }
            | EventSpec::ReviewComment { action }
            | EventSpec::Release { action }
            | EventSpec::WorkflowRun { action }
            | EventSpec::Star { action }
            | EventSpec::Watch { action } => Some(action),
            EventSpec::Dispatch { dispatch_type } => dispatch_type.as_deref(),
            _ => None,
        }
    }

    /// `schedule` given without a cron expression: the caller should try every distinct cron
    /// expression of the lock (`triggers.md` §10, ours).
    pub fn is_unspecified_schedule(&self) -> bool {
        matches!(self, EventSpec::Schedule { cron: None })
    }

    /// Events whose payload is synthetic (not a GitHub webhook body): no fixture, no
    /// `--branch`/`--sha` overrides, target branch `main`.
    fn is_internal(&self) -> bool {
        matches!(
            self,
            EventSpec::KiciEvent { .. }
                | EventSpec::WorkflowComplete { .. }
                | EventSpec::JobComplete { .. }
                | EventSpec::GenericWebhook { .. }
                | EventSpec::Schedule { .. }
                | EventSpec::Lifecycle { .. }
                | EventSpec::Webhook { .. }
        )
    }
}

/// Why an event could not be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulateError {
    #[error("missing event argument; accepted forms: {ACCEPTED_FORMS}")]
    MissingEvent,
    #[error("unknown event {arg:?}; accepted forms: {ACCEPTED_FORMS}")]
    UnknownEvent { arg: String },
    #[error("invalid event {arg:?}: {message}")]
    InvalidEvent { arg: String, message: String },
    #[error("invalid --input {raw:?}: expected KEY=VALUE with a non-empty KEY")]
    InvalidInput { raw: String },
    #[error("invalid --payload: {message}")]
    InvalidPayload { message: String },
}

impl SimulateError {
    /// Usage errors (bad arguments) exit with 2; a bad payload file exits with 1.
    pub fn is_usage_error(&self) -> bool {
        !matches!(self, SimulateError::InvalidPayload { .. })
    }
}

/// Parses an event argument (`triggers.md` §10). The kind before the first `:` is
/// case-insensitive; enumerated parameters (actions, ref types, statuses) are too, free-form
/// ones keep their case.
pub fn parse_event_arg(arg: &str) -> Result<EventSpec, SimulateError> {
    let trimmed = arg.trim();
    if trimmed.is_empty() {
        return Err(SimulateError::MissingEvent);
    }
    let (kind, param) = match trimmed.split_once(':') {
        Some((k, p)) => (k.trim().to_ascii_lowercase(), Some(p)),
        None => (trimmed.to_ascii_lowercase(), None),
    };
    let invalid = |message: String| SimulateError::InvalidEvent {
        arg: arg.to_string(),
        message,
    };
    // An enumerated parameter: lower-cased, checked against `allowed`, defaulted.
    let pick = |allowed: &[&str], default: &str| -> Result<String, SimulateError> {
        match param {
            None => Ok(default.to_string()),
            Some(p) => {
                let p = p.trim().to_ascii_lowercase();
                if allowed.contains(&p.as_str()) {
                    Ok(p)
                } else {
                    Err(invalid(format!(
                        "unknown {kind} action or kind {p:?} (expected one of: {})",
                        allowed.join(", ")
                    )))
                }
            }
        }
    };
    // A free-form parameter: kept as written; `kind:` with nothing after it is an error.
    let free = |what: &str| -> Result<Option<String>, SimulateError> {
        match param {
            None => Ok(None),
            Some(p) if p.trim().is_empty() => {
                Err(invalid(format!("empty {what} after \"{kind}:\"")))
            }
            Some(p) => Ok(Some(p.trim().to_string())),
        }
    };
    let no_param = |spec: EventSpec| -> Result<EventSpec, SimulateError> {
        match param {
            None => Ok(spec),
            Some(_) => Err(invalid(format!("\"{kind}\" takes no parameter"))),
        }
    };

    let spec = match kind.as_str() {
        "pr" => {
            let action = match param.map(|p| p.trim().to_ascii_lowercase()) {
                None => "opened".to_string(),
                Some(p) => match p.as_str() {
                    "open" => "opened".to_string(),
                    "sync" => "synchronize".to_string(),
                    "close" => "closed".to_string(),
                    "reopen" => "reopened".to_string(),
                    other if PR_ACTIONS.contains(&other) => other.to_string(),
                    other => {
                        return Err(invalid(format!(
                            "unknown pull_request action {other:?} (expected open, sync, \
                             close, reopen or one of: {})",
                            PR_ACTIONS.join(", ")
                        )));
                    }
                },
            };
            EventSpec::PullRequest { action }
        }
        "push" => no_param(EventSpec::Push)?,
        "tag" => EventSpec::Tag {
            name: free("tag name")?,
        },
        "comment" => EventSpec::Comment {
            action: pick(COMMENT_ACTIONS, "created")?,
        },
        "review" => EventSpec::Review {
            action: pick(REVIEW_ACTIONS, "submitted")?,
        },
        "review_comment" => EventSpec::ReviewComment {
            action: pick(COMMENT_ACTIONS, "created")?,
        },
        "release" => EventSpec::Release {
            action: pick(RELEASE_ACTIONS, "published")?,
        },
        "dispatch" => EventSpec::Dispatch {
            dispatch_type: free("dispatch type")?,
        },
        "create" => EventSpec::Create {
            ref_type: param.map(|_| pick(REF_TYPES, "branch")).transpose()?,
        },
        "delete" => EventSpec::Delete {
            ref_type: param.map(|_| pick(REF_TYPES, "branch")).transpose()?,
        },
        "status" => no_param(EventSpec::Status)?,
        "workflow_run" => EventSpec::WorkflowRun {
            action: pick(WORKFLOW_RUN_ACTIONS, "completed")?,
        },
        "fork" => no_param(EventSpec::Fork)?,
        "star" => EventSpec::Star {
            action: pick(STAR_ACTIONS, "created")?,
        },
        "watch" => EventSpec::Watch {
            action: pick(WATCH_ACTIONS, "started")?,
        },
        "webhook" => match free("event name")? {
            Some(event) => EventSpec::Webhook { event },
            None => {
                return Err(invalid(
                    "webhook needs an event name: webhook:<event>".into(),
                ));
            }
        },
        "generic_webhook" => EventSpec::GenericWebhook {
            source: free("source")?,
        },
        "schedule" => EventSpec::Schedule {
            cron: free("cron expression")?,
        },
        "kici_event" => EventSpec::KiciEvent {
            name: free("event name")?.unwrap_or_else(|| "test-event".into()),
        },
        "workflow_complete" => EventSpec::WorkflowComplete {
            status: free("status")?.map_or_else(|| "success".into(), |s| s.to_ascii_lowercase()),
        },
        "job_complete" => EventSpec::JobComplete {
            status: free("status")?.map_or_else(|| "success".into(), |s| s.to_ascii_lowercase()),
        },
        "lifecycle" => EventSpec::Lifecycle {
            event: free("lifecycle event")?
                .map_or_else(|| "workflow_complete".into(), |s| s.to_ascii_lowercase()),
        },
        _ => {
            return Err(SimulateError::UnknownEvent {
                arg: arg.to_string(),
            });
        }
    };
    Ok(spec)
}

/// Command-line options that shape the simulated event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimulateOptions {
    /// `--branch`: push branch, PR target branch, tag name, release target, create/delete
    /// ref, workflow-run head branch.
    pub branch: Option<String>,
    /// `--sha`: the commit to build.
    pub sha: Option<String>,
    /// `--files` after splitting (see [`split_files`]); `None` when the flag was not given.
    pub files: Option<Vec<String>>,
    /// The parsed content of the `--payload` file: replaces the built-in body.
    pub payload: Option<Value>,
    /// `owner/name` override of the payload's repository (the reference's `--repo`).
    pub repo: Option<String>,
    /// `--input K=V`, in command-line order (see [`parse_input`]). Not applied by
    /// [`build_event`]: inputs belong to the matched trigger, so callers resolve them after
    /// matching with [`resolve_inputs`] and set `Event::dispatch_inputs` per workflow.
    pub inputs: Vec<(String, String)>,
}

/// Facts the caller read from git. Leave a field `None` when unknown (or to reproduce the
/// reference's fixture values: the reference did not use the current branch, `HEAD` or the
/// working tree for `preview`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitFacts {
    /// The checked-out branch: the push branch when `--branch` is absent, and the PR source
    /// branch.
    pub current_branch: Option<String>,
    /// `git rev-parse HEAD`, used when `--sha` is absent.
    pub head_sha: Option<String>,
    /// `owner/name` from the `origin` remote (or `local/<dir name>`).
    pub repo: Option<String>,
    /// The changed files the caller computed for [`changed_files_query`]; used when
    /// `--files` is absent. Leave `None` for [`ChangedFilesQuery::None`]: the event then
    /// carries `changedFiles: []` like the reference's (no trigger of those event types
    /// reads changed files).
    pub changed_files: Option<Vec<String>>,
}

/// Which changed files the caller should compute from git for an event (`triggers.md` §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedFilesQuery {
    /// `--files` was given: nothing to compute.
    Given,
    /// Pull request: files changed between the merge base of `target_branch` and `HEAD`,
    /// plus uncommitted changes (staged, unstaged, untracked and not ignored).
    MergeBase { target_branch: String },
    /// Push: uncommitted changes if there are any, else the files changed by `HEAD`.
    WorkingTreeOrHead,
    /// Other events: changed files are not used.
    None,
}

/// What the caller should compute from git for [`GitFacts::changed_files`].
pub fn changed_files_query(spec: &EventSpec, options: &SimulateOptions) -> ChangedFilesQuery {
    if options.files.is_some() {
        return ChangedFilesQuery::Given;
    }
    match spec {
        EventSpec::PullRequest { .. } => ChangedFilesQuery::MergeBase {
            target_branch: options.branch.clone().unwrap_or_else(|| "main".into()),
        },
        EventSpec::Push => ChangedFilesQuery::WorkingTreeOrHead,
        _ => ChangedFilesQuery::None,
    }
}

/// Splits `--files` occurrences at commas; trims and drops empty entries.
pub fn split_files<S: AsRef<str>>(occurrences: &[S]) -> Vec<String> {
    occurrences
        .iter()
        .flat_map(|o| o.as_ref().split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses one `--input K=V` (split at the first `=`).
pub fn parse_input(raw: &str) -> Result<(String, String), SimulateError> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(SimulateError::InvalidInput {
            raw: raw.to_string(),
        }),
    }
}

/// Parses the argument and builds the event: [`parse_event_arg`] + [`build_event`].
pub fn simulate(
    arg: &str,
    options: &SimulateOptions,
    git: &GitFacts,
) -> Result<Event, SimulateError> {
    build_event(&parse_event_arg(arg)?, options, git)
}

/// Builds the normalised event for a parsed argument.
pub fn build_event(
    spec: &EventSpec,
    options: &SimulateOptions,
    git: &GitFacts,
) -> Result<Event, SimulateError> {
    let changed_files = options
        .files
        .clone()
        .or_else(|| git.changed_files.clone())
        .unwrap_or_default();
    let sha = options.sha.clone().or_else(|| git.head_sha.clone());
    let repo = options.repo.clone().or_else(|| git.repo.clone());

    let mut event = if spec.is_internal() {
        internal_event(spec, options)?
    } else {
        github_event(spec, options, git, sha.as_deref(), repo.as_deref())?
    };
    event.changed_files = Some(changed_files);
    event.sha = sha;
    event.source_repo = repo;
    Ok(event)
}

/// Events with synthetic payloads (schedule, generic and raw webhooks, later-tier events).
fn internal_event(spec: &EventSpec, options: &SimulateOptions) -> Result<Event, SimulateError> {
    let payload = match &options.payload {
        Some(p) => p.clone(),
        None => match spec {
            EventSpec::KiciEvent { name } => json!({ "eventName": name }),
            EventSpec::WorkflowComplete { status } => {
                json!({ "workflowName": "test", "status": status })
            }
            EventSpec::JobComplete { status } => {
                json!({ "workflowName": "test", "jobName": "test", "status": status })
            }
            EventSpec::GenericWebhook { source: Some(s) } => json!({ "source": s }),
            EventSpec::Schedule { cron } => json!({
                "cronExpression": cron.as_deref().unwrap_or("*"),
                "timezone": "UTC",
            }),
            EventSpec::Lifecycle { event } => json!({ "lifecycleEvent": event }),
            _ => json!({}),
        },
    };
    // A raw webhook event carries the payload's action, like a real delivery (§9.4).
    let action = match spec {
        EventSpec::Webhook { .. } => match payload.get("action") {
            Some(Value::String(a)) => Some(a.clone()),
            _ => None,
        },
        _ => None,
    };
    Ok(Event {
        event_type: spec.event_type().to_string(),
        action,
        payload,
        target_branch: Some("main".into()),
        ..Event::default()
    })
}

/// GitHub-shaped events: fixture (or `--payload`) body, overrides, then normalisation.
fn github_event(
    spec: &EventSpec,
    options: &SimulateOptions,
    git: &GitFacts,
    sha: Option<&str>,
    repo: Option<&str>,
) -> Result<Event, SimulateError> {
    let mut payload = match &options.payload {
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            return Err(SimulateError::InvalidPayload {
                message: format!("expected a JSON object, found {}", json_kind(other)),
            });
        }
        None => match fixture(spec) {
            Value::Object(map) => map,
            _ => Map::new(),
        },
    };

    // Overrides, in the reference's order: repository, commit, branch.
    let mut overrides = Map::new();
    if let Some(repo) = repo {
        let (owner, name) = match repo.split_once('/') {
            Some((o, n)) => (o, n),
            None => (repo, ""),
        };
        overrides.insert(
            "repository".into(),
            json!({ "owner": { "login": owner }, "name": name, "full_name": repo }),
        );
    }
    let mut pull_request = Map::new();
    let mut workflow_run = Map::new();
    if let Some(sha) = sha {
        match spec {
            EventSpec::Push | EventSpec::Tag { .. } => {
                overrides.insert("after".into(), sha.into());
            }
            EventSpec::Status => {
                overrides.insert("sha".into(), sha.into());
            }
            EventSpec::PullRequest { .. }
            | EventSpec::Review { .. }
            | EventSpec::ReviewComment { .. } => {
                pull_request.insert("head".into(), json!({ "sha": sha }));
            }
            EventSpec::WorkflowRun { .. } => {
                workflow_run.insert("head_sha".into(), sha.into());
            }
            _ => {}
        }
    }
    // Ours: the PR source branch is the checked-out branch when known.
    if let (EventSpec::PullRequest { .. }, Some(current)) = (spec, &git.current_branch) {
        match pull_request.get_mut("head") {
            Some(Value::Object(head)) => {
                head.insert("ref".into(), current.as_str().into());
            }
            _ => {
                pull_request.insert("head".into(), json!({ "ref": current }));
            }
        }
    }
    let branch = match spec {
        EventSpec::Tag { name: Some(name) } => Some(name.clone()),
        // Ours: a push defaults to the checked-out branch.
        EventSpec::Push => options
            .branch
            .clone()
            .or_else(|| git.current_branch.clone()),
        _ => options.branch.clone(),
    };
    if let Some(branch) = &branch {
        match spec {
            EventSpec::Push => {
                overrides.insert("ref".into(), format!("refs/heads/{branch}").into());
            }
            EventSpec::Tag { .. } => {
                overrides.insert("ref".into(), format!("refs/tags/{branch}").into());
            }
            EventSpec::PullRequest { .. }
            | EventSpec::Review { .. }
            | EventSpec::ReviewComment { .. } => {
                pull_request.insert("base".into(), json!({ "ref": branch }));
            }
            EventSpec::Release { .. } => {
                overrides.insert("release".into(), json!({ "target_commitish": branch }));
            }
            EventSpec::Create { .. } | EventSpec::Delete { .. } => {
                overrides.insert("ref".into(), branch.as_str().into());
            }
            EventSpec::WorkflowRun { .. } => {
                workflow_run.insert("head_branch".into(), branch.as_str().into());
            }
            _ => {}
        }
    }
    if !pull_request.is_empty() {
        overrides.insert("pull_request".into(), Value::Object(pull_request));
    }
    if !workflow_run.is_empty() {
        overrides.insert("workflow_run".into(), Value::Object(workflow_run));
    }
    deep_merge(&mut payload, overrides);

    match spec {
        EventSpec::Create {
            ref_type: Some(rt), ..
        }
        | EventSpec::Delete {
            ref_type: Some(rt), ..
        } => {
            payload.insert("ref_type".into(), rt.as_str().into());
        }
        EventSpec::Dispatch {
            dispatch_type: Some(t),
        } => {
            payload.insert("action".into(), t.as_str().into());
        }
        _ => {}
    }

    let payload = Value::Object(payload);
    let default_branch =
        string_at(&payload, &["repository", "default_branch"])?.unwrap_or_else(|| "main".into());
    let mut source_branch = None;
    let target_branch = match spec {
        EventSpec::Push => {
            let r = string_at(&payload, &["ref"])?.unwrap_or_else(|| "refs/heads/main".into());
            r.replacen("refs/heads/", "", 1)
        }
        EventSpec::Tag { .. } => {
            let r = string_at(&payload, &["ref"])?.unwrap_or_else(|| "refs/tags/v0.0.0".into());
            r.replacen("refs/tags/", "", 1)
        }
        EventSpec::PullRequest { .. }
        | EventSpec::Review { .. }
        | EventSpec::ReviewComment { .. } => {
            source_branch = string_at(&payload, &["pull_request", "head", "ref"])?;
            string_at(&payload, &["pull_request", "base", "ref"])?.unwrap_or(default_branch)
        }
        EventSpec::Comment { .. } => {
            string_at(&payload, &["issue", "pull_request", "base_ref"])?.unwrap_or(default_branch)
        }
        EventSpec::Release { .. } => {
            string_at(&payload, &["release", "target_commitish"])?.unwrap_or(default_branch)
        }
        EventSpec::Create { .. } | EventSpec::Delete { .. } => {
            string_at(&payload, &["ref"])?.unwrap_or(default_branch)
        }
        EventSpec::Status => {
            string_at(&payload, &["branches", "0", "name"])?.unwrap_or(default_branch)
        }
        EventSpec::WorkflowRun { .. } => {
            string_at(&payload, &["workflow_run", "head_branch"])?.unwrap_or(default_branch)
        }
        _ => default_branch,
    };

    Ok(Event {
        event_type: spec.event_type().to_string(),
        action: spec.action().map(str::to_string),
        payload,
        target_branch: Some(target_branch),
        source_branch,
        ..Event::default()
    })
}

/// The reference's deep merge: `null` overrides are skipped, objects merge into objects,
/// everything else replaces. Existing keys keep their position; new keys are appended.
fn deep_merge(base: &mut Map<String, Value>, overrides: Map<String, Value>) {
    for (key, value) in overrides {
        match value {
            Value::Null => {}
            Value::Object(inner) => match base.get_mut(&key) {
                Some(Value::Object(existing)) => deep_merge(existing, inner),
                _ => {
                    base.insert(key, Value::Object(inner));
                }
            },
            other => {
                base.insert(key, other);
            }
        }
    }
}

/// Reads a string at a property path (array elements by decimal index). Missing or `null`
/// anywhere along the path is `None`, like JavaScript's optional chaining; a present value of
/// another type is an error (the reference would have crashed or produced a non-string
/// branch).
fn string_at(payload: &Value, path: &[&str]) -> Result<Option<String>, SimulateError> {
    let mut current = payload;
    for key in path {
        let next = match current {
            Value::Object(map) => map.get(*key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    match current {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(SimulateError::InvalidPayload {
            message: format!(
                "payload field `{}` must be a string, found {}",
                path.join("."),
                json_kind(other)
            ),
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The built-in GitHub-shaped webhook body for an event (what `kici fixture <event>` prints).
/// These are the reference's default fixtures; note that the body's `action` is the
/// fixture's, not the argument's (`comment:edited` still carries `"action": "created"`), as
/// in the reference.
pub fn fixture(spec: &EventSpec) -> Value {
    let org_repo = || {
        json!({
            "name": "test-repo",
            "full_name": "test-org/test-repo",
            "owner": { "login": "test-org" },
            "default_branch": "main",
        })
    };
    let owner_repo = || {
        json!({
            "name": "test-repo",
            "full_name": "owner/test-repo",
            "owner": { "login": "owner" },
        })
    };
    let sender = |login: &str| json!({ "login": login });
    match spec {
        EventSpec::PullRequest { action } => {
            // The reference had bodies for opened/synchronize/reopened/closed; other actions
            // (ours) reuse the `opened` body with their own action.
            let mut pr = Map::new();
            pr.insert("number".into(), 1.into());
            pr.insert("title".into(), "Test PR".into());
            if action == "closed" {
                pr.insert("state".into(), "closed".into());
                pr.insert("merged".into(), false.into());
            } else {
                pr.insert("state".into(), "open".into());
            }
            pr.insert(
                "head".into(),
                json!({ "ref": "feature-branch", "sha": "abc123" }),
            );
            pr.insert("base".into(), json!({ "ref": "main", "sha": "def456" }));
            json!({
                "action": action,
                "number": 1,
                "pull_request": Value::Object(pr),
                "repository": owner_repo(),
                "sender": sender("user"),
            })
        }
        EventSpec::Push => json!({
            "ref": "refs/heads/main",
            "before": "000000",
            "after": "abc123",
            "repository": owner_repo(),
            "pusher": { "name": "user" },
            "commits": [],
        }),
        EventSpec::Tag { .. } => json!({
            "ref": "refs/tags/v1.0.0",
            "before": "0000000000000000000000000000000000000000",
            "after": "abc123def456",
            "repository": org_repo(),
            "pusher": { "name": "test-user" },
            "sender": sender("test-user"),
            "commits": [],
        }),
        EventSpec::Comment { .. } => json!({
            "action": "created",
            "comment": {
                "id": 1,
                "body": "Looks good to me!",
                "user": { "login": "test-user" },
                "created_at": "2026-01-01T00:00:00Z",
            },
            "issue": {
                "number": 42,
                "title": "Test issue",
                "state": "open",
                "pull_request": {
                    "url": "https://api.github.com/repos/test-org/test-repo/pulls/42",
                },
            },
            "repository": org_repo(),
            "sender": sender("test-user"),
        }),
        EventSpec::Review { .. } => json!({
            "action": "submitted",
            "review": {
                "id": 1,
                "state": "approved",
                "body": "LGTM",
                "user": { "login": "reviewer" },
            },
            "pull_request": review_pr(),
            "repository": org_repo(),
            "sender": sender("reviewer"),
        }),
        EventSpec::ReviewComment { .. } => json!({
            "action": "created",
            "comment": {
                "id": 1,
                "body": "Consider refactoring this",
                "path": "src/index.ts",
                "line": 42,
                "user": { "login": "reviewer" },
            },
            "pull_request": review_pr(),
            "repository": org_repo(),
            "sender": sender("reviewer"),
        }),
        EventSpec::Release { .. } => json!({
            "action": "published",
            "release": {
                "id": 1,
                "tag_name": "v1.0.0",
                "target_commitish": "main",
                "name": "v1.0.0",
                "draft": false,
                "prerelease": false,
                "body": "Release notes",
            },
            "repository": org_repo(),
            "sender": sender("test-user"),
        }),
        EventSpec::Dispatch { .. } => json!({
            "action": "deploy",
            "client_payload": {},
            "repository": org_repo(),
            "sender": sender("test-user"),
        }),
        EventSpec::Create { .. } => json!({
            "ref": "feature/new",
            "ref_type": "branch",
            "master_branch": "main",
            "description": null,
            "repository": org_repo(),
            "sender": sender("test-user"),
        }),
        EventSpec::Delete { .. } => json!({
            "ref": "feature/old",
            "ref_type": "branch",
            "repository": org_repo(),
            "sender": sender("test-user"),
        }),
        EventSpec::Status => json!({
            "state": "success",
            "context": "ci/test",
            "sha": "abc123def456",
            "description": "Build succeeded",
            "target_url": "https://ci.example.com/builds/1",
            "branches": [ { "name": "main", "commit": { "sha": "abc123def456" } } ],
            "repository": org_repo(),
            "sender": sender("test-user"),
        }),
        EventSpec::WorkflowRun { .. } => json!({
            "action": "completed",
            "workflow_run": {
                "id": 1,
                "name": "CI",
                "head_branch": "main",
                "head_sha": "abc123def456",
                "status": "completed",
                "conclusion": "success",
                "event": "push",
            },
            "repository": org_repo(),
            "sender": sender("test-user"),
        }),
        EventSpec::Fork => json!({
            "forkee": { "full_name": "forker/test-repo", "owner": { "login": "forker" } },
            "repository": org_repo(),
            "sender": sender("forker"),
        }),
        EventSpec::Star { .. } => {
            let mut repo = org_repo();
            if let Value::Object(map) = &mut repo {
                map.insert("stargazers_count".into(), 100.into());
            }
            json!({ "action": "created", "repository": repo, "sender": sender("test-user") })
        }
        EventSpec::Watch { .. } => {
            let mut repo = org_repo();
            if let Value::Object(map) = &mut repo {
                map.insert("watchers_count".into(), 50.into());
            }
            json!({ "action": "started", "repository": repo, "sender": sender("test-user") })
        }
        _ => json!({}),
    }
}

fn review_pr() -> Value {
    json!({
        "number": 42,
        "title": "Test PR",
        "state": "open",
        "head": { "ref": "feature-branch", "sha": "abc123" },
        "base": { "ref": "main", "sha": "def456" },
    })
}

/// Why `--input` values do not fit a trigger's `InputsDescriptorMap` (`sdk.md` §10.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputsError {
    #[error("unknown input \"{name}\" (declared inputs: {declared})")]
    Unknown { name: String, declared: String },
    #[error("missing required input \"{name}\"")]
    Missing { name: String },
    #[error("input \"{name}\": {message}")]
    Invalid { name: String, message: String },
    #[error("input \"{name}\": malformed descriptor in the lock: {message}")]
    Descriptor { name: String, message: String },
}

/// Resolves `--input K=V` texts against a trigger's `InputsDescriptorMap`: missing inputs
/// take their default, optional ones are omitted, others are an error; texts are coerced
/// (numbers parsed, integers integral, booleans from `true/false/1/0/yes/no` in any case,
/// the exact text `null` for nullable inputs) and validated (`min`/`max`, `pattern`, enum
/// `values`, `literal`). The result follows the descriptor's key order.
pub fn resolve_inputs(
    descriptor: &Map<String, Value>,
    raw: &[(String, String)],
) -> Result<Map<String, Value>, InputsError> {
    for (name, _) in raw {
        if !descriptor.contains_key(name) {
            let declared: Vec<&str> = descriptor.keys().map(String::as_str).collect();
            return Err(InputsError::Unknown {
                name: name.clone(),
                declared: if declared.is_empty() {
                    "none".into()
                } else {
                    declared.join(", ")
                },
            });
        }
    }
    let mut out = Map::new();
    for (name, spec) in descriptor {
        let bad_descriptor = |message: &str| InputsError::Descriptor {
            name: name.clone(),
            message: message.to_string(),
        };
        let spec = spec
            .as_object()
            .ok_or_else(|| bad_descriptor("not an object"))?;
        let flag = |key: &str| spec.get(key).and_then(Value::as_bool).unwrap_or(false);
        // The last occurrence wins, like repeated flags usually do.
        let Some(text) = raw.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v) else {
            if let Some(default) = spec.get("default") {
                out.insert(name.clone(), default.clone());
            } else if !flag("optional") {
                return Err(InputsError::Missing { name: name.clone() });
            }
            continue;
        };
        if text == "null" && flag("nullable") {
            out.insert(name.clone(), Value::Null);
            continue;
        }
        let invalid = |message: String| InputsError::Invalid {
            name: name.clone(),
            message,
        };
        let kind = spec
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_descriptor("no type"))?;
        let min = spec.get("min").and_then(Value::as_f64);
        let max = spec.get("max").and_then(Value::as_f64);
        let value = match kind {
            "string" => {
                let len = text.encode_utf16().count() as f64;
                if let Some(min) = min.filter(|m| len < *m) {
                    return Err(invalid(format!("must be at least {min} characters long")));
                }
                if let Some(max) = max.filter(|m| len > *m) {
                    return Err(invalid(format!("must be at most {max} characters long")));
                }
                if let Some(pattern) = spec.get("pattern").and_then(Value::as_str) {
                    let re = regress::Regex::new(pattern)
                        .map_err(|e| bad_descriptor(&format!("pattern /{pattern}/: {e}")))?;
                    if re.find(text).is_none() {
                        return Err(invalid(format!("{text:?} does not match /{pattern}/")));
                    }
                }
                Value::String(text.clone())
            }
            "number" | "integer" => {
                let n: f64 = text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite() && !text.trim().is_empty())
                    .ok_or_else(|| invalid(format!("{text:?} is not a number")))?;
                if kind == "integer" && n.fract() != 0.0 {
                    return Err(invalid(format!("{text:?} is not an integer")));
                }
                if let Some(min) = min.filter(|m| n < *m) {
                    return Err(invalid(format!("must be at least {min}")));
                }
                if let Some(max) = max.filter(|m| n > *m) {
                    return Err(invalid(format!("must be at most {max}")));
                }
                if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                    Value::from(n as i64)
                } else {
                    serde_json::Number::from_f64(n)
                        .map(Value::Number)
                        .ok_or_else(|| invalid(format!("{text:?} is not a number")))?
                }
            }
            "boolean" => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::Bool(true),
                "false" | "0" | "no" => Value::Bool(false),
                _ => return Err(invalid(format!("{text:?} is not a boolean"))),
            },
            "enum" => {
                let values = spec
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad_descriptor("enum without values"))?;
                if !values.iter().any(|v| v.as_str() == Some(text.as_str())) {
                    let allowed: Vec<String> = values
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect();
                    return Err(invalid(format!(
                        "{text:?} is not one of: {}",
                        allowed.join(", ")
                    )));
                }
                Value::String(text.clone())
            }
            "literal" => {
                let literal = spec
                    .get("literal")
                    .ok_or_else(|| bad_descriptor("literal without a value"))?;
                let shown = match literal {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if *text != shown {
                    return Err(invalid(format!("must be {shown:?}")));
                }
                literal.clone()
            }
            other => return Err(bad_descriptor(&format!("unknown type {other:?}"))),
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(arg: &str, options: &SimulateOptions) -> Event {
        simulate(arg, options, &GitFacts::default()).expect("simulate")
    }

    #[test]
    fn kinds_are_case_insensitive_parameters_keep_case() {
        assert_eq!(
            parse_event_arg("PR:Open").unwrap(),
            EventSpec::PullRequest {
                action: "opened".into()
            }
        );
        assert_eq!(
            parse_event_arg("schedule:0 0 * * MON").unwrap(),
            EventSpec::Schedule {
                cron: Some("0 0 * * MON".into())
            }
        );
        assert_eq!(
            parse_event_arg("tag:V1.2.3").unwrap(),
            EventSpec::Tag {
                name: Some("V1.2.3".into())
            }
        );
    }

    #[test]
    fn unknown_and_invalid_arguments_are_usage_errors() {
        for bad in [
            "pushh",
            "pr:merge",
            "push:main",
            "comment:x",
            "create:note",
            "webhook",
            "tag:",
            "",
        ] {
            let err = parse_event_arg(bad).unwrap_err();
            assert!(err.is_usage_error(), "{bad}: {err}");
        }
        let msg = parse_event_arg("nope").unwrap_err().to_string();
        assert!(msg.contains("unknown event \"nope\""), "{msg}");
        assert!(msg.contains("schedule[:<cron>]"), "{msg}");
    }

    #[test]
    fn typed_dispatch_sets_the_action() {
        let e = ev("dispatch:deploy-prod", &SimulateOptions::default());
        assert_eq!(e.action.as_deref(), Some("deploy-prod"));
        assert_eq!(e.payload["action"], "deploy-prod");
        let plain = ev("dispatch", &SimulateOptions::default());
        assert_eq!(plain.action, None);
    }

    #[test]
    fn tag_name_wins_over_branch() {
        let options = SimulateOptions {
            branch: Some("rc-7".into()),
            ..SimulateOptions::default()
        };
        let e = ev("tag:v2.0.0", &options);
        assert_eq!(e.target_branch.as_deref(), Some("v2.0.0"));
        assert_eq!(e.payload["ref"], "refs/tags/v2.0.0");
        assert_eq!(ev("tag", &options).target_branch.as_deref(), Some("rc-7"));
    }

    #[test]
    fn git_facts_are_layered_on_top() {
        let git = GitFacts {
            current_branch: Some("feat/x".into()),
            head_sha: Some("0123abcd".into()),
            repo: Some("acme/widgets".into()),
            changed_files: Some(vec!["src/a.ts".into()]),
        };
        let push = simulate("push", &SimulateOptions::default(), &git).unwrap();
        assert_eq!(push.target_branch.as_deref(), Some("feat/x"));
        assert_eq!(push.payload["after"], "0123abcd");
        assert_eq!(push.payload["repository"]["full_name"], "acme/widgets");
        assert_eq!(push.sha.as_deref(), Some("0123abcd"));
        assert_eq!(push.source_repo.as_deref(), Some("acme/widgets"));
        assert_eq!(push.changed_files, Some(vec!["src/a.ts".to_string()]));

        let pr = simulate("pr:sync", &SimulateOptions::default(), &git).unwrap();
        assert_eq!(pr.source_branch.as_deref(), Some("feat/x"));
        assert_eq!(pr.target_branch.as_deref(), Some("main"));
        assert_eq!(pr.payload["pull_request"]["head"]["sha"], "0123abcd");
    }

    #[test]
    fn payload_replaces_the_fixture_and_is_checked() {
        let options = SimulateOptions {
            payload: Some(json!({ "ref": "refs/heads/dev", "after": "ff" })),
            ..SimulateOptions::default()
        };
        let e = ev("push", &options);
        assert_eq!(e.target_branch.as_deref(), Some("dev"));
        let bad = SimulateOptions {
            payload: Some(json!({ "ref": 7 })),
            ..SimulateOptions::default()
        };
        let err = simulate("push", &bad, &GitFacts::default()).unwrap_err();
        assert!(!err.is_usage_error());
        assert!(err.to_string().contains("`ref` must be a string"), "{err}");
        let not_object = SimulateOptions {
            payload: Some(json!([1])),
            ..SimulateOptions::default()
        };
        assert!(simulate("push", &not_object, &GitFacts::default()).is_err());
    }

    #[test]
    fn files_and_inputs() {
        assert_eq!(
            split_files(&["a.ts, b.ts", "", "c.ts"]),
            vec!["a.ts", "b.ts", "c.ts"]
        );
        assert_eq!(
            parse_input("k=v=w").unwrap(),
            ("k".to_string(), "v=w".to_string())
        );
        assert!(parse_input("=v").is_err());
        assert!(parse_input("novalue").is_err());
    }

    #[test]
    fn inputs_are_coerced_defaulted_and_validated() {
        let descriptor = json!({
            "target": {"type": "enum", "optional": false, "nullable": false,
                       "values": ["staging", "production"]},
            "version": {"type": "string", "optional": false, "nullable": false,
                        "pattern": "^v\\d+\\.\\d+\\.\\d+$"},
            "dryRun": {"type": "boolean", "optional": false, "nullable": false, "default": false},
            "replicas": {"type": "integer", "optional": false, "nullable": false, "default": 2,
                         "min": 1, "max": 10},
            "note": {"type": "string", "optional": true, "nullable": false},
            "confirm": {"type": "literal", "optional": false, "nullable": true, "literal": "yes"},
            "ratio": {"type": "number", "optional": false, "nullable": false, "min": 0, "max": 1}
        });
        let descriptor = descriptor.as_object().unwrap();
        let raw = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ok = resolve_inputs(
            descriptor,
            &raw(&[
                ("target", "staging"),
                ("version", "v1.2.3"),
                ("confirm", "null"),
                ("ratio", "0.5"),
                ("dryRun", "YES"),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(ok),
            json!({"target": "staging", "version": "v1.2.3", "dryRun": true, "replicas": 2,
                   "confirm": null, "ratio": 0.5})
        );
        let base = [
            ("target", "staging"),
            ("version", "v1.2.3"),
            ("confirm", "yes"),
            ("ratio", "1"),
        ];
        for (extra, needle) in [
            (("target", "dev"), "is not one of"),
            (("version", "1.2"), "does not match"),
            (("replicas", "2.5"), "not an integer"),
            (("replicas", "11"), "at most 10"),
            (("dryRun", "maybe"), "not a boolean"),
            (("confirm", "no"), "must be \"yes\""),
            (("bogus", "1"), "unknown input"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push(extra);
            let err = resolve_inputs(descriptor, &raw(&pairs)).unwrap_err();
            assert!(err.to_string().contains(needle), "{extra:?}: {err}");
        }
        let err = resolve_inputs(descriptor, &raw(&[("target", "staging")])).unwrap_err();
        assert_eq!(
            err,
            InputsError::Missing {
                name: "version".into()
            }
        );
    }

    #[test]
    fn webhook_is_a_raw_event() {
        let e = ev("webhook:deployment", &SimulateOptions::default());
        assert_eq!(e.event_type, "deployment");
        assert_eq!(e.target_branch.as_deref(), Some("main"));
    }
}
