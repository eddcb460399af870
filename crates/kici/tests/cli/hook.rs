//! `kici hook install` (cli.md §8).

use std::os::unix::fs::PermissionsExt;

use crate::support::Repo;

const MARKER: &str = "# KiCI: compile workflows on commit";
const COMMAND: &str = "kici compile --check";
const HOOK: &str = ".git/hooks/pre-commit";

#[test]
fn git_hook_has_marker_and_command_and_is_executable() {
    let repo = Repo::with_ci();
    let out = repo.kici(&["hook", "install", "--git"]);
    out.expect(0)
        .stderr_has("Installed the KiCI pre-commit hook");
    let text = repo.read(HOOK);
    assert!(text.starts_with("#!/bin/sh\n"), "{text}");
    assert!(text.contains(&format!("{MARKER}\n{COMMAND}\n")), "{text}");
    let mode = std::fs::metadata(repo.file(HOOK))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "mode {mode:o}");
}

#[test]
fn install_is_idempotent() {
    let repo = Repo::with_ci();
    repo.kici(&["hook", "install", "--git"]).expect(0);
    let first = repo.read(HOOK);
    repo.kici(&["hook", "install", "--git"])
        .expect(0)
        .stderr_has("already installed");
    assert_eq!(repo.read(HOOK), first);
    assert_eq!(first.matches(MARKER).count(), 1);
}

#[test]
fn existing_hook_is_kept_and_appended_to() {
    let repo = Repo::with_ci();
    repo.write(HOOK, "#!/bin/sh\necho existing");
    repo.kici(&["hook", "install", "--git"]).expect(0);
    let text = repo.read(HOOK);
    assert!(
        text.starts_with("#!/bin/sh\necho existing\n"),
        "the existing hook was not preserved: {text}"
    );
    assert!(text.ends_with(&format!("{MARKER}\n{COMMAND}\n")), "{text}");
}

#[test]
fn core_hooks_path_is_respected() {
    let repo = Repo::with_ci();
    repo.git(&["config", "core.hooksPath", "githooks"]);
    repo.kici(&["hook", "install", "--git"]).expect(0);
    assert!(repo.read("githooks/pre-commit").contains(MARKER));
    assert!(!repo.exists(HOOK));
}

#[test]
fn installs_from_a_subdirectory() {
    let repo = Repo::with_ci();
    std::fs::create_dir_all(repo.file("src")).unwrap();
    repo.cmd(&["hook", "install", "--git"])
        .cwd(&repo.file("src"))
        .run()
        .expect(0);
    assert!(repo.read(HOOK).contains(MARKER));
}

#[test]
fn not_a_git_repository_fails() {
    let dir = Repo::plain();
    dir.write(".kici/workflows/ci.ts", crate::support::CI_WORKFLOW);
    dir.kici(&["hook", "install", "--git"])
        .expect(1)
        .stderr_has("not in a git repository");
    assert!(!dir.exists(".git"));
}

#[test]
fn without_a_manager_non_interactive_needs_git_flag() {
    let repo = Repo::with_ci();
    let out = repo.kici(&["hook", "install"]);
    out.assert_clean();
    assert_ne!(out.code(), 0, "{}", out.dump());
    out.stderr_has("--git");
    assert!(!repo.exists(HOOK));
}

#[test]
fn husky_and_pre_commit_managers() {
    let repo = Repo::with_ci();
    std::fs::create_dir_all(repo.file(".husky")).unwrap();
    repo.kici(&["hook", "install"]).expect(0);
    assert!(repo.read(".husky/pre-commit").contains(COMMAND));

    let repo = Repo::with_ci();
    repo.write(".pre-commit-config.yaml", "repos: []\n");
    repo.kici(&["hook", "install", "--manager", "pre-commit"])
        .assert_clean();
    let repo = Repo::with_ci();
    repo.write(".pre-commit-config.yaml", "repos:\n");
    repo.kici(&["hook", "install"]).expect(0);
    let text = repo.read(".pre-commit-config.yaml");
    assert!(text.contains("id: kici-compile"), "{text}");
    repo.kici(&["hook", "install"])
        .expect(0)
        .stderr_has("already installed");
}

#[test]
fn several_managers_ask_for_one() {
    let repo = Repo::with_ci();
    std::fs::create_dir_all(repo.file(".husky")).unwrap();
    repo.write(".pre-commit-config.yaml", "repos:\n");
    repo.kici(&["hook", "install"])
        .expect(2)
        .stderr_has("--manager");
}

#[test]
fn the_installed_hook_refuses_a_commit_with_a_stale_lock() {
    let repo = Repo::with_ci();
    repo.kici(&["hook", "install", "--git"]).expect(0);
    // The hook calls `kici` from PATH: put the binary under test first.
    let bin_dir = std::path::Path::new(crate::support::KICI).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let commit = |message: &str| {
        crate::support::git_command(repo.path())
            .env("PATH", &path)
            .args(["commit", "-q", "-m", message])
            .output()
            .unwrap()
    };
    repo.kici(&["compile"]).expect(0);
    repo.git(&["add", ".kici/kici.lock.json"]);
    assert!(
        commit("lock in sync").status.success(),
        "a commit with an up-to-date lock was refused"
    );

    repo.write(
        ".kici/workflows/more.ts",
        crate::support::push_workflow("more"),
    );
    repo.git(&["add", ".kici/workflows/more.ts"]);
    let refused = commit("stale lock");
    assert!(
        !refused.status.success(),
        "a commit with a stale lock went through"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("out of date"), "{stderr}");
    assert!(stderr.contains("+ workflow \"more\" (new)"), "{stderr}");

    repo.kici(&["compile"]).expect(0);
    repo.git(&["add", ".kici/kici.lock.json"]);
    let accepted = commit("fresh lock");
    assert!(
        accepted.status.success(),
        "commit failed: {}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let committed = repo.git(&["show", "HEAD:.kici/kici.lock.json"]);
    assert!(committed.contains("\"more\""), "{committed}");
}
