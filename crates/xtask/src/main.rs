//! Project automation, run as `cargo xtask <command>` (the alias is in `.cargo/config.toml`).
//!
//! - `cargo xtask bench`: end-to-end figures of the release `kici` binary (see `bench.rs`;
//!   the orchestrator and agent scenarios are in `bench_server.rs`).
//! - The tidy checks are plain tests in `tidy.rs`, so `cargo test --workspace` runs them.
//!
//! xtask depends on no kici crate: it drives the binary and reads `cargo metadata`.

mod bench;
mod bench_server;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  bench [--runs N] [--only NAME[,NAME…]] [--write] [--kici PATH] [--list]
        build kici in release, create fixture repositories in a temp dir and measure
        whole-process commands: wall time (median, p90, min over N runs after 2 warm-ups,
        default N = 20) and peak RSS. NAME is a benchmark, a service scenario
        (orchestrator-sqlite, orchestrator-postgres, claim, agent-loop) or a group
        (issue-2, issue-3, issue-4, issue-5).
        --write updates the measured groups' sections of BENCHMARKS.md.
        --kici PATH uses that binary instead of building one.
  help  this text

tidy checks: cargo test -p xtask
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::main(&args[1..]),
        Some(bench::BENCH_ONE) => bench::bench_one_main(&args[1..]),
        None | Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: two levels above this crate's manifest.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask has two ancestors")
        .to_path_buf()
}
