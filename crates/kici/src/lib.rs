//! The `kici` command line, shared by two binaries: `kici` (every role: author commands,
//! orchestrator, agent, admin) and `kici-agent` (the agent alone, for fleet machines). Argv
//! parsing, output and wiring only; every behaviour lives in a library crate.

mod cli;

pub use cli::{run, run_agent_only};
