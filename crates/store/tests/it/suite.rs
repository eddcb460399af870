//! The store's behaviour, written once; `main.rs` runs every function on SQLite and on
//! PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use kici_engine::labels::JobLabels;
use kici_engine::lock::LabelMatcher;
use kici_engine::state::{Event, QueueStatus, RunEvent, RunStatus, State, StepStatus};
use kici_store::{
    AgentProfile, AgentTokenKind, CreateRunOutcome, EnqueueSpec, Error, FailOutcome, InboxStatus,
    InsertOutcome, JobStart, JobUpdate, LogChunk, NewAdminToken, NewAgentToken, NewDelivery,
    NewJob, NewNeed, NewRun, QueueLimits, Requeue, RunUpdate, StepReport, StepWrite, Store,
    StoreOptions,
};
use serde_json::json;

use crate::harness::TestDb;

const T0: i64 = 1_767_000_000_000;

fn delivery(id: &str, at: i64) -> NewDelivery {
    NewDelivery::inline(
        "default",
        "generic:default:src",
        id,
        "direct",
        "generic",
        "push",
        format!("{{\"id\":\"{id}\"}}").into_bytes(),
        at,
    )
}

fn job(name: &str, start: JobStart) -> NewJob {
    NewJob {
        job_id: kici_store::new_id(),
        job_name: name.to_string(),
        base_job_name: name.to_string(),
        variant_kind: None,
        matrix_values: None,
        job_config: json!({"name": name}),
        environments: None,
        runs_on: None,
        wave_gated: false,
        init_failure: None,
        error_message: None,
        start,
    }
}

fn enqueue() -> JobStart {
    JobStart::Enqueue(EnqueueSpec::default())
}

fn run(jobs: Vec<NewJob>, needs: Vec<NewNeed>, at: i64) -> NewRun {
    NewRun {
        run_id: kici_store::new_id(),
        org_id: "default".to_string(),
        inbox_id: None,
        dispatch_key: None,
        workflow_name: "ci".to_string(),
        provider: "generic".to_string(),
        routing_key: "generic:default:src".to_string(),
        repo_identifier: "acme/app".to_string(),
        git_ref: "refs/heads/main".to_string(),
        sha: "a".repeat(40),
        event: json!({"type": "push"}),
        decision: Some(json!({"matched": true})),
        matched_trigger: Some("push".to_string()),
        trust_tier: "trusted".to_string(),
        concurrency: None,
        workflow_timeout_ms: Some(60_000),
        is_test_run: false,
        parent_run_id: None,
        triggered_by: None,
        init_failure: None,
        created_at: at,
        jobs,
        needs,
    }
}

fn agent(id: &str, labels: &[&str], taints: &[&str]) -> AgentProfile {
    AgentProfile {
        agent_id: id.to_string(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        mandatory_labels: taints.iter().map(|s| s.to_string()).collect(),
    }
}

/// Creates a run of `n` root jobs enqueued with `spec`, returns their ids in order.
async fn enqueue_jobs(store: &Store, n: usize, spec: EnqueueSpec, at: i64) -> Vec<String> {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| job(&format!("j{i}"), JobStart::Enqueue(spec.clone())))
        .collect();
    let ids = jobs.iter().map(|j| j.job_id.clone()).collect();
    let outcome = store.create_run(&run(jobs, vec![], at)).await.unwrap();
    assert!(
        matches!(outcome, CreateRunOutcome::Created { ref queue_full, .. } if queue_full.is_empty())
    );
    ids
}

pub async fn migrations_from_empty_and_again_are_a_no_op(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.schema_version().await.unwrap(), 0);
    let first = store.migrate(T0).await.unwrap();
    assert_eq!(first.applied, vec![1]);
    assert_eq!(first.current, 1);
    assert_eq!(store.schema_version().await.unwrap(), 1);
    let second = store.migrate(T0 + 1).await.unwrap();
    assert!(second.applied.is_empty());
    // Two more processes migrating at once: both succeed, neither applies anything.
    let a = db.open_another(StoreOptions::default()).await;
    let b = db.open_another(StoreOptions::default()).await;
    let (ra, rb) = tokio::join!(a.migrate(T0), b.migrate(T0));
    assert!(ra.unwrap().applied.is_empty());
    assert!(rb.unwrap().applied.is_empty());
    a.close().await;
    b.close().await;
    store.ping().await.unwrap();
}

pub async fn concurrent_first_migrations_apply_once(db: &TestDb) {
    let a = db.open_another(StoreOptions::default()).await;
    let b = db.open_another(StoreOptions::default()).await;
    let (ra, rb) = tokio::join!(a.migrate(T0), b.migrate(T0));
    let mut applied = ra.unwrap().applied;
    applied.extend(rb.unwrap().applied);
    assert_eq!(applied, vec![1], "exactly one migrator applied version 1");
    a.close().await;
    b.close().await;
}

pub async fn inbox_deduplicates_on_insert(db: &TestDb) {
    let store = db.migrated().await;
    let first = store.insert_delivery(&delivery("d1", T0)).await.unwrap();
    let InsertOutcome::Inserted { id } = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        store
            .insert_delivery(&delivery("d1", T0 + 5))
            .await
            .unwrap(),
        InsertOutcome::Duplicate { id: id.clone() }
    );
    // Another source may reuse the delivery id.
    let mut other = delivery("d1", T0);
    other.routing_key = "generic:default:other".to_string();
    assert!(matches!(
        store.insert_delivery(&other).await.unwrap(),
        InsertOutcome::Inserted { .. }
    ));
    let item = store.get_inbox_item(&id).await.unwrap().unwrap();
    assert_eq!(item.status, InboxStatus::Pending);
    assert_eq!(item.body.as_deref(), Some(&b"{\"id\":\"d1\"}"[..]));
    assert_eq!(item.body_sha256, kici_store::sha256_hex(b"{\"id\":\"d1\"}"));
    assert_eq!(item.attempts, 0);
}

pub async fn inbox_claims_with_lease_retries_and_dead_letters(db: &TestDb) {
    let store = db.migrated().await;
    let InsertOutcome::Inserted { id } = store.insert_delivery(&delivery("d1", T0)).await.unwrap()
    else {
        panic!()
    };
    let InsertOutcome::Inserted { id: second } = store
        .insert_delivery(&delivery("d2", T0 + 1))
        .await
        .unwrap()
    else {
        panic!()
    };
    // Oldest first; each claim counts an attempt and takes a lease.
    let claimed = store
        .claim_inbox("w1", T0 + 10, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, id);
    assert_eq!(claimed.status, InboxStatus::Processing);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed.lease_until, Some(T0 + 10 + 60_000));
    let next = store
        .claim_inbox("w2", T0 + 10, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, second);
    assert!(
        store
            .claim_inbox("w3", T0 + 10, 60_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .renew_inbox_lease(&id, "w1", T0 + 20, 60_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_inbox_lease(&id, "w2", T0 + 20, 60_000)
            .await
            .unwrap()
    );

    // A retryable failure: back in `retry`, not claimable before its time.
    let delay = kici_store::inbox_backoff_ms(1, 0.0);
    assert_eq!(
        store
            .fail_inbox(&id, "w1", "lock fetch: 503", T0 + 30, delay)
            .await
            .unwrap(),
        FailOutcome::Retry {
            next_attempt_at: T0 + 30 + delay
        }
    );
    assert!(
        store
            .claim_inbox("w1", T0 + 31, 60_000)
            .await
            .unwrap()
            .is_none()
    );
    // A worker that lost its lease writes nothing.
    assert_eq!(
        store
            .fail_inbox(&id, "w1", "late", T0 + 40, delay)
            .await
            .unwrap(),
        FailOutcome::LeaseLost
    );
    assert!(
        !store
            .complete_inbox(&id, "w9", "matched", None, &[], T0)
            .await
            .unwrap()
    );

    // Attempts 2..8 fail too: the eighth dead-letters it.
    let mut now = T0 + 30 + delay;
    for attempt in 2..=8 {
        let item = store.claim_inbox("w1", now, 60_000).await.unwrap().unwrap();
        assert_eq!(item.id, id);
        assert_eq!(item.attempts, attempt);
        let outcome = store
            .fail_inbox(&id, "w1", "still failing", now, 1)
            .await
            .unwrap();
        if attempt < 8 {
            assert_eq!(
                outcome,
                FailOutcome::Retry {
                    next_attempt_at: now + 1
                }
            );
        } else {
            assert_eq!(outcome, FailOutcome::Dead);
        }
        now += 10;
    }
    assert!(
        store
            .claim_inbox("w1", now + 1_000_000, 60_000)
            .await
            .unwrap()
            .is_none()
    );
    let dead = store.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].last_error.as_deref(), Some("still failing"));

    // The sender redelivering a dead item revives it (202), attempts reset.
    assert_eq!(
        store.insert_delivery(&delivery("d1", now)).await.unwrap(),
        InsertOutcome::Revived { id: id.clone() }
    );
    let revived = store.get_inbox_item(&id).await.unwrap().unwrap();
    assert_eq!(
        (revived.status, revived.attempts),
        (InboxStatus::Pending, 0)
    );

    // Done records outcome and run ids.
    let item = store.claim_inbox("w1", now, 60_000).await.unwrap().unwrap();
    let runs = vec!["r1".to_string(), "r2".to_string()];
    assert!(
        store
            .complete_inbox(
                &item.id,
                "w1",
                "matched",
                Some(&json!([{"workflow": "ci"}])),
                &runs,
                now + 1
            )
            .await
            .unwrap()
    );
    let done = store.get_inbox_item(&id).await.unwrap().unwrap();
    assert_eq!(done.status, InboxStatus::Done);
    assert_eq!(done.outcome.as_deref(), Some("matched"));
    assert_eq!(done.run_ids, runs);
    assert_eq!(done.processed_at, Some(now + 1));
    assert!(done.lease_owner.is_none());
}

pub async fn inbox_admin_retry_replay_and_lease_sweep(db: &TestDb) {
    let options = StoreOptions {
        inbox_max_attempts: 1,
        ..StoreOptions::default()
    };
    let store = db.open_another(options).await;
    store.migrate(T0).await.unwrap();
    let InsertOutcome::Inserted { id } = store.insert_delivery(&delivery("d1", T0)).await.unwrap()
    else {
        panic!()
    };
    store.claim_inbox("w", T0, 1000).await.unwrap().unwrap();
    assert_eq!(
        store.fail_inbox(&id, "w", "boom", T0, 5).await.unwrap(),
        FailOutcome::Dead
    );
    assert!(store.retry_inbox(&id, T0 + 1).await.unwrap());
    assert!(
        !store.retry_inbox(&id, T0 + 1).await.unwrap(),
        "already pending"
    );
    let item = store.get_inbox_item(&id).await.unwrap().unwrap();
    assert_eq!((item.status, item.attempts), (InboxStatus::Pending, 0));

    // An expired lease goes back to retry on the sweep.
    store.claim_inbox("w", T0 + 2, 1000).await.unwrap().unwrap();
    assert_eq!(
        store.requeue_expired_inbox_leases(T0 + 500).await.unwrap(),
        0
    );
    assert_eq!(
        store.requeue_expired_inbox_leases(T0 + 2000).await.unwrap(),
        1
    );
    let item = store.get_inbox_item(&id).await.unwrap().unwrap();
    assert_eq!(item.status, InboxStatus::Retry);
    assert!(
        store
            .claim_inbox("w2", T0 + 2000, 1000)
            .await
            .unwrap()
            .is_some()
    );

    // Replay copies the item under a new delivery id, each time a new one.
    let r1 = store.replay_inbox(&id, T0 + 3000).await.unwrap();
    let r2 = store.replay_inbox(&id, T0 + 3001).await.unwrap();
    let c1 = store.get_inbox_item(&r1).await.unwrap().unwrap();
    let c2 = store.get_inbox_item(&r2).await.unwrap().unwrap();
    assert_eq!(c1.delivery_id, "d1:replay:1");
    assert_eq!(c2.delivery_id, "d1:replay:2");
    assert_eq!(c1.body, item.body);
    assert_eq!(c1.status, InboxStatus::Pending);
    assert!(matches!(
        store.replay_inbox("missing", T0).await,
        Err(Error::NotFound { .. })
    ));
    store.close().await;
}

pub async fn runs_are_created_in_one_transaction_and_read_back(db: &TestDb) {
    let store = db.migrated().await;
    let mut build = job("build", enqueue());
    build.runs_on = Some(json!([{"kind": "exact", "value": "linux"}]));
    let mut test_a = job("test (a)", JobStart::Pending);
    test_a.base_job_name = "test".to_string();
    test_a.variant_kind = Some("matrix".to_string());
    test_a.matrix_values = Some(json!({"shard": "a"}));
    let mut broken = job("deploy", JobStart::Failed);
    broken.init_failure =
        Some(json!({"scope": "job", "category": "environment_rules", "message": "no"}));
    let needs = vec![
        NewNeed {
            job_name: "test (a)".to_string(),
            upstream_name: "build".to_string(),
            run_on: vec!["success".to_string()],
        },
        NewNeed {
            job_name: "deploy".to_string(),
            upstream_name: "test (a)".to_string(),
            run_on: vec!["success".to_string(), "skipped".to_string()],
        },
    ];
    let ids: Vec<String> = [&build, &test_a, &broken]
        .iter()
        .map(|j| j.job_id.clone())
        .collect();
    let mut new = run(vec![build, test_a, broken], needs.clone(), T0);
    new.inbox_id = Some("inbox-1".to_string());
    new.dispatch_key = Some("ci".to_string());
    let outcome = store.create_run(&new).await.unwrap();
    assert_eq!(
        outcome,
        CreateRunOutcome::Created {
            run_id: new.run_id.clone(),
            enqueued: vec![ids[0].clone()],
            queue_full: vec![],
        }
    );
    // Retried inbox item: no second run.
    let mut again = new.clone();
    again.run_id = kici_store::new_id();
    for j in &mut again.jobs {
        j.job_id = kici_store::new_id();
    }
    assert_eq!(
        store.create_run(&again).await.unwrap(),
        CreateRunOutcome::AlreadyExists {
            run_id: new.run_id.clone()
        }
    );
    assert!(store.get_run(&again.run_id).await.unwrap().is_none());

    let got = store.get_run(&new.run_id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Pending);
    assert_eq!(got.workflow_name, "ci");
    assert_eq!(got.git_ref, "refs/heads/main");
    assert_eq!(got.event, json!({"type": "push"}));
    assert_eq!(got.workflow_timeout_ms, Some(60_000));
    assert!(!got.is_test_run);
    let jobs = store.list_jobs(&new.run_id).await.unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j.job_name.as_str()).collect();
    assert_eq!(names, ["build", "test (a)", "deploy"]);
    assert_eq!(
        jobs.iter().map(|j| j.status).collect::<Vec<_>>(),
        [State::Queued, State::Pending, State::Failed]
    );
    assert_eq!(jobs[1].matrix_values, Some(json!({"shard": "a"})));
    assert_eq!(jobs[1].base_job_name, "test");
    assert_eq!(
        jobs[2].init_failure.as_ref().unwrap()["category"],
        "environment_rules"
    );
    assert_eq!(jobs[2].completed_at, Some(T0));
    let mut sorted = needs;
    sorted.sort_by(|a, b| (&a.job_name, &a.upstream_name).cmp(&(&b.job_name, &b.upstream_name)));
    assert_eq!(store.list_needs(&new.run_id).await.unwrap(), sorted);
    let entry = store.get_queue_entry(&ids[0]).await.unwrap().unwrap();
    assert_eq!(entry.status, QueueStatus::Pending);
    assert_eq!(entry.workflow_name, "ci");
    assert!(store.get_queue_entry(&ids[1]).await.unwrap().is_none());

    // A run with no jobs (run-scoped init failure) is failed from the start.
    let mut corrupt = run(vec![], vec![], T0);
    corrupt.workflow_name = "(unresolved workflow)".to_string();
    corrupt.init_failure = Some(json!({"scope": "run", "category": "lock_resolution"}));
    store.create_run(&corrupt).await.unwrap();
    assert_eq!(
        store
            .get_run(&corrupt.run_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Failed
    );
    let listed = store.list_runs(None, None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    let failed = store
        .list_runs(Some(RunStatus::Failed), None, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].run_id, corrupt.run_id);
}

pub async fn job_status_writes_go_through_the_state_machine(db: &TestDb) {
    let store = db.migrated().await;
    let root = job("build", enqueue());
    let waiting = job("test", JobStart::Pending);
    let (root_id, waiting_id) = (root.job_id.clone(), waiting.job_id.clone());
    let new = run(vec![root, waiting], vec![], T0);
    store.create_run(&new).await.unwrap();

    // Invalid: refused, nothing written.
    let err = store
        .transition_job(&waiting_id, Event::Succeed, &JobUpdate::default(), T0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransition { entity: "job", ref id, source } if *id == waiting_id && source.from == State::Pending && source.event == Event::Succeed),
        "{err}"
    );
    assert_eq!(
        store.get_job(&waiting_id).await.unwrap().unwrap().status,
        State::Pending
    );
    assert!(matches!(
        store
            .transition_job(&waiting_id, Event::Enqueue, &JobUpdate::default(), T0)
            .await,
        Err(Error::EnqueueOutsideQueue { .. })
    ));
    assert!(matches!(
        store
            .transition_job("nope", Event::Start, &JobUpdate::default(), T0)
            .await,
        Err(Error::NotFound { .. })
    ));

    // The happy path, with timestamps and fields.
    let claimed = store
        .claim_next(&agent("a1", &[], &[]), T0 + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.job_id, root_id);
    let started = store
        .transition_job(
            &root_id,
            Event::Start,
            &JobUpdate {
                agent_id: Some("a1".into()),
                ..JobUpdate::default()
            },
            T0 + 10,
        )
        .await
        .unwrap();
    assert_eq!(
        (started.from, started.to, started.changed),
        (State::Queued, State::Running, true)
    );
    assert!(store.record_job_heartbeat(&root_id, T0 + 20).await.unwrap());
    assert!(
        !store
            .record_job_heartbeat(&waiting_id, T0 + 20)
            .await
            .unwrap()
    );
    let done = store
        .transition_job(
            &root_id,
            Event::Succeed,
            &JobUpdate {
                outputs: Some(json!({"version": "1.2.3"})),
                ..JobUpdate::default()
            },
            T0 + 110,
        )
        .await
        .unwrap();
    assert_eq!(done.to, State::Success);
    let stored = store.get_job(&root_id).await.unwrap().unwrap();
    assert_eq!(stored.status, State::Success);
    assert_eq!(stored.agent_id.as_deref(), Some("a1"));
    assert_eq!(stored.started_at, Some(T0 + 10));
    assert_eq!(stored.completed_at, Some(T0 + 110));
    assert_eq!(stored.duration_ms, Some(100));
    assert_eq!(stored.last_heartbeat_at, Some(T0 + 20));
    assert_eq!(stored.outputs, Some(json!({"version": "1.2.3"})));
    assert_eq!(
        store
            .get_queue_entry(&root_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        QueueStatus::Completed
    );
    // A repeated identical terminal status is a silent no-op; a different one is refused.
    let repeat = store
        .transition_job(&root_id, Event::Succeed, &JobUpdate::default(), T0 + 200)
        .await
        .unwrap();
    assert!(!repeat.changed);
    assert!(
        store
            .transition_job(&root_id, Event::Fail, &JobUpdate::default(), T0)
            .await
            .is_err()
    );
    assert_eq!(
        store.get_job(&root_id).await.unwrap().unwrap().completed_at,
        Some(T0 + 110)
    );

    // Skip cascade input: a pending job skipped with its reason.
    store
        .transition_job(
            &waiting_id,
            Event::Skip,
            &JobUpdate {
                skip_reason: Some("upstream build (failed)".into()),
                ..JobUpdate::default()
            },
            T0 + 300,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_job(&waiting_id)
            .await
            .unwrap()
            .unwrap()
            .skip_reason
            .as_deref(),
        Some("upstream build (failed)")
    );
    assert_eq!(
        store
            .finish_run_if_complete(&new.run_id, T0 + 400)
            .await
            .unwrap(),
        Some(RunStatus::Success)
    );
}

pub async fn concurrent_writers_cannot_both_move_a_job(db: &TestDb) {
    let store = db.migrated().await;
    let jobs: Vec<NewJob> = (0..10).map(|i| job(&format!("j{i}"), enqueue())).collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    store.create_run(&run(jobs, vec![], T0)).await.unwrap();
    for id in &ids {
        store.claim_job(id, "a", T0).await.unwrap().unwrap();
        store
            .transition_job(id, Event::Start, &JobUpdate::default(), T0)
            .await
            .unwrap();
    }
    // Writers on separate connections race SUCCEED against FAIL on every job.
    let a = Arc::new(db.open_another(StoreOptions::default()).await);
    let b = Arc::new(db.open_another(StoreOptions::default()).await);
    let mut tasks = Vec::new();
    for id in &ids {
        for (store, event) in [(a.clone(), Event::Succeed), (b.clone(), Event::Fail)] {
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .transition_job(&id, event, &JobUpdate::default(), T0 + 1)
                    .await
            }));
        }
    }
    let mut moved = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(t) if t.changed => moved += 1,
            Ok(_) => {}
            Err(Error::InvalidTransition { .. }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(moved, ids.len(), "exactly one writer moved each job");
    for id in &ids {
        let status = store.get_job(id).await.unwrap().unwrap().status;
        assert!(matches!(status, State::Success | State::Failed));
    }
    a.close().await;
    b.close().await;
}

pub async fn run_status_follows_the_spec(db: &TestDb) {
    let store = db.migrated().await;
    let a = job("a", enqueue());
    let b = job("b", enqueue());
    let (a_id, b_id) = (a.job_id.clone(), b.job_id.clone());
    let new = run(vec![a, b], vec![], T0);
    store.create_run(&new).await.unwrap();
    assert_eq!(
        store
            .transition_run(&new.run_id, RunEvent::Start, &RunUpdate::default(), T0 + 1)
            .await
            .unwrap(),
        (RunStatus::Pending, RunStatus::Running)
    );
    assert!(matches!(
        store
            .transition_run(&new.run_id, RunEvent::Start, &RunUpdate::default(), T0)
            .await,
        Err(Error::InvalidRunTransition { .. })
    ));
    store
        .transition_job(&a_id, Event::Cancel, &JobUpdate::default(), T0 + 2)
        .await
        .unwrap();
    assert_eq!(
        store
            .finish_run_if_complete(&new.run_id, T0 + 3)
            .await
            .unwrap(),
        None
    );
    store
        .transition_run(
            &new.run_id,
            RunEvent::CancelRequested,
            &RunUpdate {
                cancelled_by: Some("ops".into()),
                failure_reason: Some("manual".into()),
            },
            T0 + 4,
        )
        .await
        .unwrap();
    store
        .transition_job(&b_id, Event::Cancel, &JobUpdate::default(), T0 + 5)
        .await
        .unwrap();
    assert_eq!(
        store
            .finish_run_if_complete(&new.run_id, T0 + 6)
            .await
            .unwrap(),
        Some(RunStatus::Cancelled)
    );
    let got = store.get_run(&new.run_id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Cancelled);
    assert_eq!(got.cancelled_by.as_deref(), Some("ops"));
    assert_eq!(got.started_at, Some(T0 + 1));
    assert_eq!(got.completed_at, Some(T0 + 6));
    assert_eq!(got.duration_ms, Some(5));
    // Idempotent once terminal.
    assert_eq!(
        store
            .finish_run_if_complete(&new.run_id, T0 + 9)
            .await
            .unwrap(),
        Some(RunStatus::Cancelled)
    );
}

pub async fn steps_move_forward_only(db: &TestDb) {
    let store = db.migrated().await;
    let j = job("build", enqueue());
    let job_id = j.job_id.clone();
    let new = run(vec![j], vec![], T0);
    store.create_run(&new).await.unwrap();
    let report = |status: StepStatus| StepReport {
        run_id: new.run_id.clone(),
        job_id: job_id.clone(),
        step_index: 0,
        step_name: "compile".to_string(),
        step_type: Some("step".to_string()),
        status,
        concurrency_kind: None,
        group_id: None,
        attempts: None,
        exit_code: None,
        error_message: None,
        secrets_accessed: None,
        log_bytes: None,
    };
    assert_eq!(
        store
            .record_step(&report(StepStatus::Running), T0)
            .await
            .unwrap(),
        StepWrite::Inserted
    );
    assert_eq!(
        store
            .record_step(&report(StepStatus::Running), T0 + 1)
            .await
            .unwrap(),
        StepWrite::Unchanged
    );
    let mut failed = report(StepStatus::Failed);
    failed.exit_code = Some(2);
    failed.error_message = Some("exit 2".to_string());
    failed.secrets_accessed = Some(json!(["TOKEN"]));
    assert_eq!(
        store.record_step(&failed, T0 + 50).await.unwrap(),
        StepWrite::Moved {
            from: StepStatus::Running
        }
    );
    assert!(matches!(
        store
            .record_step(&report(StepStatus::Running), T0 + 60)
            .await,
        Err(Error::InvalidStepTransition { .. })
    ));
    let mut skipped = report(StepStatus::Skipped);
    skipped.step_index = 1;
    skipped.step_name = "deploy".to_string();
    store.record_step(&skipped, T0 + 70).await.unwrap();
    let steps = store.list_steps(&job_id).await.unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].status, StepStatus::Failed);
    assert_eq!(steps[0].exit_code, Some(2));
    assert_eq!(steps[0].started_at, Some(T0));
    assert_eq!(steps[0].duration_ms, Some(50));
    assert_eq!(steps[0].secrets_accessed, Some(json!(["TOKEN"])));
    assert_eq!(steps[1].status, StepStatus::Skipped);
}

pub async fn queue_is_fifo_and_routes_by_labels(db: &TestDb) {
    let store = db.migrated().await;
    let spec = |runs_on: Vec<LabelMatcher>, exclude: Vec<LabelMatcher>| EnqueueSpec {
        labels: JobLabels::from_matchers(&runs_on, &exclude, false),
        pinned_agent_id: None,
        expires_at: None,
    };
    let exact = |v: &str| LabelMatcher::Exact {
        value: v.to_string(),
    };
    let regex = |s: &str| LabelMatcher::Regex {
        source: s.to_string(),
        flags: String::new(),
    };
    // One millisecond for all: FIFO must still hold (sequence tie-break).
    let any = enqueue_jobs(&store, 3, EnqueueSpec::default(), T0).await;
    let linux = enqueue_jobs(&store, 1, spec(vec![exact("linux")], vec![]), T0).await;
    let pool = enqueue_jobs(&store, 1, spec(vec![regex("^pool-(a|b)$")], vec![]), T0).await;
    let not_arm = enqueue_jobs(&store, 1, spec(vec![], vec![regex("^arm")]), T0).await;
    let gpu = enqueue_jobs(&store, 1, spec(vec![exact("gpu")], vec![]), T0).await;
    let pinned_spec = EnqueueSpec {
        pinned_agent_id: Some("special".to_string()),
        ..EnqueueSpec::default()
    };
    let pinned = enqueue_jobs(&store, 1, pinned_spec, T0 + 1).await;
    assert_eq!(store.queue_depth().await.unwrap(), 8);

    let tainted = agent("tainted", &["gpu", "linux"], &["gpu"]);
    let claim = |a: AgentProfile| {
        let store = store.clone();
        async move {
            store
                .claim_next(&a, T0 + 10)
                .await
                .unwrap()
                .map(|c| c.job_id)
        }
    };
    // The tainted agent only takes jobs that require its taint.
    assert_eq!(claim(tainted.clone()).await, Some(gpu[0].clone()));
    assert_eq!(claim(tainted).await, None);
    // A pinned row goes first to its agent.
    assert_eq!(
        claim(agent("special", &[], &[])).await,
        Some(pinned[0].clone())
    );
    // FIFO for a plain agent, skipping what it cannot run.
    let plain = agent("plain", &["arm64"], &[]);
    assert_eq!(claim(plain.clone()).await, Some(any[0].clone()));
    assert_eq!(claim(plain.clone()).await, Some(any[1].clone()));
    assert_eq!(claim(plain.clone()).await, Some(any[2].clone()));
    assert_eq!(
        claim(plain).await,
        None,
        "linux, pool, not-arm are not for it"
    );
    assert_eq!(
        claim(agent("b", &["pool-b", "x64"], &[])).await,
        Some(pool[0].clone())
    );
    assert_eq!(
        claim(agent("c", &["linux"], &[])).await,
        Some(linux[0].clone())
    );
    assert_eq!(
        claim(agent("d", &["x64"], &[])).await,
        Some(not_arm[0].clone())
    );
    assert_eq!(store.queue_depth().await.unwrap(), 0);
    let entry = store.get_queue_entry(&linux[0]).await.unwrap().unwrap();
    assert_eq!(entry.status, QueueStatus::Dispatched);
    assert_eq!(entry.agent_id.as_deref(), Some("c"));
    assert_eq!(entry.require, vec!["linux".to_string()]);
    assert_eq!(entry.ack_deadline, Some(T0 + 10 + 10_000));
}

pub async fn queue_pages_past_unmatched_rows(db: &TestDb) {
    let store = db.migrated().await;
    let regex = EnqueueSpec {
        labels: JobLabels::from_matchers(
            &[LabelMatcher::Regex {
                source: "^never$".into(),
                flags: String::new(),
            }],
            &[],
            false,
        ),
        ..EnqueueSpec::default()
    };
    // More unmatched rows than one pre-filter page, then a matching one.
    enqueue_jobs(&store, 120, regex, T0).await;
    let wanted = enqueue_jobs(&store, 1, EnqueueSpec::default(), T0 + 1).await;
    let got = store
        .claim_next(&agent("a", &["x"], &[]), T0 + 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.job_id, wanted[0]);
}

pub async fn ack_deadline_requeue_and_attempt_budget(db: &TestDb) {
    let store = db.migrated().await;
    let ids = enqueue_jobs(&store, 2, EnqueueSpec::default(), T0).await;
    let a = agent("a", &[], &[]);
    let first = store.claim_next(&a, T0).await.unwrap().unwrap();
    assert_eq!(first.ack_deadline, T0 + 10_000);
    assert!(
        store
            .ack_dispatch(&first.job_id, "a", T0 + 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .ack_dispatch(&first.job_id, "a", T0 + 6)
            .await
            .unwrap(),
        "acked once"
    );
    assert!(
        !store.ack_dispatch(&ids[1], "a", T0).await.unwrap(),
        "not dispatched"
    );

    // The second is never acked: the sweep requeues it; after the budget the job fails.
    let mut now = T0;
    for attempt in 1..=5 {
        let claimed = store.claim_next(&a, now).await.unwrap().unwrap();
        assert_eq!(claimed.job_id, ids[1]);
        assert!(
            store
                .requeue_expired_acks(now + 9_999)
                .await
                .unwrap()
                .is_empty()
        );
        let swept = store.requeue_expired_acks(now + 10_001).await.unwrap();
        let expected = if attempt < 5 {
            Requeue::Requeued { attempts: attempt }
        } else {
            Requeue::Exhausted { attempts: 5 }
        };
        assert_eq!(swept, vec![(ids[1].clone(), expected)]);
        now += 20_000;
    }
    let failed = store.get_job(&ids[1]).await.unwrap().unwrap();
    assert_eq!(failed.status, State::Failed);
    assert_eq!(
        failed.error_message.as_deref(),
        Some("re-dispatch attempts exhausted")
    );
    assert_eq!(failed.dispatch_attempts, 5);
    assert_eq!(
        store
            .get_queue_entry(&ids[1])
            .await
            .unwrap()
            .unwrap()
            .status,
        QueueStatus::Failed
    );
    assert!(store.claim_next(&a, now).await.unwrap().is_none());
    // A started job is not requeued (that is recovery).
    store
        .transition_job(&ids[0], Event::Start, &JobUpdate::default(), now)
        .await
        .unwrap();
    assert_eq!(
        store.requeue_job(&ids[0], "reject", now).await.unwrap(),
        Requeue::NotDispatched
    );
}

pub async fn recovery_moves_the_queue_row(db: &TestDb) {
    let store = db.migrated().await;
    let ids = enqueue_jobs(&store, 1, EnqueueSpec::default(), T0).await;
    store
        .claim_next(&agent("a", &[], &[]), T0)
        .await
        .unwrap()
        .unwrap();
    store
        .transition_job(&ids[0], Event::Start, &JobUpdate::default(), T0)
        .await
        .unwrap();
    store
        .transition_job(
            &ids[0],
            Event::Recover,
            &JobUpdate {
                recovery_deadline: Some(T0 + 120_000),
                ..JobUpdate::default()
            },
            T0 + 1,
        )
        .await
        .unwrap();
    let entry = store.get_queue_entry(&ids[0]).await.unwrap().unwrap();
    assert_eq!(entry.status, QueueStatus::Recovering);
    assert_eq!(entry.recovery_deadline, Some(T0 + 120_000));
    assert_eq!(entry.recovery_agent_id.as_deref(), Some("a"));
    store
        .transition_job(&ids[0], Event::Start, &JobUpdate::default(), T0 + 2)
        .await
        .unwrap();
    let entry = store.get_queue_entry(&ids[0]).await.unwrap().unwrap();
    assert_eq!(entry.status, QueueStatus::Dispatched);
    assert_eq!(entry.recovery_deadline, None);
}

pub async fn queue_depth_limit_and_expiry(db: &TestDb) {
    let options = StoreOptions {
        queue: QueueLimits {
            max_depth: 2,
            ..QueueLimits::default()
        },
        ..StoreOptions::default()
    };
    let store = db.open_another(options).await;
    store.migrate(T0).await.unwrap();
    let spec = EnqueueSpec {
        expires_at: Some(T0 + 1000),
        ..EnqueueSpec::default()
    };
    let jobs: Vec<NewJob> = (0..3)
        .map(|i| job(&format!("j{i}"), JobStart::Enqueue(spec.clone())))
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    let later = job("later", JobStart::Pending);
    let later_id = later.job_id.clone();
    let mut all = jobs;
    all.push(later);
    let CreateRunOutcome::Created {
        enqueued,
        queue_full,
        ..
    } = store.create_run(&run(all, vec![], T0)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(enqueued, ids[..2].to_vec());
    assert_eq!(queue_full, vec![ids[2].clone()]);
    let full = store.get_job(&ids[2]).await.unwrap().unwrap();
    assert_eq!(full.status, State::Failed);
    assert_eq!(
        full.error_message.as_deref(),
        Some("dispatch queue full (2 pending jobs)")
    );
    // A later enqueue is refused with the clear error and nothing written.
    let err = store
        .enqueue_job(&later_id, &EnqueueSpec::default(), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueFull { pending: 2, max: 2 }));
    assert_eq!(err.to_string(), "dispatch queue full (2 pending jobs)");
    assert_eq!(
        store.get_job(&later_id).await.unwrap().unwrap().status,
        State::Pending
    );
    assert!(store.get_queue_entry(&later_id).await.unwrap().is_none());

    // Expired rows are not claimable, and the sweep marks them and the jobs.
    assert!(
        store
            .claim_next(&agent("a", &[], &[]), T0 + 1001)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.expire_queue(T0 + 1000).await.unwrap().is_empty());
    let expired = store.expire_queue(T0 + 1001).await.unwrap();
    assert_eq!(expired, ids[..2].to_vec());
    let job = store.get_job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(job.status, State::TimedOutStale);
    assert!(
        job.error_message
            .unwrap()
            .starts_with("Queue timeout expired")
    );
    assert_eq!(
        store
            .get_queue_entry(&ids[0])
            .await
            .unwrap()
            .unwrap()
            .status,
        QueueStatus::Expired
    );
    // Room again.
    store
        .enqueue_job(&later_id, &EnqueueSpec::default(), T0 + 2000)
        .await
        .unwrap();
    store.close().await;
}

pub async fn push_claim_is_compare_and_set(db: &TestDb) {
    let store = db.migrated().await;
    let spec = EnqueueSpec {
        pinned_agent_id: Some("p".to_string()),
        ..EnqueueSpec::default()
    };
    let pinned = enqueue_jobs(&store, 1, spec, T0).await;
    let free = enqueue_jobs(&store, 1, EnqueueSpec::default(), T0).await;
    assert!(
        store
            .claim_job(&pinned[0], "other", T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .claim_job(&pinned[0], "p", T0)
            .await
            .unwrap()
            .is_some()
    );
    let (x, y) = tokio::join!(
        store.claim_job(&free[0], "x", T0),
        store.claim_job(&free[0], "y", T0)
    );
    assert_eq!(
        [x.unwrap().is_some(), y.unwrap().is_some()]
            .iter()
            .filter(|c| **c)
            .count(),
        1
    );
}

/// Property-style: many jobs, several claimers each with its own connections; no job is
/// claimed twice and every job is claimed.
pub async fn concurrent_claimers_never_claim_a_job_twice(db: &TestDb) {
    let store = db.migrated().await;
    const JOBS: usize = 400;
    const CLAIMERS: usize = 6;
    let options = StoreOptions {
        queue: QueueLimits {
            max_depth: 100_000,
            ..QueueLimits::default()
        },
        ..StoreOptions::default()
    };
    let filler = db.open_another(options.clone()).await;
    let mut ids = BTreeSet::new();
    for chunk in 0..(JOBS / 50) {
        // Mixed requirements: some exact, some regex, all satisfiable by every claimer.
        let spec = match chunk % 3 {
            0 => EnqueueSpec::default(),
            1 => EnqueueSpec {
                labels: JobLabels::from_matchers(
                    &[LabelMatcher::Exact {
                        value: "linux".into(),
                    }],
                    &[],
                    false,
                ),
                ..EnqueueSpec::default()
            },
            _ => EnqueueSpec {
                labels: JobLabels::from_matchers(
                    &[LabelMatcher::Regex {
                        source: "^li".into(),
                        flags: String::new(),
                    }],
                    &[],
                    false,
                ),
                ..EnqueueSpec::default()
            },
        };
        ids.extend(enqueue_jobs(&filler, 50, spec, T0 + chunk as i64).await);
    }
    filler.close().await;
    let mut tasks = Vec::new();
    for c in 0..CLAIMERS {
        let url = db.url.clone();
        let options = options.clone();
        tasks.push(tokio::spawn(async move {
            let own = Store::connect(&url, options).await.unwrap();
            let me = agent(&format!("agent-{c}"), &["linux"], &[]);
            let mut mine = Vec::new();
            while let Some(claimed) = own.claim_next(&me, T0 + 1000).await.unwrap() {
                assert_eq!(claimed.agent_id, me.agent_id);
                assert!(
                    own.ack_dispatch(&claimed.job_id, &me.agent_id, T0 + 1001)
                        .await
                        .unwrap()
                );
                mine.push(claimed.job_id);
                tokio::task::yield_now().await;
            }
            own.close().await;
            mine
        }));
    }
    let mut seen = BTreeSet::new();
    let mut per_claimer = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        per_claimer.push(mine.len());
        for id in mine {
            assert!(seen.insert(id.clone()), "job {id} claimed twice");
        }
    }
    assert_eq!(seen, ids, "every job claimed exactly once");
    assert_eq!(store.queue_depth().await.unwrap(), 0);
    eprintln!("claims per claimer: {per_claimer:?}");
}

pub async fn tokens_are_stored_hashed(db: &TestDb) {
    let store = db.migrated().await;
    let new = NewAgentToken {
        label: Some("builders".into()),
        labels: Some(vec!["linux".into()]),
        mandatory_labels: vec!["gpu".into()],
        privileged_root: false,
        kind: AgentTokenKind::Static,
        bound_agent_id: None,
        max_uses: Some(2),
        expires_at: Some(T0 + 1000),
    };
    let (record, token) = store.create_agent_token(&new, T0).await.unwrap();
    assert!(token.starts_with("kat_") && token.len() == 68);
    assert_eq!(record.token_prefix, token[..12]);
    let listed = store.list_agent_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].mandatory_labels, vec!["gpu".to_string()]);
    let auth = store
        .authenticate_agent_token(&token, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.id, record.id);
    assert_eq!(auth.labels, Some(vec!["linux".to_string()]));
    assert_eq!(auth.uses, 1);
    assert!(
        store
            .authenticate_agent_token("kat_wrong", T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .authenticate_agent_token(&token, T0 + 2000)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        store
            .authenticate_agent_token(&token, T0 + 2)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .authenticate_agent_token(&token, T0 + 3)
            .await
            .unwrap()
            .is_none(),
        "max uses"
    );
    assert!(store.revoke_agent_token(&record.id, T0).await.unwrap());
    assert!(!store.revoke_agent_token(&record.id, T0).await.unwrap());

    assert!(!store.has_admin_tokens().await.unwrap());
    let (admin, secret) = store
        .create_admin_token(
            &NewAdminToken {
                label: "ops".into(),
                role: "owner".into(),
                expires_at: None,
            },
            T0,
        )
        .await
        .unwrap();
    assert!(secret.starts_with("kadm_") && secret.len() == 69);
    assert!(store.has_admin_tokens().await.unwrap());
    let found = store
        .authenticate_admin_token(&secret, T0 + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id.as_str(), found.role.as_str()),
        (admin.id.as_str(), "owner")
    );
    assert_eq!(found.last_used_at, Some(T0 + 5));
    let boot = store
        .insert_admin_token(
            &NewAdminToken {
                label: "bootstrap".into(),
                role: "owner".into(),
                expires_at: None,
            },
            "kadm_chosen",
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .authenticate_admin_token("kadm_chosen", T0)
            .await
            .unwrap()
            .unwrap()
            .id,
        boot.id
    );
    assert!(store.revoke_admin_token(&admin.id, T0 + 6).await.unwrap());
    assert!(
        store
            .authenticate_admin_token(&secret, T0 + 7)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_admin_tokens().await.unwrap().len(), 2);

    // Nothing in the database contains a plaintext token.
    let hashes = store.list_agent_tokens().await.unwrap();
    assert!(hashes.iter().all(|t| t.token_prefix.len() == 12));
}

pub async fn step_logs_deduplicate_and_read_from_offsets(db: &TestDb) {
    let store = db.migrated().await;
    let j = job("build", enqueue());
    let job_id = j.job_id.clone();
    let new = run(vec![j], vec![], T0);
    store.create_run(&new).await.unwrap();
    let chunk = |seq: i64, lines: &[&str]| LogChunk {
        run_id: new.run_id.clone(),
        job_id: job_id.clone(),
        step_index: 0,
        seq,
        ts: T0 + seq,
        lines: lines.iter().map(|s| s.to_string()).collect(),
    };
    assert!(
        store
            .append_log_chunk(&chunk(1, &["a", "b"]))
            .await
            .unwrap()
    );
    assert!(store.append_log_chunk(&chunk(2, &["c"])).await.unwrap());
    assert!(
        !store
            .append_log_chunk(&chunk(1, &["a", "b"]))
            .await
            .unwrap(),
        "resent chunk"
    );
    assert!(store.append_log_chunk(&chunk(5, &["", "e"])).await.unwrap());
    // Another step is separate.
    let mut other = chunk(1, &["prepare"]);
    other.step_index = -1;
    assert!(store.append_log_chunk(&other).await.unwrap());

    let all = store.read_step_log(&job_id, 0, 0, 100).await.unwrap();
    let texts: Vec<&str> = all.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["a", "b", "c", "", "e"]);
    assert_eq!(
        all.lines.iter().map(|l| l.n).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(all.lines[2].ts, T0 + 2);
    assert_eq!((all.next_offset, all.total_lines), (5, 5));
    let tail = store.read_step_log(&job_id, 0, 1, 2).await.unwrap();
    assert_eq!(
        tail.lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>(),
        ["b", "c"]
    );
    assert_eq!(tail.next_offset, 3);
    let nothing = store.read_step_log(&job_id, 0, 5, 10).await.unwrap();
    assert!(nothing.lines.is_empty());
    assert_eq!(nothing.next_offset, 5);
    assert_eq!(
        store
            .read_step_log(&job_id, -1, 0, 10)
            .await
            .unwrap()
            .lines
            .len(),
        1
    );
    assert_eq!(
        store.get_job(&job_id).await.unwrap().unwrap().log_bytes,
        4 + 7
    );
}
