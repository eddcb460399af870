//! Conformance tests: data produced by running the reference implementation, read from
//! `../shared/conformance` at test time (never copied into this repository).

mod lock;
mod matrix;
mod preview_events;
mod protocol;
mod providers;
mod shell;
mod triggers;

use std::path::PathBuf;

/// The shared conformance corpus. `KICI_CONFORMANCE_DIR` overrides the default, which is
/// `shared/conformance` beside the repository checkout.
pub fn conformance_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KICI_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = manifest
        .ancestors()
        .nth(2)
        .expect("crate lives two levels below the repo root");
    repo.parent()
        .expect("repo has a parent")
        .join("shared/conformance")
}

/// Reads a JSON-lines file from the corpus, one value per non-empty line.
pub fn read_jsonl(name: &str) -> Vec<serde_json::Value> {
    let path = conformance_dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1)))
        .collect()
}
