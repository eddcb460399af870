//! `kici compile` (cli.md §3, lockfile.md §10, validation.md §1.2).

use std::time::{Duration, SystemTime};

use crate::support::{CI_WORKFLOW, Repo, push_workflow};

const LOCK: &str = ".kici/kici.lock.json";

fn mtime(repo: &Repo, relative: &str) -> SystemTime {
    std::fs::metadata(repo.file(relative))
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[test]
fn writes_the_lock_and_reports_the_count() {
    let repo = Repo::with_ci();
    let out = repo.kici(&["compile"]);
    out.expect(0)
        .stderr_has("✓ Compiled workflows → .kici/kici.lock.json (1 workflow)");
    assert!(
        out.stdout.is_empty(),
        "compile printed on stdout\n{}",
        out.dump()
    );
    let lock: serde_json::Value = serde_json::from_str(&repo.read(LOCK)).expect("lock is JSON");
    assert_eq!(lock["schemaVersion"], 29);
    assert_eq!(lock["workflows"][0]["name"], "ci");
    let step = &lock["workflows"][0]["jobs"][0]["steps"][0];
    assert_eq!(step["name"], "compile");
    assert_eq!(step["sourceLocation"]["file"], ".kici/workflows/ci.ts");
    assert_eq!(step["sourceLocation"]["line"], 8);
    // No temp files left behind.
    let leftovers: Vec<String> = std::fs::read_dir(repo.file(".kici"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn plural_count_for_several_workflows() {
    let repo = Repo::with_ci();
    repo.write(".kici/workflows/other.ts", push_workflow("other"));
    repo.kici(&["compile"])
        .expect(0)
        .stderr_has("(2 workflows)");
}

#[test]
fn second_run_leaves_the_lock_untouched() {
    let repo = Repo::with_ci();
    repo.kici(&["compile"]).expect(0);
    let before = mtime(&repo, LOCK);
    let bytes = repo.read(LOCK);
    // Make an unnecessary rewrite visible even on coarse-grained file systems.
    std::thread::sleep(Duration::from_millis(1100));
    repo.kici(&["compile"]).expect(0);
    assert_eq!(mtime(&repo, LOCK), before, "the lock was rewritten");
    assert_eq!(repo.read(LOCK), bytes);
    // A real change rewrites it.
    repo.write(".kici/workflows/other.ts", push_workflow("other"));
    repo.kici(&["compile"]).expect(0);
    assert_ne!(repo.read(LOCK), bytes);
}

#[test]
fn check_is_zero_when_in_sync() {
    let repo = Repo::with_ci();
    repo.kici(&["compile"]).expect(0);
    let before = mtime(&repo, LOCK);
    repo.kici(&["compile", "--check"])
        .expect(0)
        .stderr_has("✓ kici.lock.json is up to date (1 workflow)");
    assert_eq!(mtime(&repo, LOCK), before);
}

#[test]
fn check_reports_an_edited_workflow() {
    let repo = Repo::with_ci();
    repo.kici(&["compile"]).expect(0);
    let committed = repo.read(LOCK);
    repo.write(
        ".kici/workflows/ci.ts",
        CI_WORKFLOW.replace("branches: ['main']", "branches: ['main', 'dev']"),
    );
    let out = repo.kici(&["compile", "--check"]);
    out.expect(1)
        .stderr_has("error: .kici/kici.lock.json is out of date — run \"kici compile\"")
        .stderr_has("  ~ workflow \"ci\": ")
        .stderr_has("contentHash");
    let changed_line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("  ~ workflow \"ci\""))
        .unwrap();
    assert!(changed_line.contains("triggers"), "{}", out.dump());
    assert_eq!(repo.read(LOCK), committed, "--check wrote the lock");
}

#[test]
fn check_reports_added_and_removed_workflows() {
    let repo = Repo::with_ci();
    repo.write(".kici/workflows/old.ts", push_workflow("old"));
    repo.kici(&["compile"]).expect(0);
    repo.remove(".kici/workflows/old.ts");
    repo.write(".kici/workflows/new.ts", push_workflow("new"));
    let out = repo.kici(&["compile", "--check"]);
    out.expect(1)
        .stderr_has("  + workflow \"new\" (new)")
        .stderr_has("  - workflow \"old\" (removed)");
    assert!(
        !out.stderr.contains("workflow \"ci\""),
        "an unchanged workflow was reported\n{}",
        out.dump()
    );
}

#[test]
fn check_without_a_lock_fails_with_the_message() {
    let repo = Repo::with_ci();
    let out = repo.kici(&["compile", "--check"]);
    out.expect(1)
        .stderr_has("error: .kici/kici.lock.json not found — run \"kici compile\"");
    assert!(!repo.exists(LOCK));
}

#[test]
fn check_with_a_corrupt_lock_fails() {
    let repo = Repo::with_ci();
    repo.write(LOCK, "{ not json");
    repo.kici(&["compile", "--check"])
        .expect(1)
        .stderr_has("out of date")
        .stderr_has("not valid JSON");
}

#[test]
fn check_reports_validation_errors_first() {
    let repo = Repo::with_ci();
    repo.kici(&["compile"]).expect(0);
    repo.write(".kici/workflows/bad.ts", "const = ;\n");
    let out = repo.kici(&["compile", "--check"]);
    out.expect(1).stderr_has("error [E002]");
    assert!(!out.stderr.contains("out of date"), "{}", out.dump());
}

#[test]
fn dry_run_writes_nothing() {
    let repo = Repo::with_ci();
    repo.kici(&["compile", "--dry-run"])
        .expect(0)
        .stderr_has("✓ Workflows are valid (1 workflow)");
    assert!(!repo.exists(LOCK));
    // Nor does it touch an existing, stale lock.
    repo.write(LOCK, "stale");
    repo.kici(&["compile", "--dry-run"]).expect(0);
    assert_eq!(repo.read(LOCK), "stale");
    // Errors still fail it.
    repo.write(".kici/workflows/bad.ts", "const = ;\n");
    repo.kici(&["compile", "--dry-run"]).expect(1);
}

#[test]
fn json_on_success_has_the_validation_md_shape() {
    let repo = Repo::with_ci();
    let out = repo.kici(&["compile", "--json"]);
    out.expect(0);
    let body = out.json();
    assert_eq!(body["ok"], true);
    assert_eq!(body["workflows"], 1);
    assert_eq!(body["lockFile"], ".kici/kici.lock.json");
    assert_eq!(body["diagnostics"], serde_json::json!([]));
    assert!(repo.exists(LOCK));
    assert!(
        !out.stderr.contains('✓'),
        "--json printed a human summary\n{}",
        out.dump()
    );
}

#[test]
fn json_on_failure_lists_diagnostics_with_positions() {
    let repo = Repo::new();
    repo.write(
        ".kici/workflows/ci.ts",
        "import { workflow, job, push } from '@kici-dev/sdk';\n\nconst build = job('build', { runsOn: 'x', steps: [] });\nconst deploy = job('deploy', { runsOn: 'x', needs: ['biuld'], steps: [] });\n\nexport default workflow('ci', { on: push(), jobs: [build, deploy] });\n",
    );
    let out = repo.kici(&["compile", "--json"]);
    out.expect(1);
    let body = out.json();
    assert_eq!(body["ok"], false);
    assert_eq!(body["workflows"], 0);
    assert!(body.get("lockFile").is_none(), "{body:#}");
    let diagnostic = &body["diagnostics"][0];
    assert_eq!(diagnostic["severity"], "error");
    assert_eq!(diagnostic["code"], "E101");
    assert_eq!(
        diagnostic["message"],
        "Job \"deploy\" in workflow \"ci\" depends on non-existent job \"biuld\""
    );
    assert_eq!(diagnostic["file"], ".kici/workflows/ci.ts");
    assert_eq!(diagnostic["line"], 4);
    assert!(
        diagnostic["column"].as_u64().is_some_and(|c| c > 1),
        "{body:#}"
    );
    assert!(
        diagnostic["suggestion"]
            .as_str()
            .is_some_and(|s| s.contains("build")),
        "{body:#}"
    );
    assert!(!repo.exists(LOCK));
}

#[test]
fn json_check_drift_is_reported_in_json() {
    let repo = Repo::with_ci();
    repo.kici(&["compile"]).expect(0);
    repo.write(".kici/workflows/new.ts", push_workflow("new"));
    let out = repo.kici(&["compile", "--check", "--json"]);
    out.expect(1);
    let body = out.json();
    assert_eq!(body["ok"], false);
    let errors = body["errors"].to_string();
    assert!(errors.contains("out of date"), "{body:#}");
}

#[test]
fn warnings_do_not_fail_unless_denied() {
    let repo = Repo::new();
    repo.write(
        ".kici/workflows/quiet.ts",
        "import { workflow, job } from '@kici-dev/sdk';\n\nexport default workflow('never', { jobs: [job('a', { runsOn: 'x', steps: [] })] });\n",
    );
    let out = repo.kici(&["compile"]);
    out.expect(0)
        .stderr_has("warning [W005]")
        .stderr_has("Workflow \"never\" has no triggers");
    let body = repo.kici(&["compile", "--json"]).json();
    assert_eq!(body["ok"], true);
    assert_eq!(body["diagnostics"][0]["severity"], "warning");
    assert_eq!(body["diagnostics"][0]["code"], "W005");

    repo.remove(LOCK);
    let out = repo.kici(&["compile", "--deny-warnings"]);
    out.expect(1)
        .stderr_has("error [W005]")
        .stderr_has("1 error(s)");
    assert!(!repo.exists(LOCK), "--deny-warnings still wrote the lock");
    let out = repo.kici(&["compile", "--deny-warnings", "--json"]);
    out.expect(1);
    assert_eq!(out.json()["diagnostics"][0]["severity"], "error");
}

#[test]
fn quiet_hides_warnings_but_not_the_summary() {
    let repo = Repo::new();
    repo.write(
        ".kici/workflows/quiet.ts",
        "import { workflow, job } from '@kici-dev/sdk';\n\nexport default workflow('never', { jobs: [job('a', { runsOn: 'x', steps: [] })] });\n",
    );
    let out = repo.kici(&["compile", "--quiet"]);
    out.expect(0).stderr_has("Compiled workflows");
    assert!(!out.stderr.contains("W005"), "{}", out.dump());
}

#[test]
fn verbose_lists_files_and_hashes() {
    let repo = Repo::with_ci();
    repo.kici(&["compile", "--verbose"])
        .expect(0)
        .stderr_has(".kici/workflows/ci.ts")
        .stderr_has("#default");
}

#[test]
fn kici_dir_flag_selects_another_directory() {
    let repo = Repo::new();
    repo.write("ci-config/workflows/ci.ts", CI_WORKFLOW);
    let out = repo.kici(&["compile", "--kici-dir", "ci-config"]);
    out.expect(0)
        .stderr_has("ci-config/kici.lock.json (1 workflow)");
    assert!(repo.exists("ci-config/kici.lock.json"));
    assert!(!repo.exists(LOCK));
    // The lock names files relative to the git root.
    assert!(
        repo.read("ci-config/kici.lock.json")
            .contains("\"ci-config/workflows/ci.ts\"")
    );
    // An absolute path works too, from anywhere.
    let elsewhere = Repo::plain();
    let absolute = repo.file("ci-config");
    repo.cmd(&[
        "compile",
        "--check",
        "--kici-dir",
        absolute.to_str().unwrap(),
    ])
    .cwd(elsewhere.path())
    .run()
    .expect(0);
    // A directory without workflows is E001.
    repo.kici(&["compile", "--kici-dir", "nope"])
        .expect(1)
        .stderr_has("error [E001]");
}

#[test]
fn runs_from_a_subdirectory_and_from_inside_kici() {
    let repo = Repo::with_ci();
    std::fs::create_dir_all(repo.file("src/deep/er")).unwrap();
    let out = repo.cmd(&["compile"]).cwd(&repo.file("src/deep/er")).run();
    out.expect(0).stderr_has("(1 workflow)");
    assert!(repo.exists(LOCK));
    assert!(!repo.exists("src/deep/er/.kici"));
    // Paths in diagnostics are relative to the current directory or absolute.
    repo.write(".kici/workflows/bad.ts", "const = ;\n");
    let out = repo.cmd(&["compile"]).cwd(&repo.file("src")).run();
    out.expect(1);
    let absolute = repo.file(".kici/workflows/bad.ts");
    assert!(
        out.stderr.contains(&format!("{}:1:7", absolute.display())),
        "{}",
        out.dump()
    );
    let out = repo.cmd(&["compile"]).cwd(&repo.file(".kici")).run();
    out.expect(1).stderr_has("workflows/bad.ts:1:7");
    repo.remove(".kici/workflows/bad.ts");
    repo.cmd(&["compile", "--check"])
        .cwd(&repo.file(".kici/workflows"))
        .run()
        .expect(0);
}

#[test]
fn compile_outside_a_git_repository_uses_the_current_directory() {
    let dir = Repo::plain();
    dir.write(".kici/workflows/ci.ts", CI_WORKFLOW);
    dir.kici(&["compile"]).expect(0);
    assert!(dir.exists(LOCK));
}

#[test]
fn conflicting_flags_are_usage_errors() {
    let repo = Repo::with_ci();
    repo.kici(&["compile", "--check", "--dry-run"]).expect(2);
    repo.kici(&["compile", "--check", "--watch"]).expect(2);
    assert!(!repo.exists(LOCK));
}

#[test]
fn console_output_of_module_code_goes_to_stderr() {
    let repo = Repo::new();
    repo.write(
        ".kici/workflows/ci.ts",
        format!("console.log('hello from top level');\n{CI_WORKFLOW}"),
    );
    let out = repo.kici(&["compile", "--json"]);
    out.expect(0).stderr_has("hello from top level");
    let _ = out.json();
}
