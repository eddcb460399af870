//! `matrix.jsonl`: matrix expansion (`expected` / `error`) and the compiler's E104 check
//! (`compileCheck`).

use kici_engine::lock::{
    LockJob, LockJobEntry, LockMatrix, LockSource, LockWorkflow, StaticMatrixValues,
};
use kici_engine::matrix::{MatrixChild, materialize};
use kici_engine::validate::validate;
use serde_json::{Map, Value, json};

use crate::read_jsonl;

fn entries(case: &Value, key: &str) -> Vec<Map<String, Value>> {
    case.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| i.as_object().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

fn child_json(child: &MatrixChild) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(child.name));
    out.insert("values".into(), Value::Object(child.values.clone()));
    if let (Some(index), Some(total)) = (child.fanout_index, child.fanout_total) {
        out.insert("fanoutIndex".into(), json!(index));
        out.insert("fanoutTotal".into(), json!(total));
    }
    Value::Object(out)
}

/// Key order matters in `values`, so compare the printed forms.
fn key_ordered(v: &Value) -> String {
    kici_engine::json::to_string_compact(v)
}

fn first_difference(expected: &[Value], actual: &[Value]) -> String {
    if expected.len() != actual.len() {
        return format!(
            "{} children expected, {} produced",
            expected.len(),
            actual.len()
        );
    }
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if key_ordered(e) != key_ordered(a) {
            return format!(
                "child {i}: expected {} got {}",
                key_ordered(e),
                key_ordered(a)
            );
        }
    }
    String::new()
}

fn workflow_with(job: LockJob) -> LockWorkflow {
    LockWorkflow {
        name: "matrix-case".into(),
        source: LockSource {
            file: ".kici/workflows/matrix.ts".into(),
            export: "#default".into(),
        },
        content_hash: String::new(),
        compile_schema_version: 5,
        triggers: vec![],
        jobs: vec![LockJobEntry::Static(Box::new(job))],
        rules: None,
        description: None,
        hash_files: None,
        resolved_hash_files: None,
        registries: None,
        install_env: None,
        has_on_cancel: false,
        has_cleanup: false,
        has_on_success: false,
        has_on_failure: false,
        concurrency: None,
        timeout: None,
        approval: None,
        contexts: None,
    }
}

#[test]
fn matrix_expansion_matches_reference() {
    let cases = read_jsonl("matrix.jsonl");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let job = case["job"].as_str().unwrap_or_default();
        let values: StaticMatrixValues = match serde_json::from_value(case["matrix"].clone()) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{id}: matrix does not parse: {e}"));
                continue;
            }
        };
        let include = entries(case, "include");
        let exclude = entries(case, "exclude");
        let result = materialize(job, &values, &include, &exclude);
        match (case.get("expected"), result) {
            (Some(Value::Array(expected)), Ok(children)) => {
                let actual: Vec<Value> = children.iter().map(child_json).collect();
                let diff = first_difference(expected, &actual);
                if !diff.is_empty() {
                    failures.push(format!("{id}: {diff}"));
                }
            }
            (Some(Value::Array(_)), Err(e)) => {
                failures.push(format!("{id}: expected children, got error {e}"))
            }
            (_, Ok(children)) => failures.push(format!(
                "{id}: expected error {}, got {} children",
                case["error"]["message"],
                children.len()
            )),
            (_, Err(e)) => {
                let expected = case["error"]["message"].as_str().unwrap_or_default();
                if e.to_string() != expected {
                    failures.push(format!(
                        "{id}: error\n  expected {expected}\n  actual   {e}"
                    ));
                }
            }
        }

        // compileCheck: the same job inside workflow "matrix-case", through the validator.
        let lock_job = LockJob {
            name: job.into(),
            matrix: Some(LockMatrix::Static { values }),
            include: (!include.is_empty()).then(|| include.clone()),
            exclude: (!exclude.is_empty()).then(|| exclude.clone()),
            ..LockJob::default()
        };
        let diagnostics = validate(&[workflow_with(lock_job)]);
        let actual: Vec<Value> = diagnostics
            .iter()
            .map(|d| json!({"code": d.code, "message": d.message}))
            .collect();
        let check = &case["compileCheck"];
        let expected: Vec<Value> = if check["valid"] == json!(true) {
            vec![]
        } else {
            check["errors"].as_array().cloned().unwrap_or_default()
        };
        if expected != actual {
            failures.push(format!(
                "{id}: compileCheck\n  expected {}\n  actual   {}",
                Value::Array(expected),
                Value::Array(actual)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} matrix cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
