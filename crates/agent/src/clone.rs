//! Fetching the dispatched commit into a fresh checkout (`agent.md` §5).
//!
//! The clone credential never appears in argv, in a URL, in a log line or in `.git/config`:
//! git receives it only through environment-only configuration (`GIT_CONFIG_COUNT` /
//! `GIT_CONFIG_KEY_n` / `GIT_CONFIG_VALUE_n`), which git reads per process and never writes
//! anywhere. Every git process also runs with a cleared environment, no system or global
//! configuration (so no credential helper can store the token) and no terminal prompt.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use kici_engine::protocol::{GitAuth, GitAuthKind};

/// `git fetch` may take this long (`agent.md` §5).
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);
const SHORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to fetch.
#[derive(Debug)]
pub(crate) struct CloneRequest<'a> {
    pub repo_url: &'a str,
    pub git_ref: &'a str,
    /// A full commit id, or `""`/`HEAD` for the tip of `git_ref`.
    pub sha: &'a str,
    pub auth: Option<&'a GitAuth>,
}

/// Why a clone failed; the message is already scrubbed of the credential.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CloneError {
    #[error("clone failed: {0}")]
    Git(String),
    #[error("SHA mismatch: expected {expected}, got {got}")]
    ShaMismatch { expected: String, got: String },
}

/// Fetches the commit into `ws` (an empty directory) and checks it out detached. Returns the
/// commit that was checked out.
pub(crate) fn clone_commit(
    request: &CloneRequest<'_>,
    ws: &Path,
    home: &Path,
) -> Result<String, CloneError> {
    let git = Git::new(ws, home, request)?;
    let pinned = is_full_sha(request.sha);
    if pinned && is_local_path(request.repo_url) {
        // A repository on this machine (a local source): borrow its objects instead of
        // copying them, two git processes instead of four.
        git.run(
            &[
                "clone",
                "-q",
                // No template: the sample hooks it would copy are never used in a job.
                "--template=",
                "--shared",
                "--no-checkout",
                "--no-tags",
                request.repo_url,
                ".",
            ],
            FETCH_TIMEOUT,
        )?;
        git.run(
            &["checkout", "-q", "--detach", request.sha],
            CHECKOUT_TIMEOUT,
        )?;
        return checked_out(ws, &git, request.sha);
    }
    git.run(&["init", "-q", "--template="], SHORT_TIMEOUT)?;
    git.run(
        &["remote", "add", "origin", request.repo_url],
        SHORT_TIMEOUT,
    )?;
    let fetched = if pinned {
        match git.run(
            &["fetch", "--depth=1", "--no-tags", "origin", request.sha],
            FETCH_TIMEOUT,
        ) {
            Ok(_) => true,
            Err(error) if !request.git_ref.is_empty() => {
                tracing::debug!(%error, "fetching the commit directly failed; fetching the ref");
                false
            }
            Err(error) => return Err(error),
        }
    } else {
        false
    };
    if !fetched {
        let depth = if pinned { "--depth=50" } else { "--depth=1" };
        let git_ref = if request.git_ref.is_empty() {
            "HEAD"
        } else {
            request.git_ref
        };
        git.run(
            &["fetch", depth, "--no-tags", "origin", git_ref],
            FETCH_TIMEOUT,
        )?;
    }
    let target = if pinned { request.sha } else { "FETCH_HEAD" };
    git.run(&["checkout", "-q", "--detach", target], CHECKOUT_TIMEOUT)?;
    checked_out(ws, &git, if pinned { request.sha } else { "" })
}

/// The commit now checked out; an error when it is not `expected` (when given).
fn checked_out(ws: &Path, git: &Git<'_>, expected: &str) -> Result<String, CloneError> {
    // A detached HEAD file holds the commit id itself: no process needed to read it.
    let head = match std::fs::read_to_string(ws.join(".git/HEAD")) {
        Ok(text) if is_full_sha(text.trim()) => text.trim().to_string(),
        _ => git
            .run(&["rev-parse", "HEAD"], SHORT_TIMEOUT)?
            .trim()
            .to_string(),
    };
    if !expected.is_empty() && !head.starts_with(expected) {
        return Err(CloneError::ShaMismatch {
            expected: expected.to_string(),
            got: head,
        });
    }
    Ok(head)
}

/// An absolute path: a repository on this machine (`file://` URLs take the fetch path).
fn is_local_path(url: &str) -> bool {
    url.starts_with('/')
}

fn is_full_sha(sha: &str) -> bool {
    (sha.len() == 40 || sha.len() == 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// git with the checkout as its directory and the credential in its environment only.
struct Git<'a> {
    ws: &'a Path,
    env: Vec<(String, String)>,
    /// Texts to scrub from git's messages: the secret and the header that carries it.
    scrub: Vec<String>,
}

impl<'a> Git<'a> {
    fn new(ws: &'a Path, home: &Path, request: &CloneRequest<'_>) -> Result<Self, CloneError> {
        let mut env: Vec<(String, String)> = Vec::new();
        if let Some(path) = std::env::var_os("PATH") {
            env.push(("PATH".into(), path.to_string_lossy().into_owned()));
        }
        env.push(("HOME".into(), home.to_string_lossy().into_owned()));
        env.push(("GIT_TERMINAL_PROMPT".into(), "0".into()));
        env.push(("GIT_LFS_SKIP_SMUDGE".into(), "1".into()));
        env.push(("GIT_CONFIG_NOSYSTEM".into(), "1".into()));
        env.push(("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()));
        env.push(("GIT_ASKPASS".into(), "true".into()));
        env.push(("LC_ALL".into(), "C".into()));
        let mut config: Vec<(String, String)> = Vec::new();
        let mut scrub = Vec::new();
        if let Some(auth) = request.auth {
            match auth.kind {
                GitAuthKind::Basic => {
                    let user = auth.user_or_default().unwrap_or("x-access-token");
                    let basic = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{}", auth.secret.expose()));
                    let header = format!("Authorization: Basic {basic}");
                    scrub.push(auth.secret.expose().to_string());
                    scrub.push(basic);
                    config.push(("http.extraHeader".into(), header));
                }
                GitAuthKind::Ssh => {
                    return Err(CloneError::Git(
                        "ssh clone credentials are not supported by this agent yet".into(),
                    ));
                }
            }
        }
        if !request.repo_url.contains("://") || request.repo_url.starts_with("file://") {
            // A local repository owned by another user would otherwise be refused.
            config.push(("safe.directory".into(), "*".into()));
        }
        env.push(("GIT_CONFIG_COUNT".into(), config.len().to_string()));
        for (i, (key, value)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), key));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), value));
        }
        scrub.retain(|s| s.len() >= 3);
        Ok(Git { ws, env, scrub })
    }

    fn scrubbed(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.scrub {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }

    /// Runs `git -C <ws> <args>` with a deadline; stdout on success.
    fn run(&self, args: &[&str], timeout: Duration) -> Result<String, CloneError> {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(self.ws)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CloneError::Git(format!("cannot run git: {e}")))?;
        // Read both pipes on their own threads so a chatty git cannot block on a full pipe
        // while we wait for it.
        let stdout = child.stdout.take().map(read_all);
        let stderr = child.stderr.take().map(read_all);
        let started = Instant::now();
        // Git commands here take milliseconds: poll from 1 ms and back off, so waiting adds
        // little to each command yet costs nothing on slow fetches.
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(CloneError::Git(format!(
                        "git {} timed out after {}s",
                        args.first().unwrap_or(&""),
                        timeout.as_secs()
                    )));
                }
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => return Err(CloneError::Git(format!("waiting for git: {e}"))),
            }
        };
        let out = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
        let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        if status.success() {
            Ok(out)
        } else {
            let message = err.trim();
            let message = if message.is_empty() {
                format!("git {} exited with {status}", args.first().unwrap_or(&""))
            } else {
                message.to_string()
            };
            Err(CloneError::Git(self.scrubbed(&message)))
        }
    }
}

fn read_all<R: std::io::Read + Send + 'static>(mut reader: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}
