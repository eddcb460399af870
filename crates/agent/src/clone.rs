//! Fetching the dispatched commit into a fresh checkout (`agent.md` §5).
//!
//! The clone credential never appears in argv, in a URL, in a log line or in `.git/config`:
//! git receives it only through environment-only configuration (`GIT_CONFIG_COUNT` /
//! `GIT_CONFIG_KEY_n` / `GIT_CONFIG_VALUE_n`), which git reads per process and never writes
//! anywhere. Every git process also runs with a cleared environment, no system or global
//! configuration (so no credential helper can store the token) and no terminal prompt.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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
        // copying them. The repository around the checkout is written here rather than by
        // `git clone --shared`, which costs a process and a ref negotiation (≈ 10 ms of the
        // ≈ 13 ms); what is left is one `git checkout`.
        if let Some(objects) = local_objects_dir(Path::new(request.repo_url)) {
            let seeded = seed_borrowing_repository(ws, request.repo_url, &objects, request.sha)
                .map_err(|e| CloneError::Git(format!("cannot prepare the checkout: {e}")))?;
            if seeded {
                git.run(
                    &["checkout", "-q", "--detach", request.sha],
                    CHECKOUT_TIMEOUT,
                )?;
                return checked_out(ws, &git, request.sha);
            }
        }
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

/// The object directory of the repository at `path` (a work tree, a linked worktree or
/// submodule whose `.git` is a file, or a bare repository); `None` when `path` is none of
/// these, and `git clone` is left to say why.
fn local_objects_dir(path: &Path) -> Option<PathBuf> {
    let dot_git = path.join(".git");
    let git_dir = if dot_git.is_dir() {
        dot_git
    } else if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = text.strip_prefix("gitdir:")?.trim();
        path.join(target)
    } else if path.join("HEAD").is_file() && path.join("objects").is_dir() {
        path.to_path_buf()
    } else {
        return None;
    };
    // A linked worktree keeps its objects in the main repository (`commondir`).
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(text) => git_dir.join(text.trim()),
        Err(_) => git_dir,
    };
    let objects = common.join("objects");
    objects
        .is_dir()
        .then(|| objects.canonicalize().unwrap_or(objects))
}

/// Writes, into the empty `ws`, the repository `git clone --shared --no-checkout` would
/// make: objects borrowed from `objects` (alternates), `origin` pointing at `url`, `HEAD`
/// detached at `sha`. `Ok(false)`: a path git's config syntax cannot carry, left to
/// `git clone`.
fn seed_borrowing_repository(
    ws: &Path,
    url: &str,
    objects: &Path,
    sha: &str,
) -> std::io::Result<bool> {
    let objects = objects.to_string_lossy();
    if url.contains(['\n', '\r']) || objects.contains(['\n', '\r']) {
        return Ok(false);
    }
    let git = ws.join(".git");
    for dir in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        std::fs::create_dir_all(git.join(dir))?;
    }
    // SHA-256 repositories need the object-format extension, which needs format version 1.
    let (version, extensions) = if sha.len() == 64 {
        ("1", "[extensions]\n\tobjectformat = sha256\n")
    } else {
        ("0", "")
    };
    let config = format!(
        "[core]\n\trepositoryformatversion = {version}\n\tfilemode = true\n\tbare = false\n\
         \tlogallrefupdates = true\n{extensions}[remote \"origin\"]\n\turl = {}\n\
         \tfetch = +refs/heads/*:refs/remotes/origin/*\n",
        config_quoted(url)
    );
    std::fs::write(git.join("config"), config)?;
    std::fs::write(git.join("objects/info/alternates"), format!("{objects}\n"))?;
    std::fs::write(git.join("HEAD"), format!("{sha}\n"))?;
    Ok(true)
}

/// A value in git's config syntax: quoted, with `\` and `"` escaped.
fn config_quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
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
        // Waited for on its own thread, so the result is seen the moment git exits (polling
        // with back-off added up to half of a short command's time) while the deadline holds.
        let pid = child.id();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(child.wait());
        });
        let status = match done_rx.recv_timeout(timeout) {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(CloneError::Git(format!("waiting for git: {e}"))),
            Err(_) => {
                if let Ok(pid) = i32::try_from(pid) {
                    // No status arrived, so the waiter had not reaped it a moment ago; a pid
                    // is not recycled within that moment.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = done_rx.recv();
                return Err(CloneError::Git(format!(
                    "git {} timed out after {}s",
                    args.first().unwrap_or(&""),
                    timeout.as_secs()
                )));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A repository `<scratch>/<name>` with two commits in `object_format` (`sha1`,
    /// `sha256`); returns its path and the first commit's id.
    fn source_repo(scratch: &Path, name: &str, object_format: &str) -> (PathBuf, String) {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).expect("source dir");
        let format = format!("--object-format={object_format}");
        git(&dir, &["init", "-q", "-b", "main", &format]);
        let commit = |message: &str| {
            std::fs::write(dir.join("file.txt"), message).expect("write");
            git(&dir, &["add", "."]);
            git(
                &dir,
                &[
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "commit",
                    "-qm",
                    message,
                ],
            );
            git(&dir, &["rev-parse", "HEAD"])
        };
        let first = commit("first");
        commit("second");
        (dir, first)
    }

    fn clone_into(url: &str, sha: &str, scratch: &Path) -> Result<String, CloneError> {
        let ws = scratch.join("ws");
        let home = scratch.join("home");
        std::fs::create_dir_all(&ws).expect("ws");
        std::fs::create_dir_all(&home).expect("home");
        let request = CloneRequest {
            repo_url: url,
            git_ref: "refs/heads/main",
            sha,
            auth: None,
        };
        clone_commit(&request, &ws, &home)
    }

    /// The checkout borrowing a local repository's objects is an ordinary clone to the
    /// steps: clean status, the exact commit, `origin` fetchable.
    fn assert_usable_checkout(ws: &Path, sha: &str, url: &str) {
        assert_eq!(git(ws, &["rev-parse", "HEAD"]), sha);
        assert_eq!(git(ws, &["status", "--porcelain"]), "");
        assert_eq!(
            std::fs::read_to_string(ws.join("file.txt")).expect("file"),
            "first"
        );
        assert_eq!(git(ws, &["remote", "get-url", "origin"]), url);
        git(ws, &["fetch", "-q", "origin"]);
        assert!(git(ws, &["branch", "-r"]).contains("origin/main"));
    }

    #[test]
    fn a_local_work_tree_is_checked_out_at_the_pinned_commit() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let name = "source with \"quotes\" \\ and spaces";
        let (source, sha) = source_repo(scratch.path(), name, "sha1");
        let url = source.to_str().expect("utf-8 path");
        assert_eq!(clone_into(url, &sha, scratch.path()).expect("clone"), sha);
        let ws = scratch.path().join("ws");
        assert_usable_checkout(&ws, &sha, url);
        // Objects are borrowed, not copied.
        let alternates =
            std::fs::read_to_string(ws.join(".git/objects/info/alternates")).expect("alternates");
        assert!(
            alternates.trim_end().ends_with("/.git/objects"),
            "{alternates}"
        );
    }

    #[test]
    fn bare_repositories_and_linked_worktrees_lend_their_objects_too() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let (source, sha) = source_repo(scratch.path(), "source", "sha1");
        let bare = scratch.path().join("bare.git");
        git(
            scratch.path(),
            &[
                "clone",
                "-q",
                "--bare",
                source.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        let linked = scratch.path().join("linked");
        git(
            &source,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                linked.to_str().unwrap(),
            ],
        );
        assert_eq!(
            local_objects_dir(&bare),
            Some(bare.join("objects").canonicalize().unwrap())
        );
        assert_eq!(
            local_objects_dir(&linked),
            Some(source.join(".git/objects").canonicalize().unwrap())
        );
        for (name, url) in [("from-bare", &bare), ("from-linked", &linked)] {
            let dir = scratch.path().join(name);
            let url = url.to_str().unwrap();
            assert_eq!(clone_into(url, &sha, &dir).expect("clone"), sha);
            assert_usable_checkout(&dir.join("ws"), &sha, url);
        }
    }

    #[test]
    fn a_sha256_repository_is_checked_out_too() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let (source, sha) = source_repo(scratch.path(), "source", "sha256");
        assert_eq!(sha.len(), 64);
        let url = source.to_str().unwrap();
        assert_eq!(clone_into(url, &sha, scratch.path()).expect("clone"), sha);
        let ws = scratch.path().join("ws");
        assert_eq!(git(&ws, &["rev-parse", "--show-object-format"]), "sha256");
        assert_eq!(git(&ws, &["status", "--porcelain"]), "");
    }

    #[test]
    fn a_directory_that_is_no_repository_fails_with_gits_reason() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let empty = scratch.path().join("empty");
        std::fs::create_dir_all(&empty).expect("dir");
        assert_eq!(local_objects_dir(&empty), None);
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let error = clone_into(empty.to_str().unwrap(), sha, scratch.path()).unwrap_err();
        assert!(error.to_string().starts_with("clone failed: "), "{error}");
    }

    #[test]
    fn a_commit_the_repository_lacks_is_a_clear_failure() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let (source, _) = source_repo(scratch.path(), "source", "sha1");
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let error = clone_into(source.to_str().unwrap(), missing, scratch.path()).unwrap_err();
        assert!(error.to_string().contains(missing), "{error}");
    }

    #[test]
    fn a_git_command_past_its_deadline_is_killed_and_reported() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let request = CloneRequest {
            repo_url: "https://example.invalid/r.git",
            git_ref: "",
            sha: "",
            auth: None,
        };
        let git = Git::new(scratch.path(), scratch.path(), &request).expect("git");
        let started = std::time::Instant::now();
        let error = git
            .run(
                &["-c", "alias.hang=!sleep 30", "hang"],
                Duration::from_millis(200),
            )
            .unwrap_err();
        assert!(error.to_string().contains("timed out"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
