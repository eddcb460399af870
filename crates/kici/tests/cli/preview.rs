//! `kici preview <event>` (cli.md §5, triggers.md §3.2 and §10).

use serde_json::Value;

use crate::support::{CI_WORKFLOW, Output, Repo};

const CHECKS: &str = r#"import { workflow, job, step, pr } from '@kici-dev/sdk';

export const checks = workflow('checks', {
  on: pr({ target: 'main', paths: ['src/**'] }),
  jobs: [job('lint', { runsOn: 'kici:os:linux', steps: [step('run-linter', async () => {})] })],
});
"#;

const RELEASE: &str = r#"import { workflow, job, step, tag, schedule, dispatch } from '@kici-dev/sdk';

export const release = workflow('release', {
  on: tag({ patterns: ['v*'] }),
  jobs: [job('publish', { runsOn: 'kici:os:linux', steps: [step('upload', async () => {})] })],
});

export const nightly = workflow('nightly', {
  on: schedule({ cron: '0 3 * * *' }),
  jobs: [job('sweep', { runsOn: 'kici:os:linux', steps: [step('clean', async () => {})] })],
});

export const manual = workflow('manual', {
  on: dispatch({ types: ['deploy'] }),
  jobs: [
    job('deploy', {
      runsOn: ['kici:os:linux', /^gpu-\d+$/],
      matrix: { region: ['eu', 'us'] },
      steps: [step('ship', async () => {})],
    }),
  ],
});
"#;

/// Five workflows, one per kind of event, committed on `main`.
fn repo() -> Repo {
    let repo = Repo::new();
    repo.write(".kici/workflows/ci.ts", CI_WORKFLOW);
    repo.write(".kici/workflows/checks.ts", CHECKS);
    repo.write(".kici/workflows/release.ts", RELEASE);
    repo.write("src/index.ts", "export {};\n");
    repo.write("docs/readme.md", "docs\n");
    repo.commit("initial");
    repo
}

/// `preview <args> --json`, exit 0, parsed.
#[track_caller]
fn preview_json(repo: &Repo, args: &[&str]) -> Value {
    let mut all = vec!["preview"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = repo.kici(&all);
    out.expect(0);
    out.json()
}

/// Names of the workflows in `decisions` with `matched == want`.
fn decided(body: &Value, want: bool) -> Vec<String> {
    let mut names: Vec<String> = body["decisions"]
        .as_array()
        .expect("decisions array")
        .iter()
        .filter(|d| d["matched"] == want)
        .map(|d| d["workflowName"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn decision<'a>(body: &'a Value, workflow: &str) -> &'a Value {
    body["decisions"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["workflowName"] == workflow))
        .unwrap_or_else(|| panic!("no decision for {workflow}: {body:#}"))
}

fn workflow<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["workflows"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["name"] == name))
        .unwrap_or_else(|| panic!("no workflow {name}: {body:#}"))
}

#[track_caller]
fn only_matched(body: &Value, name: &str) {
    assert_eq!(decided(body, true), vec![name.to_string()], "{body:#}");
    assert_eq!(decided(body, false).len(), 4, "{body:#}");
    assert_eq!(workflow(body, name)["matched"], true, "{body:#}");
}

#[test]
fn push_human_output_explains_every_workflow() {
    let repo = repo();
    let out = repo.kici(&["preview", "push"]);
    out.expect(0)
        .stdout_has("Event: push")
        .stdout_has("Target branch: main")
        .stdout_has("Workflows: 5 total, 1 matched")
        .stdout_has("Workflow: ci")
        .stdout_has("runs-on: kici:os:linux")
        .stdout_has("Decision Summary:")
        .stdout_has("ci: ✓ matched")
        .stdout_has("checks: ✗ skipped")
        .stdout_has("Failed: event type - pull_request vs push");
    assert!(
        !repo.exists(".kici/kici.lock.json"),
        "preview wrote the lock"
    );
}

#[test]
fn push_json_names_matched_and_unmatched_with_reasons() {
    let repo = repo();
    let body = preview_json(&repo, &["push"]);
    assert_eq!(body["event"]["type"], "push");
    assert_eq!(body["event"]["targetBranch"], "main");
    only_matched(&body, "ci");
    let ci = workflow(&body, "ci");
    assert_eq!(ci["jobs"][0]["name"], "build");
    assert_eq!(ci["jobs"][0]["steps"], serde_json::json!(["compile"]));
    let skipped = decision(&body, "release");
    assert_eq!(skipped["summary"], "No triggers matched");
    assert!(
        skipped.to_string().contains("event type"),
        "no reason for release: {skipped:#}"
    );
}

#[test]
fn push_to_another_branch_matches_nothing_and_still_exits_zero() {
    let repo = repo();
    let body = preview_json(&repo, &["push", "--branch", "feature"]);
    assert!(decided(&body, true).is_empty(), "{body:#}");
    let checks = decision(&body, "ci")["checks"].to_string();
    assert!(checks.contains("feature"), "{checks}");
    let out = repo.kici(&["preview", "push", "--branch", "feature"]);
    out.expect(0).stdout_has("0 matched");
}

#[test]
fn pr_open_respects_the_paths_filter_through_files() {
    let repo = repo();
    // On main with no changes the PR has no changed files: the paths filter rejects it.
    let body = preview_json(&repo, &["pr:open"]);
    assert_eq!(body["event"]["type"], "pull_request");
    assert!(decided(&body, true).is_empty(), "{body:#}");
    assert!(
        decision(&body, "checks").to_string().contains("paths"),
        "{body:#}"
    );
    // A matching changed file flips the decision.
    let body = preview_json(&repo, &["pr:open", "--files", "src/index.ts"]);
    only_matched(&body, "checks");
    // A non-matching one does not.
    let body = preview_json(&repo, &["pr:open", "--files", "docs/readme.md"]);
    assert!(decided(&body, true).is_empty(), "{body:#}");
    // Comma-separated and repeated --files combine.
    let body = preview_json(
        &repo,
        &[
            "pr:open",
            "--files",
            "docs/a.md,docs/b.md",
            "--files",
            "src/x.ts",
        ],
    );
    only_matched(&body, "checks");
}

#[test]
fn pr_open_from_a_feature_branch_uses_the_git_diff() {
    let repo = repo();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("src/new.ts", "export const n = 1;\n");
    repo.commit("feature work");
    let body = preview_json(&repo, &["pr:open"]);
    only_matched(&body, "checks");
    assert_eq!(body["event"]["sourceBranch"], "feature");
    assert_eq!(body["event"]["targetBranch"], "main");
    let files = body["event"]["changedFiles"].to_string();
    assert!(files.contains("src/new.ts"), "{files}");
}

#[test]
fn tag_schedule_and_dispatch_each_match_their_workflow() {
    let repo = repo();
    let body = preview_json(&repo, &["tag:v1.2.3"]);
    assert_eq!(body["event"]["type"], "tag");
    only_matched(&body, "release");

    let body = preview_json(&repo, &["tag:release-1"]);
    assert!(decided(&body, true).is_empty(), "{body:#}");

    let body = preview_json(&repo, &["schedule"]);
    assert_eq!(body["event"]["type"], "schedule");
    only_matched(&body, "nightly");

    let body = preview_json(&repo, &["dispatch:deploy"]);
    assert_eq!(body["event"]["type"], "dispatch");
    only_matched(&body, "manual");
    // Matrix children and runs-on forms are listed.
    let jobs = &workflow(&body, "manual")["jobs"];
    let names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{jobs:#}");
    assert!(names.iter().all(|n| n.starts_with("deploy")), "{jobs:#}");
    assert_eq!(jobs[0]["baseName"], "deploy");
    assert!(jobs[0]["matrixValues"].is_object(), "{jobs:#}");
    let out = repo.kici(&["preview", "dispatch:deploy"]);
    out.expect(0).stdout_has("/^gpu-\\d+$/");
    assert!(!out.stdout.contains("[object Object]"), "{}", out.dump());

    let body = preview_json(&repo, &["dispatch:other"]);
    assert!(decided(&body, true).is_empty(), "{body:#}");
}

#[test]
fn json_stdout_is_pure_json() {
    let repo = repo();
    let out = repo.kici(&["preview", "push", "--json"]);
    out.expect(0);
    let body = out.json();
    assert!(body["decisions"].is_array());
    assert!(body["workflows"].is_array());
    assert!(body["event"].is_object());
}

#[test]
fn unknown_event_is_a_usage_error() {
    let repo = repo();
    let out = repo.kici(&["preview", "bogus"]);
    out.expect(2).stderr_has("unknown event \"bogus\"");
    assert!(out.stdout.is_empty(), "{}", out.dump());
    repo.kici(&["preview", "pr:", "--json"]).assert_clean();
}

#[test]
fn missing_event_is_a_usage_error() {
    let repo = repo();
    repo.kici(&["preview"])
        .expect(2)
        .stderr_has("missing event");
    repo.kici(&["preview", "--json"]).expect(2);
}

#[test]
fn compile_errors_fail_the_preview() {
    let repo = repo();
    repo.write(".kici/workflows/bad.ts", "throw new Error('nope');\n");
    let out = repo.kici(&["preview", "push"]);
    out.expect(1)
        .stderr_has(".kici/workflows/bad.ts:1:")
        .stderr_has("error [E003]");
    let out: Output = repo.kici(&["preview", "push", "--json"]);
    out.expect(1);
    assert!(
        !out.stdout.contains("decisions"),
        "a failed compile still printed a preview\n{}",
        out.dump()
    );
}

#[test]
fn workflow_and_job_filters() {
    let repo = repo();
    let out = repo.kici(&["preview", "push", "--workflow", "ci"]);
    out.expect(0).stdout_has("Workflow: ci");
    // --workflow naming a workflow that did not match: exit 1 (cli.md flag help).
    let out = repo.kici(&["preview", "push", "--workflow", "release"]);
    out.assert_clean();
    assert_eq!(out.code(), 1, "{}", out.dump());
}

#[test]
fn payload_file_overrides_the_built_in_event() {
    let repo = repo();
    repo.write(
        "payload.json",
        r#"{"ref": "refs/heads/main", "after": "abcdef", "commits": []}"#,
    );
    let body = preview_json(&repo, &["push", "--payload", "payload.json"]);
    only_matched(&body, "ci");
    repo.write("broken.json", "{");
    repo.kici(&["preview", "push", "--payload", "broken.json"])
        .expect(1)
        .stderr_has("broken.json");
    repo.kici(&["preview", "push", "--payload", "missing.json"])
        .expect(1)
        .stderr_has("missing.json");
}

#[test]
fn preview_reads_workflows_not_a_stale_lock() {
    let repo = repo();
    repo.write(".kici/kici.lock.json", "{ stale");
    let body = preview_json(&repo, &["push"]);
    only_matched(&body, "ci");
}
