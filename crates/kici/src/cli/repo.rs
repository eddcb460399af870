//! Finding the repository and the KiCI directory (spec/cli.md §1 `--kici-dir`).

use std::path::{Path, PathBuf};

/// The repository's top level: the nearest ancestor with a `.git` entry (a directory, or a
/// file for worktrees and submodules), falling back to the current directory. Walking the
/// tree instead of asking `git rev-parse` keeps a process spawn off every command.
pub fn git_root(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Where the workflows live: `--kici-dir`, else the current directory when it is a `.kici`
/// directory with `workflows/`, else `<git root>/.kici`, else `./.kici`.
pub struct Location {
    pub git_root: PathBuf,
    pub kici_dir: PathBuf,
}

pub fn locate(kici_dir: Option<&Path>) -> std::io::Result<Location> {
    let cwd = std::env::current_dir()?;
    let root = git_root(&cwd);
    if let Some(dir) = kici_dir {
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            cwd.join(dir)
        };
        let git_root = root
            .or_else(|| dir.parent().map(Path::to_path_buf))
            .unwrap_or(cwd);
        return Ok(Location {
            git_root,
            kici_dir: dir,
        });
    }
    if cwd.file_name().is_some_and(|n| n == ".kici") && cwd.join("workflows").is_dir() {
        let git_root = root.unwrap_or_else(|| cwd.parent().unwrap_or(&cwd).to_path_buf());
        return Ok(Location {
            git_root,
            kici_dir: cwd,
        });
    }
    let git_root = root.unwrap_or(cwd);
    let kici_dir = git_root.join(".kici");
    Ok(Location { git_root, kici_dir })
}

/// `path` relative to the current directory when it is below it, else absolute.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    match path.strip_prefix(&cwd) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => path.display().to_string(),
    }
}
