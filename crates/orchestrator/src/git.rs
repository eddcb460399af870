//! Running git for the orchestrator (`orchestrator.md` §5.2, §5.3): every command is a
//! `tokio::process` child with a time budget and `kill_on_drop`, so a hung remote cannot
//! keep a worker (or a process) alive; credentials reach git only through its environment
//! (`GIT_CONFIG_COUNT`/`KEY`/`VALUE`, `GIT_SSH_COMMAND`), never argv, URLs or `.git/config`.
//!
//! [`UniversalGit`] reads locks from any git URL: a throw-away repository, a shallow
//! partial fetch of the one commit, and `git cat-file` of the lock.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kici_engine::protocol::Secret;

use crate::lock_source::{BoxFuture, FetchError, Fetched, LOCK_PATH, LockSource, MAX_LOCK_BYTES};

/// Budget of one remote operation (fetch, ls-remote), §5.2.
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// How git authenticates to a remote.
#[derive(Clone, Default)]
pub enum GitCredentials {
    #[default]
    None,
    /// HTTP(S) basic: `Authorization: Basic base64(user:secret)` as an extra header.
    Basic { user: String, secret: Secret },
    /// SSH: the private key is written to a 0600 file in a 0700 directory for the
    /// command's lifetime.
    Ssh {
        key: Secret,
        known_hosts: Option<String>,
        /// `accept-new` (false) or `yes` (pinned, true).
        strict: bool,
    },
}

impl std::fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GitCredentials::None => "None",
            GitCredentials::Basic { .. } => "Basic(***)",
            GitCredentials::Ssh { .. } => "Ssh(***)",
        })
    }
}

/// A private scratch directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(purpose: &str) -> std::io::Result<ScratchDir> {
        let dir = std::env::temp_dir().join(format!("kici-{purpose}-{}", kici_store::new_id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir)?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The environment of a git command: prompts off, plus the credentials. Holds the SSH key
/// directory alive while the command runs.
struct GitEnv {
    vars: Vec<(&'static str, OsString)>,
    /// Values scrubbed from error output.
    redact: Vec<String>,
    _ssh_dir: Option<ScratchDir>,
}

impl GitEnv {
    fn new(credentials: &GitCredentials) -> Result<GitEnv, FetchError> {
        let mut env = GitEnv {
            vars: vec![("GIT_TERMINAL_PROMPT", "0".into())],
            redact: Vec::new(),
            _ssh_dir: None,
        };
        match credentials {
            GitCredentials::None => {}
            GitCredentials::Basic { user, secret } => {
                let token = BASE64.encode(format!("{user}:{}", secret.expose()));
                let header = format!("Authorization: Basic {token}");
                env.vars.push(("GIT_CONFIG_COUNT", "1".into()));
                env.vars
                    .push(("GIT_CONFIG_KEY_0", "http.extraHeader".into()));
                env.vars.push(("GIT_CONFIG_VALUE_0", header.clone().into()));
                env.redact.push(token);
                env.redact.push(secret.expose().to_string());
            }
            GitCredentials::Ssh {
                key,
                known_hosts,
                strict,
            } => {
                let dir = ScratchDir::new("ssh").map_err(|e| io_error("ssh setup", &e))?;
                let key_path = dir.0.join("key");
                write_private(&key_path, key.expose()).map_err(|e| io_error("ssh setup", &e))?;
                let hosts_path = dir.0.join("known_hosts");
                write_private(&hosts_path, known_hosts.as_deref().unwrap_or(""))
                    .map_err(|e| io_error("ssh setup", &e))?;
                let command = format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile='{}' -o StrictHostKeyChecking={}",
                    key_path.display(),
                    hosts_path.display(),
                    if *strict { "yes" } else { "accept-new" }
                );
                env.vars.push(("GIT_SSH_COMMAND", command.into()));
                env.redact.push(dir.0.display().to_string());
                env._ssh_dir = Some(dir);
            }
        }
        Ok(env)
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in self.redact.iter().filter(|v| !v.is_empty()) {
            out = out.replace(value.as_str(), "***");
        }
        out
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    if !content.ends_with('\n') && !content.is_empty() {
        file.write_all(b"\n")?;
    }
    Ok(())
}

fn io_error(operation: &'static str, e: &std::io::Error) -> FetchError {
    FetchError::Git {
        operation,
        dir: String::new(),
        message: e.to_string(),
    }
}

/// Runs `git [-C dir] <args>` with a budget; returns stdout, or the scrubbed stderr as the
/// error. The child is killed when the budget runs out (or the caller goes away).
async fn run_git(
    dir: Option<&Path>,
    operation: &'static str,
    args: &[&str],
    env: &GitEnv,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let mut command = tokio::process::Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    command
        .args(args)
        .envs(env.vars.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = dir.map(|d| d.display().to_string()).unwrap_or_default();
    let child = command.spawn().map_err(|e| FetchError::Git {
        operation,
        dir: shown.clone(),
        message: e.to_string(),
    })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            return Err(FetchError::Timeout {
                operation,
                seconds: timeout.as_secs(),
            });
        }
        Ok(Err(e)) => {
            return Err(FetchError::Git {
                operation,
                dir: shown,
                message: e.to_string(),
            });
        }
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(FetchError::Git {
            operation,
            dir: shown,
            message: env.scrub(String::from_utf8_lossy(&output.stderr).trim()),
        })
    }
}

/// `git -C dir <args>` without credentials (local repositories).
pub(crate) async fn git_local(
    dir: &Path,
    operation: &'static str,
    args: &[&str],
) -> Result<Vec<u8>, FetchError> {
    let env = GitEnv::new(&GitCredentials::None)?;
    run_git(Some(dir), operation, args, &env, REMOTE_TIMEOUT).await
}

/// Reads the lock at `sha` inside `dir` (a repository that has the commit, or can fetch
/// its blobs lazily): absent path → `NotFound`, over the size limit → `Corrupt`.
pub(crate) async fn read_lock_at(
    dir: &Path,
    sha: &str,
    env_for_lazy_fetch: Option<&GitCredentials>,
) -> Result<Fetched, FetchError> {
    let env = GitEnv::new(env_for_lazy_fetch.unwrap_or(&GitCredentials::None))?;
    // Without `-l`: in a partial clone the size would fetch the blob before we know we
    // want it; the size is asked for separately.
    let listing = run_git(
        Some(dir),
        "ls-tree",
        &["ls-tree", sha, "--", LOCK_PATH],
        &env,
        REMOTE_TIMEOUT,
    )
    .await?;
    let listing = String::from_utf8_lossy(&listing);
    let Some(line) = listing.lines().next() else {
        return Ok(Fetched::NotFound);
    };
    let mut fields = line.split_whitespace();
    let (_mode, kind, blob) = (fields.next(), fields.next(), fields.next());
    let (Some("blob"), Some(blob)) = (kind, blob) else {
        return Ok(Fetched::Corrupt(format!("{LOCK_PATH} is not a file")));
    };
    let blob = blob.to_string();
    let size = run_git(
        Some(dir),
        "cat-file",
        &["cat-file", "-s", &blob],
        &env,
        REMOTE_TIMEOUT,
    )
    .await?;
    let size: u64 = String::from_utf8_lossy(&size).trim().parse().unwrap_or(0);
    if size > MAX_LOCK_BYTES {
        return Ok(Fetched::Corrupt(format!(
            "{LOCK_PATH} is {size} bytes (limit {MAX_LOCK_BYTES})"
        )));
    }
    let bytes = run_git(
        Some(dir),
        "cat-file",
        &["cat-file", "blob", &blob],
        &env,
        REMOTE_TIMEOUT,
    )
    .await?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Fetched::Found(text)),
        Err(_) => Ok(Fetched::Corrupt(format!("{LOCK_PATH} is not UTF-8"))),
    }
}

/// universal-git: repositories at `url_template` (`https://host/{owner}/{name}.git`,
/// `ssh://…`, `file://…`), read with shallow partial fetches into a temp directory.
#[derive(Debug, Clone)]
pub struct UniversalGit {
    url_template: String,
    credentials: GitCredentials,
    timeout: Duration,
}

impl UniversalGit {
    pub fn new(url_template: impl Into<String>, credentials: GitCredentials) -> UniversalGit {
        UniversalGit {
            url_template: url_template.into(),
            credentials,
            timeout: REMOTE_TIMEOUT,
        }
    }

    /// The clone URL of `repo`; `None` when `repo` could escape the template.
    pub fn url(&self, repo: &str) -> Option<String> {
        kici_engine::provider::repo_url(&self.url_template, repo)
    }

    fn url_or_err(&self, repo: &str) -> Result<String, FetchError> {
        self.url(repo).ok_or_else(|| FetchError::BadRepository {
            repo: repo.to_string(),
        })
    }

    /// A scratch repository whose `origin` is `url` (partial clone needs a named remote to
    /// fetch missing blobs from later) with `commits` fetched shallowly, trees only. Falls
    /// back to a fetch without filter when the server refuses partial clone.
    async fn fetch_commits(&self, url: &str, commits: &[&str]) -> Result<ScratchDir, FetchError> {
        for sha in commits {
            if !kici_engine::provider::is_full_sha(sha) {
                return Err(FetchError::Git {
                    operation: "fetch",
                    dir: String::new(),
                    message: format!("{sha:?} is not a full commit id"),
                });
            }
        }
        let scratch = ScratchDir::new("lock").map_err(|e| io_error("init", &e))?;
        let env = GitEnv::new(&self.credentials)?;
        let dir = scratch.0.as_path();
        run_git(Some(dir), "init", &["init", "-q"], &env, self.timeout).await?;
        run_git(
            Some(dir),
            "remote add",
            &["remote", "add", "origin", url],
            &env,
            self.timeout,
        )
        .await?;
        let mut args = vec![
            "fetch",
            "-q",
            "--no-tags",
            "--depth=1",
            "--filter=blob:none",
            "origin",
        ];
        args.extend_from_slice(commits);
        if let Err(first) = run_git(Some(dir), "fetch", &args, &env, self.timeout).await {
            // Older servers refuse `--filter`; a plain shallow fetch still works.
            args.retain(|a| *a != "--filter=blob:none");
            run_git(Some(dir), "fetch", &args, &env, self.timeout)
                .await
                .inspect_err(|_| {
                    tracing::debug!(error = %first, "partial fetch refused; plain fetch failed too");
                })?;
        }
        Ok(scratch)
    }
}

impl LockSource for UniversalGit {
    fn fetch<'a>(
        &'a self,
        repo: &'a str,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(async move {
            let url = self.url_or_err(repo)?;
            let scratch = self.fetch_commits(&url, &[sha]).await?;
            read_lock_at(&scratch.0, sha, Some(&self.credentials)).await
        })
    }

    fn resolve<'a>(
        &'a self,
        repo: &'a str,
        git_ref: &'a str,
    ) -> BoxFuture<'a, Result<String, FetchError>> {
        Box::pin(async move {
            let url = self.url_or_err(repo)?;
            let env = GitEnv::new(&self.credentials)?;
            let out = run_git(
                None,
                "ls-remote",
                &["ls-remote", &url, git_ref],
                &env,
                self.timeout,
            )
            .await?;
            let text = String::from_utf8_lossy(&out);
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .find(|sha| kici_engine::provider::is_full_sha(sha))
                .map(str::to_string)
                .ok_or_else(|| FetchError::Git {
                    operation: "ls-remote",
                    dir: String::new(),
                    message: format!("{git_ref} not found in {repo}"),
                })
        })
    }

    fn changed_files<'a>(
        &'a self,
        repo: &'a str,
        base: &'a str,
        head: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, FetchError>> {
        Box::pin(async move {
            let url = self.url_or_err(repo)?;
            let scratch = self.fetch_commits(&url, &[base, head]).await?;
            let env = GitEnv::new(&self.credentials)?;
            // Trees are present (blob:none keeps them), so a name-only diff needs no blobs.
            let out = run_git(
                Some(&scratch.0),
                "diff",
                &[
                    "diff",
                    "--name-only",
                    "--no-renames",
                    "-z",
                    base,
                    head,
                    "--",
                ],
                &env,
                self.timeout,
            )
            .await?;
            Ok(split_nul(&out))
        })
    }
}

pub(crate) fn split_nul(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}
