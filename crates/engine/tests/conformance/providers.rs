//! Provider webhooks (`triggers.md` §9) normalised and matched against the corpus locks: one
//! hand-written GitHub payload per mapping row of §9.1 (minimal, with GitHub's documented
//! field names), checked field by field and then against the trigger the row exists for.

use kici_engine::event::Event;
use kici_engine::lock::LockFile;
use kici_engine::provider::{
    ChangedFilesPlan, GitPreset, Headers, IgnoreReason, Normalised, NormalisedEvent, Revision,
    Source, normalise,
};
use kici_engine::signature::{sign_github, verify_github_signature};
use kici_engine::trigger::{Decision, match_all_workflows};
use serde_json::{Value, json};

use crate::conformance_dir;

const BEFORE: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const AFTER: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
const BASE_SHA: &str = "9049f1265b7d61be4a8904a9a27120d2064dab3b";
const HEAD_SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn lock(case: &str) -> LockFile {
    let path = conformance_dir().join(format!("workflows/{case}/expected/kici.lock.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    LockFile::from_json(&text).unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn decide(case: &str, event: &Event) -> Decision {
    let lock = lock(case);
    let mut decisions = match_all_workflows(
        lock.workflows
            .iter()
            .map(|w| (w.name.as_str(), w.triggers.as_slice())),
        event,
    );
    assert_eq!(decisions.len(), 1, "{case} has one workflow");
    let d = decisions.remove(0);
    assert!(d.error.is_none(), "{case}: {:?}", d.error);
    d
}

fn repository(full_name: &str) -> Value {
    let (owner, name) = full_name.split_once('/').unwrap();
    json!({
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": full_name,
        "private": false,
        "owner": {"login": owner, "id": 1, "type": "Organization"},
        "html_url": format!("https://github.com/{full_name}"),
        "clone_url": format!("https://github.com/{full_name}.git"),
        "default_branch": "main"
    })
}

fn sender() -> Value {
    json!({"login": "octocat", "id": 583231, "type": "User"})
}

fn with_common(mut body: Value, repo: &str) -> Value {
    body["repository"] = repository(repo);
    body["sender"] = sender();
    body
}

fn gh(event: &str, body: &Value) -> Result<Normalised, kici_engine::provider::NormaliseError> {
    let headers = Headers::from_pairs([("X-GitHub-Event", event)]);
    normalise(
        Source::GitHubApp,
        &headers,
        &serde_json::to_vec(body).unwrap(),
    )
}

fn event_of(event: &str, body: &Value) -> NormalisedEvent {
    match gh(event, body) {
        Ok(Normalised::Event(n)) => *n,
        other => panic!("{event}: expected an event, got {other:?}"),
    }
}

fn ignored_of(event: &str, body: &Value) -> IgnoreReason {
    match gh(event, body) {
        Ok(Normalised::Ignored { reason }) => reason,
        other => panic!("{event}: expected ignored, got {other:?}"),
    }
}

/// The common fields of §9.1: sender, repository, default branch, provider.
fn assert_common(e: &Event) {
    assert_eq!(e.sender_username.as_deref(), Some("octocat"));
    assert_eq!(e.sender_user_id.as_deref(), Some("583231"));
    assert_eq!(e.base_branch.as_deref(), Some("main"));
    assert_eq!(e.provider.as_deref(), Some("github"));
}

fn push_body(git_ref: &str, before: &str, after: &str) -> Value {
    with_common(
        json!({
            "ref": git_ref,
            "before": before,
            "after": after,
            "created": before == ZERO,
            "deleted": false,
            "forced": false,
            "base_ref": null,
            "compare": "https://github.com/acme/app/compare/6113728f27ae...0d1a26e67d8f",
            "commits": [{
                "id": after,
                "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
                "distinct": true,
                "message": "Update README.md",
                "timestamp": "2024-03-01T12:00:00Z",
                "author": {"name": "Mona", "email": "mona@example.com", "username": "octocat"},
                "added": ["src/new.ts"],
                "removed": [],
                "modified": ["README.md"]
            }],
            "head_commit": {"id": after},
            "pusher": {"name": "octocat", "email": "mona@example.com"}
        }),
        "acme/app",
    )
}

#[test]
fn push_branch() {
    let n = event_of("push", &push_body("refs/heads/main", BEFORE, AFTER));
    let e = &n.event;
    assert_eq!(e.event_type, "push");
    assert_eq!(e.action, None);
    assert_eq!(e.target_branch.as_deref(), Some("main"));
    assert_eq!(e.source_repo.as_deref(), Some("acme/app"));
    assert_eq!(e.sha.as_deref(), Some(AFTER));
    assert_common(e);
    // GitHub App pushes get their files from the compare API, not the capped payload.
    assert_eq!(e.changed_files, None);
    assert_eq!(
        n.changed_files,
        ChangedFilesPlan::Compare {
            base: Some(BEFORE.into()),
            head: AFTER.into()
        }
    );
    assert_eq!(n.revision, Revision::Commit(AFTER.into()));
    assert_eq!(n.fetch_ref.as_deref(), Some("refs/heads/main"));
    assert!(!n.is_pull_request());

    let d = decide("04-multi-triggers", e);
    assert_eq!(d.matched_trigger, Some(0), "{}", d.summary);
    assert!(decide("01-hello-world", e).matched);

    let dev = event_of("push", &push_body("refs/heads/dev", BEFORE, AFTER));
    assert!(!decide("04-multi-triggers", &dev.event).matched);
    assert!(decide("01-hello-world", &dev.event).matched);
}

#[test]
fn push_new_branch_compares_against_default_branch() {
    let n = event_of("push", &push_body("refs/heads/feature/x", ZERO, AFTER));
    assert_eq!(
        n.changed_files,
        ChangedFilesPlan::Compare {
            base: None,
            head: AFTER.into()
        }
    );
}

#[test]
fn push_tag() {
    let n = event_of("push", &push_body("refs/tags/v1.2.3", ZERO, AFTER));
    let e = &n.event;
    assert_eq!(e.event_type, "tag");
    assert_eq!(e.target_branch.as_deref(), Some("v1.2.3"));
    assert_eq!(e.sha.as_deref(), Some(AFTER));
    assert_eq!(n.fetch_ref.as_deref(), Some("refs/tags/v1.2.3"));
    assert_eq!(n.changed_files, ChangedFilesPlan::Final);
    let d = decide("04-multi-triggers", e);
    assert_eq!(d.matched_trigger, Some(2), "{}", d.summary);
    let d = decide("02-push-filters", e);
    assert_eq!(d.matched_trigger, Some(2), "{}", d.summary);
    let nightly = event_of("push", &push_body("refs/tags/nightly-5", ZERO, AFTER));
    assert_eq!(
        decide("02-push-filters", &nightly.event).matched_trigger,
        Some(4)
    );
    assert!(!decide("01-hello-world", &nightly.event).matched);
}

#[test]
fn push_deletion_is_ignored() {
    let mut body = push_body("refs/heads/old", AFTER, ZERO);
    body["deleted"] = json!(true);
    body["commits"] = json!([]);
    body["head_commit"] = Value::Null;
    let reason = ignored_of("push", &body);
    assert_eq!(
        reason,
        IgnoreReason::RefDeleted {
            git_ref: "refs/heads/old".into()
        }
    );
    assert_eq!(reason.outcome(), "ignored");
    // Same without `deleted` (what our post-receive hook and forges send).
    let mut body = push_body("refs/tags/v0", AFTER, ZERO);
    body.as_object_mut().unwrap().remove("deleted");
    assert!(matches!(
        ignored_of("push", &body),
        IgnoreReason::RefDeleted { .. }
    ));
}

#[test]
fn push_errors_name_the_field() {
    let mut body = push_body("refs/heads/main", BEFORE, AFTER);
    body.as_object_mut().unwrap().remove("ref");
    assert_eq!(
        gh("push", &body).unwrap_err().to_string(),
        "payload field `ref` is missing"
    );
    let mut body = push_body("refs/heads/main", BEFORE, AFTER);
    body["after"] = json!(42);
    assert_eq!(
        gh("push", &body).unwrap_err().to_string(),
        "payload field `after` must be a string, found a number"
    );
    let body = push_body("refs/notes/commits", BEFORE, AFTER);
    assert_eq!(ignored_of("push", &body).outcome(), "unsupported_event");
}

fn pull_request_body(action: &str, head_repo: &str, head_ref: &str, base_ref: &str) -> Value {
    with_common(
        json!({
            "action": action,
            "number": 42,
            "pull_request": {
                "url": "https://api.github.com/repos/acme/app/pulls/42",
                "id": 1,
                "number": 42,
                "state": "open",
                "draft": false,
                "title": "Add feature",
                "user": {"login": "contributor", "id": 7},
                "head": {
                    "label": format!("{}:{head_ref}", head_repo.split('/').next().unwrap()),
                    "ref": head_ref,
                    "sha": HEAD_SHA,
                    "repo": repository(head_repo)
                },
                "base": {
                    "label": format!("acme:{base_ref}"),
                    "ref": base_ref,
                    "sha": BASE_SHA,
                    "repo": repository("acme/app")
                },
                "merged": false
            }
        }),
        "acme/app",
    )
}

#[test]
fn pull_request() {
    let n = event_of(
        "pull_request",
        &pull_request_body("opened", "acme/app", "feature/login", "main"),
    );
    let e = &n.event;
    assert_eq!(e.event_type, "pull_request");
    assert_eq!(e.action.as_deref(), Some("opened"));
    assert_eq!(e.target_branch.as_deref(), Some("main"));
    assert_eq!(e.source_branch.as_deref(), Some("feature/login"));
    assert_eq!(e.is_fork_pr, Some(false));
    assert_eq!(e.sha.as_deref(), Some(HEAD_SHA));
    assert_common(e);
    assert!(n.is_pull_request());
    assert_eq!(n.revision, Revision::Commit(HEAD_SHA.into()));
    assert_eq!(n.fetch_ref.as_deref(), Some("refs/pull/42/head"));
    assert_eq!(n.base_revision, Some(Revision::Commit(BASE_SHA.into())));
    assert_eq!(n.pull_request_number, Some(42));
    assert_eq!(
        n.changed_files,
        ChangedFilesPlan::PullRequestFiles { number: 42 }
    );
    assert_eq!(decide("04-multi-triggers", e).matched_trigger, Some(1));
    assert_eq!(decide("03-pr-filters", e).matched_trigger, Some(0));

    // From a fork, labelled, from a dependabot branch: only the catch-all pr() is left.
    let fork = event_of(
        "pull_request",
        &pull_request_body("labeled", "someone/app", "dependabot/npm/x", "main"),
    );
    assert_eq!(fork.event.is_fork_pr, Some(true));
    assert!(!decide("03-pr-filters", &fork.event).matched);
    let labeled = event_of(
        "pull_request",
        &pull_request_body("labeled", "someone/app", "topic", "main"),
    );
    assert_eq!(
        decide("03-pr-filters", &labeled.event).matched_trigger,
        Some(2)
    );

    // A deleted fork leaves `head.repo` null: treated as a fork.
    let mut gone = pull_request_body("closed", "someone/app", "x", "main");
    gone["pull_request"]["head"]["repo"] = Value::Null;
    assert_eq!(event_of("pull_request", &gone).event.is_fork_pr, Some(true));

    let mut broken = pull_request_body("opened", "acme/app", "x", "main");
    broken["pull_request"]["base"]
        .as_object_mut()
        .unwrap()
        .remove("ref");
    assert_eq!(
        gh("pull_request", &broken).unwrap_err().to_string(),
        "payload field `pull_request.base.ref` is missing"
    );
}

#[test]
fn pull_request_review() {
    let mut body = pull_request_body("submitted", "acme/app", "feature/x", "main");
    body.as_object_mut().unwrap().remove("number");
    body["review"] = json!({"id": 80, "user": {"login": "reviewer"}, "body": "LGTM", "state": "approved", "commit_id": HEAD_SHA});
    let n = event_of("pull_request_review", &body);
    let e = &n.event;
    assert_eq!(e.event_type, "review");
    assert_eq!(e.action.as_deref(), Some("submitted"));
    assert_eq!(e.target_branch.as_deref(), Some("main"));
    assert_eq!(e.source_branch.as_deref(), Some("feature/x"));
    assert_eq!(e.sha.as_deref(), Some(HEAD_SHA));
    assert_eq!(n.fetch_ref.as_deref(), Some("refs/pull/42/head"));
    assert!(!n.is_pull_request());
    assert_eq!(decide("32-other-git-triggers", e).matched_trigger, Some(3));

    body["review"]["state"] = json!("commented");
    let e = event_of("pull_request_review", &body).event;
    assert!(!decide("32-other-git-triggers", &e).matched);
}

#[test]
fn pull_request_review_comment() {
    let mut body = pull_request_body("created", "acme/app", "feature/x", "main");
    body.as_object_mut().unwrap().remove("number");
    body["comment"] = json!({"id": 2, "body": "nit", "path": "src/a.ts", "commit_id": HEAD_SHA});
    let n = event_of("pull_request_review_comment", &body);
    let e = &n.event;
    assert_eq!(e.event_type, "review_comment");
    assert_eq!(e.action.as_deref(), Some("created"));
    assert_eq!(e.target_branch.as_deref(), Some("main"));
    assert_eq!(e.source_branch, None);
    assert_eq!(n.revision, Revision::Commit(HEAD_SHA.into()));
    assert_eq!(decide("32-other-git-triggers", e).matched_trigger, Some(4));
}

fn issue_comment_body(on_pr: bool, body: &str) -> Value {
    let mut issue =
        json!({"number": 5, "title": "Something", "state": "open", "user": {"login": "u"}});
    if on_pr {
        issue["pull_request"] = json!({"url": "https://api.github.com/repos/acme/app/pulls/5"});
    }
    with_common(
        json!({
            "action": "created",
            "issue": issue,
            "comment": {"id": 3, "body": body, "user": {"login": "octocat"}}
        }),
        "acme/app",
    )
}

#[test]
fn issue_comment() {
    let n = event_of("issue_comment", &issue_comment_body(true, "/deploy now"));
    let e = &n.event;
    assert_eq!(e.event_type, "comment");
    assert_eq!(e.action.as_deref(), Some("created"));
    assert_eq!(e.target_branch.as_deref(), Some("main"));
    assert_eq!(e.sha, None);
    assert_common(e);
    assert_eq!(n.revision, Revision::Ref("refs/heads/main".into()));
    assert_eq!(decide("32-other-git-triggers", e).matched_trigger, Some(0));

    let issue = event_of(
        "issue_comment",
        &issue_comment_body(false, "/RETEST please"),
    )
    .event;
    assert_eq!(
        decide("32-other-git-triggers", &issue).matched_trigger,
        Some(1)
    );
    let plain = event_of("issue_comment", &issue_comment_body(false, "thanks")).event;
    assert_eq!(
        decide("32-other-git-triggers", &plain).matched_trigger,
        Some(2)
    );
}

#[test]
fn repository_dispatch() {
    let body = with_common(
        json!({
            "action": "rebuild",
            "branch": "main",
            "client_payload": {"inputs": {"env": "staging", "force": true}},
            "installation": {"id": 1}
        }),
        "acme/app",
    );
    let n = event_of("repository_dispatch", &body);
    let e = &n.event;
    assert_eq!(e.event_type, "dispatch");
    assert_eq!(e.action.as_deref(), Some("rebuild"));
    assert_eq!(e.target_branch.as_deref(), Some("main"));
    assert_eq!(
        e.dispatch_inputs.as_ref().map(|m| Value::Object(m.clone())),
        Some(json!({"env": "staging", "force": true}))
    );
    assert_eq!(n.revision, Revision::Ref("refs/heads/main".into()));
    assert_eq!(decide("04-multi-triggers", e).matched_trigger, Some(3));

    let mut other = body.clone();
    other["action"] = json!("deploy");
    assert!(
        !decide(
            "04-multi-triggers",
            &event_of("repository_dispatch", &other).event
        )
        .matched
    );
    let mut bad = body;
    bad["client_payload"]["inputs"] = json!("x");
    assert_eq!(
        gh("repository_dispatch", &bad).unwrap_err().to_string(),
        "payload field `client_payload.inputs` must be an object, found a string"
    );
}

#[test]
fn release() {
    let body = with_common(
        json!({
            "action": "published",
            "release": {
                "id": 1, "tag_name": "v1.0.0", "target_commitish": "main",
                "name": "v1.0.0", "draft": false, "prerelease": false
            }
        }),
        "acme/app",
    );
    let n = event_of("release", &body);
    let e = &n.event;
    assert_eq!(e.event_type, "release");
    assert_eq!(e.action.as_deref(), Some("published"));
    assert_eq!(e.target_branch.as_deref(), Some("main"));
    assert_eq!(n.revision, Revision::Ref("refs/heads/main".into()));
    assert_eq!(decide("32-other-git-triggers", e).matched_trigger, Some(5));

    let mut pinned = body.clone();
    pinned["release"]["target_commitish"] = json!(HEAD_SHA);
    let n = event_of("release", &pinned);
    assert_eq!(n.revision, Revision::Commit(HEAD_SHA.into()));
    assert_eq!(n.event.sha.as_deref(), Some(HEAD_SHA));

    // `release()` with only a repos filter, on the named repository.
    let mut edited = with_common(body.clone(), "my-org/releases");
    edited["action"] = json!("edited");
    assert_eq!(
        decide("32-other-git-triggers", &event_of("release", &edited).event).matched_trigger,
        Some(13)
    );
}

#[test]
fn create_and_delete() {
    let create = with_common(
        json!({"ref": "v2.0.0", "ref_type": "tag", "master_branch": "main", "description": null, "pusher_type": "user"}),
        "acme/app",
    );
    let n = event_of("create", &create);
    let e = &n.event;
    assert_eq!(e.event_type, "create");
    assert_eq!(e.action, None);
    assert_eq!(e.target_branch.as_deref(), Some("v2.0.0"));
    assert_eq!(n.revision, Revision::Ref("refs/tags/v2.0.0".into()));
    assert_eq!(decide("32-other-git-triggers", e).matched_trigger, Some(6));

    let delete = with_common(
        json!({"ref": "feature/old/thing", "ref_type": "branch", "pusher_type": "user"}),
        "acme/app",
    );
    let n = event_of("delete", &delete);
    assert_eq!(n.event.event_type, "delete");
    assert_eq!(n.event.target_branch.as_deref(), Some("feature/old/thing"));
    // The deleted ref has no head: the default branch is built.
    assert_eq!(n.revision, Revision::Ref("refs/heads/main".into()));
    assert_eq!(
        decide("32-other-git-triggers", &n.event).matched_trigger,
        Some(7)
    );

    let mut no_type = create;
    no_type.as_object_mut().unwrap().remove("ref_type");
    assert_eq!(
        gh("create", &no_type).unwrap_err().to_string(),
        "payload field `ref_type` is missing"
    );
}

#[test]
fn status() {
    let body = with_common(
        json!({
            "id": 1, "sha": HEAD_SHA, "name": "acme/app",
            "target_url": "https://ci.example.com/1", "context": "ci/build",
            "description": "failed", "state": "failure",
            "commit": {"sha": HEAD_SHA},
            "branches": [
                {"name": "feature/x", "commit": {"sha": HEAD_SHA}, "protected": false},
                {"name": "main", "commit": {"sha": HEAD_SHA}, "protected": true}
            ]
        }),
        "acme/app",
    );
    let n = event_of("status", &body);
    let e = &n.event;
    assert_eq!(e.event_type, "status");
    assert_eq!(e.target_branch.as_deref(), Some("feature/x"));
    assert_eq!(n.revision, Revision::Commit(HEAD_SHA.into()));
    assert_eq!(decide("32-other-git-triggers", e).matched_trigger, Some(8));

    let mut nowhere = body.clone();
    nowhere["branches"] = json!([]);
    assert_eq!(
        event_of("status", &nowhere).event.target_branch.as_deref(),
        Some("main")
    );
    let mut success = body;
    success["state"] = json!("success");
    assert!(!decide("32-other-git-triggers", &event_of("status", &success).event).matched);
}

#[test]
fn workflow_run() {
    let body = with_common(
        json!({
            "action": "completed",
            "workflow_run": {
                "id": 30433642, "name": "CI", "head_branch": "feature/x",
                "head_sha": HEAD_SHA, "event": "push", "status": "completed",
                "conclusion": "failure", "run_number": 562
            },
            "workflow": {"id": 159038, "name": "CI"}
        }),
        "acme/app",
    );
    let n = event_of("workflow_run", &body);
    let e = &n.event;
    assert_eq!(e.event_type, "workflow_run");
    assert_eq!(e.action.as_deref(), Some("completed"));
    assert_eq!(e.target_branch.as_deref(), Some("feature/x"));
    assert_eq!(e.sha.as_deref(), Some(HEAD_SHA));
    assert_eq!(n.revision, Revision::Commit(HEAD_SHA.into()));
    assert_eq!(decide("32-other-git-triggers", e).matched_trigger, Some(9));

    let mut tag_run = body;
    tag_run["workflow_run"]["head_branch"] = Value::Null;
    assert_eq!(
        event_of("workflow_run", &tag_run)
            .event
            .target_branch
            .as_deref(),
        Some("main")
    );
}

#[test]
fn fork_star_watch() {
    let fork = with_common(json!({"forkee": repository("someone/app")}), "acme/app");
    let n = event_of("fork", &fork);
    assert_eq!(n.event.event_type, "fork");
    assert_eq!(n.event.action, None);
    assert_eq!(n.event.target_branch.as_deref(), Some("main"));
    assert_eq!(n.revision, Revision::Ref("refs/heads/main".into()));
    assert_eq!(
        decide("32-other-git-triggers", &n.event).matched_trigger,
        Some(10)
    );

    let star = with_common(
        json!({"action": "created", "starred_at": "2024-03-01T12:00:00Z"}),
        "my-org/tool",
    );
    let n = event_of("star", &star);
    assert_eq!(n.event.event_type, "star");
    assert_eq!(n.event.action.as_deref(), Some("created"));
    assert_eq!(
        decide("32-other-git-triggers", &n.event).matched_trigger,
        Some(11)
    );

    let watch = with_common(json!({"action": "started"}), "my-org/api");
    let n = event_of("watch", &watch);
    assert_eq!(n.event.event_type, "watch");
    assert_eq!(
        decide("32-other-git-triggers", &n.event).matched_trigger,
        Some(12)
    );
    let watch_web = with_common(json!({"action": "started"}), "my-org/web");
    assert!(
        !decide(
            "32-other-git-triggers",
            &event_of("watch", &watch_web).event
        )
        .matched
    );
}

#[test]
fn trust_events_and_housekeeping_are_ignored() {
    let member = with_common(
        json!({"action": "added", "member": {"login": "newbie"}, "changes": {}}),
        "acme/app",
    );
    assert_eq!(
        ignored_of("member", &member),
        IgnoreReason::TrustChange {
            event: "member".into(),
            repo: Some("acme/app".into()),
            org: None
        }
    );
    let team = json!({"action": "edited", "team": {"name": "core"}, "organization": {"login": "acme"}, "sender": sender()});
    assert_eq!(
        ignored_of("team", &team),
        IgnoreReason::TrustChange {
            event: "team".into(),
            repo: None,
            org: Some("acme".into())
        }
    );
    for name in ["organization", "membership"] {
        assert!(matches!(
            ignored_of(name, &json!({"action": "x"})),
            IgnoreReason::TrustChange { .. }
        ));
    }
    let ping = json!({"zen": "Design for failure.", "hook_id": 1, "hook": {"type": "App"}});
    for name in [
        "ping",
        "installation",
        "installation_repositories",
        "installation_target",
        "github_app_authorization",
    ] {
        let reason = ignored_of(name, &ping);
        assert_eq!(reason.outcome(), "ignored", "{name}");
        assert!(kici_engine::provider::is_unstored_github_event(name));
    }
}

#[test]
fn unmapped_events_keep_their_raw_name() {
    let body = with_common(
        json!({"action": "created", "deployment": {"id": 1, "sha": HEAD_SHA, "ref": "main", "environment": "production"}}),
        "acme/app",
    );
    let n = event_of("deployment", &body);
    assert_eq!(n.event.event_type, "deployment");
    assert_eq!(n.event.action.as_deref(), Some("created"));
    assert_eq!(n.event.target_branch.as_deref(), Some("main"));
    assert_eq!(n.revision, Revision::Ref("refs/heads/main".into()));
    assert_eq!(
        decide("33-event-triggers", &n.event).matched_trigger,
        Some(0)
    );

    // No repository at all (an org-level event): no target, the pipeline's `no_repository`.
    let n = event_of(
        "sponsorship",
        &json!({"action": "created", "sender": sender()}),
    );
    assert_eq!(n.event.source_repo, None);
    assert_eq!(n.event.target_branch, None);
    assert_eq!(n.revision, Revision::DefaultBranchHead);
}

#[test]
fn local_source_push() {
    // What `kici admin source trigger-local` and the post-receive hook send.
    let body = json!({
        "ref": "refs/heads/main",
        "before": BEFORE,
        "after": AFTER,
        "repository": {"full_name": "acme/app", "default_branch": "main"},
        "sender": {"login": "git"}
    });
    let headers = Headers::from_pairs([("x-event-type", "push")]);
    let n = match normalise(Source::Local, &headers, &serde_json::to_vec(&body).unwrap()) {
        Ok(Normalised::Event(n)) => *n,
        other => panic!("{other:?}"),
    };
    assert_eq!(n.event.provider.as_deref(), Some("local"));
    assert_eq!(n.event.sender_username.as_deref(), Some("git"));
    assert_eq!(n.event.sender_user_id, None);
    assert_eq!(
        n.changed_files,
        ChangedFilesPlan::Compare {
            base: Some(BEFORE.into()),
            head: AFTER.into()
        }
    );
    assert_eq!(
        decide("04-multi-triggers", &n.event).matched_trigger,
        Some(0)
    );
}

#[test]
fn github_repo_preset_push_uses_payload_files_for_path_filters() {
    let preset = Source::UniversalGit {
        preset: GitPreset::GithubRepo,
        custom: None,
    };
    let headers = Headers::from_pairs([("X-GitHub-Event", "push")]);
    let run = |branch: &str, files: Value| {
        let mut body = push_body(&format!("refs/heads/{branch}"), BEFORE, AFTER);
        body["commits"][0]["added"] = files;
        body["commits"][0]["modified"] = json!([]);
        match normalise(preset, &headers, &serde_json::to_vec(&body).unwrap()) {
            Ok(Normalised::Event(n)) => *n,
            other => panic!("{other:?}"),
        }
    };
    let n = run("main", json!(["src/app.ts", "docs/a.md"]));
    assert_eq!(
        n.event.changed_files,
        Some(vec!["src/app.ts".to_string(), "docs/a.md".into()])
    );
    assert_eq!(n.changed_files, ChangedFilesPlan::Final);
    assert_eq!(decide("02-push-filters", &n.event).matched_trigger, Some(0));
    // Only excluded files: trigger 0 fails on paths, the catch-all push trigger wins.
    let n = run("main", json!(["src/README.md", "test/fixtures/x.json"]));
    let d = decide("02-push-filters", &n.event);
    assert_eq!(d.matched_trigger, Some(1));
    let n = run("hotfix-12", json!(["package.json"]));
    assert_eq!(decide("02-push-filters", &n.event).matched_trigger, Some(0));
}

#[test]
fn signed_delivery_end_to_end() {
    // The ingress order: verify the raw bytes, then normalise the same bytes.
    let body = serde_json::to_vec(&push_body("refs/heads/main", BEFORE, AFTER)).unwrap();
    let secret = b"webhook-secret".as_slice();
    let signature = sign_github(secret, &body);
    let headers = Headers::from_pairs([
        ("X-GitHub-Event", "push"),
        ("X-Hub-Signature-256", signature.as_str()),
    ]);
    verify_github_signature(headers.get("x-hub-signature-256"), &body, &[secret]).unwrap();
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(
        verify_github_signature(headers.get("x-hub-signature-256"), &tampered, &[secret]).is_err()
    );
    let n = normalise(Source::GitHubApp, &headers, &body).unwrap();
    assert_eq!(n.event().map(|e| e.event_type.as_str()), Some("push"));
}
