//! The `kici` binary: every role behind one command.

use std::process::ExitCode;

fn main() -> ExitCode {
    kici::run()
}
