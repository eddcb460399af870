//! End-to-end tests of the real `kici` binary (spec/cli.md §1–§5, §8, §9; validation.md):
//! every test creates a git repository in a temporary directory, runs the built binary in it
//! and checks exit codes, stdout/stderr and the files on disk. Every process is bounded in time.

mod bad_input;
mod cluster;
mod compile;
mod e2e;
mod general;
mod hook;
mod init;
mod orchestrator;
mod preview;
mod run_local;
mod support;
mod up;
mod watch;
