//! Provider webhooks → normalised events (`triggers.md` §9), plus the pure helpers of the
//! ingress and the pipeline: headers, delivery ids (`orchestrator.md` §2), ref splitting,
//! changed files from a push payload (`triggers.md` §5.1) and lock-cache keys (§5.2).
//!
//! Normalising never fails on a payload it merely does not understand: such deliveries are
//! [`Normalised::Ignored`] with a reason. Only payloads that claim to be an event we map but
//! lack (or mistype) a field the mapping needs are errors, and the error names the field.

mod custom;
mod fields;
mod generic;
mod github;
mod gitlab;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::Event;

pub use custom::{CustomMapping, CustomPrMapping};
pub use fields::dot_path;
pub use generic::{GenericConfig, generic_event_name, is_allowed_event};
pub use github::{is_unstored_github_event, trust_invalidating_event};

/// Request headers with case-insensitive names, in arrival order.
///
/// Built by the HTTP layer (or from the inbox's stored header JSON); only values that are
/// valid UTF-8 matter to us, so callers drop the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut headers = Headers::new();
        for (k, v) in pairs {
            headers.insert(k.as_ref(), v.as_ref());
        }
        headers
    }

    /// From a JSON object of header name → string value (the inbox's `headers` column).
    /// Non-string values are skipped.
    pub fn from_json(value: &Value) -> Self {
        let mut headers = Headers::new();
        if let Value::Object(map) = value {
            for (k, v) in map {
                if let Value::String(v) = v {
                    headers.insert(k, v);
                }
            }
        }
        headers
    }

    /// Names are stored lower-cased, as HTTP/2 sends them.
    pub fn insert(&mut self, name: &str, value: &str) {
        self.0.push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// The first value of `name` (any case). A repeated header keeps its first value, so a
    /// client cannot override a proxy-set header by appending another.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Like [`Headers::get`], but an empty or all-blank value counts as absent.
    pub fn get_non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The subset worth persisting with an inbox item (`orchestrator.md` §3.1): only the named
    /// headers, and never `authorization` or `cookie` whatever the caller asks for.
    pub fn retain_for_inbox(&self, keep: &[&str]) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in self.iter() {
            if k == "authorization" || k == "cookie" {
                continue;
            }
            if keep.iter().any(|n| n.eq_ignore_ascii_case(k)) && !out.contains_key(k) {
                out.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
        out
    }
}

/// Universal-git presets (`triggers.md` §9.2), as spelled in a `git` source's `config.preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GitPreset {
    GithubRepo,
    Gitea,
    Forgejo,
    Gogs,
    GitlabRepo,
    Custom,
}

impl GitPreset {
    pub fn as_str(self) -> &'static str {
        match self {
            GitPreset::GithubRepo => "github-repo",
            GitPreset::Gitea => "gitea",
            GitPreset::Forgejo => "forgejo",
            GitPreset::Gogs => "gogs",
            GitPreset::GitlabRepo => "gitlab-repo",
            GitPreset::Custom => "custom",
        }
    }

    /// The header that names the event.
    pub fn event_header(self) -> Option<&'static str> {
        match self {
            GitPreset::GithubRepo => Some("X-GitHub-Event"),
            GitPreset::Gitea => Some("X-Gitea-Event"),
            GitPreset::Forgejo => Some("X-Forgejo-Event"),
            GitPreset::Gogs => Some("X-Gogs-Event"),
            GitPreset::GitlabRepo => Some("X-Gitlab-Event"),
            GitPreset::Custom => None,
        }
    }

    /// The header carrying the forge's own delivery id.
    pub fn delivery_header(self) -> Option<&'static str> {
        match self {
            GitPreset::GithubRepo => Some("X-GitHub-Delivery"),
            GitPreset::Gitea => Some("X-Gitea-Delivery"),
            GitPreset::Forgejo => Some("X-Forgejo-Delivery"),
            GitPreset::Gogs => Some("X-Gogs-Delivery"),
            GitPreset::GitlabRepo => Some("X-Gitlab-Event-UUID"),
            GitPreset::Custom => None,
        }
    }

    /// The event's `provider` value.
    pub fn provider(self) -> &'static str {
        match self {
            GitPreset::GithubRepo => "github",
            GitPreset::Gitea => "gitea",
            GitPreset::Forgejo => "forgejo",
            GitPreset::Gogs => "gogs",
            GitPreset::GitlabRepo => "gitlab",
            GitPreset::Custom => "git",
        }
    }
}

/// Which kind of source a delivery came through; selects the mapping.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// `POST /webhook/:orgId/github`.
    GitHubApp,
    /// A `git` source; `custom` is required for [`GitPreset::Custom`].
    UniversalGit {
        preset: GitPreset,
        custom: Option<&'a CustomMapping>,
    },
    /// A `local` source (GitHub-shaped body, event name in `x-event-type`).
    Local,
    /// A `generic` source, by name.
    Generic {
        name: &'a str,
        config: &'a GenericConfig,
    },
}

/// The commit a delivery builds, before the pipeline resolves it (`triggers.md` §9.1, last
/// column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// A commit id taken from the payload.
    Commit(String),
    /// A full ref (`refs/heads/main`, `refs/tags/v1`) to resolve to its current commit while
    /// processing — the table's `HEAD` of a known branch.
    Ref(String),
    /// The head of the repository's default branch, when the payload does not name it
    /// (resolvable as `HEAD` by every provider).
    DefaultBranchHead,
    /// Generic deliveries belong to no repository: every matched registration builds its own
    /// `commit_sha` (`orchestrator.md` §8.2).
    Registration,
}

/// How the pipeline obtains the event's changed files (`triggers.md` §5.1), needed only when
/// some trigger of the lock has `paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedFilesPlan {
    /// The event already carries its final `changed_files` (possibly absent = unknown).
    Final,
    /// Compare two commits (GitHub compare API, or `git diff --name-only` for local
    /// sources). `base = None`: a new branch, compared against the default branch.
    Compare { base: Option<String>, head: String },
    /// GitHub's "list pull request files" API.
    PullRequestFiles { number: u64 },
}

/// A delivery that maps to an event, with what the pipeline needs beyond the event.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalisedEvent {
    pub event: Event,
    /// The commit whose lock is read and whose sources are checked out.
    pub revision: Revision,
    /// A ref to fetch so that `revision` is reachable on git servers that only serve
    /// advertised refs (`refs/pull/<n>/head`, `refs/merge-requests/<iid>/head`,
    /// `refs/heads/<b>`).
    pub fetch_ref: Option<String>,
    /// Pull requests only: the base commit whose lock is read when the PR is untrusted
    /// (`orchestrator.md` §5.1).
    pub base_revision: Option<Revision>,
    /// PR number (`number`, GitLab `iid`) for pull-request-like events.
    pub pull_request_number: Option<u64>,
    pub changed_files: ChangedFilesPlan,
    /// Generic sources: the raw-typed event that `webhook` triggers are matched against as
    /// well (`triggers.md` §9.4).
    pub webhook_event: Option<Event>,
}

impl NormalisedEvent {
    /// An event built by a client (`kici run remote`), matched as sent at commit `sha`; its
    /// `changed_files` are final.
    pub fn at_commit(event: Event, sha: String) -> Self {
        NormalisedEvent::new(event, Revision::Commit(sha))
    }

    fn new(event: Event, revision: Revision) -> Self {
        NormalisedEvent {
            event,
            revision,
            fetch_ref: None,
            base_revision: None,
            pull_request_number: None,
            changed_files: ChangedFilesPlan::Final,
            webhook_event: None,
        }
    }

    /// Whether the trust rules for pull requests apply (`orchestrator.md` §5.1).
    pub fn is_pull_request(&self) -> bool {
        self.event.event_type == "pull_request"
    }
}

/// The result of normalising one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalised {
    Event(Box<NormalisedEvent>),
    Ignored { reason: IgnoreReason },
}

impl Normalised {
    /// The event, when there is one.
    pub fn event(&self) -> Option<&Event> {
        match self {
            Normalised::Event(n) => Some(&n.event),
            Normalised::Ignored { .. } => None,
        }
    }
}

/// Why a delivery starts nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreReason {
    #[error("{event} events are acknowledged and ignored")]
    Housekeeping { event: String },
    /// `member`, `organization`, `membership`, `team`: they only invalidate cached trust.
    #[error("{event} events only invalidate cached permissions")]
    TrustChange {
        event: String,
        /// `owner/name` when the event concerns one repository.
        repo: Option<String>,
        /// The organisation login when the event concerns a whole organisation.
        org: Option<String>,
    },
    #[error("push deleting {git_ref} (handled as a delete event)")]
    RefDeleted { git_ref: String },
    #[error("push to {git_ref}, which is neither a branch nor a tag")]
    UnsupportedRef { git_ref: String },
    #[error("{provider} event {event:?} is not mapped")]
    UnsupportedEvent { provider: String, event: String },
}

impl IgnoreReason {
    /// The inbox `outcome` (`orchestrator.md` §3.1).
    pub fn outcome(&self) -> &'static str {
        match self {
            IgnoreReason::UnsupportedEvent { .. } | IgnoreReason::UnsupportedRef { .. } => {
                "unsupported_event"
            }
            _ => "ignored",
        }
    }
}

/// A payload that cannot be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormaliseError {
    #[error("the body is not valid JSON: {message}")]
    InvalidJson { message: String },
    #[error("the body must be a JSON object, found {found}")]
    NotAnObject { found: &'static str },
    #[error("missing header {header}")]
    MissingHeader { header: String },
    #[error("payload field `{field}` is missing")]
    MissingField { field: String },
    #[error("payload field `{field}` must be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("the custom preset needs a `customMapping` in the source configuration")]
    MissingCustomMapping,
    #[error("invalid custom mapping: {message}")]
    InvalidMapping { message: String },
}

/// Parses a webhook body as JSON; the error carries serde's position and reason, which is what
/// the sender needs to see in the 400 answer.
pub fn parse_body(body: &[u8]) -> Result<Value, NormaliseError> {
    serde_json::from_slice(body).map_err(|e| NormaliseError::InvalidJson {
        message: e.to_string(),
    })
}

/// Normalises one delivery. `headers` and `body` are as received (or as stored in the inbox).
pub fn normalise(
    source: Source<'_>,
    headers: &Headers,
    body: &[u8],
) -> Result<Normalised, NormaliseError> {
    match source {
        Source::GitHubApp => {
            let name = required_header(headers, "X-GitHub-Event")?;
            github::normalise(name, &parse_object(body)?, github::Flavour::APP)
        }
        Source::Local => {
            let name = required_header(headers, "x-event-type")?;
            github::normalise(name, &parse_object(body)?, github::Flavour::LOCAL)
        }
        Source::UniversalGit { preset, custom } => match preset {
            GitPreset::GithubRepo => {
                let name = required_header(headers, "X-GitHub-Event")?;
                github::normalise(name, &parse_object(body)?, github::Flavour::GITHUB_REPO)
            }
            GitPreset::Gitea | GitPreset::Forgejo | GitPreset::Gogs => {
                let header = preset.event_header().unwrap_or("X-Gitea-Event");
                let name = required_header(headers, header)?;
                github::normalise(name, &parse_object(body)?, github::Flavour::forge(preset))
            }
            GitPreset::GitlabRepo => {
                let name = required_header(headers, "X-Gitlab-Event")?;
                gitlab::normalise(name, &parse_object(body)?)
            }
            GitPreset::Custom => {
                let mapping = custom.ok_or(NormaliseError::MissingCustomMapping)?;
                custom::normalise(mapping, headers, &parse_object(body)?)
            }
        },
        Source::Generic { name, config } => Ok(generic::normalise(name, config, headers, body)),
    }
}

fn required_header<'h>(headers: &'h Headers, name: &str) -> Result<&'h str, NormaliseError> {
    headers
        .get_non_empty(name)
        .ok_or_else(|| NormaliseError::MissingHeader {
            header: name.to_string(),
        })
}

fn parse_object(body: &[u8]) -> Result<Value, NormaliseError> {
    let value = parse_body(body)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(NormaliseError::NotAnObject {
            found: fields::kind(&value),
        })
    }
}

/// The headers the GitHub App route requires (`orchestrator.md` §4.1 step 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubAppHeaders {
    pub event: String,
    pub delivery_id: String,
    /// The App id (`X-GitHub-Hook-Installation-Target-ID`).
    pub target_id: String,
}

impl GitHubAppHeaders {
    /// The routing key, `github:<appId>`.
    pub fn routing_key(&self) -> String {
        format!("github:{}", self.target_id)
    }
}

/// Why the GitHub App route answers 400 before looking anything up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubHeaderError {
    #[error("missing header {header}")]
    Missing { header: &'static str },
    #[error("X-GitHub-Hook-Installation-Target-Type must be `integration` (a GitHub App hook)")]
    NotAnAppHook,
}

/// Checks and extracts the headers of a GitHub App delivery.
pub fn github_app_headers(headers: &Headers) -> Result<GitHubAppHeaders, GitHubHeaderError> {
    let get = |header: &'static str| {
        headers
            .get_non_empty(header)
            .ok_or(GitHubHeaderError::Missing { header })
    };
    let event = get("X-GitHub-Event")?.to_string();
    let delivery_id = get("X-GitHub-Delivery")?.to_string();
    let target_id = get("X-GitHub-Hook-Installation-Target-ID")?.to_string();
    if get("X-GitHub-Hook-Installation-Target-Type")? != "integration" {
        return Err(GitHubHeaderError::NotAnAppHook);
    }
    Ok(GitHubAppHeaders {
        event,
        delivery_id,
        target_id,
    })
}

/// The routing key of a generic, universal-git or local source.
pub fn generic_routing_key(org_id: &str, source_name: &str) -> String {
    format!("generic:{org_id}:{source_name}")
}

/// The raw delivery id of a generic-route delivery before prefixing (`orchestrator.md` §2):
/// the configured idempotency key (header, then body dot-path), then — ours — the preset's
/// own delivery header, then `x-delivery-id`, then `x-request-id`. `None` means the caller
/// must use a fresh UUID (such deliveries cannot be deduplicated).
pub fn raw_delivery_id(
    headers: &Headers,
    body: Option<&Value>,
    idempotency_key_header: Option<&str>,
    idempotency_key_path: Option<&str>,
    preset: Option<GitPreset>,
) -> Option<String> {
    if let Some(v) = idempotency_key_header.and_then(|h| headers.get_non_empty(h)) {
        return Some(v.to_string());
    }
    if let (Some(path), Some(body)) = (idempotency_key_path, body)
        && let Some(v) = dot_path(body, path).and_then(fields::scalar_string)
        && !v.is_empty()
    {
        return Some(v);
    }
    let forge = preset.and_then(GitPreset::delivery_header);
    forge
        .into_iter()
        .chain(["x-delivery-id", "x-request-id"])
        .find_map(|h| headers.get_non_empty(h))
        .map(str::to_string)
}

/// The stored delivery id of a generic-route delivery: `<routingKey>:<rawId>`.
pub fn generic_delivery_id(routing_key: &str, raw_id: &str) -> String {
    format!("{routing_key}:{raw_id}")
}

/// A ref split into its kind (`refs/heads/B` → branch `B`, `refs/tags/T` → tag `T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitRef<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Other(&'a str),
}

pub fn split_ref(full: &str) -> GitRef<'_> {
    if let Some(b) = full.strip_prefix("refs/heads/").filter(|b| !b.is_empty()) {
        GitRef::Branch(b)
    } else if let Some(t) = full.strip_prefix("refs/tags/").filter(|t| !t.is_empty()) {
        GitRef::Tag(t)
    } else {
        GitRef::Other(full)
    }
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) hex digits.
pub fn is_full_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The all-zero id git uses for "no commit" (ref creation or deletion).
pub fn is_zero_sha(s: &str) -> bool {
    is_full_sha(s) && s.bytes().all(|b| b == b'0')
}

/// GitHub stops listing commits in a push payload at this many.
pub const GITHUB_PUSH_COMMITS_CAP: usize = 2048;

/// Changed files of a push from its payload: the union of `commits[].added`, `.modified` and
/// `.removed`, de-duplicated in first-seen order (`triggers.md` §5.1, universal-git push).
///
/// `None` (unknown) when the payload cannot prove the list complete: it reports more commits
/// than it lists (`total_commits`, GitLab's `total_commits_count`, `size`), it lists exactly
/// GitHub's cap with no total, it lists none although `before ≠ after`, or a commit does not
/// list its files (Gogs) or lists them in a shape we do not understand.
pub fn changed_files_from_commits(payload: &Value) -> Option<Vec<String>> {
    let commits = payload.get("commits")?.as_array()?;
    let total = ["total_commits", "total_commits_count", "size"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_u64));
    match total {
        Some(total) if total > commits.len() as u64 => return None,
        None if commits.len() >= GITHUB_PUSH_COMMITS_CAP => return None,
        _ => {}
    }
    if commits.is_empty() {
        let before = payload.get("before").and_then(Value::as_str);
        let after = payload.get("after").and_then(Value::as_str);
        return if before.is_some() && before == after {
            Some(Vec::new())
        } else {
            None
        };
    }
    let mut seen = std::collections::HashSet::new();
    let mut files = Vec::new();
    for commit in commits {
        let commit = commit.as_object()?;
        let mut listed_any = false;
        for key in ["added", "modified", "removed"] {
            match commit.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    listed_any = true;
                    for item in items {
                        let path = item.as_str()?;
                        if seen.insert(path) {
                            files.push(path.to_string());
                        }
                    }
                }
                Some(_) => return None,
            }
        }
        if !listed_any {
            return None;
        }
    }
    Some(files)
}

/// The lock-cache key `<provider>:<repo>:<sha>` (`orchestrator.md` §5.2); `None` when `sha` is
/// not a full commit id, because only immutable ids may be cached.
pub fn lock_cache_key(provider: &str, repo: &str, sha: &str) -> Option<String> {
    is_full_sha(sha).then(|| format!("{provider}:{repo}:{}", sha.to_ascii_lowercase()))
}

/// A repository URL from a `git` source's `urlTemplate` (`https://host/{owner}/{name}.git`).
/// `None` when `repo` is not `owner/name` or contains characters that could escape the
/// template (so a payload cannot point the orchestrator at another host or path).
pub fn repo_url(template: &str, repo: &str) -> Option<String> {
    let (owner, name) = repo.rsplit_once('/')?;
    let safe = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
            && !s.split('/').any(|seg| seg.is_empty() || seg == "..")
    };
    // GitLab namespaces nest (`group/sub/project`), so the owner may contain slashes.
    if !safe(owner) || !safe(name) || name.contains('/') {
        return None;
    }
    Some(template.replace("{owner}", owner).replace("{name}", name))
}

/// The schedule event of `triggers.md` §9.5. `scheduled_at` is the fire time as ISO-8601
/// (the caller owns the clock).
pub fn schedule_event(
    default_branch: &str,
    cron_expression: &str,
    timezone: &str,
    scheduled_at: &str,
    registration_id: &str,
    source_repo: Option<&str>,
) -> NormalisedEvent {
    let mut payload = Map::new();
    payload.insert("cronExpression".into(), cron_expression.into());
    payload.insert("timezone".into(), timezone.into());
    payload.insert("scheduledAt".into(), scheduled_at.into());
    payload.insert("registrationId".into(), registration_id.into());
    let event = Event {
        event_type: "schedule".into(),
        payload: Value::Object(payload),
        target_branch: Some(default_branch.into()),
        base_branch: Some(default_branch.into()),
        source_repo: source_repo.map(str::to_string),
        provider: Some("schedule".into()),
        ..Event::default()
    };
    NormalisedEvent::new(event, Revision::Ref(format!("refs/heads/{default_branch}")))
}

/// The manual-dispatch event of `triggers.md` §9.5 (admin API).
pub fn manual_dispatch_event(
    dispatch_type: &str,
    branch: &str,
    inputs: Map<String, Value>,
    requested_by: &str,
    source_repo: Option<&str>,
) -> NormalisedEvent {
    let mut payload = Map::new();
    payload.insert("action".into(), dispatch_type.into());
    payload.insert("inputs".into(), Value::Object(inputs.clone()));
    payload.insert("requestedBy".into(), requested_by.into());
    let event = Event {
        event_type: "dispatch".into(),
        action: Some(dispatch_type.into()),
        payload: Value::Object(payload),
        target_branch: Some(branch.into()),
        source_repo: source_repo.map(str::to_string),
        sender_username: Some(requested_by.into()),
        provider: Some("manual".into()),
        dispatch_inputs: Some(inputs),
        ..Event::default()
    };
    NormalisedEvent::new(event, Revision::Ref(format!("refs/heads/{branch}")))
}

#[cfg(test)]
mod tests;
