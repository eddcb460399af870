//! Sources in the store (`orchestrator.md` §4): CRUD through the admin API with encrypted,
//! write-only secrets; the generic route with every verification method, payload cap, rate
//! limit and event filter; local sources; universal-git lock fetch from a bare repository;
//! seeding from configuration and the bootstrap token of a real start.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use kici_orchestrator::{Orchestrator, Sources};
use kici_store::{SYSTEM_ORG, source_secret_scope};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::api::{call, git, request, state, token};
use crate::harness::{self, REPO, TestDb, TestRepo, push_body};

crate::harness::backend_tests!(in sources;
    sources_crud_keeps_secrets_encrypted_and_write_only,
    generic_route_verifies_limits_and_filters,
    local_source_push_creates_a_run,
    universal_git_reads_the_lock_from_a_bare_repository,
    start_seeds_sources_and_prints_the_bootstrap_token_once,
);

/// A webhook request to a generic-route source from `peer`.
fn hook(name: &str, body: &[u8], headers: &[(&str, &str)], peer: [u8; 4]) -> Request<Body> {
    let mut builder = Request::post(format!("/webhook/default/generic/{name}"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(Body::from(body.to_vec())).expect("request");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((peer, 5555))));
    request
}

const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
const REMOTE: [u8; 4] = [203, 0, 113, 9];

async fn create_source(
    state: &kici_orchestrator::AppState,
    owner: &str,
    body: Value,
) -> (StatusCode, Value) {
    call(
        state,
        request("POST", "/api/v1/admin/sources", Some(owner), Some(body)),
    )
    .await
}

async fn sources_crud_keeps_secrets_encrypted_and_write_only(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let owner = token(state.store(), "owner").await;
    let secret = "pat-value-that-must-not-leak";
    let (status, created) = create_source(
        &state,
        &owner,
        json!({
            "type": "git", "name": "forge",
            "config": {"preset": "gitea", "urlTemplate": "https://git.example.com/{owner}/{name}.git", "credentialType": "pat"},
            "secrets": {"pat": secret, "webhookSecret": "hook-secret"}
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(!created.to_string().contains(secret));
    assert_eq!(created["secretKeys"], json!(["pat", "webhookSecret"]));
    assert_eq!(created["routingKey"], "generic:default:forge");
    assert!(
        created["webhookUrl"]
            .as_str()
            .unwrap()
            .ends_with("/webhook/default/generic/forge")
    );
    let id = created["id"].as_str().unwrap().to_string();

    // The raw rows hold ciphertexts bound to their slot.
    let scope = source_secret_scope(&id);
    let rows = state
        .store()
        .list_secrets(SYSTEM_ORG, &scope)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let pat_row = rows.iter().find(|r| r.key == "pat").unwrap();
    assert!(!pat_row.encrypted_value.contains(secret));
    assert!(!pat_row.encrypted_value.contains("pat-value"));
    let decrypted = state
        .secret_box()
        .decrypt(SYSTEM_ORG, &scope, "pat", &pat_row.encrypted_value)
        .unwrap();
    assert_eq!(decrypted.expose(), secret);
    assert!(
        state
            .secret_box()
            .decrypt(
                SYSTEM_ORG,
                &scope,
                "webhookSecret",
                &pat_row.encrypted_value
            )
            .is_err(),
        "a ciphertext moved to another slot does not decrypt"
    );

    // The in-memory view serves it at once, with clone credentials.
    let live = state
        .sources()
        .get("generic:default:forge")
        .expect("refreshed");
    assert_eq!(
        live.clone_url(REPO),
        "https://git.example.com/acme/widgets.git"
    );
    assert_eq!(live.clone_auth().unwrap().secret.expose(), secret);

    let (status, _) = create_source(
        &state,
        &owner,
        json!({"type": "git", "name": "forge", "config": {"preset": "gitea", "urlTemplate": "https://h/{owner}/{name}"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = create_source(
        &state,
        &owner,
        json!({"type": "git", "name": "Bad_Name", "config": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = create_source(
        &state,
        &owner,
        json!({"type": "generic", "name": "g", "config": {"verification": {"method": "ip_allowlist", "allowlist": ["not-an-ip"]}}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, list) = call(
        &state,
        request("GET", "/api/v1/admin/sources", Some(&owner), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(secret));

    let (status, patched) = call(
        &state,
        request(
            "PATCH",
            "/api/v1/admin/sources/forge",
            Some(&owner),
            Some(json!({"config": {"patUser": "bot"}, "secrets": {"pat": "rotated"}})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["config"]["patUser"], "bot");
    let auth = state
        .sources()
        .get("generic:default:forge")
        .unwrap()
        .clone_auth()
        .unwrap();
    assert_eq!(
        (auth.user.as_deref(), auth.secret.expose()),
        (Some("bot"), "rotated")
    );

    let (status, disabled) = call(
        &state,
        request(
            "POST",
            "/api/v1/admin/sources/forge/disable",
            Some(&owner),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(disabled["enabled"], false);
    let (status, _) = harness::send(&state, hook("forge", b"{}", &[], LOOPBACK)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "disabled sources refuse deliveries"
    );
    call(
        &state,
        request(
            "POST",
            "/api/v1/admin/sources/forge/enable",
            Some(&owner),
            None,
        ),
    )
    .await;
    assert!(
        state
            .sources()
            .get("generic:default:forge")
            .unwrap()
            .enabled
    );

    let auditor = token(state.store(), "auditor").await;
    let (status, _) = call(
        &state,
        request("GET", "/api/v1/admin/sources/forge", Some(&auditor), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &state,
        request(
            "DELETE",
            "/api/v1/admin/sources/forge",
            Some(&auditor),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &state,
        request("DELETE", "/api/v1/admin/sources/forge", Some(&owner), None),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(state.sources().get("generic:default:forge").is_none());
    assert!(
        state
            .store()
            .list_secrets(SYSTEM_ORG, &scope)
            .await
            .unwrap()
            .is_empty()
    );
    let (status, _) = call(
        &state,
        request("GET", "/api/v1/admin/sources/forge", Some(&owner), None),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The name is free again after a soft delete.
    let (status, _) = create_source(
        &state,
        &owner,
        json!({"type": "git", "name": "forge", "config": {"preset": "gitea", "urlTemplate": "https://h/{owner}/{name}"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn generic_route_verifies_limits_and_filters(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(db, dir.path(), Sources::default()).await;
    let owner = token(state.store(), "owner").await;
    for (name, config, secrets) in [
        (
            "signed",
            json!({"verification": {"method": "hmac_sha256"}, "allowedEvents": ["build"], "maxPayloadBytes": 64, "rateLimitRpm": 3}),
            json!({"verificationSecret": "hmac-key"}),
        ),
        (
            "bearer",
            json!({"verification": {"method": "bearer_token"}}),
            json!({"verificationSecret": "tok-123"}),
        ),
        (
            "allowlisted",
            json!({"verification": {"method": "ip_allowlist", "allowlist": ["10.0.0.0/8", "127.0.0.1"]}}),
            json!({}),
        ),
        (
            "open",
            json!({"verification": {"method": "none"}}),
            json!({}),
        ),
    ] {
        let (status, body) = create_source(
            &state,
            &owner,
            json!({"type": "generic", "name": name, "config": config, "secrets": secrets}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
    let body = br#"{"action":"go"}"#;
    let sig = kici_engine::signature::sign_github(b"hmac-key", body);
    let send = |req| harness::send(&state, req);

    // hmac_sha256, with an event filter.
    let build = [
        ("x-signature-256", sig.as_str()),
        ("x-event-type", "build"),
        ("x-delivery-id", "d1"),
    ];
    let (status, answer) = send(hook("signed", body, &build, REMOTE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, answer) = send(hook("signed", body, &build, REMOTE)).await;
    assert_eq!(
        (status, answer.contains("duplicate")),
        (StatusCode::OK, true)
    );
    let bad = [("x-signature-256", "sha256=00"), ("x-event-type", "build")];
    assert_eq!(
        send(hook("signed", body, &bad, REMOTE)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let other = [
        ("x-signature-256", sig.as_str()),
        ("x-event-type", "deploy"),
    ];
    let (status, answer) = send(hook("signed", body, &other, REMOTE)).await;
    // Four requests so far used the three-per-minute budget.
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");

    // Payload cap (checked before the rate limit) and the 429's Retry-After.
    let big = vec![b'x'; 65];
    assert_eq!(
        send(hook("signed", &big, &build, REMOTE)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let response = tower::ServiceExt::oneshot(
        kici_orchestrator::app(state.clone()),
        hook("signed", body, &build, REMOTE),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));

    // bearer_token
    let ok = [("authorization", "Bearer tok-123")];
    assert_eq!(
        send(hook("bearer", body, &ok, REMOTE)).await.0,
        StatusCode::ACCEPTED
    );
    let wrong = [("authorization", "Bearer nope")];
    assert_eq!(
        send(hook("bearer", body, &wrong, REMOTE)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(hook("bearer", body, &[], REMOTE)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // ip_allowlist
    assert_eq!(
        send(hook("allowlisted", body, &[], [10, 1, 2, 3])).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send(hook("allowlisted", body, &[], REMOTE)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // none: only for local sources.
    assert_eq!(
        send(hook("open", body, &[], LOOPBACK)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(hook("missing", body, &[], LOOPBACK)).await.0,
        StatusCode::NOT_FOUND
    );

    // Filtered deliveries are not stored; the signed one is, with the event name.
    let stored = state.store().list_inbox(None, None, 50).await.unwrap();
    let signed: Vec<_> = stored
        .iter()
        .filter(|i| i.routing_key == "generic:default:signed")
        .collect();
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0].event, "build");
    assert_eq!(signed[0].delivery_id, "generic:default:signed:d1");
    assert!(
        signed[0].headers.get("x-signature-256").is_none(),
        "stripped"
    );
    assert_eq!(stored.len(), 3);
}

async fn local_source_push_creates_a_run(db: &TestDb) {
    let repo = TestRepo::new();
    let state = state(db, &repo.base, Sources::default()).await;
    let owner = token(state.store(), "owner").await;
    let (status, created) = create_source(
        &state,
        &owner,
        json!({"type": "local", "name": "disk", "config": {"path": repo.base.display().to_string()}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let local = state.sources().get("generic:default:disk").unwrap();
    assert_eq!(
        local.clone_url(REPO),
        repo.base.join(REPO).display().to_string()
    );
    assert!(local.clone_auth().is_none());

    let body = push_body(&repo.first, &repo.head, "main");
    let push = [("x-event-type", "push")];
    assert_eq!(
        harness::send(&state, hook("disk", &body, &push, REMOTE))
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "unauthenticated local deliveries only from loopback"
    );
    assert_eq!(
        harness::send(&state, hook("disk", &body, &[], LOOPBACK))
            .await
            .0,
        StatusCode::BAD_REQUEST,
        "x-event-type is required"
    );
    let (status, answer) = harness::send(&state, hook("disk", &body, &push, LOOPBACK)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    harness::drain(&state).await;
    let runs = state.store().list_runs(None, None, 10).await.unwrap();
    assert_eq!(runs.len(), 1, "the ci workflow matched");
    assert_eq!(runs[0].workflow_name, "ci");
    assert_eq!(runs[0].provider, "local");
    assert_eq!(runs[0].sha, repo.head);
    assert_eq!(
        state
            .store()
            .list_jobs(&runs[0].run_id)
            .await
            .unwrap()
            .len(),
        4
    );

    // Remote senders are accepted once the source allows them.
    call(
        &state,
        request(
            "PATCH",
            "/api/v1/admin/sources/disk",
            Some(&owner),
            Some(json!({"config": {"allowRemoteUnauthenticated": true}})),
        ),
    )
    .await;
    let push = [("x-event-type", "push"), ("x-delivery-id", "remote-1")];
    assert_eq!(
        harness::send(&state, hook("disk", &body, &push, REMOTE))
            .await
            .0,
        StatusCode::ACCEPTED
    );
}

async fn universal_git_reads_the_lock_from_a_bare_repository(db: &TestDb) {
    let repo = TestRepo::new();
    let bare_base = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bare_base.path().join("acme")).unwrap();
    let bare = bare_base.path().join("acme/widgets.git");
    git(
        bare_base.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &repo.base.join(REPO).display().to_string(),
            &bare.display().to_string(),
        ],
    );
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    let template = format!(
        "file://{}/{{owner}}/{{name}}.git",
        bare_base.path().display()
    );
    let state = state(db, &repo.base, Sources::default()).await;
    let owner = token(state.store(), "owner").await;
    let (status, created) = create_source(
        &state,
        &owner,
        json!({
            "type": "git", "name": "forge",
            "config": {"preset": "gitea", "urlTemplate": template},
            "secrets": {"webhookSecret": "gitea-secret"}
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let body = push_body(&repo.first, &repo.head, "main");
    let signature = kici_engine::signature::sign_github(b"gitea-secret", &body);
    let hex = signature.trim_start_matches("sha256=");
    let headers = [
        ("x-gitea-event", "push"),
        ("x-gitea-signature", hex),
        ("x-gitea-delivery", "g-1"),
    ];
    assert_eq!(
        harness::send(
            &state,
            hook(
                "forge",
                &body,
                &[("x-gitea-event", "push"), ("x-gitea-signature", "00")],
                REMOTE
            )
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, answer) = harness::send(&state, hook("forge", &body, &headers, REMOTE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    harness::drain(&state).await;
    let items = state.store().list_inbox(None, None, 10).await.unwrap();
    assert_eq!(
        items[0].outcome.as_deref(),
        Some("matched"),
        "{:?}",
        items[0].last_error
    );
    let runs = state.store().list_runs(None, None, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].provider, "git");
    let source = state.sources().get("generic:default:forge").unwrap();
    assert_eq!(
        source.clone_url(REPO),
        format!("file://{}/acme/widgets.git", bare_base.path().display())
    );

    // The commit without a lock is "no lock", read from the bare repository too.
    let fetched = source.lock.fetch(REPO, &repo.first).await.unwrap();
    assert_eq!(fetched, kici_orchestrator::lock_source::Fetched::NotFound);
    let resolved = source.lock.resolve(REPO, "refs/heads/main").await.unwrap();
    assert_eq!(resolved, repo.head);
    let changed = source
        .lock
        .changed_files(REPO, &repo.first, &repo.head)
        .await
        .unwrap();
    assert_eq!(changed, [".kici/kici.lock.json", "src.txt"]);
    // A missing commit is an error (retryable), never "no lock".
    assert!(source.lock.fetch(REPO, &"e".repeat(40)).await.is_err());
}

async fn start_seeds_sources_and_prints_the_bootstrap_token_once(db: &TestDb) {
    let repo = TestRepo::new();
    let data = repo.base.join("data");
    let mut config = harness::config(&repo.base);
    config.database_url = Some(db.url.clone());
    config.secret_key = Some(kici_engine::protocol::Secret::new("11".repeat(32)));
    let cancel = CancellationToken::new();
    let handle = Orchestrator::start(config.clone(), cancel.clone())
        .await
        .expect("start");
    let token = handle
        .bootstrap_admin_token()
        .expect("a generated token on first start")
        .expose()
        .to_string();
    assert!(token.starts_with("kadm_"));
    let state = handle.state().clone();
    let (status, sources) = call(
        &state,
        request("GET", "/api/v1/admin/sources", Some(&token), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sources[0]["name"], "gh", "the configured source was seeded");
    assert_eq!(sources[0]["secretKeys"], json!(["webhookSecret"]));
    // The seeded GitHub source is served from the store, with its id.
    let live = state.sources().get("github:4242").unwrap();
    assert_eq!(live.id, sources[0]["id"].as_str().unwrap());
    cancel.cancel();
    handle.shutdown().await;
    assert!(
        !data.join("secret.key").try_exists().unwrap(),
        "a configured key writes no key file"
    );

    let cancel = CancellationToken::new();
    let handle = Orchestrator::start(config, cancel.clone())
        .await
        .expect("restart");
    assert!(handle.bootstrap_admin_token().is_none(), "shown only once");
    cancel.cancel();
    handle.shutdown().await;
}
