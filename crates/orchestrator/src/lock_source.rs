//! Fetching `.kici/kici.lock.json` at a commit (`orchestrator.md` §5.2).
//!
//! Three outcomes matter to the pipeline and are kept apart by the types: the lock text,
//! "this commit has no lock" ([`Fetched::NotFound`]), and an error ([`FetchError`]), which is
//! always retried and never read as "no lock" (the reference's bug).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// Path of the lock inside a repository.
pub const LOCK_PATH: &str = ".kici/kici.lock.json";
/// Larger locks are treated as corrupt.
pub const MAX_LOCK_BYTES: u64 = 5 * 1024 * 1024;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a successful fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Found(String),
    /// The commit exists and has no lock.
    NotFound,
    /// The lock exceeds [`MAX_LOCK_BYTES`] or is not UTF-8.
    Corrupt(String),
}

/// A fetch that may succeed later (network, git, IO): the inbox item is retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("repository {repo:?} is not an owner/name identifier this source can serve")]
    BadRepository { repo: String },
    #[error("git {operation} in {dir} failed: {message}")]
    Git {
        operation: &'static str,
        dir: String,
        message: String,
    },
    #[error("git {operation} timed out after {seconds} s")]
    Timeout {
        operation: &'static str,
        seconds: u64,
    },
}

/// One provider's way to read locks and resolve refs.
pub trait LockSource: Send + Sync + 'static {
    /// The lock at commit `sha` of `repo` (`owner/name`).
    fn fetch<'a>(
        &'a self,
        repo: &'a str,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>>;

    /// The commit a ref (`refs/heads/main`, `HEAD`) points at now.
    fn resolve<'a>(
        &'a self,
        repo: &'a str,
        git_ref: &'a str,
    ) -> BoxFuture<'a, Result<String, FetchError>>;

    /// Files changed between two commits (`triggers.md` §5.1).
    fn changed_files<'a>(
        &'a self,
        repo: &'a str,
        base: &'a str,
        head: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, FetchError>>;

    /// The directory holding `<owner>/<name>` repositories when they are on this machine's
    /// disk (local sources); agents then clone from that path.
    fn local_base(&self) -> Option<&Path> {
        None
    }
}

/// `local-file`: repositories on disk at `<base>/<owner>/<name>` (bare or not), read with
/// git at the commit, never from the working tree (`orchestrator.md` §4.4).
#[derive(Debug, Clone)]
pub struct LocalFile {
    base: PathBuf,
}

impl LocalFile {
    pub fn new(base: impl Into<PathBuf>) -> LocalFile {
        LocalFile { base: base.into() }
    }

    /// The repository directory; `None` when `repo` could escape `base`.
    pub fn repo_dir(&self, repo: &str) -> Option<PathBuf> {
        let relative = kici_engine::provider::repo_url("{owner}/{name}", repo)?;
        Some(self.base.join(relative))
    }

    fn dir(&self, repo: &str) -> Result<PathBuf, FetchError> {
        self.repo_dir(repo)
            .ok_or_else(|| FetchError::BadRepository {
                repo: repo.to_string(),
            })
    }
}

impl LockSource for LocalFile {
    fn local_base(&self) -> Option<&Path> {
        Some(&self.base)
    }

    fn fetch<'a>(
        &'a self,
        repo: &'a str,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(async move {
            let dir = self.dir(repo)?;
            if !kici_engine::provider::is_full_sha(sha) {
                return Err(FetchError::Git {
                    operation: "ls-tree",
                    dir: dir.display().to_string(),
                    message: format!("{sha:?} is not a full commit id"),
                });
            }
            // `ls-tree -l` tells "no such path" (empty output) apart from "no such commit"
            // (an error), and gives the size before the blob is read.
            let listing = git(&dir, "ls-tree", &["ls-tree", "-l", sha, "--", LOCK_PATH]).await?;
            let listing = String::from_utf8_lossy(&listing);
            let Some(line) = listing.lines().next() else {
                return Ok(Fetched::NotFound);
            };
            let mut fields = line.split_whitespace();
            let (_mode, kind, blob, size) =
                (fields.next(), fields.next(), fields.next(), fields.next());
            let (Some("blob"), Some(blob)) = (kind, blob) else {
                return Ok(Fetched::Corrupt(format!("{LOCK_PATH} is not a file")));
            };
            let size: u64 = size.and_then(|s| s.parse().ok()).unwrap_or(0);
            if size > MAX_LOCK_BYTES {
                return Ok(Fetched::Corrupt(format!(
                    "{LOCK_PATH} is {size} bytes (limit {MAX_LOCK_BYTES})"
                )));
            }
            let blob = blob.to_string();
            let bytes = git(&dir, "cat-file", &["cat-file", "blob", &blob]).await?;
            match String::from_utf8(bytes) {
                Ok(text) => Ok(Fetched::Found(text)),
                Err(_) => Ok(Fetched::Corrupt(format!("{LOCK_PATH} is not UTF-8"))),
            }
        })
    }

    fn resolve<'a>(
        &'a self,
        repo: &'a str,
        git_ref: &'a str,
    ) -> BoxFuture<'a, Result<String, FetchError>> {
        Box::pin(async move {
            let dir = self.dir(repo)?;
            let spec = format!("{git_ref}^{{commit}}");
            let out = git(
                &dir,
                "rev-parse",
                &["rev-parse", "--verify", "--end-of-options", &spec],
            )
            .await?;
            Ok(String::from_utf8_lossy(&out).trim().to_string())
        })
    }

    fn changed_files<'a>(
        &'a self,
        repo: &'a str,
        base: &'a str,
        head: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, FetchError>> {
        Box::pin(async move {
            let dir = self.dir(repo)?;
            let range = format!("{base}..{head}");
            let out = git(
                &dir,
                "diff",
                &[
                    "diff",
                    "--name-only",
                    "--no-renames",
                    "-z",
                    "--end-of-options",
                    &range,
                ],
            )
            .await?;
            Ok(out
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect())
        })
    }
}

/// Runs `git -C dir <args>` (with a time budget, killed on timeout) and returns its stdout.
async fn git(dir: &Path, operation: &'static str, args: &[&str]) -> Result<Vec<u8>, FetchError> {
    crate::git::git_local(dir, operation, args).await
}
