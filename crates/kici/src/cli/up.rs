//! `kici up`: an all-in-one local CI. One process runs the orchestrator on the embedded
//! SQLite database, one agent, and a watcher that turns every new commit on any branch (or
//! new tag) of the current repository into a push event on a local source. Runs print live,
//! the way `kici run local` prints them, and stay in the API (`kici admin runs …`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use kici_agent::{AgentConfig, Control};
use kici_engine::protocol::Secret;
use kici_orchestrator::config::{LockSourceConfig, SourceConfig, SourceKind};
use kici_orchestrator::events::Change;
use kici_orchestrator::provider::LocalSettings;
use kici_orchestrator::{Config, Orchestrator};
use kici_store::{AgentTokenKind, NewAdminToken, NewAgentToken, Store};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientError, Token, encode};
use super::printer::Printer;
use super::settings::{now_ms, shutdown_signal};
use super::{GlobalArgs, exit};

/// The name of the source `kici up` registers for the current repository.
pub const SOURCE_NAME: &str = "local";
const TOKEN_LABEL: &str = "kici up";

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Port of the API and the agents' WebSocket (0 = any free port).
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Where the database, logs and job workspaces live (default: <git dir>/kici).
    #[arg(long, value_name = "PATH")]
    data_dir: Option<PathBuf>,
    /// Jobs the agent runs at once.
    #[arg(long, default_value_t = 2)]
    slots: u32,
    /// Extra agent labels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Also run the current branch's head once at start.
    #[arg(long)]
    run_now: bool,
    /// How often refs are checked for new commits, in milliseconds.
    #[arg(long, default_value_t = 300)]
    poll_ms: u64,
}

pub fn run(global: &GlobalArgs, args: &UpArgs) -> u8 {
    let location = match super::repo::locate(global.kici_dir.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot determine the current directory: {e}");
            return exit::FAILURE;
        }
    };
    let root = location.git_root.clone();
    if super::repo::git_root(&root).is_none() {
        eprintln!(
            "error: {} is not inside a git repository; `kici up` runs the commits of one",
            root.display()
        );
        return exit::USAGE;
    }
    if !global.quiet && git(&root, &["cat-file", "-e", "HEAD:.kici/kici.lock.json"]).is_err() {
        eprintln!(
            "note: HEAD has no .kici/kici.lock.json, so commits start nothing yet: run `kici init` (or write .kici/workflows/*.ts), `kici compile`, and commit the lock"
        );
    }
    if args.slots == 0 || args.slots > 256 {
        eprintln!("error: --slots must be from 1 to 256");
        return exit::USAGE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    let layout = match layout(args, &root) {
        Ok(layout) => layout,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::FAILURE;
        }
    };
    match runtime.block_on(serve(global, args, &root, layout)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            exit::FAILURE
        }
    }
}

/// Where `kici up` keeps its state for a repository, read with git before the runtime starts.
struct Layout {
    data_dir: PathBuf,
    /// `owner/name` of the repository.
    repo: String,
    /// The local source's base directory, holding a link `<owner>/<name>` → the repository.
    base: PathBuf,
}

fn layout(args: &UpArgs, root: &Path) -> Result<Layout, String> {
    let git_dir = PathBuf::from(git(root, &["rev-parse", "--absolute-git-dir"])?);
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| git_dir.join("kici"));
    let repo = repo_identifier(root);
    // The local source reads `<base>/<owner>/<name>`: point that at the repository.
    let base = data_dir.join("repos");
    link_repository(&base, &repo, root)?;
    Ok(Layout {
        data_dir,
        repo,
        base,
    })
}

async fn serve(
    global: &GlobalArgs,
    args: &UpArgs,
    root: &Path,
    layout: Layout,
) -> Result<u8, String> {
    let Layout {
        data_dir,
        repo,
        base,
    } = layout;

    let session_token = kici_store::generate_token("kadm_").map_err(|e| e.to_string())?;
    let mut config = Config::new(&data_dir);
    config.bind = std::net::SocketAddr::new(args.bind, args.port);
    config.bootstrap_admin_token = Some(Secret::new(session_token.clone()));
    config.agents.queue_drain_interval = Duration::from_secs(1);
    config.sources.push(SourceConfig {
        name: SOURCE_NAME.into(),
        org_id: "default".into(),
        kind: SourceKind::Local(Box::new(LocalSettings::new(&base))),
        lock: LockSourceConfig::LocalFile { base: base.clone() },
    });
    let cancel = CancellationToken::new();
    let handle = Orchestrator::start(config, cancel.clone())
        .await
        .map_err(|e| {
            if args.port != 0 && e.to_string().contains("in use") {
                format!(
                    "{e}; another server uses port {}: pass --port 0 for any free port",
                    args.port
                )
            } else {
                e.to_string()
            }
        })?;
    let addr = handle.local_addr();
    let store = handle.state().store().clone();
    let agent_token = session_credentials(&store, &session_token).await?;
    let token_file = data_dir.join("admin-token");
    write_private(&token_file, &session_token)?;

    let hostname = kici_agent::local_hostname();
    let mut agent = AgentConfig::new(
        format!("ws://{addr}/ws"),
        format!("up-{}", sanitize(&hostname)),
        data_dir.join("work"),
    );
    agent.token = Some(Secret::new(agent_token));
    agent.labels = args.labels.clone();
    agent.max_concurrent_jobs = args.slots;
    agent.hostname = hostname;
    let (agent_control, agent_receiver) = mpsc::channel(4);
    let agent_task = tokio::spawn(kici_agent::run(agent, agent_receiver));

    let client = Client::new(&format!("http://{addr}"), Some(Token::new(session_token)))
        .map_err(|e| e.to_string())?;
    if !global.quiet {
        eprintln!(
            "kici up: watching {} ({repo}); new commits on any branch run as push events",
            root.display()
        );
        eprintln!(
            "  orchestrator  http://{addr}  (SQLite in {})",
            super::repo::display_path(&data_dir)
        );
        eprintln!(
            "  agent         {} slot{}",
            args.slots,
            if args.slots == 1 { "" } else { "s" }
        );
        eprintln!(
            "  admin API     KICI_ADMIN_URL=http://{addr} KICI_ADMIN_TOKEN=$(cat {}) kici admin runs list",
            super::repo::display_path(&token_file)
        );
        eprintln!("Press Ctrl-C to stop.");
    }

    let printer = Arc::new(Printer::new(global));
    let followers = tokio::spawn(follow_new_runs(
        handle.state().events().subscribe(),
        client.clone(),
        printer.clone(),
    ));
    let watcher = tokio::spawn(watch_refs(
        root.to_path_buf(),
        repo.clone(),
        client.clone(),
        Duration::from_millis(args.poll_ms.max(50)),
        args.run_now,
    ));

    let stopped_by = tokio::select! {
        signal = shutdown_signal() => signal,
        result = watcher => match result {
            Ok(Err(message)) => { eprintln!("error: {message}"); "watcher error" }
            _ => "watcher stopped",
        },
    };
    eprintln!("kici up: {stopped_by}; stopping the agent and the orchestrator");
    let _ = agent_control.send(Control::Terminate).await;
    let _ = tokio::time::timeout(Duration::from_secs(90), agent_task).await;
    followers.abort();
    printer.flush();
    handle.shutdown().await;
    Ok(if stopped_by == "watcher error" {
        exit::FAILURE
    } else {
        exit::OK
    })
}

/// Makes the session's admin token valid (it is the bootstrap token only on a first start),
/// revokes older `kici up` tokens, and mints an agent token for this session.
async fn session_credentials(store: &Store, session_token: &str) -> Result<String, String> {
    let now = now_ms();
    let current = match store
        .authenticate_admin_token(session_token, now)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(token) => token.id,
        None => {
            let new = NewAdminToken {
                label: TOKEN_LABEL.into(),
                role: "owner".into(),
                expires_at: None,
            };
            store
                .insert_admin_token(&new, session_token, now)
                .await
                .map_err(|e| e.to_string())?
                .id
        }
    };
    for token in store.list_admin_tokens().await.map_err(|e| e.to_string())? {
        if token.label == TOKEN_LABEL && token.id != current && token.revoked_at.is_none() {
            let _ = store.revoke_admin_token(&token.id, now).await;
        }
    }
    let agent = NewAgentToken {
        label: Some(TOKEN_LABEL.into()),
        labels: None,
        mandatory_labels: Vec::new(),
        privileged_root: false,
        kind: AgentTokenKind::Static,
        bound_agent_id: None,
        max_uses: None,
        expires_at: None,
    };
    let (_, token) = store
        .create_agent_token(&agent, now)
        .await
        .map_err(|e| e.to_string())?;
    Ok(token)
}

/// `<base>/<owner>/<name>` → the repository, replacing a stale link.
fn link_repository(base: &Path, repo: &str, root: &Path) -> Result<(), String> {
    let link = base.join(repo);
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match std::fs::read_link(&link) {
        Ok(target) if target == root => return Ok(()),
        Ok(_) => std::fs::remove_file(&link)
            .map_err(|e| format!("cannot replace {}: {e}", link.display()))?,
        Err(_) if link.exists() => {
            return Err(format!(
                "{} exists and is not a link to the repository; remove it",
                link.display()
            ));
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(root, &link)
        .map_err(|e| format!("cannot link {}: {e}", link.display()))
}

/// Writes `text` to a file only the user can read.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Follows every run the orchestrator creates, each on its own thread, until aborted.
async fn follow_new_runs(
    mut changes: tokio::sync::broadcast::Receiver<Change>,
    client: Client,
    printer: Arc<Printer>,
) {
    let mut seen = HashSet::new();
    loop {
        let change = match changes.recv().await {
            Ok(change) => change,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let run_id = change.run_id().to_string();
        if !seen.insert(run_id.clone()) {
            continue;
        }
        let client = client.clone();
        let printer = printer.clone();
        tokio::task::spawn_blocking(move || {
            match super::remote::follow_run(&client, &run_id, printer.as_ref()) {
                Ok(followed) => {
                    let w = &followed.workflow;
                    printer.write(&format!(
                        "=== {}: {} ({}ms) — run {run_id} ===",
                        w.name,
                        w.status.as_str().to_uppercase(),
                        w.duration_ms
                    ));
                }
                Err(e) => printer.write(&format!("error: cannot follow run {run_id}: {e}")),
            }
        });
    }
}

/// Polls branch and tag tips; every new or moved ref becomes a push on the local source.
async fn watch_refs(
    root: PathBuf,
    repo: String,
    client: Client,
    every: Duration,
    run_now: bool,
) -> Result<(), String> {
    let mut tips = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || ref_tips(&root))
            .await
            .map_err(|e| e.to_string())??
    };
    if run_now {
        let root = root.clone();
        let (repo, client) = (repo.clone(), client.clone());
        tokio::task::spawn_blocking(move || {
            let push = local_push(&root, &repo, None, None, None, false)?;
            post_push(&client, SOURCE_NAME, &push).map_err(|e| e.to_string())?;
            eprintln!("→ push {} {}", push.git_ref, short(&push.after));
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| e.to_string())??;
    }
    loop {
        tokio::time::sleep(every).await;
        let root2 = root.clone();
        let now = match tokio::task::spawn_blocking(move || ref_tips(&root2)).await {
            Ok(Ok(now)) => now,
            // A ref being rewritten can make one read fail; the next poll sees it settled.
            Ok(Err(_)) | Err(_) => continue,
        };
        let changes = ref_changes(&tips, &now);
        tips = now;
        for (git_ref, before, after) in changes {
            let (root, repo, client) = (root.clone(), repo.clone(), client.clone());
            tokio::task::spawn_blocking(move || {
                let push = push_body(&root, &repo, git_ref, before, after);
                match post_push(&client, SOURCE_NAME, &push) {
                    Ok(answer) => {
                        eprintln!("→ push {} {}", push.git_ref, short(&push.after));
                        if let Some(id) = answer.get("id").and_then(Value::as_str) {
                            report_outcome(&client, id, &push);
                        }
                    }
                    Err(e) => eprintln!("error: cannot send the push: {e}"),
                }
            });
        }
    }
}

/// Says what became of a push that started no run (runs print themselves).
fn report_outcome(client: &Client, inbox_id: &str, push: &LocalPush) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let Ok(item) = client.get(&format!("/api/v1/admin/inbox/{}", encode(inbox_id))) else {
            return;
        };
        let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or("");
        let at = format!("{} {}", push.git_ref, short(&push.after));
        match (text("status"), text("outcome")) {
            ("done", "matched") => return,
            ("done", "no_match") => return eprintln!("  no workflow matched the push of {at}"),
            ("done", "no_lock") => {
                return eprintln!(
                    "  {at} has no .kici/kici.lock.json: compile and commit the lock"
                );
            }
            ("done", outcome) => {
                return eprintln!("  the push of {at} started nothing ({outcome})");
            }
            ("dead", _) => {
                return eprintln!("error: the push of {at} failed: {}", text("lastError"));
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

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
    // Runs on blocking threads only (spawn_blocking or before the runtime).
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
        None => git(
            repo_dir,
            &["rev-parse", "--verify", "--quiet", &format!("{after}^")],
        )
        .unwrap_or_else(|_| ZERO_SHA.to_string()),
    };
    Ok(push_body(repo_dir, repo, git_ref, before, after))
}

fn push_body(
    repo_dir: &Path,
    repo: &str,
    git_ref: String,
    before: String,
    after: String,
) -> LocalPush {
    let default_branch =
        git(repo_dir, &["symbolic-ref", "--short", "HEAD"]).unwrap_or_else(|_| "main".into());
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
            ("x-delivery-id", &delivery),
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
        .and_then(|url| super::preview::repo_from_url(&url));
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
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.trim_matches('.').is_empty() {
        "repo".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                (
                    "refs/heads/main".to_string(),
                    "a".repeat(40),
                    "d".repeat(40)
                ),
                (
                    "refs/tags/v1".to_string(),
                    ZERO_SHA.to_string(),
                    "e".repeat(40)
                ),
            ]
        );
    }
}
