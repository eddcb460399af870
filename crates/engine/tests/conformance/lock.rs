//! Every reference lock in `workflows/*/expected/` parses into the typed [`LockFile`],
//! re-serialises byte-identically, and its top-level `contentHash` recomputes.

use std::path::PathBuf;

use kici_engine::json::to_string_pretty;
use kici_engine::lock::{LockFile, lock_content_hash};

use crate::conformance_dir;

fn lock_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let root = conformance_dir().join("workflows");
    let Ok(cases) = std::fs::read_dir(&root) else {
        panic!("read {}", root.display());
    };
    for case in cases.flatten() {
        let expected = case.path().join("expected");
        let Ok(entries) = std::fs::read_dir(&expected) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("kici.lock") && name.ends_with(".json") {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// Line-level context around the first differing byte.
fn diff(expected: &str, actual: &str) -> String {
    let at = expected
        .bytes()
        .zip(actual.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let line = expected.as_bytes()[..at]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    let show = |text: &str| {
        text.lines()
            .skip(line.saturating_sub(2))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n    ")
    };
    format!(
        "first difference at line {}\n  expected:\n    {}\n  actual:\n    {}",
        line + 1,
        show(expected),
        show(actual)
    )
}

#[test]
fn reference_locks_round_trip_through_the_typed_model() {
    let files = lock_files();
    assert!(!files.is_empty(), "no lock files in the corpus");
    let mut failures = Vec::new();
    for path in &files {
        let id = path
            .strip_prefix(conformance_dir())
            .unwrap_or(path)
            .display()
            .to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{id}: {e}"));
                continue;
            }
        };
        let lock = match LockFile::from_json(&text) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{id}: does not parse: {e}"));
                continue;
            }
        };
        match serde_json::to_value(&lock) {
            Ok(value) => {
                let printed = to_string_pretty(&value);
                if printed != text {
                    failures.push(format!("{id}: {}", diff(&text, &printed)));
                }
            }
            Err(e) => failures.push(format!("{id}: does not serialise: {e}")),
        }
        // `ours` locks are the source-mapped lock edited by hand; their stored hash is the
        // source-mapped one, so only the reference's own locks can be checked.
        let is_ours = id.contains("kici.lock.ours");
        match lock_content_hash(&lock) {
            Ok(hash) if is_ours || hash == lock.content_hash => {}
            Ok(hash) => failures.push(format!(
                "{id}: contentHash expected {} got {hash}",
                lock.content_hash
            )),
            Err(e) => failures.push(format!("{id}: hash: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} lock files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// The fenced block of `lang` that follows `marker` in `text`.
fn fenced_after<'a>(text: &'a str, marker: &str, lang: &str) -> Option<&'a str> {
    let rest = &text[text.find(marker)?..];
    let open = format!("```{lang}\n");
    let start = rest.find(&open)? + open.len();
    let len = rest[start..].find("\n```")?;
    Some(&rest[start..start + len])
}

/// `lockfile.md` §8: the golden example's hashes and exact bytes.
#[test]
fn golden_example_of_the_spec() {
    let spec = conformance_dir().join("../spec/lockfile.md");
    let text = std::fs::read_to_string(&spec).unwrap_or_else(|e| panic!("{}: {e}", spec.display()));
    let source = fenced_after(&text, "Source file `.kici/workflows/ci.ts`", "ts")
        .expect("golden source block");
    let lock_text =
        fenced_after(&text, "Expected `.kici/kici.lock.json`", "json").expect("golden lock block");
    // The file ends with one newline, which the fence does not show.
    let entry = format!("{source}\n");
    assert_eq!(
        kici_engine::lock::workflow_content_hash(&entry, &[]),
        "bc3e9c87d95eb856665b452883e01e36d4f8db9a6f1d98394796c5c3e6f08cfd"
    );
    let lock = LockFile::from_json(lock_text).expect("golden lock parses");
    assert_eq!(lock.to_json_pretty().expect("serialises"), lock_text);
    assert_eq!(
        lock_content_hash(&lock).expect("hash"),
        "ba18e7ae38b762e7259433bd432b4c920b79301e66556dc8de3d6538e8b921af"
    );
}
