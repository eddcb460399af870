//! `kici orchestrator` (spec/cli.md §10, orchestrator.md §19): the real server started from
//! `KICI_*` variables, probed over raw HTTP/1.1, and stopped with SIGTERM; `--check-config`
//! and `--migrate-only`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::{Kici, Repo, wait_until};

/// A `kici orchestrator` invocation with a clean `KICI_*` environment, data in `data`.
fn orchestrator(dir: &Repo, args: &[&str]) -> Kici {
    let mut all = vec!["orchestrator"];
    all.extend_from_slice(args);
    let mut kici = Kici::new(dir.path(), &all);
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str().filter(|n| n.starts_with("KICI_")) {
            kici = kici.env_remove(name);
        }
    }
    kici.env("KICI_DATA_DIR", &dir.file("data").display().to_string())
        .env("KICI_LOG_FORMAT", "plain")
        .env("HOME", &dir.path().display().to_string())
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// `GET path` over one HTTP/1.1 connection; the status code, or `None` when nothing answers.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn serves_health_and_ready_and_stops_on_sigterm() {
    let dir = Repo::plain();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut running = orchestrator(&dir, &[])
        .env("KICI_BIND", "127.0.0.1")
        .env("KICI_PORT", &port.to_string())
        .spawn();
    let up = wait_until(Duration::from_secs(60), || {
        running.exited() || http_status(addr, "/health") == Some(200)
    });
    assert!(up && !running.exited(), "the orchestrator did not come up");
    let ready = wait_until(Duration::from_secs(30), || {
        http_status(addr, "/ready") == Some(200)
    });
    assert!(ready, "/ready never answered 200");
    assert!(
        dir.exists("data/kici.db"),
        "no SQLite database in the data dir"
    );
    let out = running.stop("TERM", Duration::from_secs(30));
    out.expect(0).stderr_has(&format!("listening on {addr}"));
}

#[test]
fn check_config_names_a_malformed_variable() {
    let dir = Repo::plain();
    let out = orchestrator(&dir, &["--check-config"])
        .env("KICI_PORT", "eighty")
        .run();
    out.expect(1)
        .stderr_has("KICI_PORT")
        .stderr_has("a port number");
}

#[test]
fn check_config_refuses_unknown_variables_unless_dev() {
    let dir = Repo::plain();
    orchestrator(&dir, &["--check-config"])
        .env("KICI_QUEUE_MAX_DEPT", "5")
        .run()
        .expect(1)
        .stderr_has("KICI_QUEUE_MAX_DEPT")
        .stderr_has("did you mean KICI_QUEUE_MAX_DEPTH");
    orchestrator(&dir, &["--check-config"])
        .env("KICI_QUEUE_MAX_DEPT", "5")
        .env("KICI_DEV", "true")
        .run()
        .expect(0)
        .stderr_has("warning: unknown variable");
}

#[test]
fn check_config_prints_the_effective_configuration_redacted() {
    let dir = Repo::plain();
    dir.write("kici.yaml", "port: 5123\nqueue_max_depth: 7 # small\n");
    let out = orchestrator(&dir, &["--check-config", "--config", "kici.yaml"])
        .env("KICI_DATABASE_URL", "postgres://kici:hunter2@db:5432/kici")
        .env("KICI_QUEUE_MAX_DEPTH", "9")
        .run();
    out.expect(0)
        .stdout_has("127.0.0.1:5123")
        .stdout_has("KICI_QUEUE_MAX_DEPTH")
        .stdout_has("= 9")
        .stdout_has("postgres://kici:<redacted>@db:5432/kici");
    assert!(!out.stdout.contains("hunter2"), "{}", out.dump());
    assert!(!out.stderr.contains("hunter2"), "{}", out.dump());
}

#[test]
fn flags_override_the_environment_and_the_file() {
    let dir = Repo::plain();
    dir.write("kici.yaml", "port: 5123\n");
    let out = orchestrator(
        &dir,
        &[
            "--check-config",
            "--config",
            "kici.yaml",
            "--port",
            "5999",
            "--bind",
            "127.0.0.2",
        ],
    )
    .env("KICI_PORT", "5555")
    .run();
    out.expect(0)
        .stdout_has("127.0.0.2:5999")
        .stdout_has("flag --port");
    let bad = orchestrator(&dir, &["--check-config", "--port", "seventy"]).run();
    bad.expect(1)
        .stderr_has("--port has the invalid value \"seventy\"");
}

#[test]
fn migrate_only_creates_the_database_and_exits() {
    let dir = Repo::plain();
    orchestrator(&dir, &["--migrate-only"]).run().expect(0);
    assert!(dir.exists("data/kici.db"));
    // A second run finds nothing to do.
    orchestrator(&dir, &["--migrate-only"])
        .run()
        .expect(0)
        .stderr_has("up to date");
}
