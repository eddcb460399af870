//! Command-line parsing (clap) and dispatch to one module per subcommand.

mod admin;
mod agent;
mod client;
mod compile;
mod event;
mod gitdir;
mod hook;
mod init;
mod orchestrator;
mod output;
mod preview;
mod printer;
mod remote;
mod repo;
mod run;
mod settings;
mod up;
mod watch;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// KiCI: CI/CD pipelines written in TypeScript, run on your own machines.
#[derive(Debug, Parser)]
#[command(
    name = "kici",
    version,
    disable_version_flag = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags every author command understands.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// The KiCI directory (default: <git root>/.kici).
    #[arg(long, global = true, value_name = "PATH")]
    pub kici_dir: Option<std::path::PathBuf>,
    /// Machine-readable output on stdout; progress and diagnostics go to stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// Only the final summary and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Disable colours (also: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print the version and exit.
    #[arg(long, short = 'V')]
    pub version: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scaffold .kici/ in the current repository.
    Init(init::InitArgs),
    /// Compile .kici/workflows/*.ts into .kici/kici.lock.json.
    Compile(compile::CompileArgs),
    /// Recompile whenever a workflow or one of its inputs changes.
    Watch,
    /// Show which workflows and jobs an event would trigger, and why.
    Preview(preview::PreviewArgs),
    /// Run workflows: `kici run local <event>`.
    #[command(subcommand)]
    Run(run::RunCommand),
    /// Install a git pre-commit hook that keeps the lock file compiled.
    #[command(subcommand)]
    Hook(hook::HookCommand),
    /// (Re)write the SDK type declarations under .kici/types/.
    Types,
    /// Start the orchestrator server.
    Orchestrator(orchestrator::OrchestratorArgs),
    /// Start an agent that runs the orchestrator's jobs on this machine.
    Agent(agent::AgentArgs),
    /// All-in-one local CI: orchestrator, agent, and every new commit run as a push.
    Up(up::UpArgs),
    /// Operator commands: a client of the orchestrator's REST API.
    Admin(admin::AdminArgs),
    /// Print the version.
    Version,
}

/// Exit codes of spec/cli.md §1.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
}

pub fn run() -> ExitCode {
    let cli = match parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if cli.global.version {
        return ExitCode::from(version(&cli.global));
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return ExitCode::from(exit::USAGE);
    };
    let code = match command {
        Command::Init(args) => init::run(&cli.global, &args),
        Command::Compile(args) => compile::run(&cli.global, &args),
        Command::Watch => watch::run(&cli.global),
        Command::Preview(args) => preview::run(&cli.global, &args),
        Command::Hook(command) => hook::run(&cli.global, &command),
        Command::Run(command) => run::run(&cli.global, &command),
        Command::Types => init::run_types(&cli.global),
        Command::Orchestrator(args) => orchestrator::run(&cli.global, &args),
        Command::Admin(args) => admin::run(&cli.global, &args),
        Command::Agent(args) => agent::run(&cli.global, &args),
        Command::Up(args) => up::run(&cli.global, &args),
        Command::Version => version(&cli.global),
    };
    ExitCode::from(code)
}

/// KiCI agent: runs the orchestrator's jobs on this machine (`kici agent`, in a binary
/// without the other roles).
#[derive(Debug, Parser)]
#[command(name = "kici-agent", version)]
struct AgentOnlyCli {
    #[command(flatten)]
    args: agent::AgentArgs,
}

/// The `kici-agent` binary: `kici agent` without the other roles. Only the agent is reachable
/// from here, so the linker leaves the orchestrator, the compiler and the rest of the command
/// tree out — half the executable, half the resident memory of an idle agent.
pub fn run_agent_only() -> ExitCode {
    match parse::<AgentOnlyCli>() {
        Ok(cli) => ExitCode::from(agent::run(&GlobalArgs::default(), &cli.args)),
        Err(code) => code,
    }
}

/// Parses argv; on `--help`/`--version` (exit 0) or a usage error (exit 2) prints clap's text
/// and returns the exit code.
fn parse<P: Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|error| {
        let code = if error.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        };
        let _ = error.print();
        ExitCode::from(code)
    })
}

fn version(global: &GlobalArgs) -> u8 {
    let version = env!("CARGO_PKG_VERSION");
    let commit = env!("KICI_GIT_COMMIT");
    let target = env!("KICI_TARGET");
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "version": version,
                "commit": commit,
                "target": target,
                "lockSchemaVersion": kici_engine::lock::SCHEMA_VERSION,
                "protocolVersion": 1,
            })
        );
    } else {
        println!("kici {version} ({commit}, {target})");
    }
    exit::OK
}
