//! `kici init` and `kici types` (spec/cli.md §2, §9).

use clap::Args;

use kici_compiler::scaffold::{self, ScaffoldOptions, Template};

use super::output::{Style, banner};
use super::repo::git_root;
use super::{GlobalArgs, exit};

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Proceed when .kici/ exists; scaffold files are overwritten, nothing else is deleted.
    #[arg(long)]
    pub force: bool,
    /// Do not write .kici/AGENTS.md.
    #[arg(long)]
    pub no_agents_md: bool,
    /// Do not offer the pre-commit hook.
    #[arg(long)]
    pub no_hook: bool,
    /// Comma list of hello-world, pr-checks, none.
    #[arg(long, value_name = "LIST")]
    pub templates: Option<String>,
    /// Branch used in the templates (default: origin/HEAD, else the current branch, else main).
    #[arg(long, value_name = "BRANCH")]
    pub default_branch: Option<String>,
    /// Accepted for compatibility; KiCI installs nothing.
    #[arg(long, hide = true)]
    pub skip_install: bool,
    /// Not supported: KiCI needs no package manager.
    #[arg(long, hide = true, value_name = "PM")]
    pub package_manager: Option<String>,
    /// Not supported: KiCI needs no package manager.
    #[arg(long, hide = true)]
    pub mjs: bool,
}

pub fn run(global: &GlobalArgs, args: &InitArgs) -> u8 {
    banner(global);
    if args.package_manager.is_some() || args.mjs {
        eprintln!("error: not supported: KiCI needs no package manager");
        return exit::USAGE;
    }
    let style = Style::for_stderr(global);
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("error: cannot determine the current directory: {e}");
            return exit::FAILURE;
        }
    };
    let root = git_root(&cwd).unwrap_or(cwd);
    let templates = match &args.templates {
        Some(list) => match Template::parse_list(list) {
            Ok(templates) => templates,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        },
        None => Template::ALL.to_vec(),
    };
    let options = ScaffoldOptions {
        force: args.force,
        kici_dir: global.kici_dir.clone(),
        templates,
        agents_md: !args.no_agents_md,
        default_branch: args
            .default_branch
            .clone()
            .unwrap_or_else(|| scaffold::detect_default_branch(&root)),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    match scaffold::scaffold(&root, &options) {
        Ok(report) => {
            if global.json {
                let written: Vec<&str> = report.written().collect();
                println!("{}", serde_json::json!({"ok": true, "written": written}));
            } else if !global.quiet {
                for line in report.human_lines() {
                    let line = match line.strip_prefix("✓ ") {
                        Some(rest) => style.ok(rest),
                        None => line,
                    };
                    eprintln!("{line}");
                }
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("{} {e}", style.paint("31;1", "error:"));
            exit::FAILURE
        }
    }
}

pub fn run_types(global: &GlobalArgs) -> u8 {
    let style = Style::for_stderr(global);
    let cwd = std::env::current_dir().unwrap_or_default();
    let root = git_root(&cwd).unwrap_or(cwd);
    match scaffold::write_types(&root, global.kici_dir.as_deref(), env!("CARGO_PKG_VERSION")) {
        Ok(report) => {
            for entry in &report.entries {
                if let Some(message) = entry.message() {
                    eprintln!("{message}");
                }
            }
            eprintln!(
                "{}",
                style.ok(&format!(
                    "Wrote SDK types for kici {}",
                    env!("CARGO_PKG_VERSION")
                ))
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("{} {e}", style.paint("31;1", "error:"));
            exit::FAILURE
        }
    }
}
