//! `kici up` (the all-in-one local CI), `kici run remote` against it, and the `kici admin`
//! client: the real binary, a real repository, commits made by the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::{KICI_AGENT, Kici, Repo, Running, wait_until};

const PIPELINE: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('pipeline', {
  on: push(),
  jobs: [
    job('build', {
      runsOn: 'kici:os:linux',
      steps: [step('compile', async ({ $ }) => { await $`echo building $KICI_SHA`; console.log('built'); })],
    }),
    job('test', {
      needs: ['build'],
      runsOn: 'kici:os:linux',
      steps: [step('unit', async ({ $ }) => { await $`echo unit tests pass`; })],
    }),
  ],
});
"#;

const FAILING: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

export default workflow('broken', {
  on: push({ branches: ['broken/*'] }),
  jobs: [
    job('explode', {
      runsOn: 'kici:os:linux',
      steps: [step('fail', async ({ $ }) => { await $`echo about to fail; exit 3`; })],
    }),
  ],
});
"#;

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A repository with two compiled workflows, and `kici up` running in it.
struct Up {
    repo: Repo,
    addr: SocketAddr,
    running: Option<Running>,
}

impl Up {
    fn start() -> Up {
        let repo = Repo::new();
        repo.write(".kici/workflows/pipeline.ts", PIPELINE);
        repo.write(".kici/workflows/broken.ts", FAILING);
        repo.kici(&["compile"]).expect(0);
        repo.commit("workflows");
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut running = repo
            .cmd(&["up", "--port", &port.to_string(), "--poll-ms", "100"])
            .env("HOME", &repo.path().display().to_string())
            .spawn();
        let ready = wait_until(Duration::from_secs(60), || {
            running.exited() || http_status(addr, "/ready") == Some(200)
        });
        assert!(ready && !running.exited(), "kici up did not come up");
        Up {
            repo,
            addr,
            running: Some(running),
        }
    }

    fn token(&self) -> String {
        self.repo.read(".git/kici/admin-token")
    }

    fn admin(&self, args: &[&str]) -> crate::support::Output {
        let mut all = vec!["admin", "--json"];
        all.extend_from_slice(args);
        self.repo
            .cmd(&all)
            .env("KICI_ADMIN_URL", &format!("http://{}", self.addr))
            .env("KICI_ADMIN_TOKEN", &self.token())
            .run()
    }

    /// Runs whose workflow is `workflow`, newest first.
    fn runs(&self, workflow: &str) -> Vec<serde_json::Value> {
        let out = self.admin(&["runs", "list", "--workflow", workflow]);
        out.expect(0);
        out.json()["items"].as_array().cloned().unwrap_or_default()
    }

    fn stop(mut self) -> crate::support::Output {
        let running = self.running.take().expect("running");
        running.stop("TERM", Duration::from_secs(60))
    }
}

fn wait_for_run(up: &Up, workflow: &str, sha: &str) -> serde_json::Value {
    let mut found = None;
    let done = wait_until(Duration::from_secs(90), || {
        found = up.runs(workflow).into_iter().find(|r| {
            r["sha"] == sha && ["success", "failed"].contains(&r["status"].as_str().unwrap_or(""))
        });
        found.is_some()
    });
    assert!(done, "no finished {workflow} run for {sha}");
    found.unwrap_or_default()
}

#[test]
fn up_runs_every_new_commit_and_run_remote_prints_like_run_local() {
    let up = Up::start();

    // A new commit on main runs `pipeline`; the commit that was there at start does not.
    up.repo.write("README.md", "hello\n");
    up.repo.commit("second");
    let second = up.repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let run = wait_for_run(&up, "pipeline", &second);
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(up.runs("pipeline").len(), 1, "only the new commit runs");

    // The server starts exactly what `kici preview` decides for the same push.
    let preview = up
        .repo
        .kici(&["preview", "push", "--json", "--sha", &second]);
    preview.expect(0);
    let preview = preview.json();
    let mut expected: Vec<(String, Vec<String>)> = preview["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["matched"] == true)
        .map(|w| {
            let jobs = w["jobs"].as_array().unwrap().iter();
            (
                w["name"].as_str().unwrap().to_string(),
                jobs.map(|j| j["name"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let all = up.admin(&["runs", "list"]);
    all.expect(0);
    let mut started: Vec<(String, Vec<String>)> = all.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["sha"] == second.as_str())
        .map(|r| {
            let detail = up.admin(&["runs", "show", r["runId"].as_str().unwrap()]);
            detail.expect(0);
            let detail = detail.json();
            let jobs = detail["jobs"].as_array().unwrap().iter();
            (
                r["workflowName"].as_str().unwrap().to_string(),
                jobs.map(|j| j["name"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    expected.sort();
    started.sort();
    assert_eq!(started, expected, "runs and jobs differ from the preview");

    // Its logs are in the API, in order, exactly once.
    let logs = up.admin(&["runs", "logs", run["runId"].as_str().unwrap()]);
    logs.expect(0);
    let texts: Vec<String> = logs
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{}: {}",
                l["job"].as_str().unwrap(),
                l["text"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            format!("build: building {second}"),
            "build: built".to_string(),
            "test: unit tests pass".to_string(),
        ]
    );

    // Another branch: the failing workflow runs there and fails.
    up.repo.git(&["checkout", "-q", "-b", "broken/one"]);
    up.repo.write("x.txt", "x\n");
    up.repo.commit("on a branch");
    let third = up.repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let broken = wait_for_run(&up, "broken", &third);
    assert_eq!(broken["status"], "failed", "{broken}");

    // A re-run is a new run of the same workflow at the same commit, linked to the first.
    let broken_id = broken["runId"].as_str().unwrap().to_string();
    up.admin(&["runs", "rerun", &broken_id]).expect(0);
    let mut rerun = None;
    let rerun_done = wait_until(Duration::from_secs(90), || {
        rerun = up
            .runs("broken")
            .into_iter()
            .find(|r| r["parentRunId"] == broken_id.as_str() && r["status"] == "failed");
        rerun.is_some()
    });
    assert!(rerun_done, "the re-run of {broken_id} never finished");
    assert_eq!(rerun.unwrap()["sha"], third.as_str());
    up.admin(&["runs", "rerun", "no-such-run"]).expect(1);

    // `run remote` sends the event and streams the run like `run local`.
    let remote = up
        .repo
        .cmd(&["run", "remote", "push", "--workflow", "broken"])
        .env("KICI_ADMIN_URL", &format!("http://{}", up.addr))
        .env("KICI_ADMIN_TOKEN", &up.token())
        .run();
    remote
        .expect(1)
        .stdout_has("[explode] Starting...")
        .stdout_has("[explode] -> fail")
        .stdout_has("[explode] about to fail")
        .stdout_has("Status: FAILED")
        .stdout_has("[fail] explode");
    let lines: Vec<&str> = remote.stdout.lines().collect();
    let line_at = |needle: &str| lines.iter().position(|l| l.contains(needle));
    assert!(
        line_at("about to fail") < line_at("✗ fail"),
        "a step's output comes before its end:\n{}",
        remote.stdout
    );

    up.repo.git(&["checkout", "-q", "main"]);
    let ok = up
        .repo
        .cmd(&["run", "remote", "push", "--workflow", "pipeline", "--json"])
        .env("KICI_ADMIN_URL", &format!("http://{}", up.addr))
        .env("KICI_ADMIN_TOKEN", &up.token())
        .run();
    ok.expect(0);
    let report = ok.json();
    assert_eq!(report["summary"]["passed"], 1, "{report}");
    assert_eq!(report["workflows"][0]["jobs"][1]["name"], "test");

    let missing = up
        .repo
        .cmd(&["run", "remote", "push", "--workflow", "nope"])
        .env("KICI_ADMIN_URL", &format!("http://{}", up.addr))
        .env("KICI_ADMIN_TOKEN", &up.token())
        .run();
    missing.expect(1).stderr_has("did not match");

    let out = up.stop();
    out.expect(0)
        .stdout_has("=== pipeline: SUCCESS")
        .stdout_has("=== broken: FAILED")
        .stdout_has("[build] building");
}

#[test]
fn admin_client_refuses_bad_tokens_and_never_takes_them_from_argv() {
    let up = Up::start();
    let denied = up
        .repo
        .cmd(&["admin", "runs", "list"])
        .env("KICI_ADMIN_URL", &format!("http://{}", up.addr))
        .env("KICI_ADMIN_TOKEN", "kadm_wrong")
        .run();
    denied.expect(1).stderr_has("HTTP 401");
    let flag = up
        .repo
        .cmd(&["admin", "--token", "x", "runs", "list"])
        .run();
    flag.expect(2);

    let created = up.admin(&["agent-token", "create", "--label", "ci-box"]);
    created.expect(0);
    let token = created.json()["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kat_"), "{token}");
    let listed = up.admin(&["agent-token", "list"]);
    listed.expect(0);
    assert!(
        !listed.stdout.contains(&token),
        "a listed token never shows its secret"
    );
    let agents = up.admin(&["agents", "list"]);
    agents.expect(0);
    assert_eq!(
        agents.json().as_array().map(Vec::len),
        Some(1),
        "the up agent is connected"
    );
    up.stop().expect(0);
}

#[test]
fn agent_refuses_a_missing_url_and_unknown_variables() {
    let repo = Repo::plain();
    let out = repo
        .cmd(&["agent", "--check-config"])
        .env_remove("KICI_ORCHESTRATOR_URL")
        .env("KICI_LABLES", "x")
        .run();
    out.expect(1)
        .stderr_has("KICI_ORCHESTRATOR_URL is required")
        .stderr_has("did you mean KICI_LABELS");
    let ok = repo
        .cmd(&["agent", "--check-config"])
        .env("KICI_ORCHESTRATOR_URL", "http://127.0.0.1:4000")
        .env("KICI_AGENT_TOKEN", "kat_very_secret")
        .env("KICI_AGENT_ID", "builder-1")
        .run();
    ok.expect(0).stdout_has("ws://127.0.0.1:4000/ws");
    assert!(!ok.stdout.contains("kat_very_secret"), "{}", ok.stdout);

    // Flags win over the environment; the token comes from a file, never from argv.
    repo.write("agent-token", "kat_from_file\n");
    let flagged = repo
        .cmd(&[
            "agent",
            "--check-config",
            "--url",
            "ws://10.0.0.9:4000/ws",
            "--token-file",
            "agent-token",
            "--labels",
            "gpu,linux",
            "--id",
            "flagged",
        ])
        .env("KICI_ORCHESTRATOR_URL", "http://127.0.0.1:4000")
        .run();
    flagged
        .expect(0)
        .stdout_has("ws://10.0.0.9:4000/ws")
        .stdout_has("flag --token-file")
        .stdout_has("gpu,linux");
    assert!(
        !flagged.stdout.contains("kat_from_file"),
        "{}",
        flagged.stdout
    );
    repo.cmd(&["agent", "--token", "x"]).run().expect(2);
}

/// `kici-agent` is `kici agent` alone: the same flags, settings and checks.
#[test]
fn the_agent_only_binary_takes_the_same_flags_and_settings() {
    let repo = Repo::plain();
    repo.write("agent-token", "kat_from_file\n");
    let flags = [
        "--check-config",
        "--url",
        "ws://10.0.0.9:4000/ws",
        "--token-file",
        "agent-token",
        "--labels",
        "gpu,linux",
        "--id",
        "same",
    ];
    let check = |out: Kici| {
        out.env("KICI_MAX_CONCURRENT_JOBS", "3")
            .env("KICI_WORK_DIR", "/tmp/kici-same-work")
            .run()
    };
    let mut with_agent = vec!["agent"];
    with_agent.extend(flags);
    let kici = check(repo.cmd(&with_agent));
    let alone = check(Kici::program(KICI_AGENT, repo.path(), &flags));
    kici.expect(0);
    alone.expect(0);
    assert_eq!(
        alone.stdout, kici.stdout,
        "the same effective configuration"
    );
    assert!(alone.stdout.contains("gpu,linux") && !alone.stdout.contains("kat_from_file"));

    Kici::program(KICI_AGENT, repo.path(), &["--check-config"])
        .env_remove("KICI_ORCHESTRATOR_URL")
        .env("KICI_LABLES", "x")
        .run()
        .expect(1)
        .stderr_has("KICI_ORCHESTRATOR_URL is required")
        .stderr_has("did you mean KICI_LABELS");
    Kici::program(KICI_AGENT, repo.path(), &["--token", "x"])
        .run()
        .expect(2);
    Kici::program(KICI_AGENT, repo.path(), &["--help"])
        .run()
        .expect(0)
        .stdout_has("Usage: kici-agent [OPTIONS]")
        .stdout_has("--token-file <PATH>");
}

#[test]
fn up_in_a_repository_without_a_lock_says_what_to_do() {
    let repo = Repo::new();
    repo.write("README.md", "hi\n");
    repo.commit("first");
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut running = repo
        .cmd(&["up", "--port", &port.to_string(), "--poll-ms", "100"])
        .env("HOME", &repo.path().display().to_string())
        .spawn();
    let ready = wait_until(Duration::from_secs(60), || {
        running.exited() || http_status(addr, "/ready") == Some(200)
    });
    assert!(ready && !running.exited(), "kici up did not come up");
    // A commit without a lock is noticed and explained, not silently dropped.
    repo.write("README.md", "hello\n");
    repo.commit("second");
    let token = repo.read(".git/kici/admin-token");
    let processed = wait_until(Duration::from_secs(60), || {
        let out = repo
            .cmd(&["admin", "--json", "inbox", "list"])
            .env("KICI_ADMIN_URL", &format!("http://{addr}"))
            .env("KICI_ADMIN_TOKEN", &token)
            .run();
        out.stdout.contains("no_lock")
    });
    assert!(processed, "the push was never processed");
    std::thread::sleep(Duration::from_millis(300));
    running
        .stop("TERM", Duration::from_secs(60))
        .expect(0)
        .stderr_has("HEAD has no .kici/kici.lock.json")
        .stderr_has("kici compile")
        .stderr_has("has no .kici/kici.lock.json: compile and commit the lock");
}
