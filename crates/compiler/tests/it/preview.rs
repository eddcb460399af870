//! `kici preview` against the reference's recorded runs (`preview/<case>/<NN-args>/`).
//!
//! Each case is rendered from the reference's lock (`workflows/<case>/expected/kici.lock.json`)
//! with no git facts (the reference's events come from built-in fixtures only) and compared
//! with `output.txt` line by line, after dropping the banner (ours prints it on stderr, F73)
//! and normalising `runs-on:` lines (the reference printed `[object Object]`, F71). Exit
//! codes must match, except where we deliberately differ:
//!
//! * `--json` exists (the reference failed with `unknown option '--json'`): the document
//!   must parse and carry the same event and decisions as the non-JSON run;
//! * `schedule` without a cron tries every cron of the lock (`triggers.md` §10): a workflow
//!   may match where the reference skipped it, but only through a schedule trigger.
//!
//! All failing cases are collected and reported together, with diffs.

use std::path::{Path, PathBuf};

use kici_compiler::preview::{self, PreviewArgs, PreviewContext, PreviewReport};
use kici_engine::lock::LockFile;
use serde_json::Value;

use crate::conformance_dir;

const REPO: &str = "<REPO>";

struct Case {
    name: String,
    dir: PathBuf,
    repo: String,
    argv: Vec<String>,
    exit: i32,
}

fn cases() -> Vec<Case> {
    let root = conformance_dir().join("preview");
    let mut out = Vec::new();
    for repo in sorted_dirs(&root) {
        for run in sorted_dirs(&repo) {
            let command: Value = serde_json::from_str(
                &std::fs::read_to_string(run.join("command.json")).expect("command.json"),
            )
            .expect("command.json is JSON");
            let argv = command["argv"]
                .as_array()
                .expect("argv")
                .iter()
                .map(|a| a.as_str().expect("argv string").to_string())
                .collect();
            let exit = std::fs::read_to_string(run.join("exit"))
                .expect("exit")
                .trim()
                .parse()
                .expect("exit code");
            out.push(Case {
                name: run
                    .strip_prefix(&root)
                    .expect("below root")
                    .display()
                    .to_string(),
                repo: repo
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                dir: run,
                argv,
                exit,
            });
        }
    }
    out
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn load_lock(repo: &str) -> LockFile {
    let path = conformance_dir()
        .join("workflows")
        .join(repo)
        .join("expected/kici.lock.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    LockFile::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn context() -> PreviewContext {
    PreviewContext {
        kici_dir: format!("{REPO}/.kici"),
        lock_path: Some(format!("{REPO}/.kici/kici.lock.json")),
        payload: None,
        git: Default::default(),
    }
}

/// Lines to compare: banner dropped, `runs-on:` values replaced.
fn normalise(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| match l.find("runs-on: ") {
            Some(i) if l[..i].trim().is_empty() => format!("{}runs-on: <labels>", &l[..i]),
            _ => l.to_string(),
        })
        .collect();
    if lines.first().is_some_and(|l| l.starts_with("kici v")) {
        lines.remove(0);
    }
    lines
}

fn diff(expected: &[String], actual: &[String]) -> String {
    let mut out = String::new();
    let n = expected.len().max(actual.len());
    for i in 0..n {
        let e = expected.get(i).map(String::as_str);
        let a = actual.get(i).map(String::as_str);
        if e == a {
            out.push_str(&format!("   {}\n", e.unwrap_or_default()));
        } else {
            if let Some(e) = e {
                out.push_str(&format!(" - {e}\n"));
            }
            if let Some(a) = a {
                out.push_str(&format!(" + {a}\n"));
            }
        }
    }
    out
}

/// Our report for a case, or the exit code and message of the error.
fn run_case(case: &Case) -> Result<PreviewReport, (i32, String)> {
    let args = PreviewArgs::parse(&case.argv[2..]).map_err(|e| (e.exit_code(), e.to_string()))?;
    let lock = load_lock(&case.repo);
    preview::run(&args, &context(), &lock).map_err(|e| (e.exit_code(), e.to_string()))
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("valid JSON"))
}

/// The reference rejected `--json`; ours accepts it.
fn check_json_case(case: &Case, failures: &mut Vec<String>) {
    let report = match run_case(case) {
        Ok(r) => r,
        Err((code, msg)) => {
            failures.push(format!("{}: --json failed (exit {code}): {msg}", case.name));
            return;
        }
    };
    let doc: Value = match serde_json::from_str(&report.to_json_string()) {
        Ok(v) => v,
        Err(e) => {
            failures.push(format!("{}: --json output is not JSON: {e}", case.name));
            return;
        }
    };
    let without_json: Vec<String> = case.argv[2..]
        .iter()
        .filter(|a| *a != "--json")
        .cloned()
        .collect();
    let args = PreviewArgs::parse(&without_json).expect("args");
    let plain = preview::run(&args, &context(), &load_lock(&case.repo)).expect("plain run");
    let mut problems = Vec::new();
    if report.exit_code() != 0 {
        problems.push(format!("exit {}", report.exit_code()));
    }
    if doc["event"] != serde_json::to_value(&plain.event).expect("event") {
        problems.push("event differs from the plain run".to_string());
    }
    if doc["decisions"] != serde_json::to_value(&plain.decisions).expect("decisions") {
        problems.push("decisions differ from the plain run".to_string());
    }
    let workflows = doc["workflows"].as_array().map_or(0, Vec::len);
    if workflows != plain.workflows.len() || doc["total"] != workflows {
        problems.push(format!("{workflows} workflows in the document"));
    }
    for w in doc["workflows"].as_array().into_iter().flatten() {
        for key in ["name", "matched", "summary", "triggers", "jobs"] {
            if w.get(key).is_none() {
                problems.push(format!("workflow without {key:?}: {w}"));
            }
        }
    }
    if !problems.is_empty() {
        failures.push(format!("{}: --json: {}", case.name, problems.join("; ")));
    }
}

#[test]
fn preview_output_matches_the_reference() {
    let cases = cases();
    assert!(
        cases.len() >= 30,
        "expected the preview corpus, found {}",
        cases.len()
    );
    let mut failures: Vec<String> = Vec::new();
    let mut compared = 0;
    for case in &cases {
        let expected_text =
            std::fs::read_to_string(case.dir.join("output.txt")).expect("output.txt");
        if case.argv.iter().any(|a| a == "--json")
            && expected_text.contains("unknown option '--json'")
        {
            check_json_case(case, &mut failures);
            continue;
        }
        compared += 1;
        let (exit, actual_text) = match run_case(case) {
            Ok(report) => (report.exit_code(), report.render_text()),
            Err((code, msg)) => (code, format!("error: {msg}\n")),
        };
        let expected = normalise(&expected_text);
        let actual = normalise(&actual_text);

        // Ours: an unspecified `schedule` may match through any cron of the lock.
        if case
            .argv
            .get(2)
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("schedule"))
            && expected != actual
            && let Ok(report) = run_case(case)
            && let Some(Value::Array(theirs)) = read_json(&case.dir.join("decisions.json"))
        {
            let mut explained = theirs.len() == report.decisions.len();
            for (ours, theirs) in report.decisions.iter().zip(&theirs) {
                if ours.matched != theirs["matched"].as_bool().unwrap_or(false) {
                    let via_schedule = ours.matched
                        && report
                            .workflows
                            .iter()
                            .find(|w| w.name == ours.workflow_name)
                            .zip(ours.matched_trigger)
                            .and_then(|(w, i)| w.triggers.get(i))
                            .is_some_and(|t| t == "schedule");
                    explained &= via_schedule;
                }
            }
            if explained && exit == case.exit {
                continue;
            }
        }

        if exit != case.exit || expected != actual {
            failures.push(format!(
                "{} ({}): exit {} (expected {})\n{}",
                case.name,
                case.argv[1..].join(" "),
                exit,
                case.exit,
                diff(&expected, &actual)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} preview cases differ from the reference:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(compared > 0);
}

/// The decisions in the report are the engine's, and agree with the reference's
/// `decisions.json` on what matched and why (summary and matched trigger).
#[test]
fn preview_decisions_match_the_reference() {
    let mut failures = Vec::new();
    for case in cases() {
        let Some(Value::Array(theirs)) = read_json(&case.dir.join("decisions.json")) else {
            continue;
        };
        if case
            .argv
            .get(2)
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("schedule"))
        {
            continue; // ours: see above
        }
        let report = match run_case(&case) {
            Ok(r) => r,
            Err((_, msg)) => {
                failures.push(format!("{}: {msg}", case.name));
                continue;
            }
        };
        let ours: Vec<Value> = report
            .decisions
            .iter()
            .map(|d| {
                serde_json::json!({
                    "workflowName": d.workflow_name,
                    "matched": d.matched,
                    "matchedTrigger": d.matched_trigger,
                    "summary": d.summary,
                })
            })
            .collect();
        let theirs: Vec<Value> = theirs
            .iter()
            .map(|d| {
                serde_json::json!({
                    "workflowName": d["workflowName"],
                    "matched": d["matched"],
                    "matchedTrigger": d.get("matchedTrigger").cloned().unwrap_or(Value::Null),
                    "summary": d["summary"],
                })
            })
            .collect();
        if ours != theirs {
            failures.push(format!(
                "{}:\n  expected {}\n  ours     {}",
                case.name,
                Value::Array(theirs),
                Value::Array(ours)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Our `runs-on:` rendering (the reference printed `[object Object]`).
#[test]
fn runs_on_lines_show_labels() {
    let lock = load_lock("30-runs-on-labels");
    let args = PreviewArgs::parse(["push"]).expect("args");
    let report = preview::run(&args, &context(), &lock).expect("preview");
    let runs_on: Vec<String> = report.workflows[0]
        .jobs
        .iter()
        .map(|j| j.runs_on_text())
        .collect();
    assert_eq!(
        runs_on,
        vec![
            "kici:os:linux",
            "kici:os:linux, kici:arch:x64, docker",
            "gpu-*",
            "{small,medium}-runner, kici:os:*",
            "rack-[0-9]?",
            "/^pool-(a|b)$/",
            "/^BUILDER-\\d+$/i, kici:os:linux",
            "kici:os:linux, docker, !flaky, !/^old-/ (pick: any)",
            "kici:os:linux",
            "/^arm/, !maintenance",
        ]
    );
}

#[test]
fn unknown_event_and_missing_event_are_usage_errors() {
    let lock = load_lock("01-hello-world");
    for argv in [vec!["deploy"], vec![], vec!["pr:merge"]] {
        let args = PreviewArgs::parse(argv.clone()).expect("args");
        let err = preview::run(&args, &context(), &lock).expect_err("must fail");
        assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
    }
}

/// The renderer alone: the reference's own event and decisions (`event.json`,
/// `decisions.json`) rendered with the reference's lock must give `output.txt`. Independent
/// of our event builder and matcher, so a difference here is a rendering bug.
#[test]
fn rendering_the_reference_decisions_gives_the_reference_output() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in cases() {
        let (Some(event), Some(decisions)) = (
            read_json(&case.dir.join("event.json")),
            read_json(&case.dir.join("decisions.json")),
        ) else {
            continue;
        };
        let event = serde_json::from_value(event).expect("event.json is an Event");
        let decisions = serde_json::from_value(decisions).expect("decisions.json are Decisions");
        let args = PreviewArgs::parse(&case.argv[2..]).expect("args");
        let lock = load_lock(&case.repo);
        let report = PreviewReport::from_parts(&args, &context(), &lock, event, decisions);
        compared += 1;
        let expected_text =
            std::fs::read_to_string(case.dir.join("output.txt")).expect("output.txt");
        let expected = normalise(&expected_text);
        let actual = normalise(&report.render_text());
        if expected != actual || report.exit_code() != case.exit {
            failures.push(format!(
                "{}: exit {} (expected {})\n{}",
                case.name,
                report.exit_code(),
                case.exit,
                diff(&expected, &actual)
            ));
        }
    }
    assert!(
        compared >= 30,
        "only {compared} cases have event.json and decisions.json"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Ours (`triggers.md` §10, F66): `schedule` without a cron tries every cron of the lock,
/// `dispatch:<type>` sets the action so typed dispatch triggers match.
#[test]
fn unspecified_schedule_and_typed_dispatch_match() {
    let lock = load_lock("04-multi-triggers");
    let run = |argv: &[&str]| {
        let args = PreviewArgs::parse(argv).expect("args");
        preview::run(&args, &context(), &lock).expect("preview")
    };
    let schedule = run(&["schedule"]);
    assert_eq!(schedule.event.payload["cronExpression"], "*");
    assert!(schedule.decisions[0].matched, "{:?}", schedule.decisions[0]);
    assert_eq!(schedule.decisions[0].matched_trigger, Some(4));
    let dispatch = run(&["dispatch:rebuild"]);
    assert!(dispatch.decisions[0].matched, "{:?}", dispatch.decisions[0]);
    assert_eq!(dispatch.decisions[0].matched_trigger, Some(3));
    assert!(!run(&["dispatch:other"]).decisions[0].matched);

    let lock = load_lock("05-schedule");
    let args = PreviewArgs::parse(["schedule"]).expect("args");
    let report = preview::run(&args, &context(), &lock).expect("preview");
    assert!(
        report.decisions.iter().all(|d| d.matched),
        "{:?}",
        report.decisions
    );
}

/// `--input` values are resolved against the matched dispatch trigger; a bad value is shown
/// and exits 2.
#[test]
fn dispatch_inputs_are_resolved_per_workflow() {
    let lock = load_lock("06-dispatch-inputs");
    let descriptor =
        serde_json::to_value(&lock.workflows[0].triggers[0]).expect("trigger")["inputs"].clone();
    let required: Vec<String> = descriptor
        .as_object()
        .expect("inputs")
        .iter()
        .filter(|(_, d)| d["optional"] == false && d.get("default").is_none())
        .map(|(k, _)| k.clone())
        .collect();
    assert!(!required.is_empty(), "{descriptor}");

    let args = PreviewArgs::parse(["dispatch:deploy", "--input", "bogus=1"]).expect("args");
    let report = preview::run(&args, &context(), &lock).expect("preview");
    assert!(report.decisions[0].matched, "{:?}", report.decisions[0]);
    let error = report.decisions[0]
        .inputs_error
        .clone()
        .expect("inputs error");
    assert!(error.contains("unknown input \"bogus\""), "{error}");
    assert_eq!(report.exit_code(), 2);
    assert!(
        report
            .render_text()
            .contains("    Inputs error: unknown input")
    );

    // Without --input the error is recorded but preview still succeeds.
    let args = PreviewArgs::parse(["dispatch:deploy"]).expect("args");
    let report = preview::run(&args, &context(), &lock).expect("preview");
    assert_eq!(report.exit_code(), 0);
    assert!(!report.render_text().contains("Inputs error"));
}

#[test]
fn json_document_shape() {
    let lock = load_lock("07-matrix-array");
    let args = PreviewArgs::parse(["push", "--json"]).expect("args");
    let doc = preview::run(&args, &context(), &lock)
        .expect("preview")
        .to_json();
    assert_eq!(doc["eventArgument"], "push");
    assert_eq!(doc["event"]["type"], "push");
    assert_eq!(doc["total"], 1);
    let workflow = &doc["workflows"][0];
    assert_eq!(workflow["name"], "sharded-tests");
    assert_eq!(workflow["triggers"], serde_json::json!(["push"]));
    let jobs = workflow["jobs"].as_array().expect("jobs");
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        vec![
            "test (shard-1)",
            "test (shard-2)",
            "test (shard-3)",
            "test (shard-4)",
            "report"
        ]
    );
    assert_eq!(jobs[0]["baseName"], "test");
    assert_eq!(
        jobs[0]["matrixValues"],
        serde_json::json!({"value": "shard-1"})
    );
    assert_eq!(jobs[0]["runsOn"], serde_json::json!(["kici:os:linux"]));
    assert_eq!(jobs[4]["needs"], serde_json::json!(["test"]));
    assert_eq!(jobs[4]["steps"], serde_json::json!(["merge-reports"]));
}
