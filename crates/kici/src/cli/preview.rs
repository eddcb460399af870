//! `kici preview <event>` (spec/cli.md §5): compile in memory, simulate the event, explain.

use std::path::Path;
use std::process::Command;

use clap::Args;

use kici_compiler::compile::compile;
use kici_compiler::preview::{self as report, PreviewContext};
use kici_engine::lock::LockFile;
use kici_engine::simulate::{self, ChangedFilesQuery, GitFacts};

use super::compile::request_for;
use super::event::EventArgs;
use super::gitdir;
use super::output::{Style, banner, print_diagnostics};
use super::repo::locate;
use super::{GlobalArgs, exit};

#[derive(Debug, Clone, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub target: EventArgs,
    /// Also evaluate workflow and job rules (not supported yet: reported, not evaluated).
    #[arg(long)]
    pub eval_rules: bool,
    /// Debug output.
    #[arg(long)]
    pub debug: bool,
}

pub fn run(global: &GlobalArgs, args: &PreviewArgs) -> u8 {
    banner(global);
    let style = Style::for_stderr(global);
    let Some(event) = &args.target.event else {
        eprintln!(
            "error: missing event argument (usage: kici preview <event> [options]; e.g. push, pr:open, tag:v1.2.3, schedule)"
        );
        return exit::USAGE;
    };
    let location = match locate(global.kici_dir.as_deref()) {
        Ok(location) => location,
        Err(e) => {
            eprintln!("error: cannot determine the current directory: {e}");
            return exit::FAILURE;
        }
    };
    let mut report_args = args.target.report_args(event, global.json, args.debug);
    report_args.eval_rules = args.eval_rules;
    report_args.kici_dir = global.kici_dir.as_ref().map(|p| p.display().to_string());
    // Usage errors in the event argument come before any work (exit 2).
    let spec = match simulate::parse_event_arg(event) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return if e.is_usage_error() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    };
    let payload = match args.target.read_payload() {
        Ok(payload) => payload,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    let compilation = compile(&request_for(&location));
    let Some(lock_text) = &compilation.lock_text else {
        print_diagnostics(
            &compilation.diagnostics,
            &location.git_root,
            &style,
            global.quiet,
        );
        return exit::FAILURE;
    };
    let lock: LockFile = match serde_json::from_str(lock_text) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: internal: the compiled lock does not parse: {e}");
            return exit::FAILURE;
        }
    };
    let options = match report_args.simulate_options(payload.clone()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code(e.exit_code());
        }
    };
    let git = git_facts(
        &location.git_root,
        simulate::changed_files_query(&spec, &options),
    );
    let context = PreviewContext {
        kici_dir: location.kici_dir.display().to_string(),
        lock_path: None,
        payload,
        git,
    };
    match report::run(&report_args, &context, &lock) {
        Ok(preview) => {
            if global.json {
                println!("{}", preview.to_json_string());
            } else {
                print!("{}", preview.render_text());
            }
            exit_code(preview.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit_code(e.exit_code())
        }
    }
}

fn exit_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(exit::FAILURE)
}

/// Branch, HEAD, origin and changed files, as triggers.md §10 builds a local event from them.
/// Every fact is optional: outside a repository or on an unborn branch the event falls back
/// to the defaults.
pub fn git_facts(root: &Path, query: ChangedFilesQuery) -> GitFacts {
    let (current_branch, head_sha) = match gitdir::read_head(root) {
        Some(head) => (head.branch, head.sha),
        None => (
            git(root, &["symbolic-ref", "--quiet", "--short", "HEAD"]),
            git(root, &["rev-parse", "--verify", "--quiet", "HEAD"]),
        ),
    };
    let origin = gitdir::origin_url(root)
        .unwrap_or_else(|| git(root, &["config", "--get", "remote.origin.url"]));
    let repo = origin.and_then(|url| repo_from_url(&url)).or_else(|| {
        root.file_name()
            .map(|n| format!("local/{}", n.to_string_lossy()))
    });
    let changed_files = match query {
        ChangedFilesQuery::Given | ChangedFilesQuery::None => None,
        ChangedFilesQuery::WorkingTreeOrHead => {
            let dirty = uncommitted(root);
            if dirty.is_empty() && head_sha.is_some() {
                git(
                    root,
                    &[
                        "diff-tree",
                        "--no-commit-id",
                        "--name-only",
                        "-r",
                        "--root",
                        "HEAD",
                    ],
                )
                .map(|out| lines(&out))
            } else {
                Some(dirty)
            }
        }
        ChangedFilesQuery::MergeBase { target_branch } => {
            let mut files = git(root, &["merge-base", &target_branch, "HEAD"])
                .and_then(|base| git(root, &["diff", "--name-only", base.trim(), "HEAD"]))
                .map(|out| lines(&out))
                .unwrap_or_default();
            for file in uncommitted(root) {
                if !files.contains(&file) {
                    files.push(file);
                }
            }
            Some(files)
        }
    };
    GitFacts {
        current_branch,
        head_sha,
        repo,
        changed_files,
    }
}

/// Whether the working tree differs from `HEAD` (staged, unstaged or untracked files).
pub fn has_uncommitted_changes(root: &Path) -> bool {
    !uncommitted(root).is_empty()
}

fn uncommitted(root: &Path) -> Vec<String> {
    let Some(out) = git(
        root,
        &["status", "--porcelain=v1", "-z", "--untracked-files=all"],
    ) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    let mut entries = out.split('\0').filter(|e| !e.is_empty());
    while let Some(entry) = entries.next() {
        if entry.len() > 3 {
            files.push(entry[3..].to_string());
        }
        // Renames and copies carry the old path as a second NUL-separated field.
        if entry.starts_with('R') || entry.starts_with('C') {
            entries.next();
        }
    }
    files
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout)
        .trim_end_matches('\n')
        .to_string();
    if text.is_empty() { None } else { Some(text) }
}

/// `git@github.com:owner/name.git`, `https://host/owner/name(.git)` → `owner/name`.
pub fn repo_from_url(url: &str) -> Option<String> {
    let trimmed = url.trim().trim_end_matches('/').trim_end_matches(".git");
    let path = match trimmed.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => trimmed.split_once(':')?.1,
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [.., owner, name] => Some(format!("{owner}/{name}")),
        _ => None,
    }
}
