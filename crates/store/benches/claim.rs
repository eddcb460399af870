//! Claim+ack throughput with simulated agents, on SQLite and PostgreSQL.
//!
//! `cargo bench -p kici-store --bench claim` (PostgreSQL from `KICI_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/`; skipped when unreachable). Options:
//! `KICI_BENCH_JOBS` (default 5000), `KICI_BENCH_AGENTS` (default 8).
//! Each agent is a task looping `claim_next` + `ack_dispatch` on the orchestrator's one
//! store, as the dispatch path would; a second phase also writes START and SUCCEED, the
//! full status traffic of a job.

use std::time::{Duration, Instant};

use kici_engine::state::Event;
use kici_store::{
    AgentProfile, EnqueueSpec, JobStart, JobUpdate, NewJob, NewRun, QueueLimits, Store,
    StoreOptions,
};
use sqlx::Connection;

const T0: i64 = 1_767_000_000_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn new_run(jobs: usize, at: i64) -> NewRun {
    NewRun {
        run_id: kici_store::new_id(),
        org_id: "default".into(),
        inbox_id: None,
        dispatch_key: None,
        workflow_name: "bench".into(),
        provider: "generic".into(),
        routing_key: "generic:default:bench".into(),
        repo_identifier: "acme/app".into(),
        git_ref: "refs/heads/main".into(),
        sha: "a".repeat(40),
        event: serde_json::json!({"type": "push"}),
        decision: None,
        matched_trigger: None,
        trust_tier: "trusted".into(),
        concurrency: None,
        workflow_timeout_ms: None,
        is_test_run: false,
        parent_run_id: None,
        triggered_by: None,
        init_failure: None,
        created_at: at,
        jobs: (0..jobs)
            .map(|i| NewJob {
                job_id: kici_store::new_id(),
                job_name: format!("j{i}"),
                base_job_name: format!("j{i}"),
                variant_kind: None,
                matrix_values: None,
                job_config: serde_json::json!({}),
                environments: None,
                runs_on: None,
                wave_gated: false,
                init_failure: None,
                error_message: None,
                start: JobStart::Enqueue(EnqueueSpec::default()),
            })
            .collect(),
        needs: vec![],
    }
}

async fn fill(store: &Store, jobs: usize) {
    let per_run = 100;
    for r in 0..jobs.div_ceil(per_run) {
        let n = per_run.min(jobs - r * per_run);
        store.create_run(&new_run(n, T0 + r as i64)).await.unwrap();
    }
}

async fn drain(store: &Store, agents: usize, lifecycle: bool) -> (usize, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..agents {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = AgentProfile {
                agent_id: format!("agent-{a}"),
                labels: vec!["linux".into()],
                mandatory_labels: vec![],
            };
            let mut done: u32 = 0;
            let (mut in_claim, mut in_ack) = (Duration::ZERO, Duration::ZERO);
            loop {
                let t = Instant::now();
                let Some(job) = store.claim_next(&me, T0 + 10).await.unwrap() else {
                    break;
                };
                in_claim += t.elapsed();
                let t = Instant::now();
                assert!(
                    store
                        .ack_dispatch(&job.job_id, &me.agent_id, T0 + 11)
                        .await
                        .unwrap()
                );
                in_ack += t.elapsed();
                if lifecycle {
                    let update = JobUpdate::default();
                    store
                        .transition_job(&job.job_id, Event::Start, &update, T0 + 12)
                        .await
                        .unwrap();
                    store
                        .transition_job(&job.job_id, Event::Succeed, &update, T0 + 13)
                        .await
                        .unwrap();
                }
                done += 1;
            }
            if a == 0 && std::env::var_os("KICI_BENCH_VERBOSE").is_some() {
                eprintln!(
                    "agent 0: claim {:?}/job, ack {:?}/job",
                    in_claim / done.max(1),
                    in_ack / done.max(1)
                );
            }
            done as usize
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    (total, start.elapsed())
}

async fn bench(name: &str, url: &str, jobs: usize, agents: usize) {
    let options = StoreOptions {
        queue: QueueLimits {
            max_depth: i64::MAX,
            ..QueueLimits::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::connect(url, options).await.unwrap();
    store.migrate(T0).await.unwrap();
    for (label, lifecycle) in [("claim+ack", false), ("claim+ack+START+SUCCEED", true)] {
        let filled = Instant::now();
        fill(&store, jobs).await;
        let fill_time = filled.elapsed();
        let (claimed, elapsed) = drain(&store, agents, lifecycle).await;
        assert_eq!(claimed, jobs);
        println!(
            "{name:<10} {label:<24} {jobs} jobs, {agents} agents: {:>8.0} jobs/s ({:.1} µs/job; enqueue {:.0} jobs/s)",
            jobs as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / jobs as f64,
            jobs as f64 / fill_time.as_secs_f64(),
        );
    }
    store.close().await;
}

fn main() {
    let jobs = env_usize("KICI_BENCH_JOBS", 5000);
    let agents = env_usize("KICI_BENCH_AGENTS", 8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = kici_store::sqlite_url(&dir.path().join("kici.db"));
        bench("sqlite", &url, jobs, agents).await;

        let base = std::env::var("KICI_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/".into());
        let base = base.trim_end_matches('/').to_string();
        let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{base}/postgres")).await else {
            println!("postgres   SKIPPED: unreachable at {base}");
            return;
        };
        let name = format!("kici_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        bench("postgres", &format!("{base}/{name}"), jobs, agents).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    });
}
