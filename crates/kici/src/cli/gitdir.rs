//! Reading a repository's HEAD and origin straight from `.git`, so that `preview` and
//! `run local` do not pay for three `git` processes on every call. Anything unusual
//! (worktrees, reftable, symbolic refs to refs) returns `None` and the caller asks `git`.

use std::path::{Path, PathBuf};

/// The checked-out branch (if any) and the commit HEAD points at (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub branch: Option<String>,
    pub sha: Option<String>,
}

/// `<root>/.git` when it is a plain directory (not a worktree's `gitdir:` file).
fn git_dir(root: &Path) -> Option<PathBuf> {
    let dir = root.join(".git");
    (dir.is_dir() && !dir.join("commondir").exists()).then_some(dir)
}

pub fn read_head(root: &Path) -> Option<Head> {
    let dir = git_dir(root)?;
    let head = std::fs::read_to_string(dir.join("HEAD")).ok()?;
    let head = head.trim();
    match head.strip_prefix("ref: ") {
        Some(reference) => {
            let branch = reference.strip_prefix("refs/heads/")?.to_string();
            Some(Head {
                sha: resolve_ref(&dir, reference)?,
                branch: Some(branch),
            })
        }
        None if is_sha(head) => Some(Head {
            branch: None,
            sha: Some(head.to_string()),
        }),
        None => None,
    }
}

/// `Some(None)` for an unborn branch (no commit yet), `None` when the ref store is not one we
/// read (the caller then asks git).
fn resolve_ref(dir: &Path, reference: &str) -> Option<Option<String>> {
    if let Ok(text) = std::fs::read_to_string(dir.join(reference)) {
        let sha = text.trim();
        return is_sha(sha).then(|| Some(sha.to_string()));
    }
    if dir.join("reftable").exists() {
        return None;
    }
    let packed = std::fs::read_to_string(dir.join("packed-refs")).unwrap_or_default();
    let found = packed.lines().find_map(|line| {
        let (sha, name) = line.split_once(' ')?;
        (name == reference && is_sha(sha)).then(|| sha.to_string())
    });
    Some(found)
}

fn is_sha(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `remote.origin.url` from `.git/config` (`Some(None)` when there is no origin).
pub fn origin_url(root: &Path) -> Option<Option<String>> {
    let config = std::fs::read_to_string(git_dir(root)?.join("config")).ok()?;
    if config.contains("[include") {
        return None;
    }
    let mut in_origin = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_origin = line.replace(' ', "") == "[remote\"origin\"]";
            continue;
        }
        if in_origin
            && let Some((key, value)) = line.split_once('=')
            && key.trim().eq_ignore_ascii_case("url")
        {
            return Some(Some(value.trim().trim_matches('"').to_string()));
        }
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn agrees_with_git_on_branch_sha_and_origin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        git(root, &["init", "-q"]);
        assert_eq!(
            read_head(root),
            Some(Head {
                branch: Some("main".into()),
                sha: None
            })
        );
        std::fs::write(root.join("a"), "a").expect("write");
        git(root, &["add", "a"]);
        git(root, &["commit", "-qm", "a"]);
        let sha = git(root, &["rev-parse", "HEAD"]);
        assert_eq!(
            read_head(root),
            Some(Head {
                branch: Some("main".into()),
                sha: Some(sha.clone())
            })
        );
        git(root, &["pack-refs", "--all"]);
        assert_eq!(read_head(root).and_then(|h| h.sha), Some(sha.clone()));
        git(root, &["checkout", "-q", "--detach"]);
        assert_eq!(
            read_head(root),
            Some(Head {
                branch: None,
                sha: Some(sha)
            })
        );
        assert_eq!(origin_url(root), Some(None));
        git(
            root,
            &["remote", "add", "origin", "git@example.com:acme/app.git"],
        );
        assert_eq!(
            origin_url(root),
            Some(Some("git@example.com:acme/app.git".into()))
        );
    }
}
