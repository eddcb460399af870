//! The `gitlab-repo` preset (`triggers.md` §9.2): `Push Hook`, `Tag Push Hook` and
//! `Merge Request Hook`; other GitLab events are not normalised in v1.

use serde_json::Value;

use super::fields::{opt_id, opt_number, opt_str, req_non_empty};
use super::{
    ChangedFilesPlan, GitRef, IgnoreReason, NormaliseError, Normalised, NormalisedEvent, Revision,
    changed_files_from_commits, is_zero_sha, split_ref,
};
use crate::event::Event;

const PROVIDER: &str = "gitlab";

pub(crate) fn normalise(name: &str, payload: &Value) -> Result<Normalised, NormaliseError> {
    match name {
        "Push Hook" | "Tag Push Hook" => push(payload),
        "Merge Request Hook" => merge_request(payload),
        _ => Ok(Normalised::Ignored {
            reason: IgnoreReason::UnsupportedEvent {
                provider: PROVIDER.into(),
                event: name.into(),
            },
        }),
    }
}

fn base_event(payload: &Value, event_type: &str, target: &str) -> Result<Event, NormaliseError> {
    Ok(Event {
        event_type: event_type.into(),
        payload: payload.clone(),
        target_branch: Some(target.into()),
        source_repo: opt_str(payload, &["project", "path_with_namespace"])?.map(str::to_string),
        base_branch: opt_str(payload, &["project", "default_branch"])?
            .filter(|b| !b.is_empty())
            .map(str::to_string),
        provider: Some(PROVIDER.into()),
        ..Event::default()
    })
}

fn push(payload: &Value) -> Result<Normalised, NormaliseError> {
    let git_ref = req_non_empty(payload, &["ref"])?;
    let after = req_non_empty(payload, &["after"])?;
    if is_zero_sha(after) {
        return Ok(Normalised::Ignored {
            reason: IgnoreReason::RefDeleted {
                git_ref: git_ref.into(),
            },
        });
    }
    let (event_type, target) = match split_ref(git_ref) {
        GitRef::Branch(b) => ("push", b),
        GitRef::Tag(t) => ("tag", t),
        GitRef::Other(_) => {
            return Ok(Normalised::Ignored {
                reason: IgnoreReason::UnsupportedRef {
                    git_ref: git_ref.into(),
                },
            });
        }
    };
    let mut e = base_event(payload, event_type, target)?;
    e.sender_username = opt_str(payload, &["user_username"])?.map(str::to_string);
    e.sender_user_id = opt_id(payload, &["user_id"])?;
    e.sha = Some(after.into());
    if event_type == "push" {
        e.changed_files = changed_files_from_commits(payload);
    }
    let mut n = NormalisedEvent::new(e, Revision::Commit(after.into()));
    n.fetch_ref = Some(git_ref.into());
    n.changed_files = ChangedFilesPlan::Final;
    Ok(Normalised::Event(Box::new(n)))
}

fn merge_request(payload: &Value) -> Result<Normalised, NormaliseError> {
    let attrs = ["object_attributes"];
    let field = |name: &'static str| [attrs[0], name];
    let target = req_non_empty(payload, &field("target_branch"))?;
    let source = req_non_empty(payload, &field("source_branch"))?;
    let sha = req_non_empty(payload, &["object_attributes", "last_commit", "id"])?;
    let iid = opt_number(payload, &field("iid"))?.ok_or_else(|| NormaliseError::MissingField {
        field: "object_attributes.iid".into(),
    })?;
    let action = opt_str(payload, &field("action"))?.map(|a| {
        match a {
            "open" => "opened",
            "update" => "synchronize",
            "reopen" => "reopened",
            "close" | "merge" => "closed",
            other => other,
        }
        .to_string()
    });
    let mut e = base_event(payload, "pull_request", target)?;
    e.action = action;
    e.source_branch = Some(source.into());
    e.sender_username = opt_str(payload, &["user", "username"])?.map(str::to_string);
    e.sender_user_id = opt_id(payload, &["user", "id"])?;
    e.is_fork_pr = Some(is_fork(payload)?);
    e.sha = Some(sha.into());
    let mut n = NormalisedEvent::new(e, Revision::Commit(sha.into()));
    n.fetch_ref = Some(format!("refs/merge-requests/{iid}/head"));
    n.pull_request_number = Some(iid);
    // The hook carries no target-branch commit, so an untrusted MR reads the lock at the
    // target branch's current head.
    n.base_revision = Some(Revision::Ref(format!("refs/heads/{target}")));
    Ok(Normalised::Event(Box::new(n)))
}

/// Source and target projects differ (by id, else by path). Unknown counts as a fork, so an
/// unidentifiable MR is never trusted by accident.
fn is_fork(payload: &Value) -> Result<bool, NormaliseError> {
    let source_id = opt_id(payload, &["object_attributes", "source_project_id"])?;
    let target_id = opt_id(payload, &["object_attributes", "target_project_id"])?;
    if let (Some(s), Some(t)) = (source_id, target_id) {
        return Ok(s != t);
    }
    let path = |which| {
        opt_str(
            payload,
            &["object_attributes", which, "path_with_namespace"],
        )
    };
    Ok(match (path("source")?, path("target")?) {
        (Some(s), Some(t)) => !s.eq_ignore_ascii_case(t),
        _ => true,
    })
}
