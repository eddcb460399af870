//! The admin REST API (`orchestrator.md` §18) through the real router: authentication and
//! roles, tokens, runs with filters and paging, logs, the SSE stream, the inbox's dead
//! letters and replay, manual dispatch, queue, capabilities, diagnose and config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kici_engine::state::{Event, RunEvent, RunStatus, StepStatus};
use kici_orchestrator::events::Change;
use kici_orchestrator::lock_source::FetchError;
use kici_orchestrator::{AppState, Sources};
use kici_store::{
    JobStart, JobUpdate, LogChunk, NewAdminToken, NewJob, NewRun, RunUpdate, StepReport, Store,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::harness::{self, FlakyLock, LOCK, REPO, SECRET, TestDb, TestRepo, delivery, push_body};

crate::harness::backend_tests!(in api;
    requests_without_a_valid_token_or_role_are_refused,
    admin_tokens_are_created_used_and_revoked,
    agent_tokens_are_shown_once_and_revocable,
    runs_are_filtered_and_paged,
    run_detail_jobs_and_logs_page_by_line,
    sse_streams_job_log_and_end_events,
    dead_letters_are_listed_retried_and_replayed,
    manual_dispatch_creates_a_run,
    lock_cache_serves_the_second_delivery,
    queue_capabilities_diagnose_and_config_answer,
);

// --- helpers shared with `sources.rs` ---

/// A state on `db` without sources beyond `sources`, in a fresh data directory.
pub(crate) async fn state(db: &TestDb, base: &Path, sources: Sources) -> AppState {
    let store = db.store(2).await;
    let mut config = harness::config(base);
    config.sources.clear();
    AppState::new(store, config, sources)
}

/// A token of `role` (`owner`, `admin`, `auditor`) created in the store.
pub(crate) async fn token(store: &Store, role: &str) -> String {
    let new = NewAdminToken {
        label: format!("{role}-test"),
        role: role.to_string(),
        expires_at: None,
    };
    store.create_admin_token(&new, 1).await.expect("token").1
}

/// A request with an optional bearer token and JSON body, from `peer`.
pub(crate) fn request(
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => {
            builder = builder.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut request = builder.body(body).expect("request");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    request
}

/// Sends through the router; the body parsed as JSON (`Null` when empty or not JSON).
/// `GET path` with `token`.
pub(crate) async fn get(state: &AppState, path: &str, token: &str) -> (StatusCode, Value) {
    call(state, request("GET", path, Some(token), None)).await
}

pub(crate) async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let (status, text) = harness::send(state, request).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `<base>/acme/widgets` with one commit holding `lock`; returns the base and the commit.
pub(crate) fn repo_with_lock(dir: &Path, lock: &str) -> (PathBuf, String) {
    let base = dir.to_path_buf();
    let repo = base.join(REPO);
    std::fs::create_dir_all(repo.join(".kici")).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join(".kici/kici.lock.json"), lock).expect("write");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "lock"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    (base, head)
}

fn run(workflow: &str, repo: &str, branch: &str, created_at: i64) -> NewRun {
    NewRun {
        run_id: kici_store::new_id(),
        org_id: "default".into(),
        inbox_id: None,
        dispatch_key: None,
        workflow_name: workflow.into(),
        provider: "github".into(),
        routing_key: "github:1".into(),
        repo_identifier: repo.into(),
        git_ref: format!("refs/heads/{branch}"),
        sha: "a".repeat(40),
        event: json!({"type": "push", "targetBranch": branch}),
        decision: None,
        matched_trigger: None,
        trust_tier: "trusted".into(),
        concurrency: None,
        workflow_timeout_ms: None,
        is_test_run: false,
        parent_run_id: None,
        triggered_by: None,
        init_failure: None,
        created_at,
        jobs: Vec::new(),
        needs: Vec::new(),
    }
}

fn job(name: &str) -> NewJob {
    NewJob {
        job_id: kici_store::new_id(),
        job_name: name.into(),
        base_job_name: name.into(),
        variant_kind: None,
        matrix_values: None,
        job_config: json!({}),
        environments: None,
        runs_on: None,
        wave_gated: false,
        init_failure: None,
        error_message: None,
        start: JobStart::Pending,
    }
}

fn step_report(run_id: &str, job_id: &str, status: StepStatus) -> StepReport {
    StepReport {
        run_id: run_id.into(),
        job_id: job_id.into(),
        step_index: 0,
        step_name: "compile".into(),
        step_type: Some("step".into()),
        status,
        concurrency_kind: None,
        group_id: None,
        attempts: Some(1),
        exit_code: None,
        error_message: None,
        secrets_accessed: None,
        log_bytes: None,
    }
}

fn chunk(run_id: &str, job_id: &str, seq: i64, lines: &[&str]) -> LogChunk {
    LogChunk {
        run_id: run_id.into(),
        job_id: job_id.into(),
        step_index: 0,
        seq,
        ts: 1_767_000_000_000 + seq,
        lines: lines.iter().map(|l| (*l).to_string()).collect(),
    }
}

// --- tests ---

async fn requests_without_a_valid_token_or_role_are_refused(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let auditor = token(state.store(), "auditor").await;

    let (status, body) = call(&state, request("GET", "/api/v1/admin/runs", None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    let bogus = "kadm_".to_string() + &"0".repeat(64);
    let (status, _) = get(&state, "/api/v1/admin/runs", &bogus).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _) = get(&state, "/api/v1/admin/runs", &auditor).await;
    assert_eq!(status, StatusCode::OK, "auditors may read runs");
    let create = json!({"label": "x", "role": "admin"});
    let (status, body) = call(
        &state,
        request("POST", "/api/v1/admin/tokens", Some(&auditor), Some(create)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "forbidden");
    let (status, _) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/queue/clear",
            Some(&auditor),
            Some(json!({"confirm": true})),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "auditors cannot manage the queue"
    );

    let admin = token(state.store(), "admin").await;
    let (status, _) = get(&state, "/api/v1/admin/config", &admin).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "config is owner-only");
}

async fn admin_tokens_are_created_used_and_revoked(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let owner = token(state.store(), "owner").await;

    let (status, created) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/tokens",
            Some(&owner),
            Some(json!({"label": "ci", "role": "admin", "expiresInDays": 1})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"]
        .as_str()
        .expect("token shown once")
        .to_string();
    assert!(secret.starts_with("kadm_") && secret.len() == 69);
    assert_eq!(created["role"], "admin");
    assert!(created["expiresAt"].as_u64().is_some());

    let (status, _) = get(&state, "/api/v1/admin/runs", &secret).await;
    assert_eq!(status, StatusCode::OK);

    let (status, list) = get(&state, "/api/v1/admin/tokens", &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains(&secret),
        "lists never carry secrets"
    );
    assert!(list[1]["lastUsedAt"].as_u64().is_some(), "use is recorded");

    let id = created["id"].as_str().unwrap();
    let (status, _) = call(
        &state,
        request(
            "DELETE",
            &format!("/api/v1/admin/tokens/{id}"),
            Some(&owner),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = get(&state, "/api/v1/admin/runs", &secret).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked tokens stop working"
    );
    let (status, _) = call(
        &state,
        request(
            "DELETE",
            &format!("/api/v1/admin/tokens/{id}"),
            Some(&owner),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn agent_tokens_are_shown_once_and_revocable(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let owner = token(state.store(), "owner").await;
    let (status, created) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/agent-tokens",
            Some(&owner),
            Some(json!({"label": "builder", "labels": ["linux"], "maxUses": 3})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("kat_"));
    assert_eq!(created["prefix"], secret[..12]);
    assert!(
        state
            .store()
            .authenticate_agent_token(&secret, 2)
            .await
            .unwrap()
            .is_some()
    );
    let (_, list) = get(&state, "/api/v1/admin/agent-tokens", &owner).await;
    assert_eq!(list[0]["labels"], json!(["linux"]));
    assert!(!list.to_string().contains(&secret));
    let id = created["id"].as_str().unwrap();
    let (status, _) = call(
        &state,
        request(
            "DELETE",
            &format!("/api/v1/admin/agent-tokens/{id}"),
            Some(&owner),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        state
            .store()
            .authenticate_agent_token(&secret, 3)
            .await
            .unwrap()
            .is_none()
    );
}

async fn runs_are_filtered_and_paged(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let reader = token(state.store(), "auditor").await;
    let store = state.store();
    for (i, (workflow, repo, branch)) in [
        ("ci", "acme/a", "main"),
        ("ci", "acme/b", "dev"),
        ("release", "acme/a", "main"),
        ("ci", "acme/a", "main"),
        ("ci", "acme/a", "dev"),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .create_run(&run(workflow, repo, branch, 1000 + i as i64))
            .await
            .unwrap();
    }
    let get = |query: &str| {
        let uri = format!("/api/v1/admin/runs{query}");
        let state = state.clone();
        let reader = reader.clone();
        async move { get(&state, &uri, &reader).await.1 }
    };
    let names = |page: &Value| -> Vec<(String, String, u64)> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["workflowName"].as_str().unwrap().to_string(),
                    r["repo"].as_str().unwrap().to_string(),
                    r["createdAt"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let all = get("").await;
    assert_eq!(names(&all).len(), 5);
    assert_eq!(names(&all)[0].2, 1004, "newest first");
    assert!(all["nextCursor"].is_null());

    assert_eq!(names(&get("?workflow=release").await).len(), 1);
    assert_eq!(names(&get("?repo=acme/b").await).len(), 1);
    assert_eq!(names(&get("?branch=main").await).len(), 3);
    assert_eq!(
        names(&get("?workflow=ci&branch=main&repo=acme/a").await).len(),
        2
    );
    assert_eq!(names(&get("?since=1003").await).len(), 2);
    // Runs without jobs settle at creation; every one has the same status here.
    let status = all["items"][0]["status"].as_str().unwrap().to_string();
    assert_eq!(names(&get(&format!("?status={status}")).await).len(), 5);
    let other = if status == "running" {
        "success"
    } else {
        "running"
    };
    assert_eq!(names(&get(&format!("?status={other}")).await).len(), 0);

    let first = get("?limit=2").await;
    assert_eq!(
        names(&first).iter().map(|r| r.2).collect::<Vec<_>>(),
        vec![1004, 1003]
    );
    let cursor = first["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = get(&format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(
        names(&second).iter().map(|r| r.2).collect::<Vec<_>>(),
        vec![1002, 1001]
    );
    let cursor = second["nextCursor"].as_str().unwrap().to_string();
    let third = get(&format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&third).len(), 1);
    assert!(third["nextCursor"].is_null());

    let (status, body) = call(
        &state,
        request(
            "GET",
            "/api/v1/admin/runs?cursor=garbage",
            Some(&reader),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn run_detail_jobs_and_logs_page_by_line(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let reader = token(state.store(), "auditor").await;
    let store = state.store();
    let mut new = run("ci", REPO, "main", 5);
    new.jobs = vec![job("build")];
    let run_id = new.run_id.clone();
    let job_id = new.jobs[0].job_id.clone();
    store.create_run(&new).await.unwrap();
    store
        .record_step(&step_report(&run_id, &job_id, StepStatus::Running), 6)
        .await
        .unwrap();
    for seq in 0..3 {
        let lines: Vec<String> = (0..4).map(|i| format!("line {}", seq * 4 + i)).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        store
            .append_log_chunk(&chunk(&run_id, &job_id, seq, &lines))
            .await
            .unwrap();
    }

    let (status, detail) = call(
        &state,
        request(
            "GET",
            &format!("/api/v1/admin/runs/{run_id}"),
            Some(&reader),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["runId"], run_id.as_str());
    assert_eq!(detail["jobs"][0]["name"], "build");
    assert_eq!(detail["jobs"][0]["steps"][0]["status"], "running");
    let (_, jobs) = call(
        &state,
        request(
            "GET",
            &format!("/api/v1/admin/runs/{run_id}/jobs"),
            Some(&reader),
            None,
        ),
    )
    .await;
    assert_eq!(jobs[0]["jobId"], job_id.as_str());

    let logs = |offset: u64, limit: u64| {
        let uri = format!(
            "/api/v1/admin/runs/{run_id}/jobs/{job_id}/steps/0/logs?offset={offset}&limit={limit}"
        );
        let state = state.clone();
        let reader = reader.clone();
        async move { get(&state, &uri, &reader).await }
    };
    let (status, page) = logs(3, 5).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let texts: Vec<&str> = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["line 3", "line 4", "line 5", "line 6", "line 7"]);
    assert_eq!(page["lines"][0]["n"], 3);
    assert_eq!(page["lines"][0]["ts"], "2025-12-29T09:20:00.000Z");
    assert_eq!(page["nextOffset"], 8);
    assert_eq!(page["totalLines"], 12);
    assert_eq!(page["complete"], false, "the step still runs");

    store
        .record_step(&step_report(&run_id, &job_id, StepStatus::Success), 7)
        .await
        .unwrap();
    let (_, last) = logs(8, 100).await;
    assert_eq!(last["lines"].as_array().unwrap().len(), 4);
    assert_eq!(last["complete"], true);

    let (status, _) = call(
        &state,
        request(
            "GET",
            &format!("/api/v1/admin/runs/other/jobs/{job_id}/steps/0/logs"),
            Some(&reader),
            None,
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a job is read through its run"
    );
}

/// Reads SSE frames until `end` (or the deadline); returns `(event, data)` pairs.
async fn read_events(body: Body, deadline: Duration) -> Vec<(String, Value)> {
    let mut body = body;
    let mut buffer = String::new();
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let frame = tokio::time::timeout_at(until, body.frame()).await;
        let Ok(Some(Ok(frame))) = frame else { break };
        if let Ok(data) = frame.into_data() {
            buffer.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !name.is_empty() {
                let done = name == "end";
                events.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
                if done {
                    return events;
                }
            }
        }
    }
    events
}

async fn sse_streams_job_log_and_end_events(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let reader = token(state.store(), "auditor").await;
    let store = state.store().clone();
    let mut new = run("ci", REPO, "main", 5);
    new.jobs = vec![job("build")];
    let run_id = new.run_id.clone();
    let job_id = new.jobs[0].job_id.clone();
    store.create_run(&new).await.unwrap();
    store
        .append_log_chunk(&chunk(&run_id, &job_id, 0, &["before"]))
        .await
        .unwrap();

    let response = kici_orchestrator::app(state.clone())
        .oneshot(request(
            "GET",
            &format!("/api/v1/admin/runs/{run_id}/events?fromStart=true"),
            Some(&reader),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let reader_task = tokio::spawn(read_events(response.into_body(), Duration::from_secs(20)));

    // The agent side's writes, replayed through the store and the change bus.
    let events = state.events().clone();
    let publish = |change: Change| events.publish(change);
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .record_step(&step_report(&run_id, &job_id, StepStatus::Running), 10)
        .await
        .unwrap();
    publish(Change::Step {
        run_id: run_id.clone(),
        job_id: job_id.clone(),
        step_index: 0,
    });
    store
        .append_log_chunk(&chunk(&run_id, &job_id, 1, &["hello", "world"]))
        .await
        .unwrap();
    publish(Change::Log {
        run_id: run_id.clone(),
        job_id: job_id.clone(),
        step_index: 0,
    });
    store
        .transition_job(&job_id, Event::Fail, &JobUpdate::default(), 11)
        .await
        .unwrap();
    store
        .transition_run(
            &run_id,
            RunEvent::Finish(RunStatus::Failed),
            &RunUpdate::default(),
            12,
        )
        .await
        .unwrap();
    publish(Change::Job {
        run_id: run_id.clone(),
        job_id: job_id.clone(),
    });
    publish(Change::Run {
        run_id: run_id.clone(),
    });

    let events = reader_task.await.unwrap();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"run"), "{names:?}");
    assert_eq!(names.last(), Some(&"end"), "{names:?}");
    let logs: Vec<String> = events
        .iter()
        .filter(|(n, _)| n == "log")
        .flat_map(|(_, d)| d["lines"].as_array().unwrap().clone())
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        logs,
        ["before", "hello", "world"],
        "fromStart replays, then follows"
    );
    assert!(
        events
            .iter()
            .any(|(n, d)| n == "job" && d["status"] == "failed"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(n, d)| n == "step" && d["status"] == "running")
    );
    assert!(
        events
            .iter()
            .any(|(n, d)| n == "run" && d["status"] == "failed")
    );
}

/// A lock read that timed out.
fn timeout_failure(_call: usize) -> FetchError {
    FetchError::Timeout {
        operation: "fetch",
        seconds: 30,
    }
}

async fn dead_letters_are_listed_retried_and_replayed(db: &TestDb) {
    let repo = TestRepo::new();
    let flaky = FlakyLock::new(&repo, usize::MAX, timeout_failure);
    let state = harness::state_with(db.store(1).await, &repo.base, Some(flaky.clone()));
    let admin = token(state.store(), "admin").await;
    let (status, _) = harness::send(
        &state,
        delivery(
            "push",
            "dlq-1",
            push_body(&repo.first, &repo.head, "main"),
            SECRET,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    harness::drain(&state).await;

    let (status, dead) = get(&state, "/api/v1/admin/inbox?status=dead", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let items = dead["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{dead}");
    assert_eq!(items[0]["status"], "dead");
    assert!(
        items[0]["lastError"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    let id = items[0]["id"].as_str().unwrap().to_string();

    // Retry while the fetch still fails: dead again, and one more fetch happened.
    let (status, retried) = call(
        &state,
        request(
            "POST",
            &format!("/api/v1/admin/inbox/{id}/retry"),
            Some(&admin),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "pending");
    harness::drain(&state).await;
    assert_eq!(flaky.fetches(), 2);

    flaky.set_failing(0);
    let (status, replay) = call(
        &state,
        request(
            "POST",
            &format!("/api/v1/admin/inbox/{id}/replay"),
            Some(&admin),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay["deliveryId"], "dlq-1:replay:1");
    let replay_id = replay["id"].as_str().unwrap().to_string();
    assert_ne!(replay_id, id);
    harness::drain(&state).await;
    let (_, item) = call(
        &state,
        request(
            "GET",
            &format!("/api/v1/admin/inbox/{replay_id}"),
            Some(&admin),
            None,
        ),
    )
    .await;
    assert_eq!(item["status"], "done", "{item}");
    assert_eq!(item["outcome"], "matched");
    assert_eq!(item["runIds"].as_array().unwrap().len(), 1);
    assert!(item.get("payload").is_none());
    let (_, with_payload) = call(
        &state,
        request(
            "GET",
            &format!("/api/v1/admin/inbox/{replay_id}?payload=true"),
            Some(&admin),
            None,
        ),
    )
    .await;
    assert_eq!(with_payload["payload"]["ref"], "refs/heads/main");
    let auditor = token(state.store(), "auditor").await;
    let (status, _) = call(
        &state,
        request(
            "GET",
            &format!("/api/v1/admin/inbox/{replay_id}?payload=true"),
            Some(&auditor),
            None,
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "payloads need event_log.read_payload"
    );
    let (status, _) = call(
        &state,
        request(
            "POST",
            &format!("/api/v1/admin/inbox/{replay_id}/retry"),
            Some(&admin),
            None,
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "done items are replayed, not retried"
    );
}

async fn manual_dispatch_creates_a_run(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let lock = LOCK.replace(
        r#""triggers": [{"_type": "tag", "tags": [{"type": "glob", "pattern": "v*"}]}]"#,
        r#""triggers": [{"_type": "dispatch", "types": ["deploy"]}]"#,
    );
    assert_ne!(lock, LOCK);
    let (base, head) = repo_with_lock(dir.path(), &lock);
    let state = state(db, dir.path(), Sources::default()).await;
    let owner = token(state.store(), "owner").await;
    let (status, created) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/sources",
            Some(&owner),
            Some(json!({"type": "local", "name": "disk", "config": {"path": base.display().to_string()}})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let body = json!({"source": "disk", "repo": REPO, "type": "deploy", "branch": "main", "inputs": {"env": "prod"}});
    let auditor = token(state.store(), "auditor").await;
    let (status, _) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/dispatch",
            Some(&auditor),
            Some(body.clone()),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, accepted) = call(
        &state,
        request("POST", "/api/v1/admin/dispatch", Some(&owner), Some(body)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let inbox_id = accepted["inboxId"].as_str().unwrap().to_string();
    harness::drain(&state).await;
    let item = state
        .store()
        .get_inbox_item(&inbox_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.provider, "manual");
    assert_eq!(
        item.outcome.as_deref(),
        Some("matched"),
        "{:?}",
        item.decisions
    );
    let run = state
        .store()
        .get_run(&item.run_ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.workflow_name, "release");
    assert_eq!(run.sha, head);
    assert_eq!(run.event["dispatchInputs"]["env"], "prod");

    let (status, _) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/dispatch",
            Some(&owner),
            Some(json!({"source": "nope", "repo": REPO, "type": "deploy"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Counts fetches; the second delivery of the same commit must be served by the cache.
async fn lock_cache_serves_the_second_delivery(db: &TestDb) {
    let repo = TestRepo::new();
    let counting = FlakyLock::new(&repo, 0, timeout_failure);
    let state = harness::state_with(db.store(3).await, &repo.base, Some(counting.clone()));
    for id in ["cache-1", "cache-2"] {
        let (status, _) = harness::send(
            &state,
            delivery(
                "push",
                id,
                push_body(&repo.first, &repo.head, "main"),
                SECRET,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        harness::drain(&state).await;
    }
    assert_eq!(counting.fetches(), 1, "second delivery hit the cache");
    assert_eq!(state.lock_cache().hits(), 1);
    assert_eq!(
        state.store().list_runs(None, None, 10).await.unwrap().len(),
        2
    );

    // A failed fetch is never cached as an answer.
    counting.set_failing(usize::MAX);
    let (_, _) = harness::send(
        &state,
        delivery(
            "push",
            "cache-3",
            push_body(&repo.head, &repo.first, "main"),
            SECRET,
        ),
    )
    .await;
    harness::drain(&state).await;
    counting.set_failing(0);
    let (status, _) = harness::send(
        &state,
        delivery(
            "push",
            "cache-4",
            push_body(&repo.head, &repo.first, "main"),
            SECRET,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    harness::drain(&state).await;
    // cache-3 failed (1 fetch, retried up to the budget), cache-4 fetched again: no lock at
    // `first` is "no lock", not cached either.
    assert!(counting.fetches() >= 3);
    assert_eq!(
        state.lock_cache().len(),
        1,
        "only the parsed lock is cached"
    );
}

async fn queue_capabilities_diagnose_and_config_answer(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let owner = token(state.store(), "owner").await;

    let (status, caps) = call(&state, request("GET", "/api/v1/capabilities", None, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(caps["protocolVersion"], 1);
    assert_eq!(caps["lockSchemaVersion"], 29);

    let (status, queue) = get(&state, "/api/v1/admin/queue", &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue["items"], json!([]));
    let (status, _) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/queue/clear",
            Some(&owner),
            Some(json!({"confirm": false})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, cleared) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/queue/clear",
            Some(&owner),
            Some(json!({"confirm": true})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cleared["expired"], 0);

    let (status, report) = get(&state, "/api/v1/admin/diagnose", &owner).await;
    assert_eq!(status, StatusCode::OK);
    let checks = report["checks"].as_array().unwrap();
    let by_name = |name: &str| checks.iter().find(|c| c["name"] == name).cloned().unwrap();
    assert_eq!(by_name("database")["status"], "pass");
    assert_eq!(by_name("migrations")["status"], "pass");
    assert_eq!(by_name("agents")["status"], "warn");

    let (status, config) = get(&state, "/api/v1/admin/config", &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["lockfileCacheMax"], 500);
    assert!(!config.to_string().contains("kadm_"));
    let (status, agents) = get(&state, "/api/v1/admin/agents", &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(agents, json!([]));
}
