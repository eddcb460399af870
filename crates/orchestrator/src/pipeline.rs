//! The inbox processor (`orchestrator.md` §3.3, §5): workers claim stored deliveries,
//! normalise them, read the lock at the event's commit, match triggers and create one run
//! per matched workflow. Errors before run creation (lock fetch, git, database) put the item
//! back with backoff and, after the attempt budget, into the dead-letter state; they are
//! never read as "no lock".

use kici_engine::event::Event;
use kici_engine::lock::LockFile;
use kici_engine::provider::{
    self, ChangedFilesPlan, Headers, Normalised, NormalisedEvent, Revision,
};
use kici_engine::trigger::match_all_workflows;
use kici_store::{CreateRunOutcome, FailOutcome, InboxItem};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::sync::Arc;

use crate::api::AppState;
use crate::lock_cache::LockCache;
use crate::lock_source::{FetchError, Fetched};
use crate::plan::{RunContext, lock_failure_run, plan_run};
use crate::provider::Provider;
use crate::source::Source;

/// How an item ended when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// The inbox `outcome` (§3.1).
    pub outcome: &'static str,
    pub decisions: Option<Value>,
    pub run_ids: Vec<String>,
}

impl Done {
    fn bare(outcome: &'static str) -> Done {
        Done {
            outcome,
            decisions: None,
            run_ids: Vec::new(),
        }
    }

    fn because(outcome: &'static str, reason: impl std::fmt::Display) -> Done {
        Done {
            outcome,
            decisions: Some(json!({ "reason": reason.to_string() })),
            run_ids: Vec::new(),
        }
    }
}

/// A failure worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum Retryable {
    #[error("lock fetch failed: {0}")]
    Lock(#[from] crate::lock_source::FetchError),
    #[error("database error: {0}")]
    Store(#[from] kici_store::Error),
}

/// Starts `config.inbox.workers` workers on `tracker`; they stop when `cancel` fires.
pub fn spawn_workers(state: &AppState, tracker: &TaskTracker, cancel: &CancellationToken) {
    let workers = state.inner.config.inbox.workers.max(1);
    for n in 0..workers {
        let worker_id = format!("{}/inbox-{n}", state.inner.config.node_id);
        tracker.spawn(worker(state.clone(), worker_id, cancel.clone()));
    }
    tracker.spawn(lease_sweeper(state.clone(), cancel.clone()));
}

/// Items of this node left `processing` by a previous run of the process (killed mid-item)
/// go back to `retry` at once instead of waiting for their lease (§3.3).
pub async fn recover_leases_at_start(state: &AppState) -> Result<(), kici_store::Error> {
    let node = &state.inner.config.node_id;
    let requeued = state
        .store()
        .requeue_inbox_leases_of_node(node, crate::now_ms())
        .await?;
    if requeued > 0 {
        tracing::warn!(
            requeued,
            "inbox items left processing by a previous run were requeued"
        );
    }
    Ok(())
}

/// How often expired inbox leases are returned to `retry` (§10).
const LEASE_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// §3.3 / §10: `processing` items whose lease expired (their worker died) go back to `retry`.
async fn lease_sweeper(state: AppState, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(LEASE_SWEEP_INTERVAL) => {}
        }
        match state
            .store()
            .requeue_expired_inbox_leases(crate::now_ms())
            .await
        {
            Ok(0) => {}
            Ok(requeued) => {
                tracing::warn!(requeued, "expired inbox leases requeued");
                state.inner.inbox_wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "inbox lease sweep failed"),
        }
    }
}

async fn worker(state: AppState, worker_id: String, cancel: CancellationToken) {
    let poll = state.inner.config.inbox.poll_interval;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        match run_once(&state, &worker_id).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(worker = %worker_id, error = %e, "inbox claim failed"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = state.inner.inbox_wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// Claims and processes at most one item. `Ok(false)`: nothing was due.
pub async fn run_once(state: &AppState, worker_id: &str) -> Result<bool, kici_store::Error> {
    let config = &state.inner.config.inbox;
    let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
    let store = state.store();
    let Some(item) = store
        .claim_inbox(worker_id, crate::now_ms(), lease_ms)
        .await?
    else {
        return Ok(false);
    };
    let metrics = state.metrics();
    match process(state, &item).await {
        Ok(done) => {
            let written = store
                .complete_inbox(
                    &item.id,
                    worker_id,
                    done.outcome,
                    done.decisions.as_ref(),
                    &done.run_ids,
                    crate::now_ms(),
                )
                .await?;
            if written {
                metrics.webhook_processed(if done.outcome == "matched" {
                    "matched"
                } else {
                    "skipped"
                });
                tracing::info!(inbox = %item.id, outcome = done.outcome, runs = done.run_ids.len(), "inbox item processed");
            } else {
                tracing::warn!(inbox = %item.id, "inbox lease lost before completion");
            }
        }
        Err(error) => {
            let delay = retry_delay(state, item.attempts);
            let message = error.to_string();
            match store
                .fail_inbox(&item.id, worker_id, &message, crate::now_ms(), delay)
                .await?
            {
                FailOutcome::Retry { next_attempt_at } => {
                    metrics.webhook_processed("error");
                    tracing::warn!(inbox = %item.id, attempts = item.attempts, next_attempt_at, error = %message, "inbox item will be retried");
                }
                FailOutcome::Dead => {
                    metrics.inbox_dead();
                    tracing::error!(inbox = %item.id, attempts = item.attempts, error = %message, "inbox item dead-lettered");
                }
                FailOutcome::LeaseLost => {
                    tracing::warn!(inbox = %item.id, "inbox lease lost before recording a failure");
                }
            }
        }
    }
    Ok(true)
}

fn retry_delay(state: &AppState, attempts: i64) -> i64 {
    if let Some(fixed) = state.inner.config.inbox.fixed_retry_delay {
        return i64::try_from(fixed.as_millis()).unwrap_or(i64::MAX);
    }
    let mut bytes = [0u8; 8];
    let jitter = match getrandom::fill(&mut bytes) {
        // 53 random bits → [0, 1).
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    };
    kici_store::inbox_backoff_ms(attempts, jitter)
}

/// Processes one claimed item (§5).
pub async fn process(state: &AppState, item: &InboxItem) -> Result<Done, Retryable> {
    let Some(source) = state.inner.sources.get(&item.routing_key) else {
        return Ok(Done::because("ignored", "the source no longer exists"));
    };
    let Some(body) = item.body.as_deref() else {
        return Ok(Done::because(
            "ignored",
            "bodies stored outside the database are not supported yet",
        ));
    };
    let (normalised, manual) = if item.provider == "manual" {
        match manual_event(body) {
            Ok((event, manual)) => (Ok(Normalised::Event(Box::new(event))), manual),
            Err(reason) => return Ok(Done::because("ignored", reason)),
        }
    } else {
        let headers = Headers::from_json(&item.headers);
        (
            Provider::normalise(source.as_ref(), &headers, body),
            ManualOptions::default(),
        )
    };
    let normalised = match normalised {
        Ok(Normalised::Event(event)) => *event,
        Ok(Normalised::Ignored { reason }) => return Ok(Done::because(reason.outcome(), reason)),
        Err(e) => return Ok(Done::because("ignored", e)),
    };
    let Some(repo) = normalised.event.source_repo.clone() else {
        return Ok(Done::bare("no_repository"));
    };
    plan_event(state, &source, item, &repo, normalised, &manual).await
}

/// What a manual item (`POST dispatch`, `POST runs/:id/rerun`) adds to plain matching.
#[derive(Debug, Default)]
struct ManualOptions {
    /// Only this workflow may start (`kici run remote --workflow`, re-runs).
    workflow: Option<String>,
    /// The run this one re-runs.
    parent_run_id: Option<String>,
    /// Who asked (the admin token's label).
    requested_by: Option<String>,
}

impl ManualOptions {
    fn from_request(request: &Value) -> ManualOptions {
        let text = |key: &str| request.get(key).and_then(Value::as_str).map(str::to_string);
        ManualOptions {
            workflow: text("workflow"),
            parent_run_id: text("parentRunId"),
            requested_by: text("requestedBy"),
        }
    }
}

async fn plan_event(
    state: &AppState,
    source: &Source,
    item: &InboxItem,
    repo: &str,
    normalised: NormalisedEvent,
    manual: &ManualOptions,
) -> Result<Done, Retryable> {
    let lock_source: &dyn Provider = source;
    // Trust (§5.1): fork pull requests are untrusted; the default policy skips them.
    if normalised.is_pull_request() && normalised.event.is_fork_pr == Some(true) {
        return Ok(Done::because("ignored", "Skipped: untrusted pull request"));
    }
    let sha = match &normalised.revision {
        Revision::Commit(sha) => sha.clone(),
        Revision::Ref(git_ref) => lock_source.resolve_ref(repo, git_ref).await?,
        Revision::DefaultBranchHead => lock_source.resolve_ref(repo, "HEAD").await?,
        Revision::Registration => {
            return Ok(Done::because(
                "ignored",
                "registration dispatch is not supported yet",
            ));
        }
    };
    let mut event = normalised.event.clone();
    event.sha.get_or_insert_with(|| sha.clone());
    let git_ref = git_ref_of(&event);
    fn ctx<'a>(
        state: &AppState,
        item: &'a InboxItem,
        repo: &'a str,
        git_ref: &'a str,
        sha: &'a str,
        event: &'a Event,
    ) -> RunContext<'a> {
        RunContext {
            org_id: &item.org_id,
            inbox_id: &item.id,
            provider: &item.provider,
            routing_key: &item.routing_key,
            repo,
            git_ref,
            sha,
            event,
            trust_tier: "trusted",
            queue_timeout: state.inner.config.queue_timeout,
            now: crate::now_ms(),
        }
    }

    let lock = match fetch_lock(state, source, repo, &sha).await {
        Err(e) => {
            state.metrics().lock_fetch_error();
            return Err(e.into());
        }
        Ok(None) => return Ok(Done::bare("no_lock")),
        Ok(Some(lock)) => lock,
    };
    let lock = match lock {
        Ok(lock) => lock,
        Err(message) => {
            let run = lock_failure_run(&ctx(state, item, repo, &git_ref, &sha, &event), &message);
            let run_id = created_run_id(state.store().create_run(&run).await?);
            return Ok(Done {
                outcome: "lock_corrupt",
                decisions: Some(json!({ "reason": message })),
                run_ids: vec![run_id],
            });
        }
    };

    // Changed files cost a `git diff` (or an API call): only when a `paths` filter reads them.
    let paths_matter = lock
        .workflows
        .iter()
        .flat_map(|w| &w.triggers)
        .any(|t| t.reads_changed_files());
    if let ChangedFilesPlan::Compare {
        base: Some(base),
        head,
    } = &normalised.changed_files
        && event.changed_files.is_none()
        && paths_matter
    {
        event.changed_files = Some(lock_source.changed_files(repo, base, head).await?);
    }
    let decisions = match_all_workflows(
        lock.workflows
            .iter()
            .map(|w| (w.name.as_str(), w.triggers.as_slice())),
        &event,
    );
    let ctx = ctx(state, item, repo, &git_ref, &sha, &event);
    let mut run_ids = Vec::new();
    for (workflow, decision) in lock.workflows.iter().zip(&decisions) {
        if !decision.matched
            || manual
                .workflow
                .as_ref()
                .is_some_and(|w| *w != workflow.name)
        {
            continue;
        }
        let mut run = plan_run(&ctx, workflow, decision);
        run.parent_run_id.clone_from(&manual.parent_run_id);
        run.triggered_by.clone_from(&manual.requested_by);
        run_ids.push(created_run_id(state.store().create_run(&run).await?));
        state.wake_dispatch();
    }
    Ok(Done {
        outcome: if run_ids.is_empty() {
            "no_match"
        } else {
            "matched"
        },
        decisions: serde_json::to_value(&decisions).ok(),
        run_ids,
    })
}

fn created_run_id(outcome: CreateRunOutcome) -> String {
    match outcome {
        CreateRunOutcome::Created { run_id, .. } | CreateRunOutcome::AlreadyExists { run_id } => {
            run_id
        }
    }
}

/// The full ref of the event: the payload's `ref` when it is one, else the target branch.
fn git_ref_of(event: &Event) -> String {
    match event.payload.get("ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("refs/") => r.to_string(),
        _ => match &event.target_branch {
            Some(branch) => format!("refs/heads/{branch}"),
            None => String::new(),
        },
    }
}

/// The lock at `sha`: from the cache when a parsed lock of this commit is there, else
/// fetched, parsed and (only then) cached. `Ok(None)`: the commit has no lock. A corrupt lock
/// is `Ok(Some(Err(message)))` and never cached; fetch errors stay errors (retryable).
async fn fetch_lock(
    state: &AppState,
    source: &Source,
    repo: &str,
    sha: &str,
) -> Result<Option<Result<Arc<LockFile>, String>>, FetchError> {
    let cache = state.lock_cache();
    let key = LockCache::key(source.provider(), repo, sha);
    if let Some(key) = &key
        && let Some(lock) = cache.get(key)
    {
        return Ok(Some(Ok(lock)));
    }
    let parsed = match Provider::fetch_lock(source, repo, sha).await? {
        Fetched::NotFound => return Ok(None),
        Fetched::Corrupt(message) => Err(message),
        Fetched::Found(text) => LockFile::from_json(&text)
            .map(Arc::new)
            .map_err(|e| e.to_string()),
    };
    if let (Some(key), Ok(lock)) = (key, &parsed) {
        cache.insert(key, lock.clone());
    }
    Ok(Some(parsed))
}

/// A manual dispatch item (`POST dispatch`, `POST runs/:id/rerun`, §8.4) → the event of
/// `triggers.md` §9.5 and what the item adds to matching.
fn manual_event(body: &[u8]) -> Result<(NormalisedEvent, ManualOptions), String> {
    let request: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let manual = ManualOptions::from_request(&request);
    let text = |key: &str| request.get(key).and_then(Value::as_str).map(str::to_string);
    let repo = text("repo").ok_or("the dispatch names no repository")?;
    if let Some(event) = request.get("event").filter(|e| e.is_object()) {
        // A client-built event (`kici run remote`): matched as sent, at the commit it names.
        let mut event: Event = serde_json::from_value(event.clone()).map_err(|e| e.to_string())?;
        let sha = text("sha").ok_or("a dispatch with an event needs a sha")?;
        event.source_repo.get_or_insert(repo);
        return Ok((NormalisedEvent::at_commit(event, sha), manual));
    }
    let dispatch_type = text("type").ok_or("the dispatch has no type")?;
    let requested_by = text("requestedBy").unwrap_or_else(|| "admin".into());
    let inputs = request
        .get("inputs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let branch = text("branch");
    let mut event = provider::manual_dispatch_event(
        &dispatch_type,
        branch.as_deref().unwrap_or(""),
        inputs,
        &requested_by,
        Some(&repo),
    );
    if branch.is_none() {
        event.event.target_branch = None;
        event.revision = Revision::DefaultBranchHead;
    }
    if let Some(sha) = text("sha") {
        event.revision = Revision::Commit(sha);
    }
    Ok((event, manual))
}
