//! End-to-end tests of `kici run local` (spec/cli.md §6) with the real binary on git
//! repositories made by the test. Every process is bounded in time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn kici() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kici"))
}

fn conformance_dir() -> PathBuf {
    std::env::var_os("KICI_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A committed repository with the given files.
fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "init"]);
    dir
}

/// Runs kici with a deadline; the child is killed when it is exceeded. Output is drained by a
/// thread so that a full pipe never blocks the child.
fn run_kici(dir: &Path, args: &[&str], limit: Duration) -> Output {
    // Checkouts kept after a failing step land here and go away with the test, instead of
    // piling up in the system temp directory.
    let run_dir = tempfile::tempdir().expect("run dir");
    let child = Command::new(kici())
        .args(args)
        .current_dir(dir)
        .env("KICI_RUN_DIR", run_dir.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kici");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("kici {args:?} did not finish within {limit:?}");
        }
    }
}

#[test]
fn every_conformance_repo_runs_the_jobs_preview_selects() {
    let root = conformance_dir().join("workflows");
    let mut failures = Vec::new();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("conformance workflows")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.get(..2))
                .and_then(|n| n.parse::<u32>().ok())
                // 18 runs a real `sleep 300` under a 10-minute step timeout; timeouts are
                // covered by the executor's process tests instead.
                .is_some_and(|n| (1..=40).contains(&n) && n != 18)
        })
        .collect();
    cases.sort();
    for case in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&case.join(".kici"), &dir.path().join(".kici"));
        for extra in std::fs::read_dir(&case).expect("case") {
            let extra = extra.expect("entry");
            let name = extra.file_name();
            if name != ".kici" && name != "expected" && extra.file_type().expect("type").is_file() {
                std::fs::copy(extra.path(), dir.path().join(&name)).expect("copy");
            }
        }
        git(dir.path(), &["init", "-q"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-qm", "init"]);
        for event in ["push", "pr:open"] {
            let preview = run_kici(
                dir.path(),
                &["preview", event, "--json"],
                Duration::from_secs(30),
            );
            let preview: Value = match serde_json::from_slice(&preview.stdout) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{}: {event}: preview JSON: {e}", case.display()));
                    continue;
                }
            };
            let expected: Vec<(String, Vec<String>)> = preview["workflows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|w| w["matched"] == true)
                .map(|w| {
                    let jobs = w["jobs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|j| j["name"].as_str().map(str::to_string))
                        .collect();
                    (w["name"].as_str().unwrap_or("").to_string(), jobs)
                })
                .collect();
            let out = run_kici(
                dir.path(),
                &["run", "local", event, "--json", "--concurrency", "2"],
                Duration::from_secs(120),
            );
            let code = out.status.code();
            if !matches!(code, Some(0) | Some(1)) {
                failures.push(format!(
                    "{}: {event}: exit {code:?}\n{}",
                    case.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
                continue;
            }
            let report: Value = match serde_json::from_slice(&out.stdout) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!(
                        "{}: {event}: run JSON: {e}\n{}",
                        case.display(),
                        String::from_utf8_lossy(&out.stdout)
                    ));
                    continue;
                }
            };
            let got: Vec<(String, Vec<String>)> = report["workflows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| {
                    let mut jobs: Vec<String> = w["jobs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|j| j["name"].as_str().map(str::to_string))
                        .collect();
                    jobs.dedup();
                    (w["name"].as_str().unwrap_or("").to_string(), jobs)
                })
                .collect();
            let mut sorted_expected = expected.clone();
            let mut sorted_got = got.clone();
            for (_, j) in sorted_expected.iter_mut().chain(sorted_got.iter_mut()) {
                j.sort();
            }
            if sorted_expected != sorted_got {
                failures.push(format!(
                    "{}: {event}: expected {sorted_expected:?}, ran {sorted_got:?}",
                    case.display()
                ));
            }
            // Statuses are sensible: every job has one of the four, exit 0 iff nothing failed.
            let any_failed = report["workflows"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|w| w["status"] == "failed" || w["status"] == "cancelled");
            if any_failed != (code == Some(1)) {
                failures.push(format!(
                    "{}: {event}: exit {code:?} but failed={any_failed}",
                    case.display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const PIPELINE: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

const build = job('build', {
  runsOn: 'linux',
  matrix: { os: ['linux', 'mac'] },
  steps: [step('compile', async ({ matrix }) => ({ artifact: `app-${matrix.os}` }))],
});

const version = job('version', {
  runsOn: 'linux',
  run: async ({ $ }) => ({ version: (await $`echo 1.2.3`).stdout.trim() }),
});

const publish = job('publish', {
  runsOn: 'linux',
  needs: [build, version],
  steps: [
    step('publish', async ({ jobOutputs, needs, log }) => {
      const b = jobOutputs(build) as any;
      const v = jobOutputs('version') as any;
      log.info(`PUBLISH ${v.version} ${Object.keys(b.byMatrix).join('+')} ${b.byMatrix['mac'].artifact} ${needs.build.status} ${version.result.version}`);
    }),
  ],
});

const broken = job('broken', { runsOn: 'linux', needs: [publish], run: async () => { throw new Error('nope'); } });
const after = job('after', { runsOn: 'linux', needs: [broken], run: async () => {} });
const always = job('always', { runsOn: 'linux', needs: [{ name: 'broken', when: 'always' }], run: async ({ log }) => log.info('ALWAYS RAN') });

export default workflow('pipeline', { on: push(), jobs: [build, version, publish, broken, after, always] });
"#;

#[test]
fn needs_matrix_and_outputs_flow_downstream() {
    let dir = repo(&[(".kici/workflows/pipeline.ts", PIPELINE)]);
    let out = run_kici(
        dir.path(),
        &["run", "local", "push", "--keep-going"],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[publish] PUBLISH 1.2.3 linux+mac app-mac success 1.2.3"),
        "{stdout}"
    );
    assert!(stdout.contains("[build (linux)] ✓ Complete"), "{stdout}");
    assert!(stdout.contains("[skip] after"), "{stdout}");
    assert!(
        stdout.contains("skipped: upstream broken failed"),
        "{stdout}"
    );
    assert!(stdout.contains("[always] ALWAYS RAN"), "{stdout}");
    assert!(stdout.contains("Status: FAILED"), "{stdout}");
}

#[test]
fn json_and_junit_reports() {
    let dir = repo(&[(".kici/workflows/pipeline.ts", PIPELINE)]);
    let junit = dir.path().join("report.xml");
    let out = run_kici(
        dir.path(),
        &[
            "run",
            "local",
            "push",
            "--json",
            "--junit",
            junit.to_str().expect("path"),
        ],
        Duration::from_secs(60),
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("only JSON on stdout");
    assert_eq!(report["summary"]["totalWorkflows"], 1);
    assert_eq!(report["workflows"][0]["status"], "failed");
    let jobs = report["workflows"][0]["jobs"].as_array().expect("jobs");
    assert!(
        jobs.iter()
            .any(|j| j["name"] == "build (mac)" && j["matrixValues"]["os"] == "mac")
    );
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("<testsuites name=\"kici-local\""), "{xml}");
    assert!(xml.contains("<failure message="), "{xml}");
}

#[test]
fn uncommitted_changes_are_part_of_the_isolated_checkout() {
    let dir = repo(&[(
        ".kici/workflows/w.ts",
        "import { workflow, job, push } from '@kici-dev/sdk';\nexport default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', run: async ({ $ }) => { await $`cat notes.txt`; } })] });\n",
    )]);
    std::fs::write(dir.path().join("notes.txt"), "uncommitted-content\n").expect("write");
    let out = run_kici(
        dir.path(),
        &["run", "local", "push"],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("[j] uncommitted-content"), "{stdout}");
    assert!(stdout.contains("running in "), "{stdout}");
}

#[test]
fn sigint_leaves_no_process_behind() {
    let dir = repo(&[(
        ".kici/workflows/w.ts",
        "import { workflow, job, push } from '@kici-dev/sdk';\nexport default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', run: async ({ $ }) => { await $`sleep 300 & echo $! > /tmp/kici-sigint-$KICI_RUN_ID; wait`; } })] });\n",
    )]);
    let run_dir = tempfile::tempdir().expect("run dir");
    let child = Command::new(kici())
        .args(["run", "local", "push"])
        .current_dir(dir.path())
        .env("KICI_RUN_DIR", run_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    // Wait for the step's grandchild to exist.
    let started = Instant::now();
    let marker = loop {
        let found = std::fs::read_dir("/tmp")
            .expect("tmp")
            .filter_map(|e| e.ok())
            .find(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("kici-sigint-local-"))
                    && std::fs::read_to_string(e.path()).is_ok_and(|t| !t.trim().is_empty())
            });
        if let Some(e) = found {
            break e.path();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the step never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let grandchild: i32 = std::fs::read_to_string(&marker)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    let _ = std::fs::remove_file(&marker);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let alive = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.contains(") Z "))
    };
    for _ in 0..40 {
        if !alive(grandchild) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("process {grandchild} survived SIGINT");
}
