//! Integration tests of the leaf modules with real processes: `process` (bash, process groups,
//! timeouts, streaming) and `mask` on the streaming path. (`workspace` runs real git in its
//! unit tests.)

use std::path::Path;
use std::time::{Duration, Instant};

use kici_executor::mask::Masker;
use kici_executor::process::{self, CommandSpec, KillReason, OutputLine, ProcessError, Stream};
use tokio::sync::mpsc;

fn base_env() -> Vec<(String, String)> {
    vec![(
        "PATH".to_owned(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned()),
    )]
}

fn spec(cmd: &str, dir: &Path) -> CommandSpec {
    CommandSpec::new(cmd, dir).env(base_env())
}

/// Gone or a zombie (a zombie is dead; whether it is reaped depends on who is pid 1 here).
fn pid_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

async fn wait_dead(pid: i32, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if pid_dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pid_dead(pid)
}

async fn read_pid(path: &Path) -> i32 {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pid in {}", path.display());
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = process::run(
        spec("sleep 300 & echo $! > pidfile; wait", dir.path())
            .timeout(Duration::from_millis(500))
            .kill_grace(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{out:?}");
    assert_eq!(out.killed, Some(KillReason::Timeout));
    assert_eq!(out.exit_code, None);
    assert_eq!(out.signal_name(), Some("SIGTERM"));
    let sleep_pid = read_pid(&dir.path().join("pidfile")).await;
    assert!(
        wait_dead(sleep_pid, Duration::from_secs(2)).await,
        "sleep {sleep_pid} survived"
    );
    assert!(!process::group_alive(out.pid) || pid_dead(sleep_pid));
}

#[tokio::test]
async fn sigkill_after_grace_for_term_ignoring_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // The inner shell and its sleep ignore SIGTERM and hold our pipes open.
    let out = process::run(
        spec(
            r#"bash -c 'trap "" TERM; sleep 300 & echo $! > pidfile; wait' & wait"#,
            dir.path(),
        )
        .timeout(Duration::from_millis(300))
        .kill_grace(Duration::from_millis(400)),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(650), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(out.killed, Some(KillReason::Timeout));
    let sleep_pid = read_pid(&dir.path().join("pidfile")).await;
    assert!(wait_dead(sleep_pid, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn sigkill_after_grace_even_when_the_pipes_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = process::run(
        spec(
            r#"(trap "" TERM; exec sleep 300) >/dev/null 2>&1 & echo $! > pidfile; wait"#,
            dir.path(),
        )
        .timeout(Duration::from_millis(300))
        .kill_grace(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    // The result does not wait for the grace period: the shell is dead and the pipes closed.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.killed, Some(KillReason::Timeout));
    let sleep_pid = read_pid(&dir.path().join("pidfile")).await;
    assert!(!pid_dead(sleep_pid), "SIGTERM should have been ignored");
    assert!(
        wait_dead(sleep_pid, Duration::from_secs(5)).await,
        "not SIGKILLed"
    );
}

#[tokio::test]
async fn kill_handle_terminates_and_kill_now_forces() {
    let dir = tempfile::tempdir().unwrap();
    let proc = process::spawn(spec("sleep 300", dir.path())).unwrap();
    let handle = proc.kill_handle();
    assert_eq!(handle.pgid(), proc.pgid());
    assert!(process::group_alive(proc.pgid()));
    assert!(handle.terminate());
    let out = proc.wait().await.unwrap();
    assert_eq!(out.killed, Some(KillReason::Requested));
    assert_eq!(out.signal, Some(15));
    assert!(!out.ok());
    assert!(!handle.terminate(), "finished commands cannot be killed");

    let proc = process::spawn(spec("trap '' TERM; sleep 300", dir.path())).unwrap();
    let handle = proc.kill_handle();
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle.kill_now();
    let out = tokio::time::timeout(Duration::from_secs(3), proc.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.signal_name(), Some("SIGKILL"));
}

#[tokio::test]
async fn command_not_found_is_127_with_the_command_in_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = process::run(spec("kici-no-such-command-xyz --flag", dir.path()))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(127));
    let stderr = out.stderr_text();
    assert!(stderr.contains("kici-no-such-command-xyz"), "{stderr}");
    assert!(stderr.contains("command not found"), "{stderr}");
    let message = out.zx_message(Some("ci.ts:3:9"));
    assert!(message.contains("kici-no-such-command-xyz"), "{message}");
    assert!(
        message.ends_with("    at ci.ts:3:9\n    exit code: 127 (Command not found)"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_shell_and_missing_cwd_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = process::spawn(
        spec("true", dir.path()).shell(process::Shell::Plain("/nonexistent/kici-sh".into())),
    )
    .unwrap_err();
    assert!(matches!(err, ProcessError::Spawn { .. }));
    assert!(err.to_string().contains("/nonexistent/kici-sh"), "{err}");
    let err = process::spawn(spec("true", &dir.path().join("missing"))).unwrap_err();
    assert!(matches!(err, ProcessError::CwdNotFound(_)));
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn zx_prefix_makes_pipelines_and_unset_variables_fail() {
    let dir = tempfile::tempdir().unwrap();
    let out = process::run(spec("false | true", dir.path()))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(1));
    let out = process::run(spec("echo $KICI_UNSET_VAR_XYZ", dir.path()))
        .await
        .unwrap();
    assert!(!out.ok());
    assert!(out.stderr_text().contains("unbound variable"));
    let out = process::run(spec("exit 3", dir.path())).await.unwrap();
    assert_eq!(out.exit_code, Some(3));
}

#[tokio::test]
async fn environment_cwd_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = process::run(
        spec(r#"echo "${HOME:-no-home} $FOO $(pwd)"; cat"#, dir.path())
            .var("FOO", "bar baz")
            .input("from stdin\n"),
    )
    .await
    .unwrap();
    assert!(out.ok(), "{out:?}");
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        out.stdout_text(),
        format!("no-home bar baz {}\nfrom stdin\n", cwd.display())
    );
    // Without input, stdin is /dev/null: `cat` ends at once.
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        process::run(spec("cat; echo done", dir.path())),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.stdout_text(), "done\n");
}

#[tokio::test]
async fn lines_stream_in_order_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel::<OutputLine>(16);
    let proc = process::spawn(
        spec(
            "echo one; sleep 0.2; echo two >&2; sleep 0.2; printf 'three\\n\\nfour'; sleep 2",
            dir.path(),
        )
        .lines(tx),
    )
    .unwrap();
    let started = Instant::now();
    let first = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("the first line arrives while the command runs")
        .unwrap();
    assert_eq!(first.text, "one");
    assert_eq!(first.stream, Stream::Stdout);
    assert!(started.elapsed() < Duration::from_secs(1));
    let mut got = vec![first];
    while got.len() < 4 {
        got.push(rx.recv().await.unwrap());
    }
    // `four` has no newline: it is emitted when the stream closes. (bash's printf may write it
    // separately from the lines before it, so give it time.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    proc.kill_handle().terminate();
    let out = proc.wait().await.unwrap();
    while let Some(line) = rx.recv().await {
        got.push(line);
    }
    let texts: Vec<(Stream, &str)> = got.iter().map(|l| (l.stream, l.text.as_str())).collect();
    assert_eq!(
        texts,
        [
            (Stream::Stdout, "one"),
            (Stream::Stderr, "two"),
            (Stream::Stdout, "three"),
            (Stream::Stdout, ""),
            (Stream::Stdout, "four"),
        ]
    );
    assert!(got.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    assert!(got[1].at_ms >= got[0].at_ms + 150, "{got:?}");
    assert_eq!(out.combined_text(), "one\ntwo\nthree\n\nfour");
    assert_eq!(out.stdout_text(), "one\nthree\n\nfour");
    assert_eq!(out.stderr_text(), "two\n");
}

#[tokio::test]
async fn streamed_lines_are_masked_captured_output_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let masker = Masker::new([("TOKEN", "s3cr3t-value")]);
    let (tx, mut rx) = mpsc::channel(16);
    let out = process::run(
        spec(
            "echo token=s3cr3t-value; printf %s s3cr3t-value | base64",
            dir.path(),
        )
        .masker(masker)
        .lines(tx),
    )
    .await
    .unwrap();
    let mut lines = Vec::new();
    while let Some(l) = rx.recv().await {
        lines.push(l.text);
    }
    assert_eq!(lines, ["token=***", "***"]);
    assert!(out.stdout_text().starts_with("token=s3cr3t-value\n"));
}

#[tokio::test]
async fn captures_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = process::run(
        spec(
            "head -c 3000000 /dev/zero; head -c 200000 /dev/zero >&2",
            dir.path(),
        )
        .capture_limit(1 << 20),
    )
    .await
    .unwrap();
    assert!(out.ok());
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(out.stdout_truncated);
    assert_eq!(out.stdout_total, 3_000_000);
    assert_eq!(out.stderr.len(), 200_000);
    assert!(!out.stderr_truncated);
    assert_eq!(out.stderr_tail.len(), process::STDERR_TAIL_BYTES);
    assert_eq!(out.combined.len(), 1 << 20);
    assert!(out.combined_truncated);
}

/// 100 MB of log lines from a real process through line splitting and masking. Completion is
/// what is asserted; the figure printed is for information (the dev profile is unoptimised).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_through_the_masker() {
    let dir = tempfile::tempdir().unwrap();
    let masker = Masker::new([
        ("A", "ghp_0123456789abcdefABCDEF"),
        ("B", "hunter2hunter2"),
        (
            "C",
            "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----",
        ),
        ("D", "p@ss word"),
        ("E", "AKIAIOSFODNN7EXAMPLE"),
    ]);
    let (tx, mut rx) = mpsc::channel::<OutputLine>(1024);
    let line = "2024-05-01T12:00:00Z INFO compiling crate foo v1.2.3 (/src/foo) with hunter2hunter2 in it [ok]";
    let total = 100_000_000u64;
    let started = Instant::now();
    let proc = process::spawn(
        spec(&format!("head -c {total} < <(yes '{line}')"), dir.path())
            .masker(masker)
            .lines(tx)
            .capture_limit(1 << 20),
    )
    .unwrap();
    let mut count = 0u64;
    let mut bytes = 0u64;
    while let Some(l) = rx.recv().await {
        if count == 0 {
            assert!(l.text.contains("with *** in it"), "{}", l.text);
        }
        count += 1;
        bytes += l.text.len() as u64 + 1;
    }
    let out = proc.wait().await.unwrap();
    assert!(out.ok());
    assert_eq!(out.stdout_total, total);
    assert_eq!(count, total.div_ceil(line.len() as u64 + 1));
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "100 MB through process+mask: {:.1} s, {:.0} MB/s ({bytes} masked bytes, {count} lines)",
        secs,
        total as f64 / 1e6 / secs
    );
}

#[test]
fn mask_throughput_in_process() {
    let masker = Masker::new([
        ("A", "ghp_0123456789abcdefABCDEF"),
        ("B", "hunter2hunter2"),
        ("C", "AKIAIOSFODNN7EXAMPLE"),
    ]);
    let line = "2024-05-01T12:00:00Z INFO compiling crate foo v1.2.3 (/src/foo) in 4.2s [ok]\n";
    let chunk: Vec<u8> = line.as_bytes().repeat(64 * 1024 / line.len());
    let mut buf = kici_executor::mask::LineBuffer::new(masker);
    let started = Instant::now();
    let mut lines = 0u64;
    let mut fed = 0usize;
    while fed < 100_000_000 {
        buf.push(&chunk, |_| lines += 1);
        fed += chunk.len();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "LineBuffer: {:.0} MB/s over {fed} bytes ({lines} lines)",
        fed as f64 / 1e6 / secs
    );
    assert_eq!(lines as usize, fed / line.len());
}
