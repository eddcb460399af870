//! The behaviour suite; each function runs on both backends (see `harness::backend_tests`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kici_engine::state::State;
use kici_orchestrator::lock_source::FetchError;
use kici_store::{InboxStatus, Store};
use serde_json::Value;

use crate::harness::{
    FlakyLock, SECRET, TestDb, TestRepo, delivery, drain, push_body, send, state_with,
};

async fn runs(store: &Store) -> Vec<kici_store::Run> {
    store.list_runs(None, None, 200).await.expect("list runs")
}

pub async fn probes_answer_and_metrics_count(db: &TestDb) {
    let repo = TestRepo::new();
    let state = state_with(db.store(8).await, &repo.base, None);
    let (status, body) = send(&state, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["role"], "orchestrator");

    let (status, body) = send(&state, Request::get("/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"ready":true}"#)
    );

    let body = push_body(&repo.first, &repo.head, "main");
    send(&state, delivery("push", "m-1", body.clone(), SECRET)).await;
    send(&state, delivery("push", "m-1", body, SECRET)).await;
    let (status, text) = send(
        &state,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("kici_orch_webhooks_received_total{source=\"direct\",event=\"push\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("kici_orch_dedup_hits_total 1\n"), "{text}");
    assert!(
        text.contains("kici_orch_dispatch_queue_depth{status=\"pending\"} 0\n"),
        "{text}"
    );
    drain(&state).await;
    let (_, text) = send(
        &state,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    // build (node 20), build (node 22) and lint are queued; test waits for build.
    assert!(
        text.contains("kici_orch_dispatch_queue_depth{status=\"pending\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("kici_orch_webhooks_processed_total{result=\"matched\"} 1\n"),
        "{text}"
    );

    state.store().close().await;
    let (status, _) = send(&state, Request::get("/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

pub async fn signed_push_creates_runs_with_matrix_and_needs(db: &TestDb) {
    // A `paths` filter on `ci`: the orchestrator computes changed files for it (§5 step 8).
    let repo = TestRepo::with_lock(&crate::harness::LOCK.replacen(
        r#""paths": []"#,
        r#""paths": ["src.txt"]"#,
        1,
    ));
    let state = state_with(db.store(8).await, &repo.base, None);
    let (status, body) = send(
        &state,
        delivery(
            "push",
            "d-1",
            push_body(&repo.first, &repo.head, "main"),
            SECRET,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "accepted");
    let inbox_id = answer["id"].as_str().expect("inbox id").to_string();

    assert_eq!(drain(&state).await, 1);
    let store = state.store();
    let item = store
        .get_inbox_item(&inbox_id)
        .await
        .unwrap()
        .expect("item");
    assert_eq!(item.status, InboxStatus::Done);
    assert_eq!(item.outcome.as_deref(), Some("matched"));
    assert_eq!(item.run_ids.len(), 1);

    let runs = runs(store).await;
    assert_eq!(runs.len(), 1, "only `ci` matches a push to main");
    let run = &runs[0];
    assert_eq!(run.workflow_name, "ci");
    assert_eq!(run.sha, repo.head);
    assert_eq!(run.git_ref, "refs/heads/main");
    assert_eq!(run.repo_identifier, "acme/widgets");
    assert_eq!(run.matched_trigger.as_deref(), Some("push"));
    assert_eq!(run.inbox_id.as_deref(), Some(inbox_id.as_str()));
    assert_eq!(
        run.event["changedFiles"],
        serde_json::json!([".kici/kici.lock.json", "src.txt"]),
        "changed files come from git diff before..after"
    );

    let jobs = store.list_jobs(&run.run_id).await.unwrap();
    let summary: Vec<(&str, &str, State, Option<&Value>)> = jobs
        .iter()
        .map(|j| {
            (
                j.job_name.as_str(),
                j.base_job_name.as_str(),
                j.status,
                j.matrix_values.as_ref(),
            )
        })
        .collect();
    let node = |v: &str| serde_json::json!({ "node": v });
    let (n20, n22) = (node("20"), node("22"));
    assert_eq!(
        summary,
        vec![
            ("build (20)", "build", State::Queued, Some(&n20)),
            ("build (22)", "build", State::Queued, Some(&n22)),
            ("test", "test", State::Pending, None),
            ("lint", "lint", State::Queued, None),
        ]
    );
    let mut needs: Vec<(String, String, Vec<String>)> = store
        .list_needs(&run.run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.job_name, n.upstream_name, n.run_on))
        .collect();
    needs.sort();
    let success = vec!["success".to_string()];
    assert_eq!(
        needs,
        vec![
            ("test".into(), "build (20)".into(), success.clone()),
            ("test".into(), "build (22)".into(), success),
        ]
    );
    let queued = store
        .get_queue_entry(&jobs[0].job_id)
        .await
        .unwrap()
        .expect("queue row");
    assert_eq!(queued.require, vec!["kici:os:linux".to_string()]);

    // A push to another branch matches nothing.
    let (status, _) = send(
        &state,
        delivery(
            "push",
            "d-2",
            push_body(&repo.first, &repo.head, "feature"),
            SECRET,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    drain(&state).await;
    assert_eq!(runs_len(store).await, 1);
}

async fn runs_len(store: &Store) -> usize {
    runs(store).await.len()
}

pub async fn refused_deliveries_store_nothing(db: &TestDb) {
    let repo = TestRepo::new();
    let state = state_with(db.store(8).await, &repo.base, None);
    let body = push_body(&repo.first, &repo.head, "main");

    let (status, text) = send(&state, delivery("push", "bad-sig", body.clone(), "wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["code"], "unauthorized");
    assert!(!text.contains(SECRET));

    let mut unsigned = delivery("push", "no-sig", body.clone(), SECRET);
    unsigned.headers_mut().remove("X-Hub-Signature-256");
    assert_eq!(send(&state, unsigned).await.0, StatusCode::UNAUTHORIZED);

    let (status, text) = send(
        &state,
        delivery("push", "bad-json", b"{\"ref\":".to_vec(), SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("not valid JSON"),
        "{text}"
    );

    let mut unknown = delivery("push", "unknown", body.clone(), SECRET);
    unknown
        .headers_mut()
        .insert("X-GitHub-Hook-Installation-Target-ID", "1".parse().unwrap());
    assert_eq!(send(&state, unknown).await.0, StatusCode::NOT_FOUND);

    let mut missing = delivery("push", "missing", body.clone(), SECRET);
    missing.headers_mut().remove("X-GitHub-Delivery");
    let (status, text) = send(&state, missing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("X-GitHub-Delivery"), "{text}");

    let (status, text) = send(&state, delivery("ping", "ping-1", b"{}".to_vec(), SECRET)).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"status":"ignored"}"#)
    );

    assert_eq!(drain(&state).await, 0, "nothing was stored");
    assert_eq!(runs_len(state.store()).await, 0);
}

/// Without a `paths` filter no trigger reads changed files: no `git diff` is run for them
/// (`orchestrator.md` §5 step 8), and the event carries none.
pub async fn changed_files_are_computed_only_for_paths_filters(db: &TestDb) {
    let repo = TestRepo::new();
    let state = state_with(db.store(8).await, &repo.base, None);
    let (status, body) = send(
        &state,
        delivery(
            "push",
            "d-1",
            push_body(&repo.first, &repo.head, "main"),
            SECRET,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(drain(&state).await, 1);
    let runs = runs(state.store()).await;
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0].event.get("changedFiles").is_none_or(Value::is_null),
        "{}",
        runs[0].event
    );
}

pub async fn redelivery_answers_duplicate_and_starts_nothing(db: &TestDb) {
    let repo = TestRepo::new();
    let state = state_with(db.store(8).await, &repo.base, None);
    let body = push_body(&repo.first, &repo.head, "main");
    let (first, _) = send(&state, delivery("push", "same", body.clone(), SECRET)).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    let (again, text) = send(&state, delivery("push", "same", body.clone(), SECRET)).await;
    assert_eq!(
        (again, text.as_str()),
        (StatusCode::OK, r#"{"status":"duplicate"}"#)
    );
    drain(&state).await;
    // Redelivered after processing: still a duplicate, still one run.
    let (late, _) = send(&state, delivery("push", "same", body, SECRET)).await;
    assert_eq!(late, StatusCode::OK);
    assert_eq!(drain(&state).await, 0);
    assert_eq!(runs_len(state.store()).await, 1);
}

/// A failing `git ls-tree`, as a lock read on a broken checkout fails.
fn git_failure(call: usize) -> FetchError {
    FetchError::Git {
        operation: "ls-tree",
        dir: "repo".to_string(),
        message: format!("simulated failure {call}"),
    }
}

pub async fn lock_fetch_errors_are_retried_then_succeed(db: &TestDb) {
    let repo = TestRepo::new();
    let lock = FlakyLock::new(&repo, 2, git_failure);
    let state = state_with(db.store(8).await, &repo.base, Some(lock.clone()));
    let (_, text) = send(
        &state,
        delivery(
            "push",
            "flaky",
            push_body(&repo.first, &repo.head, "main"),
            SECRET,
        ),
    )
    .await;
    let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(drain(&state).await, 3, "two failed attempts, then success");
    let item = state.store().get_inbox_item(&id).await.unwrap().unwrap();
    assert_eq!(item.status, InboxStatus::Done);
    assert_eq!(item.attempts, 3);
    assert_eq!(item.outcome.as_deref(), Some("matched"));
    assert_eq!(lock.fetches(), 3);
    assert_eq!(runs_len(state.store()).await, 1);
    assert_eq!(state.metrics().processed("error"), 2);
}

pub async fn lock_fetch_always_failing_dead_letters(db: &TestDb) {
    let repo = TestRepo::new();
    let state = state_with(
        db.store(3).await,
        &repo.base,
        Some(FlakyLock::new(&repo, usize::MAX, git_failure)),
    );
    let body = push_body(&repo.first, &repo.head, "main");
    send(&state, delivery("push", "doomed", body.clone(), SECRET)).await;
    assert_eq!(drain(&state).await, 3);
    let dead = state.store().list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].delivery_id, "doomed");
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("simulated failure 2"),
        "{:?}",
        dead[0].last_error
    );
    assert_eq!(
        runs_len(state.store()).await,
        0,
        "an error is never `no lock`"
    );
    assert_eq!(state.metrics().processed("dead"), 1);

    // A redelivery of a dead item revives it (202).
    let (status, _) = send(&state, delivery("push", "doomed", body, SECRET)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

pub async fn commit_without_lock_is_no_lock(db: &TestDb) {
    let repo = TestRepo::new();
    let state = state_with(db.store(8).await, &repo.base, None);
    let zero = "0".repeat(40);
    let (_, text) = send(
        &state,
        delivery("push", "old", push_body(&zero, &repo.first, "main"), SECRET),
    )
    .await;
    let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    drain(&state).await;
    let item = state.store().get_inbox_item(&id).await.unwrap().unwrap();
    assert_eq!(item.outcome.as_deref(), Some("no_lock"));
    assert_eq!(runs_len(state.store()).await, 0);
}
