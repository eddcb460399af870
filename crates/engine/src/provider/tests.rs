use serde_json::{Value, json};

use super::*;

fn h(pairs: &[(&str, &str)]) -> Headers {
    Headers::from_pairs(pairs.iter().copied())
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn expect_event(n: Result<Normalised, NormaliseError>) -> NormalisedEvent {
    match n {
        Ok(Normalised::Event(e)) => *e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn expect_ignored(n: Result<Normalised, NormaliseError>) -> IgnoreReason {
    match n {
        Ok(Normalised::Ignored { reason }) => reason,
        other => panic!("expected ignored, got {other:?}"),
    }
}

const SHA_A: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
const SHA_B: &str = "9049f1265b7d61be4a8904a9a27120d2064dab3b";
const ZERO: &str = "0000000000000000000000000000000000000000";

#[test]
fn headers_are_case_insensitive_and_first_wins() {
    let headers = h(&[("X-GitHub-Event", "push"), ("x-github-event", "ping")]);
    assert_eq!(headers.get("x-github-event"), Some("push"));
    assert_eq!(headers.get("X-GITHUB-EVENT"), Some("push"));
    assert_eq!(headers.get("missing"), None);
    let blank = h(&[("X-Event-Type", "  ")]);
    assert_eq!(blank.get_non_empty("x-event-type"), None);
    let stored = Headers::from_json(&json!({"X-GitHub-Event": "push", "n": 1}));
    assert_eq!(stored.get("x-github-event"), Some("push"));
    assert_eq!(stored.get("n"), None);
}

#[test]
fn inbox_headers_never_keep_credentials() {
    let headers = h(&[
        ("Authorization", "Bearer x"),
        ("Cookie", "a=b"),
        ("X-GitHub-Event", "push"),
        ("User-Agent", "curl"),
    ]);
    let kept = headers.retain_for_inbox(&["authorization", "cookie", "x-github-event"]);
    assert_eq!(Value::Object(kept), json!({"x-github-event": "push"}));
}

#[test]
fn github_app_route_headers() {
    let ok = h(&[
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Hook-Installation-Target-ID", "123"),
        ("X-GitHub-Hook-Installation-Target-Type", "integration"),
    ]);
    let parsed = github_app_headers(&ok).unwrap();
    assert_eq!(parsed.routing_key(), "github:123");
    assert_eq!(parsed.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");

    let repo_hook = h(&[
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "d"),
        ("X-GitHub-Hook-Installation-Target-ID", "123"),
        ("X-GitHub-Hook-Installation-Target-Type", "repository"),
    ]);
    assert_eq!(
        github_app_headers(&repo_hook),
        Err(GitHubHeaderError::NotAnAppHook)
    );
    let no_delivery = h(&[("X-GitHub-Event", "push")]);
    assert_eq!(
        github_app_headers(&no_delivery).unwrap_err().to_string(),
        "missing header X-GitHub-Delivery"
    );
}

#[test]
fn delivery_ids() {
    let rk = generic_routing_key("default", "monitoring");
    assert_eq!(rk, "generic:default:monitoring");
    let headers = h(&[
        ("Idem", "k-1"),
        ("X-Delivery-Id", "d-1"),
        ("X-Request-Id", "r-1"),
        ("X-Gitea-Delivery", "g-1"),
    ]);
    let payload = json!({"meta": {"id": 42}});
    assert_eq!(
        raw_delivery_id(&headers, Some(&payload), Some("idem"), None, None).as_deref(),
        Some("k-1")
    );
    assert_eq!(
        raw_delivery_id(&headers, Some(&payload), None, Some("meta.id"), None).as_deref(),
        Some("42")
    );
    assert_eq!(
        raw_delivery_id(&headers, Some(&payload), None, None, Some(GitPreset::Gitea)).as_deref(),
        Some("g-1")
    );
    assert_eq!(
        raw_delivery_id(&headers, None, None, Some("meta.id"), None).as_deref(),
        Some("d-1")
    );
    let only_request = h(&[("X-Request-Id", "r-1")]);
    assert_eq!(
        raw_delivery_id(&only_request, None, None, None, None).as_deref(),
        Some("r-1")
    );
    assert_eq!(raw_delivery_id(&h(&[]), None, None, None, None), None);
    assert_eq!(
        generic_delivery_id(&rk, "d-1"),
        "generic:default:monitoring:d-1"
    );
}

#[test]
fn refs_and_shas() {
    assert_eq!(split_ref("refs/heads/main"), GitRef::Branch("main"));
    assert_eq!(
        split_ref("refs/heads/feature/x"),
        GitRef::Branch("feature/x")
    );
    assert_eq!(split_ref("refs/tags/v1.2.3"), GitRef::Tag("v1.2.3"));
    assert_eq!(split_ref("refs/heads/"), GitRef::Other("refs/heads/"));
    assert_eq!(split_ref("refs/notes/x"), GitRef::Other("refs/notes/x"));
    assert_eq!(split_ref("main"), GitRef::Other("main"));
    assert!(is_full_sha(SHA_A));
    assert!(is_full_sha(&"a".repeat(64)));
    assert!(!is_full_sha("abc123"));
    assert!(!is_full_sha(&"g".repeat(40)));
    assert!(is_zero_sha(ZERO));
    assert!(!is_zero_sha(SHA_A));
    assert!(!is_zero_sha("0"));
}

#[test]
fn lock_cache_keys_only_for_full_shas() {
    assert_eq!(
        lock_cache_key("github", "o/r", &SHA_A.to_uppercase()).as_deref(),
        Some(format!("github:o/r:{SHA_A}").as_str())
    );
    assert_eq!(lock_cache_key("github", "o/r", "main"), None);
    assert_eq!(lock_cache_key("github", "o/r", "HEAD"), None);
}

#[test]
fn repo_urls() {
    assert_eq!(
        repo_url("https://git.example.com/{owner}/{name}.git", "acme/app").as_deref(),
        Some("https://git.example.com/acme/app.git")
    );
    assert_eq!(
        repo_url("ssh://git@h/{owner}/{name}.git", "group/sub/proj").as_deref(),
        Some("ssh://git@h/group/sub/proj.git")
    );
    for bad in [
        "app", "../x", "a/..", "a//b", "a/b c", "a/b@evil", "/b", "a/",
    ] {
        assert_eq!(repo_url("https://h/{owner}/{name}.git", bad), None, "{bad}");
    }
}

#[test]
fn changed_files_union_in_first_seen_order() {
    let payload = json!({
        "before": SHA_A, "after": SHA_B,
        "commits": [
            {"added": ["a.txt", "src/b.rs"], "modified": ["README.md"], "removed": []},
            {"added": [], "modified": ["src/b.rs", "c.txt"], "removed": ["old.txt"]},
        ]
    });
    assert_eq!(
        changed_files_from_commits(&payload),
        Some(vec![
            "a.txt".to_string(),
            "src/b.rs".into(),
            "README.md".into(),
            "c.txt".into(),
            "old.txt".into()
        ])
    );
}

#[test]
fn changed_files_unknown_when_incomplete() {
    let commit = json!({"added": ["a"], "modified": [], "removed": []});
    // The payload reports more commits than it lists.
    for total_key in ["total_commits", "total_commits_count", "size"] {
        let p = json!({"before": SHA_A, "after": SHA_B, "commits": [commit], total_key: 3});
        assert_eq!(changed_files_from_commits(&p), None, "{total_key}");
    }
    let p = json!({"before": SHA_A, "after": SHA_B, "commits": [commit], "total_commits": 1});
    assert_eq!(changed_files_from_commits(&p), Some(vec!["a".to_string()]));
    // GitHub's cap with no total.
    let many = vec![commit.clone(); GITHUB_PUSH_COMMITS_CAP];
    let p = json!({"before": SHA_A, "after": SHA_B, "commits": many});
    assert_eq!(changed_files_from_commits(&p), None);
    // None listed although something moved (new branch, force push).
    let p = json!({"before": ZERO, "after": SHA_B, "commits": []});
    assert_eq!(changed_files_from_commits(&p), None);
    let p = json!({"before": SHA_B, "after": SHA_B, "commits": []});
    assert_eq!(changed_files_from_commits(&p), Some(vec![]));
    // Commits without file lists (Gogs) or with odd shapes.
    for bad in [
        json!({"commits": [{"id": SHA_A}]}),
        json!({"commits": [{"added": "a"}]}),
        json!({"commits": [{"added": [1]}]}),
        json!({"commits": ["x"]}),
        json!({"commits": {}}),
        json!({}),
    ] {
        assert_eq!(changed_files_from_commits(&bad), None, "{bad}");
    }
}

fn gitea_push() -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": SHA_A,
        "after": SHA_B,
        "compare_url": "https://gitea.example.com/acme/app/compare/x...y",
        "commits": [{
            "id": SHA_B, "message": "fix\n",
            "added": ["src/new.rs"], "removed": [], "modified": ["src/lib.rs"]
        }],
        "total_commits": 1,
        "repository": {"id": 1, "name": "app", "full_name": "acme/app", "default_branch": "main"},
        "pusher": {"id": 2, "login": "alice", "username": "alice"},
        "sender": {"id": 2, "login": "alice", "username": "alice"}
    })
}

#[test]
fn gitea_push_uses_payload_commits() {
    for preset in [GitPreset::Gitea, GitPreset::Forgejo, GitPreset::Gogs] {
        let header = preset.event_header().unwrap();
        let n = expect_event(normalise(
            Source::UniversalGit {
                preset,
                custom: None,
            },
            &h(&[(header, "push")]),
            &body(&gitea_push()),
        ));
        assert_eq!(n.event.event_type, "push");
        assert_eq!(n.event.target_branch.as_deref(), Some("main"));
        assert_eq!(n.event.provider.as_deref(), Some(preset.provider()));
        assert_eq!(n.event.sender_username.as_deref(), Some("alice"));
        assert_eq!(n.event.sender_user_id.as_deref(), Some("2"));
        assert_eq!(
            n.event.changed_files,
            Some(vec!["src/new.rs".to_string(), "src/lib.rs".into()])
        );
        assert_eq!(n.changed_files, ChangedFilesPlan::Final);
        assert_eq!(n.revision, Revision::Commit(SHA_B.into()));
    }
}

#[test]
fn gitea_pull_request_and_other_events() {
    let pr = json!({
        "action": "synchronized",
        "number": 7,
        "pull_request": {
            "id": 99, "number": 7,
            "head": {"ref": "feature", "sha": SHA_B, "repo": {"full_name": "acme/app"}},
            "base": {"ref": "main", "sha": SHA_A, "repo": {"full_name": "acme/app"}}
        },
        "repository": {"full_name": "acme/app", "default_branch": "main"},
        "sender": {"id": 3, "login": "bob"}
    });
    let src = Source::UniversalGit {
        preset: GitPreset::Gitea,
        custom: None,
    };
    let n = expect_event(normalise(
        src,
        &h(&[("X-Gitea-Event", "pull_request")]),
        &body(&pr),
    ));
    assert_eq!(n.event.action.as_deref(), Some("synchronize"));
    assert_eq!(n.event.is_fork_pr, Some(false));
    assert_eq!(n.fetch_ref.as_deref(), Some("refs/pull/7/head"));
    assert_eq!(n.base_revision, Some(Revision::Commit(SHA_A.into())));
    assert_eq!(n.event.changed_files, None);
    assert_eq!(n.changed_files, ChangedFilesPlan::Final);

    let other = expect_ignored(normalise(
        src,
        &h(&[("X-Gitea-Event", "issues")]),
        &body(&json!({"action": "opened"})),
    ));
    assert_eq!(other.outcome(), "unsupported_event");

    let missing = normalise(src, &h(&[]), &body(&pr)).unwrap_err();
    assert_eq!(missing.to_string(), "missing header X-Gitea-Event");
}

fn gitlab_push(kind: &str, git_ref: &str, after: &str) -> Value {
    json!({
        "object_kind": kind,
        "event_name": kind,
        "before": SHA_A,
        "after": after,
        "ref": git_ref,
        "checkout_sha": after,
        "user_id": 4,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "project_id": 15,
        "project": {
            "id": 15, "name": "Diaspora",
            "path_with_namespace": "mike/diaspora",
            "default_branch": "master"
        },
        "commits": [
            {"id": after, "added": ["CHANGELOG"], "modified": ["app/controller/application.rb"], "removed": []}
        ],
        "total_commits_count": 1
    })
}

#[test]
fn gitlab_push_tag_and_delete() {
    let src = Source::UniversalGit {
        preset: GitPreset::GitlabRepo,
        custom: None,
    };
    let n = expect_event(normalise(
        src,
        &h(&[("X-Gitlab-Event", "Push Hook")]),
        &body(&gitlab_push("push", "refs/heads/master", SHA_B)),
    ));
    let e = &n.event;
    assert_eq!(e.event_type, "push");
    assert_eq!(e.target_branch.as_deref(), Some("master"));
    assert_eq!(e.source_repo.as_deref(), Some("mike/diaspora"));
    assert_eq!(e.base_branch.as_deref(), Some("master"));
    assert_eq!(e.sender_username.as_deref(), Some("jsmith"));
    assert_eq!(e.sender_user_id.as_deref(), Some("4"));
    assert_eq!(e.provider.as_deref(), Some("gitlab"));
    assert_eq!(
        e.changed_files,
        Some(vec![
            "CHANGELOG".to_string(),
            "app/controller/application.rb".into()
        ])
    );

    let n = expect_event(normalise(
        src,
        &h(&[("X-Gitlab-Event", "Tag Push Hook")]),
        &body(&gitlab_push("tag_push", "refs/tags/v1.0.0", SHA_B)),
    ));
    assert_eq!(n.event.event_type, "tag");
    assert_eq!(n.event.target_branch.as_deref(), Some("v1.0.0"));

    let reason = expect_ignored(normalise(
        src,
        &h(&[("X-Gitlab-Event", "Push Hook")]),
        &body(&gitlab_push("push", "refs/heads/gone", ZERO)),
    ));
    assert!(matches!(reason, IgnoreReason::RefDeleted { .. }));

    let reason = expect_ignored(normalise(
        src,
        &h(&[("X-Gitlab-Event", "Note Hook")]),
        &body(&json!({})),
    ));
    assert_eq!(reason.outcome(), "unsupported_event");
}

fn gitlab_mr(action: &str, source_project: u64) -> Value {
    json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 1, "name": "Administrator", "username": "root"},
        "project": {"id": 1, "path_with_namespace": "gitlabhq/gitlab-test", "default_branch": "master"},
        "object_attributes": {
            "id": 99, "iid": 1,
            "target_branch": "master",
            "source_branch": "ms-viewport",
            "source_project_id": source_project,
            "target_project_id": 1,
            "last_commit": {"id": SHA_B, "message": "fixed readme"},
            "action": action,
            "source": {"path_with_namespace": "awesome_space/awesome_project"},
            "target": {"path_with_namespace": "gitlabhq/gitlab-test"}
        }
    })
}

#[test]
fn gitlab_merge_requests() {
    let src = Source::UniversalGit {
        preset: GitPreset::GitlabRepo,
        custom: None,
    };
    let hdr = h(&[("X-Gitlab-Event", "Merge Request Hook")]);
    for (raw, mapped) in [
        ("open", "opened"),
        ("update", "synchronize"),
        ("reopen", "reopened"),
        ("close", "closed"),
        ("merge", "closed"),
        ("approved", "approved"),
    ] {
        let n = expect_event(normalise(src, &hdr, &body(&gitlab_mr(raw, 1))));
        assert_eq!(n.event.action.as_deref(), Some(mapped), "{raw}");
        assert_eq!(n.event.event_type, "pull_request");
        assert_eq!(n.event.target_branch.as_deref(), Some("master"));
        assert_eq!(n.event.source_branch.as_deref(), Some("ms-viewport"));
        assert_eq!(n.event.is_fork_pr, Some(false));
        assert_eq!(n.event.sender_username.as_deref(), Some("root"));
        assert_eq!(n.fetch_ref.as_deref(), Some("refs/merge-requests/1/head"));
        assert_eq!(n.revision, Revision::Commit(SHA_B.into()));
    }
    let fork = expect_event(normalise(src, &hdr, &body(&gitlab_mr("open", 2))));
    assert_eq!(fork.event.is_fork_pr, Some(true));

    let mut broken = gitlab_mr("open", 1);
    broken["object_attributes"]
        .as_object_mut()
        .unwrap()
        .remove("iid");
    assert_eq!(
        normalise(src, &hdr, &body(&broken))
            .unwrap_err()
            .to_string(),
        "payload field `object_attributes.iid` is missing"
    );
}

fn generic_config(v: Value) -> GenericConfig {
    serde_json::from_value(v).unwrap()
}

#[test]
fn generic_event_names() {
    let cfg = generic_config(json!({"eventTypeHeader": "X-Kind", "eventTypePath": "meta.kind"}));
    let payload = json!({"meta": {"kind": "from-body"}});
    let name = |headers: &Headers, cfg: &GenericConfig, p: Option<&Value>| {
        generic_event_name(cfg, headers, p)
    };
    assert_eq!(
        name(
            &h(&[("X-Kind", "from-header"), ("X-Event-Type", "x")]),
            &cfg,
            Some(&payload)
        ),
        "from-header"
    );
    assert_eq!(
        name(&h(&[("X-Event-Type", "x")]), &cfg, Some(&payload)),
        "from-body"
    );
    assert_eq!(name(&h(&[("X-Event-Type", "x")]), &cfg, None), "x");
    assert_eq!(name(&h(&[]), &cfg, Some(&json!({}))), "default");
    assert_eq!(
        name(&h(&[]), &GenericConfig::default(), Some(&payload)),
        "default"
    );
    assert!(is_allowed_event(&GenericConfig::default(), "anything"));
    let allowed = generic_config(json!({"allowedEvents": ["alert"]}));
    assert!(is_allowed_event(&allowed, "alert"));
    assert!(!is_allowed_event(&allowed, "resolve"));
}

#[test]
fn generic_payload_shapes() {
    let cfg = GenericConfig::default();
    let src = Source::Generic {
        name: "monitoring",
        config: &cfg,
    };
    let hdr = h(&[("X-Event-Type", "alert")]);

    let n = expect_event(normalise(
        src,
        &hdr,
        br#"{"severity":"high","action":"fire"}"#,
    ));
    assert_eq!(n.event.event_type, "generic_webhook");
    assert_eq!(n.event.action.as_deref(), Some("alert"));
    assert_eq!(n.event.target_branch.as_deref(), Some("__generic__"));
    assert_eq!(n.event.provider.as_deref(), Some("generic"));
    assert_eq!(
        n.event.payload,
        json!({"severity": "high", "action": "fire", "source": "monitoring", "eventType": "alert"})
    );
    assert_eq!(n.revision, Revision::Registration);
    let raw = n.webhook_event.unwrap();
    assert_eq!(raw.event_type, "alert");
    assert_eq!(raw.action.as_deref(), Some("fire"));

    // Present `source`/`eventType` are kept.
    let n = expect_event(normalise(
        src,
        &hdr,
        br#"{"source":"other","eventType":"mine"}"#,
    ));
    assert_eq!(
        n.event.payload,
        json!({"source": "other", "eventType": "mine"})
    );
    assert_eq!(n.webhook_event.unwrap().action.as_deref(), Some(""));

    let n = expect_event(normalise(src, &hdr, b"[1,2]"));
    assert_eq!(
        n.event.payload,
        json!({"source": "monitoring", "eventType": "alert", "body": [1, 2]})
    );
    let n = expect_event(normalise(src, &hdr, b"not json \xff"));
    assert_eq!(
        n.event.payload,
        json!({"source": "monitoring", "eventType": "alert", "body": "not json \u{fffd}"})
    );
}

#[test]
fn generic_events_match_generic_webhook_triggers() {
    use crate::trigger::{LockTrigger, match_workflow};
    let trigger: LockTrigger = serde_json::from_value(json!({
        "_type": "generic_webhook",
        "source": "monitoring",
        "events": ["alert", "resolve"],
        "match": {"$.severity": ["high", "critical"]},
        "not": {"$.silenced": true}
    }))
    .unwrap();
    let cfg = GenericConfig::default();
    let src = Source::Generic {
        name: "monitoring",
        config: &cfg,
    };
    let run = |event: &str, body: &[u8]| {
        let n = expect_event(normalise(src, &h(&[("X-Event-Type", event)]), body));
        match_workflow(std::slice::from_ref(&trigger), &n.event)
            .unwrap()
            .matched
    };
    assert!(run("alert", br#"{"severity":"high"}"#));
    assert!(!run("alert", br#"{"severity":"low"}"#));
    assert!(!run("alert", br#"{"severity":"high","silenced":true}"#));
    assert!(!run("page", br#"{"severity":"high"}"#));

    let webhook: LockTrigger = serde_json::from_value(json!({
        "_type": "webhook", "events": ["deployment"], "actions": ["created"]
    }))
    .unwrap();
    let n = expect_event(normalise(
        src,
        &h(&[("X-Event-Type", "deployment")]),
        br#"{"action":"created"}"#,
    ));
    let raw = n.webhook_event.unwrap();
    assert!(
        match_workflow(std::slice::from_ref(&webhook), &raw)
            .unwrap()
            .matched
    );
}

fn custom_mapping() -> CustomMapping {
    serde_json::from_value(json!({
        "eventHeader": "X-Forge-Event",
        "pullRequestEvents": ["merge"],
        "ref": "$.ref",
        "after": "$.head",
        "repository": "$.repo.path",
        "defaultBranch": "$.repo.default",
        "sender": "$.user.name",
        "pullRequest": {
            "action": "$.action",
            "targetBranch": "$.mr.target",
            "sourceBranch": "$.mr.source",
            "sha": "$.mr.sha",
            "number": "$.mr.id",
            "sourceRepository": "$.mr.from",
            "fetchRef": "refs/pull/{number}/head"
        },
        "actionMap": {"open": "opened"}
    }))
    .unwrap()
}

#[test]
fn custom_preset() {
    let mapping = custom_mapping();
    mapping.validate().unwrap();
    let src = Source::UniversalGit {
        preset: GitPreset::Custom,
        custom: Some(&mapping),
    };
    let push = json!({
        "ref": "refs/heads/dev", "head": SHA_B,
        "repo": {"path": "acme/app", "default": "main"}, "user": {"name": "eve"}
    });
    let n = expect_event(normalise(
        src,
        &h(&[("X-Forge-Event", "push")]),
        &body(&push),
    ));
    assert_eq!(n.event.event_type, "push");
    assert_eq!(n.event.target_branch.as_deref(), Some("dev"));
    assert_eq!(n.event.source_repo.as_deref(), Some("acme/app"));
    assert_eq!(n.event.base_branch.as_deref(), Some("main"));
    assert_eq!(n.event.sender_username.as_deref(), Some("eve"));

    let mr = json!({
        "action": "open",
        "mr": {"target": "main", "source": "feat", "sha": SHA_B, "id": 12, "from": "acme/app"},
        "repo": {"path": "acme/app"}
    });
    let n = expect_event(normalise(
        src,
        &h(&[("X-Forge-Event", "merge")]),
        &body(&mr),
    ));
    assert_eq!(n.event.event_type, "pull_request");
    assert_eq!(n.event.action.as_deref(), Some("opened"));
    assert_eq!(n.event.is_fork_pr, Some(false));
    assert_eq!(n.fetch_ref.as_deref(), Some("refs/pull/12/head"));

    let other = expect_ignored(normalise(src, &h(&[("X-Forge-Event", "issue")]), b"{}"));
    assert_eq!(other.outcome(), "unsupported_event");

    let missing = normalise(src, &h(&[("X-Forge-Event", "push")]), b"{}").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "payload field `$.repo.path` is missing"
    );

    let no_mapping = Source::UniversalGit {
        preset: GitPreset::Custom,
        custom: None,
    };
    assert_eq!(
        normalise(no_mapping, &h(&[]), b"{}"),
        Err(NormaliseError::MissingCustomMapping)
    );
    let mut bad = custom_mapping();
    bad.after = "$[".into();
    assert!(bad.validate().is_err());
}

#[test]
fn synthetic_events() {
    let s = schedule_event(
        "main",
        "30 2 * * 0",
        "UTC",
        "2024-01-07T02:30:00.000Z",
        "reg-1",
        Some("acme/app"),
    );
    assert_eq!(
        serde_json::to_value(&s.event).unwrap(),
        json!({
            "type": "schedule",
            "payload": {"cronExpression": "30 2 * * 0", "timezone": "UTC",
                        "scheduledAt": "2024-01-07T02:30:00.000Z", "registrationId": "reg-1"},
            "targetBranch": "main",
            "sourceRepo": "acme/app",
            "baseBranch": "main",
            "provider": "schedule"
        })
    );
    let mut inputs = Map::new();
    inputs.insert("env".into(), "prod".into());
    let d = manual_dispatch_event("rebuild", "main", inputs, "alice", None);
    assert_eq!(d.event.event_type, "dispatch");
    assert_eq!(d.event.action.as_deref(), Some("rebuild"));
    assert_eq!(d.event.provider.as_deref(), Some("manual"));
    assert_eq!(
        d.event.payload,
        json!({"action": "rebuild", "inputs": {"env": "prod"}, "requestedBy": "alice"})
    );
    assert_eq!(d.revision, Revision::Ref("refs/heads/main".into()));
}

#[test]
fn bodies_that_are_not_objects() {
    for (raw, msg) in [
        (&b"[]"[..], "the body must be a JSON object, found an array"),
        (b"null", "the body must be a JSON object, found null"),
    ] {
        let err = normalise(Source::GitHubApp, &h(&[("X-GitHub-Event", "push")]), raw).unwrap_err();
        assert_eq!(err.to_string(), msg);
    }
    let err = normalise(Source::GitHubApp, &h(&[("X-GitHub-Event", "push")]), b"{").unwrap_err();
    assert!(
        err.to_string().starts_with("the body is not valid JSON: "),
        "{err}"
    );
    let err = normalise(Source::Local, &h(&[]), b"{}").unwrap_err();
    assert_eq!(err.to_string(), "missing header x-event-type");
}

/// Every event name against payloads of every JSON shape: never a panic.
#[test]
fn no_panics_on_arbitrary_shapes() {
    let shapes = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!({"x": []}),
    ];
    let names = [
        "push",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "issue_comment",
        "repository_dispatch",
        "release",
        "create",
        "delete",
        "status",
        "workflow_run",
        "fork",
        "star",
        "watch",
        "member",
        "ping",
        "deployment",
    ];
    let keys = [
        "ref",
        "after",
        "before",
        "deleted",
        "commits",
        "pull_request",
        "number",
        "repository",
        "sender",
        "release",
        "ref_type",
        "branches",
        "sha",
        "workflow_run",
        "client_payload",
        "action",
        "object_attributes",
        "project",
    ];
    let gitlab_names = ["Push Hook", "Tag Push Hook", "Merge Request Hook"];
    for key in keys {
        for shape in &shapes {
            for nested in &shapes {
                let mut payload = json!({ key: shape });
                if let Value::Object(_) = shape {
                    payload[key] = json!({ "ref": nested, "head": nested, "base": nested, "sha": nested,
                        "full_name": nested, "target_commitish": nested, "head_sha": nested,
                        "inputs": nested, "iid": nested, "last_commit": nested });
                }
                let b = body(&payload);
                for name in names {
                    let _ = normalise(Source::GitHubApp, &h(&[("X-GitHub-Event", name)]), &b);
                    let _ = normalise(Source::Local, &h(&[("x-event-type", name)]), &b);
                }
                for name in gitlab_names {
                    let _ = normalise(
                        Source::UniversalGit {
                            preset: GitPreset::GitlabRepo,
                            custom: None,
                        },
                        &h(&[("X-Gitlab-Event", name)]),
                        &b,
                    );
                }
                let _ = changed_files_from_commits(&payload);
            }
        }
    }
}
