//! The compile pipeline: discover → load (strip + evaluate) → collect → validate → lock.
//!
//! All diagnostics are collected before anything is printed; any error means no lock text.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use kici_engine::glob::Glob;
use kici_engine::json;
use kici_engine::lock::{self, LockWorkflow};
use kici_engine::validate::{self, ValidationMode};
use kici_runtime::{
    Evaluator, EvaluatorOptions, LoadError, LoadErrorKind, LoweredWorkflow, SourcePosition,
};

use crate::diagnostic::Diagnostic;

/// What to compile.
#[derive(Debug, Clone)]
pub struct CompileRequest {
    pub git_root: PathBuf,
    /// The KiCI directory, normally `<git root>/.kici`.
    pub kici_dir: PathBuf,
    /// What `process.env` shows to module top-level code.
    pub env: Vec<(String, String)>,
    /// How long loading one entry file may take (E006); `None`: the evaluator's 10 s.
    pub load_timeout: Option<std::time::Duration>,
}

impl CompileRequest {
    pub fn new(git_root: &Path) -> Self {
        Self {
            git_root: git_root.to_path_buf(),
            kici_dir: git_root.join(".kici"),
            env: Vec::new(),
            load_timeout: None,
        }
    }

    pub fn lock_path(&self) -> PathBuf {
        self.kici_dir.join("kici.lock.json")
    }
}

/// One compiled workflow, for `--verbose` and `--json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledWorkflow {
    pub name: String,
    pub file: String,
    pub export: String,
    pub content_hash: String,
}

/// The outcome of one compile.
#[derive(Debug, Clone)]
pub struct Compilation {
    pub diagnostics: Vec<Diagnostic>,
    /// The lock text, exactly as it is written (`JSON.stringify(lock, null, 2)`); `None` when
    /// any error was found.
    pub lock_text: Option<String>,
    pub workflows: Vec<CompiledWorkflow>,
    /// Entry files, the modules they import and `hashFiles` matches: what `watch` watches.
    pub inputs: BTreeSet<PathBuf>,
    /// Console output of module top-level code, in order.
    pub console: Vec<String>,
}

impl Compilation {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }

    fn failed(diagnostic: Diagnostic) -> Self {
        Self {
            diagnostics: vec![diagnostic],
            lock_text: None,
            workflows: Vec::new(),
            inputs: BTreeSet::new(),
            console: Vec::new(),
        }
    }
}

/// Lowered workflow plus where it came from.
struct Collected {
    file: String,
    lowered: LoweredWorkflow,
}

pub fn compile(request: &CompileRequest) -> Compilation {
    let workflows_dir = request.kici_dir.join("workflows");
    let entry_files = match discover(&workflows_dir) {
        Ok(files) => files,
        Err(diagnostic) => return Compilation::failed(diagnostic),
    };
    let mut options = EvaluatorOptions::new(&request.git_root);
    options.env = request.env.clone();
    if let Some(timeout) = request.load_timeout {
        options.load_timeout = timeout;
    }
    let evaluator = match Evaluator::new(options) {
        Ok(evaluator) => evaluator,
        Err(error) => return Compilation::failed(Diagnostic::error("E003", error.message)),
    };

    let mut diagnostics = Vec::new();
    let mut console = Vec::new();
    let mut inputs = BTreeSet::new();
    let mut collected: Vec<Collected> = Vec::new();
    let mut closures: Vec<(String, Vec<String>)> = Vec::new();
    for entry in &entry_files {
        let relative = relative_path(&request.git_root, entry);
        inputs.insert(entry.clone());
        // A dangling symlink, a symlink loop or an unreadable file: E001 naming the OS error,
        // rather than a module-resolution message without an importer.
        if let Err(e) = std::fs::File::open(entry) {
            diagnostics.push(
                Diagnostic::error("E001", format!("Failed to read {relative}: {e}"))
                    .in_file(relative.clone()),
            );
            continue;
        }
        match evaluator.load_workflow_file(&relative) {
            Ok(loaded) => {
                for message in loaded.messages {
                    route_message(message, &mut diagnostics, &mut console);
                }
                if loaded.workflows.is_empty() {
                    diagnostics.push(
                        Diagnostic::error("E004", "Config does not export any workflows")
                            .at(relative.clone(), 1, 1)
                            .with_suggestion("Export a workflow (export default workflow(...)); move helper modules out of .kici/workflows/, e.g. to .kici/lib/"),
                    );
                }
                for import in &loaded.import_closure {
                    inputs.insert(request.git_root.join(import));
                }
                closures.push((relative.clone(), loaded.import_closure));
                for lowered in loaded.workflows {
                    for warning in &lowered.warnings {
                        let diagnostic = warning_diagnostic(warning);
                        diagnostics.push(match warning_site(&lowered, &diagnostic.message) {
                            Some(site) => diagnostic.at(site.file, site.line, site.column),
                            None => diagnostic.in_file(relative.clone()),
                        });
                    }
                    let site = lowered.workflow_site.clone().unwrap_or_else(|| {
                        kici_runtime::SourcePosition::start_of(relative.clone())
                    });
                    for (code, message) in &lowered.errors {
                        diagnostics.push(Diagnostic::error(code, message.clone()).at(
                            site.file.clone(),
                            site.line,
                            site.column,
                        ));
                    }
                    let no_triggers = lowered
                        .lock
                        .get("triggers")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty);
                    if no_triggers {
                        let name = lowered
                            .lock
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        diagnostics.push(
                            Diagnostic::warning(
                                "W005",
                                format!("Workflow \"{name}\" has no triggers and will never run"),
                            )
                            .at(
                                site.file.clone(),
                                site.line,
                                site.column,
                            ),
                        );
                    }
                    collected.push(Collected {
                        file: relative.clone(),
                        lowered,
                    });
                }
            }
            Err(error) => diagnostics.push(load_diagnostic(&relative, error)),
        }
    }
    let load_failed = diagnostics.iter().any(Diagnostic::is_error);
    if collected.is_empty() && !load_failed {
        diagnostics.push(Diagnostic::error(
            "E004",
            "No workflows exported from .kici/workflows/ files",
        ));
    }

    let repo_files = if collected.iter().any(|c| c.lowered.hash_files.is_some()) {
        list_repo_files(&request.git_root)
    } else {
        Vec::new()
    };
    let mut lock_workflows = Vec::with_capacity(collected.len());
    for item in &collected {
        let closure = closures
            .iter()
            .find(|(file, _)| *file == item.file)
            .map(|(_, c)| c.as_slice())
            .unwrap_or(&[]);
        let hashed = resolved_hash_files(item.lowered.hash_files.as_deref(), closure, &repo_files);
        for file in &hashed {
            inputs.insert(request.git_root.join(file));
        }
        let entry_text = read_text(&request.git_root.join(&item.file)).unwrap_or_default();
        let assets: Vec<(String, Option<String>)> = hashed
            .iter()
            .map(|f| (f.clone(), read_text(&request.git_root.join(f))))
            .collect();
        let content_hash = lock::workflow_content_hash(&entry_text, &assets);
        lock_workflows.push(finish_workflow(
            item.lowered.lock.clone(),
            &content_hash,
            &hashed,
        ));
    }

    let typed: Result<Vec<LockWorkflow>, _> = lock_workflows
        .iter()
        .map(|w| serde_json::from_value::<LockWorkflow>(w.clone()))
        .collect();
    match typed {
        Ok(typed) => {
            for found in validate::validate_with(&typed, ValidationMode::Ours) {
                let mut diagnostic = Diagnostic::error(found.code, found.message.clone())
                    .with_suggestion(found.suggestion.clone());
                if let Some(item) = collected.get(found.workflow) {
                    diagnostic = match validation_site(&item.lowered, &found) {
                        Some(site) => diagnostic.at(site.file, site.line, site.column),
                        None => diagnostic.at(item.file.clone(), 1, 1),
                    };
                }
                diagnostics.push(diagnostic);
            }
        }
        Err(error) => diagnostics.push(Diagnostic::error(
            "E105",
            format!("internal error: the lowered workflow does not match the lock schema: {error}"),
        )),
    }

    let workflows: Vec<CompiledWorkflow> = collected
        .iter()
        .zip(&lock_workflows)
        .map(|(item, lock)| CompiledWorkflow {
            name: lock
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            file: item.file.clone(),
            export: item.lowered.export.clone(),
            content_hash: lock
                .get("contentHash")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    let lock_text = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(assemble_lock(lock_workflows))
    };
    Compilation {
        diagnostics,
        lock_text,
        workflows,
        inputs,
        console,
    }
}

/// Where a validation diagnostic points (validation.md §1.3): the `job()` call of the job it
/// concerns — the second declaration for a duplicate name (E106) — else the `workflow()`
/// call.
fn validation_site(
    lowered: &LoweredWorkflow,
    found: &validate::Diagnostic,
) -> Option<SourcePosition> {
    let job_site = found.job.as_ref().and_then(|job| {
        let sites = &lowered.job_sites.iter().find(|(name, _)| name == job)?.1;
        if found.code == "E106" {
            sites.get(1).or(sites.first())
        } else {
            sites.first()
        }
    });
    job_site.or(lowered.workflow_site.as_ref()).cloned()
}

/// SDK warnings about a job start with `Job "<name>"`; point them at that `job()` call.
fn warning_site(lowered: &LoweredWorkflow, message: &str) -> Option<SourcePosition> {
    let rest = message.strip_prefix("Job \"")?;
    let name = &rest[..rest.find('"')?];
    let sites = &lowered.job_sites.iter().find(|(n, _)| n == name)?.1;
    sites.first().cloned()
}

/// Top-level `*.ts` files of the workflows directory (not `*.d.ts`), byte-wise by name.
fn discover(workflows_dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let absolute =
        std::path::absolute(workflows_dir).unwrap_or_else(|_| workflows_dir.to_path_buf());
    let metadata = match std::fs::metadata(workflows_dir) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Diagnostic::error(
                "E001",
                format!(
                    ".kici/workflows/ directory not found: {}",
                    absolute.display()
                ),
            )
            .with_suggestion("Run \"kici init\" or create .kici/workflows/"));
        }
        Err(e) => {
            return Err(Diagnostic::error(
                "E001",
                format!("Failed to read {}: {e}", absolute.display()),
            ));
        }
    };
    if !metadata.is_dir() {
        return Err(Diagnostic::error(
            "E001",
            format!(
                ".kici/workflows/ is not a directory: {}",
                absolute.display()
            ),
        ));
    }
    let entries = std::fs::read_dir(workflows_dir).map_err(|e| {
        Diagnostic::error(
            "E001",
            format!("Failed to read {}: {e}", absolute.display()),
        )
    })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Diagnostic::error(
                "E001",
                format!("Failed to read {}: {e}", absolute.display()),
            )
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry
            .file_type()
            .map(|t| t.is_file() || t.is_symlink())
            .unwrap_or(false);
        if is_file && name.ends_with(".ts") && !name.ends_with(".d.ts") {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        return Err(
            Diagnostic::error("E001", "No workflow files found in .kici/workflows/")
                .with_suggestion("Add a workflow file such as .kici/workflows/ci.ts"),
        );
    }
    files.sort_by(|a, b| {
        a.file_name()
            .unwrap_or_default()
            .as_encoded_bytes()
            .cmp(b.file_name().unwrap_or_default().as_encoded_bytes())
    });
    Ok(files)
}

fn load_diagnostic(relative: &str, error: LoadError) -> Diagnostic {
    let (code, message, suggestion) = match error.kind {
        LoadErrorKind::Syntax => (
            "E002",
            format!("Syntax error: {}", error.message),
            "Fix the syntax error; KiCI type-strips TypeScript without type-checking",
        ),
        LoadErrorKind::Import => ("E005", error.message, ""),
        LoadErrorKind::Throw => (
            "E003",
            format!("Failed to load workflow file module: {}", error.message),
            "Check for TypeScript or runtime errors in your workflow file",
        ),
        LoadErrorKind::Timeout => (
            "E006",
            format!(
                "Evaluating {relative} exceeded the time limit: {}",
                error.message
            ),
            "Avoid heavy work at module top level",
        ),
        LoadErrorKind::OutOfMemory => (
            "E006",
            format!(
                "Evaluating {relative} exceeded the memory limit: {}",
                error.message
            ),
            "Avoid heavy work at module top level",
        ),
        LoadErrorKind::Lowering => ("E105", error.message, ""),
    };
    let mut diagnostic = Diagnostic::error(code, message);
    diagnostic = match error.position {
        Some(p) => diagnostic.at(p.file, p.line, p.column),
        None => diagnostic.at(relative, 1, 1),
    };
    if !suggestion.is_empty() {
        diagnostic = diagnostic.with_suggestion(suggestion);
    }
    diagnostic
}

/// Loader messages are either warnings (`[kici] W004: …`) or console output of module code.
fn route_message(message: String, diagnostics: &mut Vec<Diagnostic>, console: &mut Vec<String>) {
    if let Some(rest) = message.strip_prefix("[kici] W004: ") {
        diagnostics.push(Diagnostic::warning("W004", rest));
    } else {
        console.push(message);
    }
}

/// The SDK prints its warnings as `[kici] <text>` lines, like the reference; give each the
/// code of validation.md §3 that its text belongs to.
fn warning_diagnostic(line: &str) -> Diagnostic {
    let text = line.strip_prefix("[kici] ").unwrap_or(line);
    let code = if text.contains("function is not pure") {
        "W001"
    } else if text.contains("has no effect without") {
        "W002"
    } else if text.contains("single step") || text.contains("only one") {
        "W003"
    } else if text.contains("no triggers") {
        "W005"
    } else {
        "W000"
    };
    Diagnostic::warning(code, text)
}

/// Puts the real `contentHash` in place of the SDK's placeholder and inserts
/// `resolvedHashFiles` at its place in the key order (lockfile.md §3).
fn finish_workflow(lowered: Value, content_hash: &str, resolved_hash_files: &[String]) -> Value {
    let Value::Object(map) = lowered else {
        return lowered;
    };
    const BEFORE_RESOLVED: [&str; 4] = ["hashFiles", "description", "rules", "jobs"];
    let anchor = BEFORE_RESOLVED
        .iter()
        .find(|key| map.contains_key(**key))
        .copied();
    let mut out = Map::with_capacity(map.len() + 1);
    for (key, value) in map {
        let is_anchor = Some(key.as_str()) == anchor;
        if key == "contentHash" {
            out.insert(key, Value::String(content_hash.to_string()));
        } else if key != "resolvedHashFiles" {
            out.insert(key, value);
        }
        if is_anchor && !resolved_hash_files.is_empty() {
            out.insert(
                "resolvedHashFiles".into(),
                Value::Array(
                    resolved_hash_files
                        .iter()
                        .cloned()
                        .map(Value::String)
                        .collect(),
                ),
            );
        }
    }
    Value::Object(out)
}

fn assemble_lock(workflows: Vec<Value>) -> String {
    let source = workflows
        .first()
        .and_then(|w| w.get("source"))
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"file": ".kici/workflows", "export": "#default"}));
    let mut covered = Map::new();
    covered.insert("schemaVersion".into(), Value::from(lock::SCHEMA_VERSION));
    covered.insert("source".into(), source.clone());
    covered.insert("workflows".into(), Value::Array(workflows));
    let content_hash =
        sha256_hex(json::to_string_compact(&Value::Object(covered.clone())).as_bytes());
    let mut file = Map::new();
    file.insert("schemaVersion".into(), Value::from(lock::SCHEMA_VERSION));
    file.insert("source".into(), source);
    file.insert("contentHash".into(), Value::String(content_hash));
    file.insert(
        "workflows".into(),
        covered
            .remove("workflows")
            .unwrap_or(Value::Array(Vec::new())),
    );
    json::to_string_pretty(&Value::Object(file))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// The sorted union of `hashFiles` matches and the entry file's import closure (ours,
/// lockfile.md §7.2).
fn resolved_hash_files(
    patterns: Option<&[String]>,
    closure: &[String],
    repo_files: &[String],
) -> Vec<String> {
    let mut files: BTreeSet<String> = closure.iter().cloned().collect();
    if let Some(patterns) = patterns {
        let globs: Vec<Glob> = patterns.iter().filter_map(|p| Glob::new(p).ok()).collect();
        for file in repo_files {
            if globs.iter().any(|g| g.is_match(file)) {
                files.insert(file.clone());
            }
        }
    }
    let mut sorted: Vec<String> = files.into_iter().collect();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    sorted
}

/// Regular files below the git root (not following symlinks, skipping `.git`), as POSIX paths.
fn list_repo_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if entry.file_name() != ".git" {
                    stack.push(path);
                }
            } else if kind.is_file() {
                out.push(relative_path(root, &path));
            }
        }
    }
    out
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// POSIX path of `path` relative to `root` (or `path` itself when it is not below `root`).
pub fn relative_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
