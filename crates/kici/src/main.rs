//! The `kici` binary: parses argv, sets up output, and wires the library crates together.
//! It does no work of its own beyond that; every behaviour lives in a library crate.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
