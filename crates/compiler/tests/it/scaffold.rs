//! `kici init` scaffold: files written, refusal without `--force`, overwrite with it, and
//! idempotent `.gitignore` entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kici_compiler::scaffold::{
    self, Action, Error, ScaffoldOptions, Template, detect_default_branch, pascal_case, scaffold,
    write_types,
};

/// A fresh `git init` repository in a temporary directory.
fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .expect("run git init");
    assert!(status.success(), "git init failed");
    dir
}

/// Every file under `root` except `.git/`, with its content, to prove that nothing changed.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.file_name().is_some_and(|name| name == ".git") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|err| panic!("read {rel}: {err}"))
}

fn options() -> ScaffoldOptions {
    ScaffoldOptions {
        default_branch: "main".to_owned(),
        version: "9.9.9".to_owned(),
        ..Default::default()
    }
}

const EXPECTED_FILES: [&str; 10] = [
    ".kici/workflows/hello-world.ts",
    ".kici/workflows/pr-checks.ts",
    ".kici/tests/push-test.ts",
    ".kici/types/kici/sdk.d.ts",
    ".kici/types/kici/node.d.ts",
    ".kici/types/kici/VERSION",
    ".kici/tsconfig.json",
    ".kici/AGENTS.md",
    ".kiciignore",
    ".gitignore",
];

#[test]
fn init_writes_the_scaffold() {
    let repo = git_repo();
    let root = repo.path();
    let report = scaffold(root, &options()).expect("scaffold");

    let paths: Vec<&str> = report
        .entries
        .iter()
        .map(|entry| entry.path.as_str())
        .collect();
    assert_eq!(paths, EXPECTED_FILES);
    for entry in &report.entries[..EXPECTED_FILES.len() - 1] {
        assert_eq!(entry.action, Action::Created, "{}", entry.path);
        assert!(root.join(&entry.path).is_file(), "{} missing", entry.path);
    }
    assert_eq!(report.kici_dir, root.join(".kici"));
    assert_eq!(report.kici_dir_relative, ".kici");

    assert_eq!(
        read(root, ".kici/workflows/hello-world.ts"),
        scaffold::files::HELLO_WORLD
    );
    let pr_checks = read(root, ".kici/workflows/pr-checks.ts");
    assert!(
        pr_checks.contains("on: pr({ target: 'main', paths: ['src/**'] }),"),
        "{pr_checks}"
    );
    assert!(!pr_checks.contains("__"), "placeholder left in {pr_checks}");
    assert_eq!(
        read(root, ".kici/tests/push-test.ts"),
        "import { fixture, push } from '@kici-dev/sdk';\n\n\
         export const pushMain = fixture('push-main', { event: push({ branches: ['main'] }) });\n"
    );
    assert_eq!(read(root, ".kici/types/kici/VERSION"), "9.9.9\n");
    assert_eq!(
        read(root, ".kici/types/kici/sdk.d.ts"),
        scaffold::files::SDK_DTS
    );
    assert_eq!(
        read(root, ".kici/types/kici/node.d.ts"),
        scaffold::files::NODE_DTS
    );
    assert_eq!(read(root, ".kici/AGENTS.md"), scaffold::files::AGENTS_MD);
    assert_eq!(
        read(root, ".kiciignore"),
        "node_modules/\n.git/\ndist/\ncoverage/\n*.log\n"
    );
    assert_eq!(
        read(root, ".gitignore"),
        "# KiCI local secrets\n.kici/.secrets\n.kici/.env.local\n.kici/secrets.yaml\n"
    );

    // The tsconfig is the exact text of cli.md §2.1.
    let tsconfig: serde_json::Value =
        serde_json::from_str(&read(root, ".kici/tsconfig.json")).expect("tsconfig is JSON");
    assert_eq!(
        tsconfig,
        serde_json::json!({
            "compilerOptions": {
                "target": "ES2023",
                "lib": ["ES2023"],
                "module": "ESNext",
                "moduleResolution": "Bundler",
                "allowImportingTsExtensions": true,
                "noEmit": true,
                "strict": true,
                "skipLibCheck": true,
                "types": [],
                "paths": {
                    "@kici-dev/sdk": ["./types/kici/sdk.d.ts"],
                    "kici:sdk": ["./types/kici/sdk.d.ts"]
                }
            },
            "include": ["workflows/**/*", "tests/**/*", "lib/**/*", "types/**/*.d.ts"]
        })
    );

    let gitignore = report.entry(".gitignore").expect("gitignore entry");
    assert_eq!(
        gitignore.action,
        Action::Updated {
            added: vec![
                "# KiCI local secrets".to_owned(),
                ".kici/.secrets".to_owned(),
                ".kici/.env.local".to_owned(),
                ".kici/secrets.yaml".to_owned(),
            ]
        }
    );
    let lines = report.human_lines();
    assert_eq!(lines[0], "Writing .kici/workflows/hello-world.ts");
    assert!(
        lines.contains(&"Updating .gitignore".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"✓ kici initialized".to_owned()),
        "{lines:?}"
    );
}

#[test]
fn second_init_without_force_refuses_and_changes_nothing() {
    let repo = git_repo();
    let root = repo.path();
    scaffold(root, &options()).expect("first scaffold");
    std::fs::write(root.join(".kici/workflows/hello-world.ts"), "// mine\n").expect("edit");
    let before = snapshot(root);

    let err = scaffold(root, &options()).expect_err("second init must refuse");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        ".kici/ already exists (use --force to overwrite scaffold files)"
    );
    assert_eq!(snapshot(root), before);
}

#[test]
fn force_overwrites_scaffold_files_and_keeps_the_rest() {
    let repo = git_repo();
    let root = repo.path();
    scaffold(root, &options()).expect("first scaffold");
    std::fs::write(root.join(".kici/workflows/hello-world.ts"), "// mine\n").expect("edit");
    std::fs::write(root.join(".kici/workflows/ci.ts"), "// user workflow\n").expect("add");
    std::fs::write(root.join(".kiciignore"), "custom/\n").expect("edit ignore");

    let report = scaffold(
        root,
        &ScaffoldOptions {
            force: true,
            ..options()
        },
    )
    .expect("forced scaffold");

    let action = |path: &str| report.entry(path).map(|entry| entry.action.clone());
    assert_eq!(
        action(".kici/workflows/hello-world.ts"),
        Some(Action::Overwritten)
    );
    assert_eq!(
        action(".kici/workflows/pr-checks.ts"),
        Some(Action::Unchanged)
    );
    assert_eq!(action(".kiciignore"), Some(Action::KeptExisting));
    assert_eq!(action(".gitignore"), Some(Action::Unchanged));
    assert_eq!(
        read(root, ".kici/workflows/hello-world.ts"),
        scaffold::files::HELLO_WORLD
    );
    assert_eq!(read(root, ".kici/workflows/ci.ts"), "// user workflow\n");
    assert_eq!(read(root, ".kiciignore"), "custom/\n");
    let written: Vec<&str> = report.written().collect();
    assert_eq!(written, [".kici/workflows/hello-world.ts"]);

    // The .gitignore entries were added once, by the first init only.
    let gitignore = read(root, ".gitignore");
    for line in [
        "# KiCI local secrets",
        ".kici/.secrets",
        ".kici/.env.local",
        ".kici/secrets.yaml",
    ] {
        assert_eq!(
            gitignore.lines().filter(|l| *l == line).count(),
            1,
            "{line} in {gitignore}"
        );
    }
}

#[test]
fn gitignore_entries_are_appended_once() {
    let repo = git_repo();
    let root = repo.path();
    // No trailing newline and one entry already present.
    std::fs::write(root.join(".gitignore"), "target/\n.kici/.env.local").expect("gitignore");

    let report = scaffold(root, &options()).expect("scaffold");
    assert_eq!(
        report.entry(".gitignore").map(|entry| entry.action.clone()),
        Some(Action::Updated {
            added: vec![
                "# KiCI local secrets".to_owned(),
                ".kici/.secrets".to_owned(),
                ".kici/secrets.yaml".to_owned(),
            ]
        })
    );
    assert_eq!(
        read(root, ".gitignore"),
        "target/\n.kici/.env.local\n\n# KiCI local secrets\n.kici/.secrets\n.kici/secrets.yaml\n"
    );

    std::fs::remove_dir_all(root.join(".kici")).expect("remove .kici");
    let report = scaffold(root, &options()).expect("scaffold again");
    assert_eq!(
        report.entry(".gitignore").map(|e| e.action.clone()),
        Some(Action::Unchanged)
    );
    assert_eq!(
        read(root, ".gitignore"),
        "target/\n.kici/.env.local\n\n# KiCI local secrets\n.kici/.secrets\n.kici/secrets.yaml\n"
    );
}

#[test]
fn gitignore_left_alone_when_the_kici_dir_is_ignored() {
    for ignored in [".kici/", "/.kici", ".kici/*"] {
        let repo = git_repo();
        let root = repo.path();
        let original = format!("node_modules\n{ignored}\n");
        std::fs::write(root.join(".gitignore"), &original).expect("gitignore");
        let report = scaffold(root, &options()).expect("scaffold");
        assert_eq!(
            report.entry(".gitignore").map(|e| e.action.clone()),
            Some(Action::AlreadyIgnored),
            "{ignored}"
        );
        assert_eq!(read(root, ".gitignore"), original);
    }
}

#[test]
fn options_select_templates_agents_md_branch_and_directory() {
    let repo = git_repo();
    let root = repo.path();
    let opts = ScaffoldOptions {
        kici_dir: Some(PathBuf::from("ci/.kici")),
        templates: Template::parse_list("pr-checks").expect("templates"),
        agents_md: false,
        default_branch: "release/v2-x".to_owned(),
        ..options()
    };
    let report = scaffold(root, &opts).expect("scaffold");
    assert_eq!(report.kici_dir_relative, "ci/.kici");
    assert!(!root.join("ci/.kici/workflows/hello-world.ts").exists());
    assert!(!root.join("ci/.kici/AGENTS.md").exists());
    assert!(read(root, "ci/.kici/workflows/pr-checks.ts").contains("target: 'release/v2-x'"));
    assert!(
        read(root, "ci/.kici/tests/push-test.ts")
            .contains("export const pushReleaseV2X = fixture('push-release/v2-x', { event: push({ branches: ['release/v2-x'] }) });")
    );
    assert!(read(root, ".gitignore").contains("ci/.kici/.secrets\n"));

    let none = ScaffoldOptions {
        force: true,
        kici_dir: Some(PathBuf::from("ci/.kici")),
        templates: Template::parse_list("none").expect("none"),
        ..options()
    };
    assert!(none.templates.is_empty());
    let report = scaffold(root, &none).expect("scaffold without templates");
    assert!(report.entry("ci/.kici/workflows/hello-world.ts").is_none());
    assert!(report.entry("ci/.kici/workflows/pr-checks.ts").is_none());
}

#[test]
fn invalid_inputs_are_refused_before_writing() {
    let repo = git_repo();
    let root = repo.path();
    let before = snapshot(root);

    let err = Template::parse_list("hello-world,lint").expect_err("unknown template");
    assert_eq!(
        err.to_string(),
        "unknown template \"lint\" (expected hello-world, pr-checks or none)"
    );

    let err = scaffold(
        root,
        &ScaffoldOptions {
            default_branch: "it's".to_owned(),
            ..options()
        },
    )
    .expect_err("quote in branch");
    assert!(matches!(err, Error::InvalidBranch { .. }), "{err:?}");

    let err = scaffold(
        root,
        &ScaffoldOptions {
            kici_dir: Some(PathBuf::from("../elsewhere")),
            ..options()
        },
    )
    .expect_err("outside the repository");
    assert!(matches!(err, Error::OutsideRepository { .. }), "{err:?}");
    assert!(err.to_string().contains("elsewhere"), "{err}");

    std::fs::write(root.join(".kici"), "not a dir").expect("file in the way");
    let err = scaffold(
        root,
        &ScaffoldOptions {
            force: true,
            ..options()
        },
    )
    .expect_err("file in the way");
    assert!(matches!(err, Error::NotADirectory { .. }), "{err:?}");
    std::fs::remove_file(root.join(".kici")).expect("cleanup");

    assert_eq!(snapshot(root), before);
}

#[test]
fn write_types_refreshes_declarations_and_tsconfig_paths() {
    let repo = git_repo();
    let root = repo.path();
    std::fs::create_dir_all(root.join(".kici")).expect("mkdir");
    std::fs::write(
        root.join(".kici/tsconfig.json"),
        r#"{"compilerOptions": {"strict": true, "paths": {"~/*": ["./lib/*"]}}}"#,
    )
    .expect("tsconfig");

    let report = write_types(root, None, "1.2.3").expect("types");
    assert_eq!(read(root, ".kici/types/kici/VERSION"), "1.2.3\n");
    assert_eq!(
        report
            .entry(".kici/tsconfig.json")
            .map(|e| e.action.clone()),
        Some(Action::Updated {
            added: vec!["@kici-dev/sdk".to_owned(), "kici:sdk".to_owned()]
        })
    );
    let tsconfig: serde_json::Value =
        serde_json::from_str(&read(root, ".kici/tsconfig.json")).expect("JSON");
    assert_eq!(
        tsconfig["compilerOptions"]["paths"],
        serde_json::json!({
            "~/*": ["./lib/*"],
            "@kici-dev/sdk": ["./types/kici/sdk.d.ts"],
            "kici:sdk": ["./types/kici/sdk.d.ts"]
        })
    );

    let again = write_types(root, None, "1.2.3").expect("types again");
    assert!(again.written().next().is_none(), "{again:?}");

    std::fs::write(root.join(".kici/tsconfig.json"), "{ // comment\n}").expect("jsonc");
    let report = write_types(root, None, "1.2.3").expect("types with jsonc");
    assert!(matches!(
        report.entry(".kici/tsconfig.json").map(|e| &e.action),
        Some(Action::NeedsManualEdit { .. })
    ));
    assert_eq!(read(root, ".kici/tsconfig.json"), "{ // comment\n}");
}

#[test]
fn default_branch_detection_and_fixture_names() {
    let repo = git_repo();
    let root = repo.path();
    let status = Command::new("git")
        .args(["symbolic-ref", "HEAD", "refs/heads/trunk"])
        .current_dir(root)
        .status()
        .expect("git symbolic-ref");
    assert!(status.success());
    assert_eq!(detect_default_branch(root), "trunk");

    let not_a_repo = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        detect_default_branch(&not_a_repo.path().join("missing")),
        "main"
    );

    assert_eq!(pascal_case("main"), "Main");
    assert_eq!(pascal_case("feature/foo-bar"), "FeatureFooBar");
    assert_eq!(pascal_case("release_1.x"), "Release1X");
    assert_eq!(pascal_case("myBranch"), "MyBranch");
}
