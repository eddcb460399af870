//! `kici init` and `kici types` (cli.md §2, §9).

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::Repo;

const SCAFFOLD: [&str; 9] = [
    ".kici/workflows/hello-world.ts",
    ".kici/workflows/pr-checks.ts",
    ".kici/tests/push-test.ts",
    ".kici/types/kici/sdk.d.ts",
    ".kici/types/kici/node.d.ts",
    ".kici/types/kici/VERSION",
    ".kici/tsconfig.json",
    ".kici/AGENTS.md",
    ".kiciignore",
];

/// Every file below `dir` (except `.git`) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn writes_the_scaffold_and_reports_each_file() {
    let repo = Repo::new();
    let out = repo.kici(&["init"]);
    out.expect(0)
        .stderr_has("Writing .kici/workflows/hello-world.ts")
        .stderr_has("Updating .gitignore")
        .stderr_has("✓ kici initialized")
        .stderr_has("kici preview push");
    for file in SCAFFOLD {
        assert!(repo.exists(file), "{file} missing\n{}", out.dump());
    }
    assert!(!repo.exists("package.json"));
    assert!(!repo.exists(".kici/package.json"));
    assert!(!repo.exists("node_modules"));
    let gitignore = repo.read(".gitignore");
    for line in [
        "# KiCI local secrets",
        ".kici/.secrets",
        ".kici/.env.local",
        ".kici/secrets.yaml",
    ] {
        assert!(gitignore.lines().any(|l| l == line), "{gitignore}");
    }
    assert_eq!(
        repo.read(".kici/types/kici/VERSION").trim(),
        env!("CARGO_PKG_VERSION")
    );
    let tsconfig: serde_json::Value =
        serde_json::from_str(&repo.read(".kici/tsconfig.json")).expect("tsconfig is JSON");
    assert_eq!(
        tsconfig["compilerOptions"]["paths"]["@kici-dev/sdk"][0],
        "./types/kici/sdk.d.ts"
    );
    assert!(
        repo.read(".kici/workflows/pr-checks.ts")
            .contains("target: 'main'")
    );
}

#[test]
fn second_run_without_force_fails_and_changes_nothing() {
    let repo = Repo::new();
    repo.kici(&["init"]).expect(0);
    repo.write(".kici/workflows/hello-world.ts", "// my edits\n");
    let before = snapshot(repo.path());
    let out = repo.kici(&["init"]);
    out.expect(1)
        .stderr_has("error: .kici/ already exists (use --force to overwrite scaffold files)");
    assert_eq!(
        snapshot(repo.path()),
        before,
        "a refused init changed files"
    );
}

#[test]
fn force_restores_scaffold_files_and_keeps_the_rest() {
    let repo = Repo::new();
    repo.kici(&["init"]).expect(0);
    let original = repo.read(".kici/workflows/hello-world.ts");
    repo.write(".kici/workflows/hello-world.ts", "// my edits\n");
    repo.write(".kici/workflows/mine.ts", "// user file\n");
    repo.kici(&["init", "--force"]).expect(0);
    assert_eq!(repo.read(".kici/workflows/hello-world.ts"), original);
    assert_eq!(repo.read(".kici/workflows/mine.ts"), "// user file\n");
    // .gitignore lines are not duplicated.
    let gitignore = repo.read(".gitignore");
    assert_eq!(
        gitignore.matches(".kici/.secrets").count(),
        1,
        "{gitignore}"
    );
}

#[test]
fn fresh_scaffold_compiles_and_previews() {
    let repo = Repo::new();
    repo.kici(&["init"]).expect(0);
    repo.commit("scaffold");
    repo.kici(&["compile"])
        .expect(0)
        .stderr_has("(2 workflows)");
    repo.kici(&["compile", "--check"]).expect(0);
    let out = repo.kici(&["preview", "push"]);
    out.expect(0)
        .stdout_has("hello-world: ✓ matched")
        .stdout_has("pr-checks: ✗ skipped");
    let out = repo.kici(&["preview", "pr:open", "--files", "src/main.rs", "--json"]);
    out.expect(0);
    let body = out.json();
    let matched: Vec<&str> = body["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["matched"] == true)
        .filter_map(|d| d["workflowName"].as_str())
        .collect();
    assert_eq!(matched, vec!["pr-checks"], "{body:#}");
}

#[test]
fn options_select_templates_agents_md_and_branch() {
    let repo = Repo::new();
    repo.kici(&[
        "init",
        "--templates",
        "pr-checks",
        "--no-agents-md",
        "--default-branch",
        "trunk",
    ])
    .expect(0);
    assert!(!repo.exists(".kici/workflows/hello-world.ts"));
    assert!(!repo.exists(".kici/AGENTS.md"));
    assert!(
        repo.read(".kici/workflows/pr-checks.ts")
            .contains("target: 'trunk'")
    );
    repo.kici(&["compile"]).expect(0);
}

#[test]
fn unsupported_and_invalid_options_are_usage_errors() {
    let repo = Repo::new();
    repo.kici(&["init", "--package-manager", "npm"])
        .expect(2)
        .stderr_has("not supported: KiCI needs no package manager");
    repo.kici(&["init", "--mjs"]).expect(2);
    repo.kici(&["init", "--templates", "bogus"]).expect(2);
    assert!(!repo.exists(".kici"), "a usage error still wrote files");
    repo.kici(&["init", "--skip-install"]).expect(0);
}

#[test]
fn init_from_a_subdirectory_scaffolds_the_git_root() {
    let repo = Repo::new();
    std::fs::create_dir_all(repo.file("a/b")).unwrap();
    repo.cmd(&["init"]).cwd(&repo.file("a/b")).run().expect(0);
    assert!(repo.exists(".kici/workflows/hello-world.ts"));
    assert!(!repo.exists("a/b/.kici"));
}

#[test]
fn json_lists_written_files() {
    let repo = Repo::new();
    let out = repo.kici(&["init", "--json"]);
    out.expect(0);
    let written = out.json()["written"].to_string();
    assert!(
        written.contains(".kici/workflows/hello-world.ts"),
        "{written}"
    );
}

#[test]
fn types_rewrites_the_declarations() {
    let repo = Repo::new();
    repo.kici(&["init"]).expect(0);
    let sdk = repo.read(".kici/types/kici/sdk.d.ts");
    repo.write(".kici/types/kici/sdk.d.ts", "// clobbered\n");
    repo.kici(&["types"]).expect(0).stderr_has(&format!(
        "✓ Wrote SDK types for kici {}",
        env!("CARGO_PKG_VERSION")
    ));
    assert_eq!(repo.read(".kici/types/kici/sdk.d.ts"), sdk);
}
