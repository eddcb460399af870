//! Vectors of `triggers.md` §11 (the parts not already covered by the conformance corpus) and
//! the behaviours that are ours.

use serde_json::{Value, json};

use super::*;
use crate::event::Event;

fn trigger(raw: Value) -> LockTrigger {
    serde_json::from_value(raw).unwrap()
}

fn event(raw: Value) -> Event {
    serde_json::from_value(raw).unwrap()
}

fn decide(triggers: &[Value], ev: Value) -> Decision {
    let triggers: Vec<LockTrigger> = triggers.iter().cloned().map(trigger).collect();
    match_workflow(&triggers, &event(ev)).unwrap()
}

fn push_on(branch: &str) -> Value {
    json!({"type": "push", "payload": {}, "targetBranch": branch})
}

fn glob(p: &str) -> Value {
    json!({"type": "glob", "pattern": p})
}

#[test]
fn list_level_exclusion_applies_to_branches() {
    // §11.1 #9 and #10 (ours: `['**', '!main']` excludes main).
    let only_not_main = json!({"_type": "push", "branches": [glob("!main")], "paths": []});
    assert!(decide(std::slice::from_ref(&only_not_main), push_on("dev")).matched);
    assert!(!decide(&[only_not_main], push_on("main")).matched);
    let all_but_main =
        json!({"_type": "push", "branches": [glob("**"), glob("!main")], "paths": []});
    assert!(!decide(std::slice::from_ref(&all_but_main), push_on("main")).matched);
    assert!(decide(&[all_but_main], push_on("dev")).matched);
}

#[test]
fn regex_branches_are_unanchored() {
    let t = json!({"_type": "push", "branches": [{"type": "regex", "pattern": "release"}], "paths": []});
    assert!(decide(&[t], push_on("pre-release-x")).matched);
}

fn paths_decision(paths: &[&str], files: Option<&[&str]>, truncated: bool) -> Decision {
    let mut ev = json!({"type": "push", "payload": {}, "targetBranch": "main"});
    if let Some(files) = files {
        ev["changedFiles"] = json!(files);
    }
    if truncated {
        ev["changedFilesTruncated"] = json!(true);
    }
    decide(
        &[json!({"_type": "push", "branches": [], "paths": paths})],
        ev,
    )
}

#[test]
fn path_filter_reasons() {
    // §11.2 #23 and #30.
    let unknown = paths_decision(&["src/**"], None, false);
    assert!(!unknown.matched);
    assert_eq!(
        unknown.checks[1].reason.as_deref(),
        Some("changed files unknown")
    );
    let empty = paths_decision(&["src/**"], Some(&[]), false);
    assert_eq!(empty.checks[1].reason.as_deref(), Some("no changed files"));
    let truncated = paths_decision(&["src/**"], Some(&["docs/a.md"]), true);
    assert!(truncated.matched);
    assert_eq!(
        truncated.checks[1].reason.as_deref(),
        Some("changed file list truncated; assuming match")
    );
    let excluded = paths_decision(&["!**/*.md"], Some(&["README.md"]), false);
    assert!(!excluded.matched);
    assert_eq!(
        excluded.checks[1].reason.as_deref(),
        Some("all changed files excluded")
    );
    // §11.2 #21, #22, #24, #25, #29.
    assert!(
        paths_decision(
            &["src/**", "!**/*.test.ts", "!**/*.md"],
            Some(&["src/utils.ts", "tests/foo.test.ts"]),
            false
        )
        .matched
    );
    assert!(
        !paths_decision(
            &["src/**", "!**/*.test.ts"],
            Some(&["src/app.test.ts", "docs/README.md"]),
            false
        )
        .matched
    );
    assert!(
        paths_decision(
            &["!src/generated/**"],
            Some(&["src/generated/foo.ts", "src/main.ts"]),
            false
        )
        .matched
    );
    assert!(!paths_decision(&["**/*.yml"], Some(&[".github/workflows/ci.yml"]), false).matched);
    assert!(paths_decision(&["docs/**"], Some(&["docs"]), false).matched);
}

#[test]
fn first_matching_trigger_wins_and_summaries() {
    let pr = json!({"_type": "pr", "events": ["opened"], "targetBranches": [], "sourceBranches": [], "paths": []});
    let push = json!({"_type": "push", "branches": [], "paths": []});
    let d = decide(&[pr.clone(), push.clone()], push_on("main"));
    assert_eq!(
        (d.matched_trigger, d.summary.as_str()),
        (Some(1), "Matched trigger 2 (push)")
    );
    // Only the winning trigger's checks are kept for a match.
    assert_eq!(d.checks.len(), 1);
    let d = decide(&[], push_on("main"));
    assert_eq!(d.summary, "No triggers defined");
    let d = decide(&[pr], push_on("main"));
    assert_eq!(d.summary, "No triggers matched");
    assert_eq!(
        d.first_failure().unwrap(),
        "Failed: event type - pull_request vs push"
    );
}

#[test]
fn missing_source_branch_fails_with_a_reason() {
    let t = json!({"_type": "pr", "events": [], "targetBranches": [], "sourceBranches": [glob("feature/*")], "paths": []});
    let d = decide(
        &[t],
        json!({"type": "pull_request", "action": "opened", "payload": {}, "targetBranch": "main"}),
    );
    assert!(!d.matched);
    let last = d.checks.last().unwrap();
    assert_eq!(last.value, Some(json!("(missing)")));
    assert!(last.reason.is_some());
}

#[test]
fn repos_require_a_source_repo() {
    let t = json!({"_type": "push", "branches": [glob("main")], "paths": [], "repos": [glob("myorg/*")]});
    let mut ev = push_on("main");
    assert!(!decide(std::slice::from_ref(&t), ev.clone()).matched);
    ev["sourceRepo"] = json!("myorg/api");
    assert!(decide(std::slice::from_ref(&t), ev.clone()).matched);
    ev["sourceRepo"] = json!("other/repo");
    assert!(!decide(&[t], ev).matched);
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let comment = trigger(json!({"_type": "comment", "actions": [], "source": "pr"}));
    let no_payload = event(json!({"type": "comment", "targetBranch": "main"}));
    assert_eq!(
        match_workflow(&[comment], &no_payload).unwrap_err(),
        MatchError::MissingPayload
    );

    let bad_regex = trigger(
        json!({"_type": "push", "branches": [{"type": "regex", "pattern": "("}], "paths": []}),
    );
    assert!(matches!(
        match_workflow(&[bad_regex], &event(push_on("main"))),
        Err(MatchError::InvalidRegex { .. })
    ));

    let numeric_ref =
        event(json!({"type": "delete", "payload": {"ref": 42}, "targetBranch": "main"}));
    let delete = trigger(json!({"_type": "delete", "refTypes": [], "patterns": [glob("v*")]}));
    assert!(matches!(
        match_workflow(&[delete], &numeric_ref),
        Err(MatchError::NotAString { .. })
    ));

    let malformed = trigger(json!({"_type": "push", "branches": "main"}));
    assert!(matches!(
        match_workflow(&[malformed], &event(push_on("main"))),
        Err(MatchError::InvalidTrigger { .. })
    ));
}

#[test]
fn unknown_trigger_types_never_match_and_round_trip() {
    let raw = json!({"_type": "future_thing", "z": 1, "a": 2});
    let t = trigger(raw.clone());
    assert!(matches!(t, LockTrigger::Unknown(_)));
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        serde_json::to_string(&raw).unwrap()
    );
    let d = match_workflow(&[t], &event(push_on("main"))).unwrap();
    assert!(!d.matched && d.checks.is_empty());
}

#[test]
fn all_workflows_keep_going_after_an_error() {
    let broken = vec![trigger(
        json!({"_type": "push", "branches": [{"type": "regex", "pattern": "["}], "paths": []}),
    )];
    let fine = vec![trigger(
        json!({"_type": "push", "branches": [], "paths": []}),
    )];
    let ev = event(push_on("main"));
    let decisions = match_all_workflows(
        [("broken", broken.as_slice()), ("fine", fine.as_slice())],
        &ev,
    );
    assert_eq!(decisions.len(), 2);
    assert!(!decisions[0].matched && decisions[0].error.is_some());
    assert!(decisions[1].matched && decisions[1].workflow_name == "fine");
}

#[test]
fn decision_json_shape() {
    let d = decide(
        &[json!({"_type": "push", "branches": [], "paths": []})],
        push_on("main"),
    );
    let mut d = d;
    d.workflow_name = "ci".to_string();
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"workflowName":"ci","matched":true,"matchedTrigger":0,"checks":[{"check":"event type","pattern":"push","value":"push","passed":true}],"summary":"Matched trigger 1 (push)"}"#
    );
}

#[test]
fn typed_triggers_serialise_in_lock_order() {
    let t = LockTrigger::Pr(PrTrigger::default());
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#"{"_type":"pr","events":["opened","synchronize","reopened","closed"],"targetBranches":[],"sourceBranches":[],"paths":[]}"#
    );
    let t = LockTrigger::Schedule(ScheduleTrigger {
        cron_expression: "0 * * * *".into(),
        ..Default::default()
    });
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#"{"_type":"schedule","cronExpression":"0 * * * *","timezone":"UTC"}"#
    );
}
