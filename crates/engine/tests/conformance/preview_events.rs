//! `preview/<case>/<NN-args>/`: the event the reference's `buildEventPayload` built for the
//! same arguments (`event.json`) must equal ours, key order included, when no git facts are
//! supplied (the reference did not read the current branch, `HEAD` or the working tree).

use kici_engine::simulate::{self, GitFacts, SimulateOptions};
use serde_json::Value;

use crate::conformance_dir;

struct Case {
    name: String,
    argv: Vec<String>,
    exit: i64,
    event: Option<Value>,
}

fn cases() -> Vec<Case> {
    let root = conformance_dir().join("preview");
    let mut out = Vec::new();
    let mut repos: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    repos.sort();
    for repo in repos {
        let mut runs: Vec<_> = std::fs::read_dir(&repo)
            .expect("read case dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        runs.sort();
        for run in runs {
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
            let exit = command["exit"].as_i64().expect("exit");
            let event = std::fs::read_to_string(run.join("event.json"))
                .ok()
                .map(|t| serde_json::from_str(&t).expect("event.json is JSON"));
            let name = run
                .strip_prefix(&root)
                .expect("below root")
                .display()
                .to_string();
            out.push(Case {
                name,
                argv,
                exit,
                event,
            });
        }
    }
    out
}

/// The event-shaping part of `kici preview <event> [flags]` (argv without `kici preview`).
fn options_from_argv(args: &[String]) -> (Option<String>, SimulateOptions) {
    let mut event = None;
    let mut options = SimulateOptions::default();
    let mut files: Vec<String> = Vec::new();
    let mut files_given = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let value = args.get(i + 1).cloned();
        match a.as_str() {
            "--branch" => {
                options.branch = value;
                i += 1;
            }
            "--sha" => {
                options.sha = value;
                i += 1;
            }
            "--files" => {
                files_given = true;
                files.extend(value);
                i += 1;
            }
            "--workflow" | "--job" | "--input" | "--payload" | "--kici-dir" => i += 1,
            s if s.starts_with("--") => {}
            _ => {
                if event.is_none() {
                    event = Some(a.clone());
                }
            }
        }
        i += 1;
    }
    if files_given {
        options.files = Some(simulate::split_files(&files));
    }
    (event, options)
}

#[test]
fn preview_events_match_the_reference() {
    let cases = cases();
    assert!(
        cases.len() >= 30,
        "expected the preview corpus, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in &cases {
        let Some(expected) = &case.event else {
            continue;
        };
        let (arg, options) = options_from_argv(&case.argv[2..]);
        let arg = arg.unwrap_or_default();
        match simulate::simulate(&arg, &options, &GitFacts::default()) {
            Err(e) => failures.push(format!("{}: {arg:?} failed: {e}", case.name)),
            Ok(event) => {
                compared += 1;
                let ours = serde_json::to_string_pretty(&event).expect("serialise");
                let theirs = serde_json::to_string_pretty(expected).expect("serialise");
                if ours != theirs {
                    failures.push(format!(
                        "{}: {arg:?}\n--- expected\n{theirs}\n--- ours\n{ours}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} events differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every successful case's event argument parses; the corpus' failing cases fail for reasons
/// other than the event argument (`--workflow` without a match, the reference's missing
/// `--json`), so their events must build too.
#[test]
fn every_corpus_argument_is_accepted() {
    for case in cases() {
        let (arg, options) = options_from_argv(&case.argv[2..]);
        let arg = arg.unwrap_or_default();
        let result = simulate::simulate(&arg, &options, &GitFacts::default());
        assert!(
            result.is_ok(),
            "{} (exit {}): {arg:?}: {result:?}",
            case.name,
            case.exit
        );
    }
}

#[test]
fn invalid_event_arguments_are_usage_errors() {
    for arg in [
        "",
        "deploy",
        "pr:merged",
        "push:main",
        "release:shipped",
        "create:note",
        "star:starred",
        "webhook",
        "webhook:",
        "tag:",
    ] {
        match simulate::parse_event_arg(arg) {
            Ok(spec) => panic!("{arg:?} was accepted as {spec:?}"),
            Err(e) => {
                assert!(e.is_usage_error(), "{arg:?}: {e}");
                let msg = e.to_string();
                assert!(!msg.is_empty());
            }
        }
    }
    let msg = simulate::parse_event_arg("deploy").unwrap_err().to_string();
    assert!(msg.starts_with("unknown event \"deploy\""), "{msg}");
    assert!(
        msg.contains("pr:<action>") && msg.contains("schedule[:<cron>]"),
        "{msg}"
    );
    let msg = simulate::parse_event_arg("pr:merged")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unknown pull_request action \"merged\""),
        "{msg}"
    );
}
