//! `kici up`: an all-in-one local CI. One process runs the orchestrator on the embedded
//! SQLite database, one agent, and a watcher that turns every new commit on any branch (or
//! new tag) of the current repository into a push event on a local source. Runs print live,
//! the way `kici run local` prints them, and stay in the API (`kici admin runs …`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::client::{Client, ClientError, encode};

/// A push as the local source's `post-receive` hook would send it (`orchestrator.md` §4.4).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPush {
    pub git_ref: String,
    pub before: String,
    pub after: String,
    pub body: Value,
}

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "git {} in {} failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Builds the push body for `repo_dir`. Defaults: the current branch and the commit it
/// points at; `before` is the first parent (or zeros for a root commit).
pub fn local_push(
    repo_dir: &Path,
    repo: &str,
    git_ref: Option<&str>,
    sha: Option<&str>,
    before: Option<&str>,
    tag: bool,
) -> Result<LocalPush, String> {
    let git_ref = match git_ref {
        Some(r) if r.starts_with("refs/") => r.to_string(),
        Some(r) if tag => format!("refs/tags/{r}"),
        Some(r) => format!("refs/heads/{r}"),
        None => git(repo_dir, &["symbolic-ref", "HEAD"])
            .map_err(|e| format!("{e} (pass --ref when HEAD is detached)"))?,
    };
    let after = match sha {
        Some(sha) => sha.to_string(),
        None => git(repo_dir, &["rev-parse", &format!("{git_ref}^{{commit}}")])?,
    };
    let before = match before {
        Some(before) => before.to_string(),
        None => git(repo_dir, &["rev-parse", "--verify", "--quiet", &format!("{after}^")])
            .unwrap_or_else(|_| ZERO_SHA.to_string()),
    };
    Ok(push_body(repo_dir, repo, git_ref, before, after))
}

fn push_body(repo_dir: &Path, repo: &str, git_ref: String, before: String, after: String) -> LocalPush {
    let default_branch = git(repo_dir, &["symbolic-ref", "--short", "HEAD"]).unwrap_or_else(|_| "main".into());
    let sender = std::env::var("USER").unwrap_or_else(|_| "local".into());
    let body = json!({
        "ref": git_ref,
        "before": before,
        "after": after,
        "created": before == ZERO_SHA,
        "deleted": after == ZERO_SHA,
        "repository": { "full_name": repo, "default_branch": default_branch },
        "sender": { "login": sender },
        "head_commit": { "id": after },
    });
    LocalPush {
        git_ref,
        before,
        after,
        body,
    }
}

/// Posts a push to the local source's webhook route.
pub fn post_push(client: &Client, source: &str, push: &LocalPush) -> Result<Value, ClientError> {
    let body = serde_json::to_vec(&push.body).unwrap_or_default();
    let delivery = format!("local-{}-{}", push.after, encode(&push.git_ref));
    client.post_raw(
        &format!("/webhook/default/generic/{}", encode(source)),
        &[
            ("content-type", "application/json"),
            ("x-event-type", "push"),
            ("x-kici-delivery", &delivery),
        ],
        body,
    )
}

/// Branch and tag tips: `refs/heads/*` and `refs/tags/*` → commit.
pub fn ref_tips(repo_dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = git(
        repo_dir,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
            "refs/tags",
        ],
    )?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, sha)| (name.to_string(), sha.to_string()))
        .collect())
}

/// The pushes that take `old` to `new`: new and moved refs (deleted refs start nothing).
pub fn ref_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<(String, String, String)> {
    new.iter()
        .filter_map(|(name, sha)| match old.get(name) {
            Some(previous) if previous == sha => None,
            Some(previous) => Some((name.clone(), previous.clone(), sha.clone())),
            None => Some((name.clone(), ZERO_SHA.to_string(), sha.clone())),
        })
        .collect()
}

/// `owner/name` of the repository: from `origin` when it names one, else `local/<dir>`.
pub fn repo_identifier(root: &Path) -> String {
    let from_origin = git(root, &["remote", "get-url", "origin"])
        .ok()
        .and_then(|url| owner_name(&url));
    from_origin.unwrap_or_else(|| {
        let dir = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repo".into());
        format!("local/{}", sanitize(&dir))
    })
}

fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    if cleaned.trim_matches('.').is_empty() {
        "repo".into()
    } else {
        cleaned
    }
}

/// The last two path segments of a git URL (`git@host:acme/app.git`, `https://host/acme/app`).
fn owner_name(url: &str) -> Option<String> {
    let path = url.trim_end_matches('/').trim_end_matches(".git");
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p)?,
        None => path.rsplit_once(':').map(|(_, p)| p).unwrap_or(path),
    };
    let mut parts = path.rsplit('/');
    let name = parts.next().filter(|s| !s.is_empty())?;
    let owner = parts.next().filter(|s| !s.is_empty())?;
    Some(format!("{}/{}", sanitize(owner), sanitize(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_name_come_from_common_url_shapes() {
        for (url, want) in [
            ("git@github.com:acme/app.git", Some("acme/app")),
            ("https://github.com/acme/app", Some("acme/app")),
            ("https://gitea.example/org/sub/app.git/", Some("sub/app")),
            ("ssh://git@host:22/acme/app.git", Some("acme/app")),
            ("/srv/git/acme/app.git", Some("acme/app")),
            ("app", None),
        ] {
            assert_eq!(owner_name(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn ref_changes_report_new_and_moved_refs_only() {
        let old = BTreeMap::from([
            ("refs/heads/main".to_string(), "a".repeat(40)),
            ("refs/heads/gone".to_string(), "b".repeat(40)),
            ("refs/heads/same".to_string(), "c".repeat(40)),
        ]);
        let new = BTreeMap::from([
            ("refs/heads/main".to_string(), "d".repeat(40)),
            ("refs/heads/same".to_string(), "c".repeat(40)),
            ("refs/tags/v1".to_string(), "e".repeat(40)),
        ]);
        assert_eq!(
            ref_changes(&old, &new),
            vec![
                ("refs/heads/main".to_string(), "a".repeat(40), "d".repeat(40)),
                ("refs/tags/v1".to_string(), ZERO_SHA.to_string(), "e".repeat(40)),
            ]
        );
    }
}
