//! Global behaviour (cli.md §1): help, version, usage errors, exit codes.

use crate::support::Repo;

#[test]
fn help_for_every_command_exits_zero() {
    let repo = Repo::new();
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["help"],
        vec!["init", "--help"],
        vec!["compile", "--help"],
        vec!["watch", "--help"],
        vec!["preview", "--help"],
        vec!["hook", "--help"],
        vec!["hook", "install", "--help"],
        vec!["types", "--help"],
        vec!["version", "--help"],
    ] {
        let out = repo.kici(&args);
        out.expect(0);
        assert!(
            out.stdout.contains("Usage:"),
            "no usage for {args:?}\n{}",
            out.dump()
        );
    }
    let out = repo.kici(&["compile", "--help"]);
    out.stdout_has("--check")
        .stdout_has("--dry-run")
        .stdout_has("--kici-dir");
    repo.kici(&["preview", "--help"]).stdout_has("--files");
}

#[test]
fn unknown_flag_or_command_is_a_usage_error() {
    let repo = Repo::with_ci();
    for args in [
        vec!["--bogus"],
        vec!["compile", "--bogus"],
        vec!["preview", "push", "--bogus"],
        vec!["init", "--bogus"],
        vec!["hook", "install", "--manager", "nope"],
        vec!["hook"],
        vec!["frobnicate"],
    ] {
        let out = repo.kici(&args);
        out.expect(2);
        assert!(!out.stderr.is_empty(), "silent usage error for {args:?}");
    }
    assert!(!repo.exists(".kici/kici.lock.json"));
}

#[test]
fn no_command_prints_help_and_exits_two() {
    let repo = Repo::new();
    repo.kici(&[]).expect(2).stdout_has("Usage:");
}

#[test]
fn version_flag_and_command_agree() {
    let repo = Repo::new();
    let version = env!("CARGO_PKG_VERSION");
    let flag = repo.kici(&["--version"]);
    flag.expect(0).stdout_has(&format!("kici {version} ("));
    let short = repo.kici(&["-V"]);
    short.expect(0);
    let command = repo.kici(&["version"]);
    command.expect(0);
    assert_eq!(flag.stdout, command.stdout);
    assert_eq!(flag.stdout, short.stdout);
    let body = repo.kici(&["version", "--json"]).expect(0).json();
    assert_eq!(body["version"], version);
    assert_eq!(body["lockSchemaVersion"], 29);
    assert_eq!(body["protocolVersion"], 1);
    assert!(body["target"].is_string());
}

#[test]
fn no_banner_when_stderr_is_not_a_terminal() {
    let repo = Repo::with_ci();
    let out = repo.kici(&["compile"]);
    out.expect(0);
    assert!(
        !out.stderr
            .contains(&format!("kici v{}", env!("CARGO_PKG_VERSION"))),
        "{}",
        out.dump()
    );
}
