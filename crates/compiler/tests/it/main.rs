//! Integration tests of the author toolchain: compile conformance, preview, scaffold, tsc.

mod compile;
mod preview;
mod scaffold;
mod tsc_types;

use std::path::PathBuf;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repo root")
        .to_path_buf()
}

/// The shared conformance corpus: `KICI_CONFORMANCE_DIR`, else `shared/conformance` beside the repo.
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("KICI_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root()
            .parent()
            .expect("repo has a parent")
            .join("shared/conformance"),
    }
}
