//! `kici init` and `kici types`: the Node-free scaffold of `cli.md` §2.1 and §9.
//!
//! Every file comes from `crates/compiler/scaffold/` through `include_str!`, so the binary
//! carries its templates and the SDK declarations. The functions here only touch the file
//! system; prompts, the pre-commit hook and printing belong to the CLI, which renders the
//! returned [`ScaffoldReport`]:
//!
//! ```text
//! let opts = ScaffoldOptions { force, default_branch: detect_default_branch(&root), ..Default::default() };
//! let report = scaffold(&root, &opts)?;          // Err: print "error: {err}", exit 1
//! for line in report.human_lines() { println!("{line}"); }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// The version written to `.kici/types/kici/VERSION` by default; `compile` compares it with
/// the running binary to warn about stale declarations.
pub const TYPES_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The embedded scaffold files, exactly as shipped.
pub mod files {
    /// `.kici/types/kici/sdk.d.ts`.
    pub const SDK_DTS: &str = include_str!("../scaffold/types/sdk.d.ts");
    /// `.kici/types/kici/node.d.ts`.
    pub const NODE_DTS: &str = include_str!("../scaffold/types/node.d.ts");
    /// `.kici/tsconfig.json`.
    pub const TSCONFIG: &str = include_str!("../scaffold/tsconfig.json");
    /// `.kici/AGENTS.md`.
    pub const AGENTS_MD: &str = include_str!("../scaffold/AGENTS.md");
    /// `.kiciignore`.
    pub const KICIIGNORE: &str = include_str!("../scaffold/kiciignore");
    /// Lines appended to `.gitignore`; `.kici/` is replaced by the actual KiCI directory.
    pub const GITIGNORE: &str = include_str!("../scaffold/gitignore");
    /// `.kici/workflows/hello-world.ts`.
    pub const HELLO_WORLD: &str = include_str!("../scaffold/workflows/hello-world.ts");
    /// `.kici/workflows/pr-checks.ts`, with `__DEFAULT_BRANCH__` to substitute.
    pub const PR_CHECKS: &str = include_str!("../scaffold/workflows/pr-checks.ts");
    /// `.kici/tests/push-test.ts`, with `__BRANCH__` and `__BRANCH_PASCAL__` to substitute.
    pub const PUSH_TEST: &str = include_str!("../scaffold/tests/push-test.ts");
}

/// The directory `kici init` creates when `--kici-dir` is not given.
pub const DEFAULT_KICI_DIR: &str = ".kici";

/// The `paths` keys that make editors resolve the SDK to the written declarations.
const SDK_SPECIFIERS: [&str; 2] = ["@kici-dev/sdk", "kici:sdk"];
const SDK_TYPES_TARGET: &str = "./types/kici/sdk.d.ts";

/// A starter workflow (`--templates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// `workflows/hello-world.ts`: one job on every push.
    HelloWorld,
    /// `workflows/pr-checks.ts`: lint and test on pull requests to the default branch.
    PrChecks,
}

impl Template {
    /// Both templates, in the order they are written.
    pub const ALL: [Template; 2] = [Template::HelloWorld, Template::PrChecks];

    /// The name used by `--templates`.
    pub fn name(self) -> &'static str {
        match self {
            Template::HelloWorld => "hello-world",
            Template::PrChecks => "pr-checks",
        }
    }

    /// Parses a `--templates` value: a comma list of template names, or `none`.
    pub fn parse_list(list: &str) -> Result<Vec<Template>, Error> {
        let mut templates = Vec::new();
        for item in list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            if item == "none" {
                continue;
            }
            let template = item.parse()?;
            if !templates.contains(&template) {
                templates.push(template);
            }
        }
        Ok(templates)
    }

    fn relative_path(self) -> &'static str {
        match self {
            Template::HelloWorld => "workflows/hello-world.ts",
            Template::PrChecks => "workflows/pr-checks.ts",
        }
    }
}

impl FromStr for Template {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        Template::ALL
            .into_iter()
            .find(|template| template.name() == name)
            .ok_or_else(|| Error::UnknownTemplate {
                name: name.to_owned(),
            })
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `kici init` should write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaffoldOptions {
    /// Proceed when the KiCI directory exists, overwriting scaffold files (nothing is deleted).
    pub force: bool,
    /// The KiCI directory, relative to the git root or absolute (inside it);
    /// `None` means [`DEFAULT_KICI_DIR`].
    pub kici_dir: Option<PathBuf>,
    /// Starter workflows to write; empty for `--templates none`.
    pub templates: Vec<Template>,
    /// Write `AGENTS.md` (`--no-agents-md` clears it).
    pub agents_md: bool,
    /// Branch substituted into `pr-checks.ts` and the push fixture.
    pub default_branch: String,
    /// Written to `types/kici/VERSION`.
    pub version: String,
}

impl Default for ScaffoldOptions {
    fn default() -> Self {
        ScaffoldOptions {
            force: false,
            kici_dir: None,
            templates: Template::ALL.to_vec(),
            agents_md: true,
            default_branch: "main".to_owned(),
            version: TYPES_VERSION.to_owned(),
        }
    }
}

/// What happened to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The file did not exist and was written.
    Created,
    /// The file existed with other content and was replaced (`--force`, or `kici types`).
    Overwritten,
    /// The file already had exactly this content; it was not touched.
    Unchanged,
    /// The file exists and is the user's (`.kiciignore`); it was left alone.
    KeptExisting,
    /// Lines were appended (`.gitignore`) or keys added (`tsconfig.json`).
    Updated {
        /// The appended lines or added keys, in order.
        added: Vec<String>,
    },
    /// `.gitignore` already ignores the whole KiCI directory, so nothing was added.
    AlreadyIgnored,
    /// The file could not be updated automatically and was left alone.
    NeedsManualEdit {
        /// Why, and what to add by hand.
        reason: String,
    },
}

impl Action {
    /// Whether the file on disk changed.
    pub fn wrote(&self) -> bool {
        matches!(
            self,
            Action::Created | Action::Overwritten | Action::Updated { .. }
        )
    }
}

/// One path the scaffold considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the git root, with `/` separators.
    pub path: String,
    pub action: Action,
}

impl Entry {
    /// The CLI's progress line (`cli.md` §2.2), or `None` when nothing was written.
    pub fn message(&self) -> Option<String> {
        match &self.action {
            Action::Created | Action::Overwritten => Some(format!("Writing {}", self.path)),
            Action::Updated { .. } => Some(format!("Updating {}", self.path)),
            Action::NeedsManualEdit { reason } => {
                Some(format!("Not updating {}: {reason}", self.path))
            }
            Action::Unchanged | Action::KeptExisting | Action::AlreadyIgnored => None,
        }
    }
}

/// What [`scaffold`] or [`write_types`] did, in the order of `cli.md` §2.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaffoldReport {
    /// Absolute path of the KiCI directory.
    pub kici_dir: PathBuf,
    /// The KiCI directory relative to the git root (`.kici` by default).
    pub kici_dir_relative: String,
    pub entries: Vec<Entry>,
}

impl ScaffoldReport {
    /// The entry for `path` (relative to the git root, `/` separators).
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.path == path)
    }

    /// Paths whose files were created, replaced or appended to.
    pub fn written(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|entry| entry.action.wrote())
            .map(|entry| entry.path.as_str())
    }

    /// The `kici init` output after the prompts: one line per action, the success mark and
    /// the next steps.
    pub fn human_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.entries.iter().filter_map(Entry::message).collect();
        lines.push("✓ kici initialized".to_owned());
        lines.push(String::new());
        lines.push("Next steps:".to_owned());
        lines.push("  kici preview push      see which workflows a push would start".to_owned());
        lines.push("  kici run local push    run them on this machine".to_owned());
        lines.push(format!(
            "  git add {}/ && git commit   commit the scaffold",
            self.kici_dir_relative
        ));
        lines
    }
}

/// Why the scaffold could not be written. Every variant names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{dir}/ already exists (use --force to overwrite scaffold files)")]
    AlreadyExists {
        /// The KiCI directory as the user sees it (relative to the git root).
        dir: String,
        path: PathBuf,
    },
    #[error("{} exists and is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error(
        "the KiCI directory {} is outside the repository {}",
        kici_dir.display(),
        git_root.display()
    )]
    OutsideRepository {
        kici_dir: PathBuf,
        git_root: PathBuf,
    },
    #[error("unknown template {name:?} (expected hello-world, pr-checks or none)")]
    UnknownTemplate { name: String },
    #[error("invalid default branch {branch:?}: {reason}")]
    InvalidBranch {
        branch: String,
        reason: &'static str,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// `kici init`: writes the scaffold into `git_root` (`cli.md` §2.1).
///
/// Refuses, before writing anything, when the KiCI directory exists and `force` is off.
/// With `force`, scaffold files are overwritten (identical ones are left untouched) and
/// nothing else is deleted. `.kiciignore` is only created when absent; `.gitignore` gets the
/// local-secret entries it lacks.
pub fn scaffold(git_root: &Path, options: &ScaffoldOptions) -> Result<ScaffoldReport, Error> {
    validate_branch(&options.default_branch)?;
    let (kici_dir, kici_rel) = resolve_kici_dir(git_root, options.kici_dir.as_deref())?;
    if let Ok(meta) = std::fs::symlink_metadata(&kici_dir) {
        if !options.force {
            return Err(Error::AlreadyExists {
                dir: kici_rel,
                path: kici_dir,
            });
        }
        if !meta.is_dir() && !kici_dir.is_dir() {
            return Err(Error::NotADirectory { path: kici_dir });
        }
    }

    let branch = &options.default_branch;
    let mut planned: Vec<(&str, String)> = Vec::new();
    for template in Template::ALL {
        if options.templates.contains(&template) {
            let content = match template {
                Template::HelloWorld => files::HELLO_WORLD.to_owned(),
                Template::PrChecks => files::PR_CHECKS.replace("__DEFAULT_BRANCH__", branch),
            };
            planned.push((template.relative_path(), content));
        }
    }
    planned.push((
        "tests/push-test.ts",
        files::PUSH_TEST
            .replace("__BRANCH_PASCAL__", &pascal_case(branch))
            .replace("__BRANCH__", branch),
    ));
    planned.extend(types_files(&options.version));
    planned.push(("tsconfig.json", files::TSCONFIG.to_owned()));
    if options.agents_md {
        planned.push(("AGENTS.md", files::AGENTS_MD.to_owned()));
    }

    let mut entries = Vec::new();
    for (rel, content) in &planned {
        let action = write_file(&kici_dir.join(rel), content)?;
        entries.push(Entry {
            path: format!("{kici_rel}/{rel}"),
            action,
        });
    }

    // With `--templates none` no workflow file is written, but `compile` and `preview` still
    // expect the directory (E001 otherwise).
    let workflows_dir = kici_dir.join("workflows");
    std::fs::create_dir_all(&workflows_dir).map_err(|source| Error::CreateDir {
        path: workflows_dir.clone(),
        source,
    })?;

    let kiciignore = git_root.join(".kiciignore");
    let action = if exists(&kiciignore)? {
        Action::KeptExisting
    } else {
        write_file(&kiciignore, files::KICIIGNORE)?
    };
    entries.push(Entry {
        path: ".kiciignore".to_owned(),
        action,
    });

    entries.push(Entry {
        path: ".gitignore".to_owned(),
        action: update_gitignore(git_root, &kici_rel)?,
    });

    Ok(ScaffoldReport {
        kici_dir,
        kici_dir_relative: kici_rel,
        entries,
    })
}

/// `kici types`: (re)writes `types/kici/*` and makes sure `tsconfig.json` maps the SDK
/// specifiers to them (`cli.md` §9). Creates the KiCI directory if needed.
///
/// A missing `tsconfig.json` is written from the scaffold. An existing one that is plain
/// JSON gets the missing `compilerOptions.paths` keys (reformatted, key order kept); one
/// that is not (comments, trailing commas) is reported as [`Action::NeedsManualEdit`].
pub fn write_types(
    git_root: &Path,
    kici_dir: Option<&Path>,
    version: &str,
) -> Result<ScaffoldReport, Error> {
    let (kici_dir, kici_rel) = resolve_kici_dir(git_root, kici_dir)?;
    let mut entries = Vec::new();
    for (rel, content) in types_files(version) {
        let action = write_file(&kici_dir.join(rel), &content)?;
        entries.push(Entry {
            path: format!("{kici_rel}/{rel}"),
            action,
        });
    }
    let tsconfig = kici_dir.join("tsconfig.json");
    let action = match read_optional(&tsconfig)? {
        None => write_file(&tsconfig, files::TSCONFIG)?,
        Some(text) => add_sdk_paths(&tsconfig, &text)?,
    };
    entries.push(Entry {
        path: format!("{kici_rel}/tsconfig.json"),
        action,
    });
    Ok(ScaffoldReport {
        kici_dir,
        kici_dir_relative: kici_rel,
        entries,
    })
}

/// The branch `kici init` uses in templates: the target of `origin/HEAD`, else the current
/// branch, else `main`. Git failures fall through to the next source, because init must work
/// in a fresh repository without a remote or a commit.
pub fn detect_default_branch(git_root: &Path) -> String {
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .arg("-C")
            .arg(git_root)
            .args(args)
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        let text = String::from_utf8(output.stdout).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    };
    git(&[
        "symbolic-ref",
        "--quiet",
        "--short",
        "refs/remotes/origin/HEAD",
    ])
    .map(|remote_head| match remote_head.strip_prefix("origin/") {
        Some(branch) => branch.to_owned(),
        None => remote_head,
    })
    .or_else(|| git(&["branch", "--show-current"]))
    .filter(|branch| validate_branch(branch).is_ok())
    .unwrap_or_else(|| "main".to_owned())
}

/// `feature/foo-bar` → `FeatureFooBar`: the suffix of the push fixture's export name.
pub fn pascal_case(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    for word in branch.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    out
}

fn types_files(version: &str) -> [(&'static str, String); 3] {
    [
        ("types/kici/sdk.d.ts", files::SDK_DTS.to_owned()),
        ("types/kici/node.d.ts", files::NODE_DTS.to_owned()),
        ("types/kici/VERSION", format!("{}\n", version.trim())),
    ]
}

/// The branch lands inside single-quoted TypeScript strings, so anything that could end the
/// literal or break the line is refused rather than escaped: git does not allow such names.
fn validate_branch(branch: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidBranch {
            branch: branch.to_owned(),
            reason,
        })
    };
    if branch.is_empty() {
        return invalid("it is empty");
    }
    if branch
        .chars()
        .any(|c| c == '\'' || c == '\\' || c == '`' || c.is_control())
    {
        return invalid("quotes, backslashes and control characters are not allowed");
    }
    if branch.chars().any(char::is_whitespace) {
        return invalid("whitespace is not allowed");
    }
    Ok(())
}

/// Returns the absolute KiCI directory and its POSIX path relative to the git root.
fn resolve_kici_dir(git_root: &Path, kici_dir: Option<&Path>) -> Result<(PathBuf, String), Error> {
    let requested = kici_dir.unwrap_or(Path::new(DEFAULT_KICI_DIR));
    let joined = if requested.is_absolute() {
        requested.to_path_buf()
    } else {
        git_root.join(requested)
    };
    let outside = || Error::OutsideRepository {
        kici_dir: joined.clone(),
        git_root: git_root.to_path_buf(),
    };
    let absolute = normalize(&joined).ok_or_else(outside)?;
    let root = normalize(git_root).ok_or_else(outside)?;
    let relative = absolute.strip_prefix(&root).map_err(|_| outside())?;
    let parts: Vec<String> = relative
        .components()
        .map(|component| component.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() {
        // The git root itself cannot be the KiCI directory: templates would land at the top.
        return Err(outside());
    }
    Ok((absolute, parts.join("/")))
}

/// Lexical normalisation (`a/./b/../c` → `a/c`) so that `--kici-dir ../x` is caught without
/// requiring the directory to exist yet. `None` when `..` climbs above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

fn exists(path: &Path) -> Result<bool, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `content` unless the file already holds exactly that, creating parent directories.
fn write_file(path: &Path, content: &str) -> Result<Action, Error> {
    let action = match std::fs::read(path) {
        Ok(existing) if existing == content.as_bytes() => return Ok(Action::Unchanged),
        Ok(_) => Action::Overwritten,
        Err(err) if err.kind() == io::ErrorKind::NotFound => Action::Created,
        // A directory in the way, or unreadable: report it as a write problem at this path.
        Err(source) => {
            return Err(Error::Write {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, content).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(action)
}

/// Appends the local-secret entries `.gitignore` lacks (compared line by line, trimmed).
fn update_gitignore(git_root: &Path, kici_rel: &str) -> Result<Action, Error> {
    let path = git_root.join(".gitignore");
    let existing = read_optional(&path)?.unwrap_or_default();
    let present: HashSet<&str> = existing.lines().map(str::trim).collect();

    let whole_dir = ["", "/"].iter().flat_map(|lead| {
        ["", "/", "/*", "/**"]
            .iter()
            .map(move |tail| format!("{lead}{kici_rel}{tail}"))
    });
    for pattern in whole_dir {
        if present.contains(pattern.as_str()) {
            return Ok(Action::AlreadyIgnored);
        }
    }

    let wanted: Vec<String> = files::GITIGNORE
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.replacen(".kici/", &format!("{kici_rel}/"), 1))
        .collect();
    let missing_entries = wanted
        .iter()
        .any(|line| !line.starts_with('#') && !present.contains(line.as_str()));
    if !missing_entries {
        return Ok(Action::Unchanged);
    }
    let added: Vec<String> = wanted
        .into_iter()
        .filter(|line| !present.contains(line.as_str()))
        .collect();

    let mut text = existing.clone();
    if !text.is_empty() {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
    }
    for line in &added {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    Ok(Action::Updated { added })
}

/// Adds the SDK `paths` mapping to an existing `tsconfig.json` when it is missing.
fn add_sdk_paths(path: &Path, text: &str) -> Result<Action, Error> {
    use serde_json::{Map, Value};

    let manual = |why: String| {
        Ok(Action::NeedsManualEdit {
            reason: format!(
                "{why}; add \"paths\": {{\"@kici-dev/sdk\": [\"{SDK_TYPES_TARGET}\"], \
                 \"kici:sdk\": [\"{SDK_TYPES_TARGET}\"]}} to compilerOptions"
            ),
        })
    };
    let mut config: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => return manual(format!("not plain JSON ({err})")),
    };
    let Some(root) = config.as_object_mut() else {
        return manual("the top level is not an object".to_owned());
    };
    let options = root
        .entry("compilerOptions")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(options) = options.as_object_mut() else {
        return manual("compilerOptions is not an object".to_owned());
    };
    let paths = options
        .entry("paths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(paths) = paths.as_object_mut() else {
        return manual("compilerOptions.paths is not an object".to_owned());
    };
    let mut added = Vec::new();
    for specifier in SDK_SPECIFIERS {
        if !paths.contains_key(specifier) {
            paths.insert(specifier.to_owned(), Value::from(vec![SDK_TYPES_TARGET]));
            added.push(specifier.to_owned());
        }
    }
    if added.is_empty() {
        return Ok(Action::Unchanged);
    }
    let mut rendered = serde_json::to_string_pretty(&config).map_err(|err| Error::Write {
        path: path.to_path_buf(),
        source: io::Error::other(err),
    })?;
    rendered.push('\n');
    std::fs::write(path, rendered).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Action::Updated { added })
}
