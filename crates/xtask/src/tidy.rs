//! Tidy checks, in the style of rust-analyzer's `xtask/src/tidy.rs`: plain tests, so
//! `cargo test --workspace` (and therefore `.ci/run`) fails on a forbidden crate edge, a sloppy
//! manifest, a stray `process::exit` or a build output in git, with nothing extra to install.
//!
//! Every failure says what to change. The crate-edge table here is the one ARCHITECTURE.md
//! shows; change both in the same commit.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// For every workspace crate: the kici crates it may use as normal or build dependencies
/// (`*`: any). Dev-dependencies may use anything, except that `xtask` is never a dependency and
/// `kici-testkit` only ever a dev-dependency.
const EDGES: &[(&str, &[&str])] = &[
    ("kici-engine", &[]),
    ("kici-runtime", &["kici-engine"]),
    ("kici-compiler", &["kici-engine", "kici-runtime"]),
    ("kici-executor", &["kici-engine", "kici-runtime"]),
    // Planned crates (../shared/design/README.md §1.3), so their rows are ready when they land.
    ("kici-store", &["kici-engine"]),
    (
        "kici-orchestrator",
        &["kici-engine", "kici-store", "kici-dashboard"],
    ),
    ("kici-agent", &["kici-engine", "kici-executor"]),
    ("kici-relay", &["kici-engine"]),
    ("kici-dashboard", &["kici-engine"]),
    ("kici-client", &["kici-engine"]),
    ("kici-testkit", &["*"]),
    ("kici", &["*"]),
    ("xtask", &[]),
];

const TESTKIT: &str = "kici-testkit";
const XTASK: &str = "xtask";

/// External packages a crate must not reach through normal and build dependencies, at any depth.
/// `name*` matches a prefix.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "kici-engine",
        &[
            "tokio",
            "tokio-*",
            "sqlx",
            "sqlx-*",
            "axum",
            "axum-*",
            "rquickjs",
            "rquickjs-*",
            "oxc",
            "oxc_*",
        ],
    ),
    (
        "kici-runtime",
        &[
            "sqlx",
            "sqlx-*",
            "axum",
            "axum-*",
            "tokio-tungstenite",
            "tungstenite",
        ],
    ),
    // The compiler links tokio through kici-runtime's job module (timers and channels for
    // steps); the compile path itself never starts a tokio runtime. What it must not reach
    // is the network and the database (design guide §1.3: "tokio net, sqlx, axum").
    (
        "kici-compiler",
        &[
            "hyper",
            "reqwest",
            "sqlx",
            "sqlx-*",
            "axum",
            "axum-*",
            "tokio-tungstenite",
            "tungstenite",
        ],
    ),
    (
        "kici-executor",
        &[
            "sqlx",
            "sqlx-*",
            "axum",
            "axum-*",
            "tokio-tungstenite",
            "tungstenite",
        ],
    ),
    ("kici-store", &["axum", "axum-*"]),
    ("kici-agent", &["axum", "axum-*"]),
];

const MAX_FILE_BYTES: u64 = 1024 * 1024;

// The needle is assembled so that this file does not contain it.
const EXIT_CALL: &str = concat!("process", "::", "exit");

fn root() -> PathBuf {
    crate::workspace_root()
}

/// `cargo metadata` for the host platform, run once per test process.
fn metadata() -> &'static Value {
    static METADATA: OnceLock<Value> = OnceLock::new();
    METADATA.get_or_init(|| {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let version = Command::new(&rustc)
            .arg("-vV")
            .output()
            .expect("running rustc -vV");
        let version = String::from_utf8_lossy(&version.stdout);
        let host = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .expect("rustc -vV prints the host triple")
            .trim()
            .to_string();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--filter-platform",
                &host,
            ])
            .current_dir(root())
            .output()
            .expect("running cargo metadata");
        assert!(
            output.status.success(),
            "cargo metadata failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
    })
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn workspace_packages() -> Vec<&'static Value> {
    let meta = metadata();
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .map(str_of)
        .collect();
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| members.contains(str_of(&p["id"])))
        .collect()
}

fn relative(path: &str) -> String {
    let root = root();
    Path::new(path)
        .strip_prefix(&root)
        .map_or_else(|_| path.to_string(), |p| p.display().to_string())
}

fn fail_if_any(violations: &[String], what: &str, fix: &str) {
    assert!(
        violations.is_empty(),
        "{what}:\n  {}\n{fix}",
        violations.join("\n  ")
    );
}

#[test]
fn crate_edges_follow_architecture() {
    let packages = workspace_packages();
    let mut violations = Vec::new();
    for package in &packages {
        let name = str_of(&package["name"]);
        let Some((_, allowed)) = EDGES.iter().find(|(crate_name, _)| *crate_name == name) else {
            violations.push(format!(
                "{name} has no row in EDGES: add one to crates/xtask/src/tidy.rs and to the \
                 crate-edge table of ARCHITECTURE.md"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = str_of(&dep["name"]);
            let kind = dep["kind"].as_str().unwrap_or("normal");
            let manifest = relative(str_of(&package["manifest_path"]));
            if dep_name == XTASK {
                violations.push(format!(
                    "{name} -> {dep_name} ({kind}): xtask is never a dependency; remove it from {manifest}"
                ));
            } else if dep_name == TESTKIT && kind != "dev" {
                violations.push(format!(
                    "{name} -> {dep_name} ({kind}): kici-testkit is only ever a dev-dependency; \
                     move it to [dev-dependencies] in {manifest}"
                ));
            } else if kind != "dev"
                && (dep_name == "kici" || dep_name.starts_with("kici-"))
                && !(allowed.contains(&"*") || allowed.contains(&dep_name))
            {
                violations.push(format!(
                    "{name} -> {dep_name} ({kind}) is not allowed (allowed: {}); remove it from \
                     {manifest}, or, if the edge is intended, change EDGES in crates/xtask/src/tidy.rs \
                     and ARCHITECTURE.md in the same commit",
                    if allowed.is_empty() { "no kici crate".to_string() } else { allowed.join(", ") }
                ));
            }
        }
    }
    fail_if_any(
        &violations,
        "crate edges not allowed by ARCHITECTURE.md",
        "",
    );
}

fn matches_pattern(name: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// Walks the resolve graph of `cargo metadata` (features unified over the workspace, so this
/// is a superset of what `cargo build -p <crate>` builds) through normal and build edges.
#[test]
fn no_forbidden_externals() {
    let meta = metadata();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (str_of(&p["id"]), str_of(&p["name"])))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|n| (str_of(&n["id"]), n))
        .collect();
    let normal_or_build = |dep: &Value| {
        dep["dep_kinds"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["kind"].is_null() || k["kind"] == "build")
    };

    let mut violations = Vec::new();
    for package in workspace_packages() {
        let name = str_of(&package["name"]);
        let Some((_, forbidden)) = FORBIDDEN.iter().find(|(c, _)| *c == name) else {
            continue;
        };
        let start = str_of(&package["id"]);
        // Breadth-first, remembering how each package was reached to print the path.
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = BTreeSet::from([start]);
        while let Some(id) = queue.pop_front() {
            for dep in nodes
                .get(id)
                .and_then(|n| n["deps"].as_array())
                .into_iter()
                .flatten()
            {
                let dep_id = str_of(&dep["pkg"]);
                if normal_or_build(dep) && seen.insert(dep_id) {
                    parent.insert(dep_id, id);
                    queue.push_back(dep_id);
                }
            }
        }
        for &id in &seen {
            let dep_name = names.get(id).copied().unwrap_or(id);
            if id == start || !forbidden.iter().any(|p| matches_pattern(dep_name, p)) {
                continue;
            }
            let mut path = vec![dep_name];
            let mut at = id;
            while let Some(&up) = parent.get(at) {
                path.push(names.get(up).copied().unwrap_or(up));
                at = up;
            }
            path.reverse();
            violations.push(format!(
                "{name} reaches {dep_name}: {}\n    remove the dependency or the feature that pulls it \
                 in (see `cargo tree -p {name} -e normal,build -i {dep_name}`)",
                path.join(" -> ")
            ));
        }
    }
    fail_if_any(
        &violations,
        "crates reach externals that ARCHITECTURE.md forbids for them",
        "the table is FORBIDDEN in crates/xtask/src/tidy.rs",
    );
}

/// The `[package]` table of a manifest, as lines (enough for the keys we check).
fn package_table(manifest: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed == "[package]";
            continue;
        }
        if inside {
            lines.push(trimmed);
        }
    }
    lines
}

/// `key.workspace = true` or `key = { workspace = true }` in `lines`.
fn inherits(lines: &[&str], key: &str) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    lines.iter().map(|l| squeeze(l)).any(|l| {
        l.starts_with(&format!("{key}.workspace=true"))
            || l.starts_with(&format!("{key}={{workspace=true}}"))
    })
}

#[test]
fn manifests_are_tidy() {
    let mut violations = Vec::new();
    for package in workspace_packages() {
        let name = str_of(&package["name"]);
        let manifest_path = str_of(&package["manifest_path"]);
        let shown = relative(manifest_path);
        let text = fs::read_to_string(manifest_path).expect("reading a member manifest");
        let table = package_table(&text);
        for key in ["license", "edition", "rust-version"] {
            if !inherits(&table, key) {
                violations.push(format!(
                    "{shown}: write `{key}.workspace = true` in [package]"
                ));
            }
        }
        if package["publish"]
            .as_array()
            .is_none_or(|registries| !registries.is_empty())
        {
            violations.push(format!(
                "{shown}: write `publish.workspace = true` (or `publish = false`) in [package]"
            ));
        }
        let lints_inherited = {
            let mut inside = false;
            text.lines().map(str::trim).any(|l| {
                if l.starts_with('[') {
                    inside = l == "[lints]";
                    return l.replace(' ', "") == "lints={workspace=true}";
                }
                inside && l.replace(' ', "") == "workspace=true"
            }) || text
                .lines()
                .any(|l| l.replace(' ', "") == "lints.workspace=true")
        };
        if !lints_inherited {
            violations.push(format!("{shown}: add `[lints]` with `workspace = true`"));
        }
        let targets = package["targets"].as_array().expect("targets");
        let binaries = targets
            .iter()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .count();
        // Without it `cargo run -p <package>` (the README's main command) refuses to guess.
        if binaries > 1 && package["default_run"].is_null() {
            violations.push(format!(
                "{shown}: {name} has {binaries} binaries; name the one `cargo run` runs with \
                 `default-run` in [package]"
            ));
        }
        for target in targets {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .map(str_of)
                .collect();
            let is_lib = kinds
                .iter()
                .any(|k| matches!(*k, "lib" | "rlib" | "dylib" | "proc-macro"));
            if is_lib && target["doctest"] != false {
                violations.push(format!(
                    "{shown}: {name}'s library runs doctests; add `[lib]` with `doctest = false` \
                     (each doctest is one more binary to link)"
                ));
            }
        }
    }
    fail_if_any(&violations, "workspace manifests", "");
}

/// Each integration-test file is a binary to link, and on two cores linking dominates
/// (design guide §2): one `[[test]]` per crate, declaring the others as modules.
#[test]
fn one_integration_test_binary_per_crate() {
    let mut violations = Vec::new();
    for package in workspace_packages() {
        let shown = relative(str_of(&package["manifest_path"]));
        let tests: Vec<&str> = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "test"))
            })
            .map(|t| str_of(&t["name"]))
            .collect();
        if tests.len() > 1 {
            violations.push(format!(
                "{shown}: {} integration-test targets ({}); keep one: `autotests = false` in \
                 [package], one [[test]] (`name = \"it\"`, `path = \"tests/it/main.rs\"`) whose \
                 main.rs declares the others as modules",
                tests.len(),
                tests.join(", ")
            ));
        }
    }
    fail_if_any(
        &violations,
        "crates with more than one integration-test binary",
        "",
    );
}

/// The files `git add -A` would commit: tracked, plus untracked ones that are not ignored.
/// Outside a git checkout, every file below the root except `.git`, `target` and `.tools`.
fn repo_files() -> &'static [PathBuf] {
    static FILES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = root();
        let git = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(&root)
            .output();
        match git {
            Ok(output) if output.status.success() => output
                .stdout
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
                // A tracked file deleted in the work tree is not there to check.
                .filter(|p| root.join(p).is_file())
                .collect(),
            _ => {
                let mut files = Vec::new();
                walk(&root, &root, &mut files);
                files
            }
        }
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if ![".git", "target", ".tools", "node_modules"]
                .contains(&name.to_string_lossy().as_ref())
            {
                walk(root, &path, out);
            }
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_path_buf());
        }
    }
}

#[test]
fn process_exit_only_in_the_binary() {
    let root = root();
    let mut violations = Vec::new();
    for path in repo_files() {
        if path.extension().is_none_or(|e| e != "rs") || path.starts_with("crates/kici") {
            continue;
        }
        let Ok(text) = fs::read_to_string(root.join(path)) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if line.contains(EXIT_CALL) && !line.trim_start().starts_with("//") {
                violations.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    fail_if_any(
        &violations,
        &format!("std::{EXIT_CALL} outside crates/kici"),
        "only the binary decides exit codes: return an error (or an exit code) to the caller instead",
    );
}

/// Extensions of compiler and tool outputs.
const BUILD_OUTPUT_EXTENSIONS: &[&str] = &[
    "o", "obj", "a", "so", "dylib", "dll", "exe", "rlib", "rmeta", "pdb", "profraw", "profdata",
    "pyc",
];
/// Directories that only ever hold build outputs.
const BUILD_OUTPUT_DIRS: &[&str] = &["target", "node_modules"];

#[test]
fn no_build_outputs_or_large_files() {
    let root = root();
    let mut violations = Vec::new();
    for path in repo_files() {
        let full = root.join(path);
        let in_output_dir = path
            .components()
            .any(|c| BUILD_OUTPUT_DIRS.contains(&c.as_os_str().to_string_lossy().as_ref()));
        let output_extension = path
            .extension()
            .is_some_and(|e| BUILD_OUTPUT_EXTENSIONS.contains(&e.to_string_lossy().as_ref()));
        let mut magic = [0u8; 4];
        let is_elf = fs::File::open(&full)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && magic == *b"\x7fELF";
        if in_output_dir || output_extension || is_elf {
            violations.push(format!(
                "{}: a build output; delete it (`git rm --cached` if it is tracked) and add a \
                 pattern to .gitignore",
                path.display()
            ));
            continue;
        }
        let size = fs::metadata(&full).map_or(0, |m| m.len());
        if size > MAX_FILE_BYTES {
            violations.push(format!(
                "{}: {:.1} MiB, over the 1 MiB limit; generate large data in the test, or read it \
                 from ../shared, instead of committing it",
                path.display(),
                size as f64 / (1024.0 * 1024.0)
            ));
        }
    }
    fail_if_any(
        &violations,
        "files that do not belong in the repository",
        "",
    );
}
