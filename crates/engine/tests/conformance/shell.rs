//! `shell-quoting.jsonl`: zx `$` command building; the `roundtrip` group also runs the
//! command through `/bin/bash` and compares the argv `printf` received.

use kici_engine::shell::{ShellValue, build_command, full_command};
use serde_json::Value;

use crate::read_jsonl;

/// Decodes the corpus encoding of a JavaScript value (`{"kind": ...}` tags for values JSON
/// cannot express).
fn decode(v: &Value) -> Result<ShellValue, String> {
    Ok(match v {
        Value::Null => ShellValue::Null,
        Value::Bool(b) => ShellValue::Bool(*b),
        Value::Number(n) => ShellValue::Number(n.as_f64().ok_or("number")?),
        Value::String(s) => ShellValue::String(s.clone()),
        Value::Array(items) => {
            ShellValue::Array(items.iter().map(decode).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => match map.get("kind").and_then(Value::as_str) {
            Some("undefined") => ShellValue::Undefined,
            Some("number") => ShellValue::Number(match map["repr"].as_str() {
                Some("NaN") => f64::NAN,
                Some("Infinity") => f64::INFINITY,
                Some("-Infinity") => f64::NEG_INFINITY,
                Some("-0") => -0.0,
                other => return Err(format!("unknown number repr {other:?}")),
            }),
            Some("bigint") => ShellValue::BigInt(map["repr"].as_str().unwrap_or("").to_owned()),
            Some("object") => {
                ShellValue::Object(map["value"].as_object().cloned().ok_or("object value")?)
            }
            Some("ProcessOutput") => {
                let stdout = map["stdout"].as_str().unwrap_or("").to_owned();
                let stderr = map["stderr"].as_str().unwrap_or("");
                ShellValue::ProcessOutput {
                    stdall: format!("{stdout}{stderr}"),
                    stdout,
                }
            }
            other => return Err(format!("unknown kind {other:?}")),
        },
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `full` with bash and returns the NUL-separated pieces `printf '%s\0'` wrote.
fn bash_argv(full: &str) -> Result<(i32, Vec<String>), String> {
    let out = std::process::Command::new("/bin/bash")
        .arg("-c")
        .arg(full)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("spawn bash: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut argv: Vec<String> = text.split('\0').map(str::to_owned).collect();
    // Every argument ends with NUL, so the last piece is the empty remainder.
    argv.pop();
    Ok((out.status.code().unwrap_or(-1), argv))
}

#[test]
fn shell_quoting_matches_zx() {
    let cases = read_jsonl("shell-quoting.jsonl");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let mut roundtrips = 0;
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let template = strings(&case["template"]);
        let values = match case["values"]
            .as_array()
            .map(|a| a.iter().map(decode).collect::<Result<Vec<_>, _>>())
        {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                failures.push(format!("{id}: {e}"));
                continue;
            }
            None => {
                failures.push(format!("{id}: no values"));
                continue;
            }
        };
        let cmd = match build_command(&template, &values) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{id}: {e}"));
                continue;
            }
        };
        let expected = case["command"].as_str().unwrap_or_default();
        if cmd != expected {
            failures.push(format!(
                "{id}: command\n  expected {expected:?}\n  actual   {cmd:?}"
            ));
        }
        let full = full_command(&cmd);
        let expected_full = case["fullCommand"].as_str().unwrap_or_default();
        if full != expected_full {
            failures.push(format!(
                "{id}: fullCommand\n  expected {expected_full:?}\n  actual   {full:?}"
            ));
        }
        if let Some(bash) = case.get("bash") {
            roundtrips += 1;
            let expected_argv = strings(&bash["argv"]);
            let expected_code = bash["exitCode"].as_i64().unwrap_or(0) as i32;
            match bash_argv(&full) {
                Ok((code, argv)) if code == expected_code && argv == expected_argv => {}
                Ok((code, argv)) => failures.push(format!(
                    "{id}: bash\n  expected exit {expected_code} argv {expected_argv:?}\n  actual   exit {code} argv {argv:?}"
                )),
                Err(e) => failures.push(format!("{id}: {e}")),
            }
        }
    }
    assert!(roundtrips > 0, "no roundtrip cases found");
    assert!(
        failures.is_empty(),
        "{} of {} shell cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
