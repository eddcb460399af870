//! The real server: start on 127.0.0.1:0 with background workers, answer over TCP, create
//! a run from a webhook without any manual draining, shut down gracefully.

use std::time::{Duration, Instant};

use kici_orchestrator::Orchestrator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::harness::{APP_ID, SECRET, TestRepo, config, push_body};

async fn http(addr: std::net::SocketAddr, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_processes_webhooks_in_the_background_and_shuts_down() {
    let repo = TestRepo::new();
    let cancel = CancellationToken::new();
    let handle = Orchestrator::start(config(&repo.base), cancel.clone())
        .await
        .expect("start");
    let addr = handle.local_addr();

    let health = http(
        addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let body = String::from_utf8(push_body(&repo.first, &repo.head, "main")).unwrap();
    let signature = kici_engine::signature::sign_github(SECRET.as_bytes(), body.as_bytes());
    let request = format!(
        "POST /webhook/default/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: srv-1\r\nX-GitHub-Hook-Installation-Target-ID: {APP_ID}\r\nX-GitHub-Hook-Installation-Target-Type: integration\r\nX-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = http(addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    let store = handle.state().store().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let runs = store.list_runs(None, None, 10).await.expect("runs");
        if runs.len() == 1 {
            assert_eq!(store.list_jobs(&runs[0].run_id).await.unwrap().len(), 4);
            break;
        }
        assert!(Instant::now() < deadline, "no run was created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle.shutdown())
        .await
        .expect("graceful shutdown in time");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
