//! Every compile case of the conformance corpus (`workflows/NN-name/`), compiled by our
//! pipeline in a fresh git repository and compared with what the reference produced.

use std::path::{Path, PathBuf};

use serde_json::Value;

use kici_compiler::compile::{CompileRequest, compile};

use crate::conformance_dir;

/// Copies a case (without `expected/`) into a temporary git repository.
pub fn checkout_case(case: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(case, dir.path(), &|p| {
        p.file_name().is_some_and(|n| n == "expected")
    });
    let status = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .expect("git init");
    assert!(status.success());
    dir
}

fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) {
    for entry in std::fs::read_dir(from).expect("read case dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if skip(&path) {
            continue;
        }
        let target = to.join(entry.file_name());
        if path.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&path, &target, skip);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

pub fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(conformance_dir().join("workflows"))
        .expect("conformance workflows dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Codes the reference printed (`[E###]`), translated where we differ on purpose:
/// a generator error without a code is our E105; an E003 that wraps the TypeScript
/// transform's parse error is our E002 (validation.md §2); the reference's spurious E102 with
/// an empty node list next to E106 is not reported (validation.md §2, DAG checks).
fn expected_codes(expected: &Path) -> Vec<String> {
    let out = std::fs::read_to_string(expected.join("compile.out")).unwrap_or_default();
    let transform_failed = has_transform_error(&expected.join("transformed"));
    let mut codes = Vec::new();
    for line in out.lines() {
        if let Some(start) = line.find("[E") {
            let code = &line[start + 1..start + 5];
            match code {
                "E003" if transform_failed => codes.push("E002".to_string()),
                "E102" if line.trim_end().ends_with(':') => {}
                _ => codes.push(code.to_string()),
            }
        } else if line.starts_with("error: error: ") {
            codes.push("E105".to_string());
        }
    }
    codes
}

fn has_transform_error(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            has_transform_error(&path)
        } else {
            path.to_string_lossy().ends_with(".errors.txt")
        }
    })
}

#[test]
fn conformance_compile_cases() {
    let mut failures = Vec::new();
    let cases = cases();
    assert!(
        cases.len() >= 50,
        "corpus not found: {}",
        conformance_dir().display()
    );
    for case in &cases {
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Err(why) = check_case(case) {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

fn check_case(case: &Path) -> Result<(), String> {
    let expected = case.join("expected");
    let command = read_json(&expected.join("command.json")).ok_or("no command.json")?;
    let ours = read_json(&expected.join("ours.json"));
    let repo = checkout_case(case);
    let compilation = compile(&CompileRequest::new(repo.path()));
    let codes: Vec<String> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code.clone())
        .collect();

    let ours_exit = ours
        .as_ref()
        .and_then(|o| o.get("oursExit"))
        .and_then(Value::as_i64);
    let expected_exit = ours_exit
        .or_else(|| command.get("exit").and_then(Value::as_i64))
        .unwrap_or(0);
    let rendered = || {
        compilation
            .diagnostics
            .iter()
            .map(|d| d.render(None))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if expected_exit != 0 {
        if compilation.lock_text.is_some() {
            return Err(format!(
                "expected failure, but a lock was produced; diagnostics:\n{}",
                rendered()
            ));
        }
        let want: Vec<String> = match ours.as_ref().and_then(|o| o.get("oursCodes")) {
            Some(codes) => serde_json::from_value(codes.clone()).map_err(|e| e.to_string())?,
            None => expected_codes(&expected),
        };
        let mut want_sorted = want.clone();
        want_sorted.sort();
        want_sorted.dedup();
        let mut got_sorted = codes.clone();
        got_sorted.sort();
        got_sorted.dedup();
        if want_sorted != got_sorted {
            return Err(format!(
                "codes: want {want:?}, got {codes:?}\n{}",
                rendered()
            ));
        }
        return Ok(());
    }
    let Some(lock_text) = &compilation.lock_text else {
        return Err(format!("compile failed:\n{}", rendered()));
    };
    let ours_lock = ours
        .as_ref()
        .and_then(|o| o.get("oursLock"))
        .and_then(Value::as_str);
    let want_path = match ours_lock {
        Some(file) => expected.join(file),
        None => expected.join("kici.lock.sourcemapped.json"),
    };
    let want = read_json(&want_path).ok_or("no expected lock")?;
    let got: Value =
        serde_json::from_str(lock_text).map_err(|e| format!("our lock is not JSON: {e}"))?;
    let skip: Vec<String> = ours
        .as_ref()
        .and_then(|o| o.get("differsOnPurpose"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let mut diffs = Vec::new();
    compare(&want, &got, "", &skip, &mut diffs);
    // The top-level hash must follow the spec's formula over our own lock.
    let lock: kici_engine::lock::LockFile =
        serde_json::from_value(got.clone()).map_err(|e| e.to_string())?;
    let recomputed = kici_engine::lock::lock_content_hash(&lock).map_err(|e| e.to_string())?;
    if got.get("contentHash").and_then(Value::as_str) != Some(recomputed.as_str()) {
        diffs.push(
            "contentHash does not follow sha256(compact({schemaVersion, source, workflows}))"
                .into(),
        );
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

/// Structural comparison with key order significant. `skip` holds paths in the ours.json
/// notation (`workflows[].contentHash`); the top-level `contentHash` and inline expressions
/// are compared as the corpus README says (formula; evaluated results).
fn compare(want: &Value, got: &Value, path: &str, skip: &[String], diffs: &mut Vec<String>) {
    let generic = generic_path(path);
    if path == ".contentHash" || skip.contains(&generic) {
        return;
    }
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            if w.get("_type").and_then(Value::as_str) == Some("inline") {
                compare_inline(w, g, path, diffs);
                return;
            }
            let wk: Vec<&String> = w.keys().filter(|k| !is_skipped(path, k, skip)).collect();
            let gk: Vec<&String> = g.keys().filter(|k| !is_skipped(path, k, skip)).collect();
            if wk != gk {
                diffs.push(format!("{path}: keys {wk:?} != {gk:?}"));
            }
            for (k, wv) in w {
                if let Some(gv) = g.get(k) {
                    compare(wv, gv, &format!("{path}.{k}"), skip, diffs);
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                diffs.push(format!("{path}: {} elements != {}", w.len(), g.len()));
            }
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                compare(wv, gv, &format!("{path}[{i}]"), skip, diffs);
            }
        }
        _ if want != got => diffs.push(format!("{path}: want {want}, got {got}")),
        _ => {}
    }
}

fn is_skipped(path: &str, key: &str, skip: &[String]) -> bool {
    let generic = generic_path(&format!("{path}.{key}"));
    skip.contains(&generic)
}

/// `.workflows[3].jobs[0]` → `workflows[].jobs[]`.
fn generic_path(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.trim_start_matches('.').chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    if path == ".contentHash" {
        ".contentHash".to_string()
    } else {
        out
    }
}

fn compare_inline(
    want: &serde_json::Map<String, Value>,
    got: &serde_json::Map<String, Value>,
    path: &str,
    diffs: &mut Vec<String>,
) {
    let (Some(w), Some(g)) = (
        want.get("expression").and_then(Value::as_str),
        got.get("expression").and_then(Value::as_str),
    ) else {
        diffs.push(format!("{path}: inline value without expression: {got:?}"));
        return;
    };
    let events = [
        serde_json::json!({"type": "push", "branch": "main", "targetBranch": "main", "payload": {}}),
        serde_json::json!({"type": "pull_request", "branch": "feature/x", "targetBranch": "develop", "action": "opened", "payload": {}}),
        serde_json::json!({"type": "tag", "branch": "v1.0.0", "targetBranch": "v1.0.0", "payload": {}}),
    ];
    for event in &events {
        let (a, b) = (
            kici_runtime::inline::evaluate(w, event),
            kici_runtime::inline::evaluate(g, event),
        );
        if a != b {
            diffs.push(format!(
                "{path}: inline {g:?} gives {b:?}, reference {w:?} gives {a:?} for {event}"
            ));
        }
    }
}

/// Validator diagnostics carry the position of the `job()` / `workflow()` call they concern
/// (validation.md §1.3), not the reference's `<workflows dir>:1:1`.
#[test]
fn validation_errors_point_at_the_factory_call() {
    let repo = checkout_case(&conformance_dir().join("workflows/63-invalid-multiple-errors"));
    let compilation = compile(&CompileRequest::new(repo.path()));
    let at = |code: &str, needle: &str| {
        compilation
            .diagnostics
            .iter()
            .find(|d| d.code == code && d.message.contains(needle))
            .map(|d| (d.file.clone().unwrap_or_default(), d.line, d.column))
            .unwrap_or_else(|| panic!("no {code} about {needle}: {:?}", compilation.diagnostics))
    };
    let file = ".kici/workflows/many.ts".to_string();
    // The second `job('x', …)` is the duplicate.
    assert_eq!(at("E106", "\"x\""), (file.clone(), Some(10), Some(5)));
    assert_eq!(at("E103", "\"me\""), (file.clone(), Some(20), Some(5)));
    assert_eq!(at("E104", "\"m1\""), (file.clone(), Some(28), Some(5)));
}

/// W005: a workflow without triggers compiles, with a warning at its `workflow()` call.
#[test]
fn workflow_without_triggers_warns() {
    let repo =
        checkout_case(&conformance_dir().join("workflows/39-regex-flags-and-description-only"));
    let compilation = compile(&CompileRequest::new(repo.path()));
    assert!(
        compilation.lock_text.is_some(),
        "{:?}",
        compilation.diagnostics
    );
    let w005: Vec<_> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.code == "W005")
        .collect();
    assert_eq!(w005.len(), 2, "{:?}", compilation.diagnostics);
    assert!(
        w005.iter()
            .all(|d| !d.is_error() && d.line.is_some_and(|l| l > 1))
    );
}
