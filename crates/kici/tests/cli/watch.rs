//! `kici watch` / `kici compile --watch` (cli.md §4). Every wait is bounded.

use std::time::Duration;

use crate::support::{CI_WORKFLOW, Repo, push_workflow, wait_until};

const LOCK: &str = ".kici/kici.lock.json";
const WAIT: Duration = Duration::from_secs(20);

fn lock_contains(repo: &Repo, needle: &str) -> bool {
    std::fs::read_to_string(repo.file(LOCK)).is_ok_and(|t| t.contains(needle))
}

#[test]
fn recompiles_on_edit_and_stops_on_sigint() {
    let repo = Repo::with_ci();
    let mut watch = repo.cmd(&["watch"]).spawn();
    assert!(
        wait_until(WAIT, || lock_contains(&repo, "\"ci\"")),
        "the initial compile did not write the lock"
    );
    assert!(!watch.exited(), "watch exited after the first compile");
    // Give the watcher a moment to register its paths, then edit.
    std::thread::sleep(Duration::from_millis(300));
    repo.write(
        ".kici/workflows/ci.ts",
        CI_WORKFLOW.replace("'ci'", "'ci-renamed'"),
    );
    assert!(
        wait_until(WAIT, || lock_contains(&repo, "\"ci-renamed\"")),
        "the lock was not updated after an edit"
    );
    // A new file is picked up as well.
    repo.write(".kici/workflows/added.ts", push_workflow("added"));
    assert!(
        wait_until(WAIT, || lock_contains(&repo, "\"added\"")),
        "a new workflow file was not compiled"
    );
    let out = watch.stop("INT", Duration::from_secs(10));
    out.assert_clean();
    assert_eq!(
        out.code(),
        0,
        "SIGINT must end watch with exit 0\n{}",
        out.dump()
    );
    out.stderr_has("watching");
}

#[test]
fn errors_keep_watching_and_sigterm_exits_zero() {
    let repo = Repo::with_ci();
    let mut watch = repo.cmd(&["compile", "--watch"]).spawn();
    assert!(wait_until(WAIT, || lock_contains(&repo, "\"ci\"")));
    std::thread::sleep(Duration::from_millis(300));
    repo.write(".kici/workflows/bad.ts", "const = ;\n");
    // Still running after a failing compile; the lock keeps its last good content.
    std::thread::sleep(Duration::from_millis(800));
    assert!(!watch.exited(), "watch died on a compile error");
    assert!(lock_contains(&repo, "\"ci\""));
    // Fixing the file recompiles.
    repo.write(".kici/workflows/bad.ts", push_workflow("fixed"));
    assert!(
        wait_until(WAIT, || lock_contains(&repo, "\"fixed\"")),
        "the lock was not updated after the fix"
    );
    let out = watch.stop("TERM", Duration::from_secs(10));
    out.assert_clean();
    assert_eq!(
        out.code(),
        0,
        "SIGTERM must end watch with exit 0\n{}",
        out.dump()
    );
    out.stderr_has("error [E002]");
}

#[test]
fn imported_helper_changes_trigger_a_recompile() {
    let repo = Repo::new();
    repo.write(".kici/lib/branch.ts", "export const branch = 'main';\n");
    repo.write(
        ".kici/workflows/ci.ts",
        "import { workflow, job, push } from '@kici-dev/sdk';\nimport { branch } from '../lib/branch.ts';\nexport default workflow('ci', { on: push({ branches: [branch] }), jobs: [job('a', { runsOn: 'x', steps: [] })] });\n",
    );
    let watch = repo.cmd(&["watch"]).spawn();
    assert!(wait_until(WAIT, || lock_contains(&repo, "\"main\"")));
    std::thread::sleep(Duration::from_millis(300));
    repo.write(".kici/lib/branch.ts", "export const branch = 'trunk';\n");
    assert!(
        wait_until(WAIT, || lock_contains(&repo, "\"trunk\"")),
        "a change to an imported module was not picked up"
    );
    let out = watch.stop("INT", Duration::from_secs(10));
    assert_eq!(out.code(), 0, "{}", out.dump());
}

#[test]
fn watch_without_workflows_dir_does_not_hang_or_crash() {
    let repo = Repo::new();
    let mut watch = repo.cmd(&["watch"]).spawn();
    // It reports the error and keeps waiting for the directory to appear.
    assert!(
        !wait_until(Duration::from_secs(1), || watch.exited()),
        "watch gave up without a workflows directory"
    );
    repo.write(".kici/workflows/ci.ts", CI_WORKFLOW);
    assert!(
        wait_until(WAIT, || lock_contains(&repo, "\"ci\"")),
        "creating .kici/workflows/ did not trigger a compile"
    );
    let out = watch.stop("INT", Duration::from_secs(10));
    assert_eq!(out.code(), 0, "{}", out.dump());
    out.assert_clean().stderr_has("error [E001]");
}
