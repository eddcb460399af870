//! `kici compile` (spec/cli.md §3, validation.md §1, lockfile.md §10).

use clap::Args;
use serde_json::json;

use kici_compiler::compile::{Compilation, CompileRequest, compile};
use kici_compiler::lockfile::{drift, write_lock};

use super::output::{Style, banner, print_diagnostics};
use super::repo::{Location, display_path, locate};
use super::{GlobalArgs, exit};

#[derive(Debug, Clone, Args)]
pub struct CompileArgs {
    /// Compare with the committed lock instead of writing it; exit 1 on drift.
    #[arg(long, conflicts_with_all = ["dry_run", "watch"])]
    pub check: bool,
    /// Validate and generate, but write and compare nothing.
    #[arg(long, conflicts_with = "watch")]
    pub dry_run: bool,
    /// Recompile on change (same as `kici watch`).
    #[arg(long)]
    pub watch: bool,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// List every discovered file and workflow with its content hash.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Write,
    Check,
    DryRun,
}

pub fn run(global: &GlobalArgs, args: &CompileArgs) -> u8 {
    if args.watch {
        return super::watch::run(global);
    }
    banner(global);
    let location = match locate(global.kici_dir.as_deref()) {
        Ok(location) => location,
        Err(e) => {
            eprintln!("error: cannot determine the current directory: {e}");
            return exit::FAILURE;
        }
    };
    let mode = if args.check {
        Mode::Check
    } else if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Write
    };
    let compilation = compile(&request_for(&location));
    report(global, args, &location, &compilation, mode)
}

pub fn request_for(location: &Location) -> CompileRequest {
    CompileRequest {
        git_root: location.git_root.clone(),
        kici_dir: location.kici_dir.clone(),
        env: std::env::vars().collect(),
        load_timeout: load_timeout_from_env(),
    }
}

/// `KICI_LOAD_TIMEOUT_MS`: how long loading one workflow file may take before E006 (default
/// 10 s). Meant for tests of the endless-loop error; an invalid value keeps the default.
fn load_timeout_from_env() -> Option<std::time::Duration> {
    std::env::var("KICI_LOAD_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(std::time::Duration::from_millis)
}

/// Prints the outcome and writes or checks the lock; returns the exit code.
pub fn report(
    global: &GlobalArgs,
    args: &CompileArgs,
    location: &Location,
    compilation: &Compilation,
    mode: Mode,
) -> u8 {
    let style = Style::for_stderr(global);
    let lock_path = location.kici_dir.join("kici.lock.json");
    let lock_display = display_path(&lock_path);
    for line in &compilation.console {
        eprintln!("{line}");
    }
    let mut diagnostics = compilation.diagnostics.clone();
    if args.deny_warnings {
        for d in &mut diagnostics {
            d.severity = kici_compiler::diagnostic::Severity::Error;
        }
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let count = compilation.workflows.len();
    let plural = if count == 1 { "workflow" } else { "workflows" };

    if args.verbose && !global.json {
        for w in &compilation.workflows {
            eprintln!(
                "  {} {} ({}) {}",
                w.file,
                w.export,
                w.name,
                &w.content_hash[..12.min(w.content_hash.len())]
            );
        }
    }

    let mut extra_errors: Vec<String> = Vec::new();
    let mut ok_line = String::new();
    if errors == 0 {
        let text = compilation.lock_text.as_deref().unwrap_or_default();
        match mode {
            Mode::Write => match write_lock(&lock_path, text) {
                Ok(_) => {
                    ok_line = format!("Compiled workflows → {lock_display} ({count} {plural})")
                }
                Err(e) => extra_errors.push(format!("cannot write {lock_display}: {e}")),
            },
            Mode::DryRun => ok_line = format!("Workflows are valid ({count} {plural})"),
            Mode::Check => match std::fs::read_to_string(&lock_path) {
                Ok(committed) => {
                    let differences = drift(text, &committed);
                    if differences.is_empty() {
                        ok_line = format!("kici.lock.json is up to date ({count} {plural})");
                    } else {
                        let mut message =
                            format!("{lock_display} is out of date — run \"kici compile\"");
                        for d in differences {
                            message.push('\n');
                            message.push_str(&d.to_string());
                        }
                        extra_errors.push(message);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    extra_errors.push(format!("{lock_display} not found — run \"kici compile\""));
                }
                Err(e) => extra_errors.push(format!("cannot read {lock_display}: {e}")),
            },
        }
    }

    let ok = errors == 0 && extra_errors.is_empty();
    if global.json {
        let mut body = json!({
            "ok": ok,
            // No lock without errors, so nothing was compiled (validation.md §1.2).
            "workflows": if errors == 0 { count } else { 0 },
            "diagnostics": diagnostics,
        });
        if ok && mode == Mode::Write {
            body["lockFile"] = json!(lock_display);
        }
        if !extra_errors.is_empty() {
            body["errors"] = json!(extra_errors);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        print_diagnostics(&diagnostics, &location.git_root, &style, global.quiet);
        for e in &extra_errors {
            eprintln!("{} {e}", style.paint("31;1", "error:"));
        }
        if ok {
            eprintln!("{}", style.ok(&ok_line));
        } else if errors > 0 {
            eprintln!(
                "{}",
                style.fail(&format!("{errors} error(s), {warnings} warning(s)"))
            );
        }
    }
    if ok { exit::OK } else { exit::FAILURE }
}
