//! The `kici-agent` binary: `kici agent` built without the other roles (see
//! [`kici::run_agent_only`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    kici::run_agent_only()
}
