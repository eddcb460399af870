//! GitHub-shaped deliveries (`triggers.md` §9.1): GitHub App webhooks, the `github-repo`
//! preset, local sources (§9.3), and the push/pull-request subset that Gitea, Forgejo and
//! Gogs send in the same shape (§9.2).

use serde_json::Value;

use super::fields::{at, opt_bool, opt_id, opt_number, opt_str, req_non_empty, req_str};
use super::{
    ChangedFilesPlan, GitPreset, GitRef, IgnoreReason, NormaliseError, Normalised, NormalisedEvent,
    Revision, changed_files_from_commits, is_full_sha, is_zero_sha, split_ref,
};
use crate::event::Event;

/// Where a flavour's push changed files come from (`triggers.md` §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilesFrom {
    /// The GitHub compare and pull-request-files APIs.
    GitHubApi,
    /// The push payload's `commits[]`.
    PayloadCommits,
    /// `git diff` in the local repository.
    GitDiff,
}

/// The differences between the sources that send GitHub-shaped bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flavour {
    provider: &'static str,
    /// Gitea, Forgejo and Gogs: only push and pull_request are normalised in v1.
    push_and_pr_only: bool,
    files: FilesFrom,
    /// Gitea's `synchronized` PR action is GitHub's `synchronize`.
    gitea_actions: bool,
}

impl Flavour {
    pub(crate) const APP: Flavour = Flavour {
        provider: "github",
        push_and_pr_only: false,
        files: FilesFrom::GitHubApi,
        gitea_actions: false,
    };
    pub(crate) const GITHUB_REPO: Flavour = Flavour {
        provider: "github",
        push_and_pr_only: false,
        files: FilesFrom::PayloadCommits,
        gitea_actions: false,
    };
    pub(crate) const LOCAL: Flavour = Flavour {
        provider: "local",
        push_and_pr_only: false,
        files: FilesFrom::GitDiff,
        gitea_actions: false,
    };

    pub(crate) fn forge(preset: GitPreset) -> Flavour {
        Flavour {
            provider: preset.provider(),
            push_and_pr_only: true,
            files: FilesFrom::PayloadCommits,
            gitea_actions: true,
        }
    }
}

/// Events the GitHub route acknowledges with 200 `ignored` without storing them
/// (`orchestrator.md` §4.1 step 4).
pub fn is_unstored_github_event(event: &str) -> bool {
    event == "ping" || event.starts_with("installation") || event == "github_app_authorization"
}

/// Events that only invalidate the cached collaborator permissions (`triggers.md` §9.1).
pub fn trust_invalidating_event(event: &str) -> bool {
    matches!(event, "member" | "organization" | "membership" | "team")
}

pub(crate) fn normalise(
    name: &str,
    payload: &Value,
    flavour: Flavour,
) -> Result<Normalised, NormaliseError> {
    if flavour.push_and_pr_only && !matches!(name, "push" | "pull_request") {
        return Ok(ignored(IgnoreReason::UnsupportedEvent {
            provider: flavour.provider.to_string(),
            event: name.to_string(),
        }));
    }
    if is_unstored_github_event(name) {
        return Ok(ignored(IgnoreReason::Housekeeping {
            event: name.to_string(),
        }));
    }
    if trust_invalidating_event(name) {
        return Ok(ignored(IgnoreReason::TrustChange {
            event: name.to_string(),
            repo: opt_str(payload, &["repository", "full_name"])?.map(str::to_string),
            org: opt_str(payload, &["organization", "login"])?.map(str::to_string),
        }));
    }
    let ctx = Context::read(payload, flavour)?;
    match name {
        "push" => ctx.push(),
        "pull_request" => ctx.pull_request(),
        "pull_request_review" => ctx.pr_related("review", true),
        "pull_request_review_comment" => ctx.pr_related("review_comment", false),
        "issue_comment" => Ok(event(ctx.on_default_branch("comment", ctx.action()?))),
        "repository_dispatch" => ctx.dispatch(),
        "release" => ctx.release(),
        "create" | "delete" => ctx.create_delete(name),
        "status" => ctx.status(),
        "workflow_run" => ctx.workflow_run(),
        "fork" => Ok(event(ctx.on_default_branch("fork", None))),
        "star" | "watch" => Ok(event(ctx.on_default_branch(name, ctx.action()?))),
        // Ours (fixes.md F16): unmapped events keep their raw name so `webhook` triggers can
        // match them.
        _ => Ok(event(ctx.on_default_branch(name, ctx.action()?))),
    }
}

fn ignored(reason: IgnoreReason) -> Normalised {
    Normalised::Ignored { reason }
}

fn event(n: NormalisedEvent) -> Normalised {
    Normalised::Event(Box::new(n))
}

/// The fields every mapping row shares.
struct Context<'a> {
    payload: &'a Value,
    flavour: Flavour,
    sender_username: Option<String>,
    sender_user_id: Option<String>,
    source_repo: Option<String>,
    default_branch: Option<String>,
}

impl<'a> Context<'a> {
    fn read(payload: &'a Value, flavour: Flavour) -> Result<Self, NormaliseError> {
        // Gogs and Gitea also carry `username`; `login` is the GitHub name and wins.
        let sender_username = match opt_str(payload, &["sender", "login"])? {
            Some(login) => Some(login),
            None => opt_str(payload, &["sender", "username"])?,
        };
        Ok(Context {
            payload,
            flavour,
            sender_username: sender_username.map(str::to_string),
            sender_user_id: opt_id(payload, &["sender", "id"])?,
            source_repo: opt_str(payload, &["repository", "full_name"])?.map(str::to_string),
            default_branch: opt_str(payload, &["repository", "default_branch"])?
                .filter(|b| !b.is_empty())
                .map(str::to_string),
        })
    }

    fn action(&self) -> Result<Option<String>, NormaliseError> {
        let action = opt_str(self.payload, &["action"])?;
        Ok(action.map(|a| match a {
            "synchronized" if self.flavour.gitea_actions => "synchronize".to_string(),
            other => other.to_string(),
        }))
    }

    fn event(&self, event_type: &str, action: Option<String>, target: Option<String>) -> Event {
        Event {
            event_type: event_type.to_string(),
            action,
            payload: self.payload.clone(),
            target_branch: target,
            source_repo: self.source_repo.clone(),
            base_branch: self.default_branch.clone(),
            sender_username: self.sender_username.clone(),
            sender_user_id: self.sender_user_id.clone(),
            provider: Some(self.flavour.provider.to_string()),
            ..Event::default()
        }
    }

    fn default_head(&self) -> Revision {
        match &self.default_branch {
            Some(b) => Revision::Ref(format!("refs/heads/{b}")),
            None => Revision::DefaultBranchHead,
        }
    }

    /// Repository-level events: target = default branch, built at its current head.
    fn on_default_branch(&self, event_type: &str, action: Option<String>) -> NormalisedEvent {
        let e = self.event(event_type, action, self.default_branch.clone());
        NormalisedEvent::new(e, self.default_head())
    }

    fn push(&self) -> Result<Normalised, NormaliseError> {
        let p = self.payload;
        let git_ref = req_non_empty(p, &["ref"])?;
        let after = opt_str(p, &["after"])?;
        // Ours: a deletion is handled as the `delete` event; forges and our own post-receive
        // hook signal it only by a zero `after`.
        if opt_bool(p, &["deleted"])? == Some(true) || after.is_some_and(is_zero_sha) {
            return Ok(ignored(IgnoreReason::RefDeleted {
                git_ref: git_ref.to_string(),
            }));
        }
        let after = req_non_empty(p, &["after"])?;
        let (event_type, target) = match split_ref(git_ref) {
            GitRef::Branch(b) => ("push", b),
            GitRef::Tag(t) => ("tag", t),
            GitRef::Other(_) => {
                return Ok(ignored(IgnoreReason::UnsupportedRef {
                    git_ref: git_ref.to_string(),
                }));
            }
        };
        let mut e = self.event(event_type, None, Some(target.to_string()));
        e.sha = Some(after.to_string());
        let mut changed_files = ChangedFilesPlan::Final;
        if event_type == "push" {
            match self.flavour.files {
                FilesFrom::GitHubApi | FilesFrom::GitDiff => {
                    let before = opt_str(p, &["before"])?
                        .filter(|b| !b.is_empty() && !is_zero_sha(b))
                        .map(str::to_string);
                    changed_files = ChangedFilesPlan::Compare {
                        base: before,
                        head: after.to_string(),
                    };
                }
                FilesFrom::PayloadCommits => e.changed_files = changed_files_from_commits(p),
            }
        }
        let mut n = NormalisedEvent::new(e, Revision::Commit(after.to_string()));
        n.fetch_ref = Some(git_ref.to_string());
        n.changed_files = changed_files;
        Ok(event(n))
    }

    fn pull_request(&self) -> Result<Normalised, NormaliseError> {
        let p = self.payload;
        let base_ref = req_non_empty(p, &["pull_request", "base", "ref"])?;
        let head_ref = req_non_empty(p, &["pull_request", "head", "ref"])?;
        let head_sha = req_non_empty(p, &["pull_request", "head", "sha"])?;
        let number = match opt_number(p, &["number"])? {
            Some(n) => n,
            None => opt_number(p, &["pull_request", "number"])?.ok_or_else(|| {
                NormaliseError::MissingField {
                    field: "number".into(),
                }
            })?,
        };
        let mut e = self.event("pull_request", self.action()?, Some(base_ref.to_string()));
        e.source_branch = Some(head_ref.to_string());
        e.is_fork_pr = Some(self.is_fork()?);
        e.sha = Some(head_sha.to_string());
        let mut n = NormalisedEvent::new(e, Revision::Commit(head_sha.to_string()));
        n.fetch_ref = Some(format!("refs/pull/{number}/head"));
        n.pull_request_number = Some(number);
        n.base_revision = Some(
            match opt_str(p, &["pull_request", "base", "sha"])?.filter(|s| !s.is_empty()) {
                Some(sha) => Revision::Commit(sha.to_string()),
                None => Revision::Ref(format!("refs/heads/{base_ref}")),
            },
        );
        if self.flavour.files == FilesFrom::GitHubApi {
            n.changed_files = ChangedFilesPlan::PullRequestFiles { number };
        }
        Ok(event(n))
    }

    /// Head and base repositories differ. A missing head repository (the fork was deleted)
    /// counts as a fork, so such a PR is never trusted by accident.
    fn is_fork(&self) -> Result<bool, NormaliseError> {
        let p = self.payload;
        let head = opt_str(p, &["pull_request", "head", "repo", "full_name"])?;
        let base = match opt_str(p, &["pull_request", "base", "repo", "full_name"])? {
            Some(b) => Some(b),
            None => self.source_repo.as_deref(),
        };
        Ok(match (head, base) {
            // GitHub repository names are case-insensitive.
            (Some(h), Some(b)) => !h.eq_ignore_ascii_case(b),
            _ => true,
        })
    }

    /// `pull_request_review` and `pull_request_review_comment`: the PR's branches and head.
    fn pr_related(
        &self,
        event_type: &str,
        with_source_branch: bool,
    ) -> Result<Normalised, NormaliseError> {
        let p = self.payload;
        let base_ref = req_non_empty(p, &["pull_request", "base", "ref"])?;
        let head_sha = req_non_empty(p, &["pull_request", "head", "sha"])?;
        let mut e = self.event(event_type, self.action()?, Some(base_ref.to_string()));
        if with_source_branch {
            e.source_branch = opt_str(p, &["pull_request", "head", "ref"])?.map(str::to_string);
        }
        e.sha = Some(head_sha.to_string());
        let number = opt_number(p, &["pull_request", "number"])?;
        let mut n = NormalisedEvent::new(e, Revision::Commit(head_sha.to_string()));
        n.fetch_ref = number.map(|n| format!("refs/pull/{n}/head"));
        n.pull_request_number = number;
        Ok(event(n))
    }

    fn dispatch(&self) -> Result<Normalised, NormaliseError> {
        let inputs = match at(self.payload, &["client_payload", "inputs"]) {
            None => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(other) => {
                return Err(NormaliseError::WrongType {
                    field: "client_payload.inputs".into(),
                    expected: "an object",
                    found: super::fields::kind(other),
                });
            }
        };
        let mut n = self.on_default_branch("dispatch", self.action()?);
        n.event.dispatch_inputs = inputs;
        Ok(event(n))
    }

    fn release(&self) -> Result<Normalised, NormaliseError> {
        let commitish = req_non_empty(self.payload, &["release", "target_commitish"])?;
        let e = self.event("release", self.action()?, Some(commitish.to_string()));
        Ok(event(commitish_revision(e, commitish)))
    }

    fn create_delete(&self, event_type: &str) -> Result<Normalised, NormaliseError> {
        let p = self.payload;
        let git_ref = req_non_empty(p, &["ref"])?;
        let ref_type = req_str(p, &["ref_type"])?;
        let e = self.event(event_type, None, Some(git_ref.to_string()));
        // A deleted ref has no head any more: the delete event builds the default branch.
        let revision = if event_type == "delete" {
            self.default_head()
        } else if git_ref.starts_with("refs/") {
            Revision::Ref(git_ref.to_string())
        } else if ref_type == "tag" {
            Revision::Ref(format!("refs/tags/{git_ref}"))
        } else {
            Revision::Ref(format!("refs/heads/{git_ref}"))
        };
        Ok(event(NormalisedEvent::new(e, revision)))
    }

    fn status(&self) -> Result<Normalised, NormaliseError> {
        let p = self.payload;
        let sha = req_non_empty(p, &["sha"])?;
        match at(p, &["branches"]) {
            None | Some(Value::Array(_)) => {}
            Some(other) => {
                return Err(NormaliseError::WrongType {
                    field: "branches".into(),
                    expected: "an array",
                    found: super::fields::kind(other),
                });
            }
        }
        let first_branch = opt_str(p, &["branches", "0", "name"])?;
        // Ours: a commit on no branch (GitHub lists none) targets the default branch.
        let target = first_branch
            .map(str::to_string)
            .or_else(|| self.default_branch.clone());
        let mut e = self.event("status", None, target);
        e.sha = Some(sha.to_string());
        Ok(event(NormalisedEvent::new(
            e,
            Revision::Commit(sha.to_string()),
        )))
    }

    fn workflow_run(&self) -> Result<Normalised, NormaliseError> {
        let p = self.payload;
        let sha = req_non_empty(p, &["workflow_run", "head_sha"])?;
        // Tag-triggered runs have no head branch; they target the default branch (ours).
        let target = opt_str(p, &["workflow_run", "head_branch"])?
            .filter(|b| !b.is_empty())
            .map(str::to_string)
            .or_else(|| self.default_branch.clone());
        let mut e = self.event("workflow_run", self.action()?, target);
        e.sha = Some(sha.to_string());
        Ok(event(NormalisedEvent::new(
            e,
            Revision::Commit(sha.to_string()),
        )))
    }
}

/// `release.target_commitish` is a branch name or a commit id.
fn commitish_revision(mut e: Event, commitish: &str) -> NormalisedEvent {
    let revision = if is_full_sha(commitish) {
        e.sha = Some(commitish.to_string());
        Revision::Commit(commitish.to_string())
    } else if commitish.starts_with("refs/") {
        Revision::Ref(commitish.to_string())
    } else {
        Revision::Ref(format!("refs/heads/{commitish}"))
    };
    NormalisedEvent::new(e, revision)
}
