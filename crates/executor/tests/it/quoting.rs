//! Every case of `../shared/conformance/shell-quoting.jsonl` through the runtime's real `$`
//! (sdk.md §18.2): the values are built in JavaScript inside a step (ProcessOutputs by really
//! running `printf %s` through `$`), interpolated into the case's template, and run.
//!
//! * Every case runs against a fake `bash` first on `PATH` that prints the `-c` argument it
//!   was given: what bash would have received must be exactly `fullCommand` (and the
//!   ProcessOutput's `command` exactly `command`).
//! * The `roundtrip` cases also run through the real bash, and the NUL-separated arguments
//!   `printf` got must be the recorded `argv`.

use std::path::{Path, PathBuf};

use kici_executor::Status;
use serde_json::Value;

use crate::support::{Workspace, run};

fn conformance_dir() -> PathBuf {
    std::env::var_os("KICI_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

const WORKFLOW: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';
import { readFileSync } from 'node:fs';

export default workflow('quoting', { on: push(), jobs: [job('cases', { runsOn: 'x', steps: [
  step('quoting', async ({ $ }) => {
    const cases = readFileSync('cases.jsonl', 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
    const fake = $({ env: { PATH: `${process.cwd()}/fakebin` }, quiet: true, nothrow: true });
    const real = $({ quiet: true, nothrow: true });
    // The tagged values of the conformance README, as real JavaScript values.
    const decode = async (v) => {
      if (Array.isArray(v)) {
        const out = [];
        for (const x of v) out.push(await decode(x));
        return out;
      }
      if (v === null || typeof v !== 'object' || typeof v.kind !== 'string') return v;
      switch (v.kind) {
        case 'undefined': return undefined;
        case 'number': return Number(v.repr);
        case 'bigint': return BigInt(v.repr);
        case 'object': return v.value;
        case 'ProcessOutput': {
          const out = await real`printf %s ${v.stdout}`;
          if (out.stdout !== v.stdout || out.exitCode !== v.exitCode) {
            throw new Error(`cannot build the ProcessOutput ${JSON.stringify(v)}: got ${JSON.stringify(out.stdout)}`);
          }
          return out;
        }
        default: throw new Error(`unknown tagged value ${JSON.stringify(v)}`);
      }
    };
    const template = (pieces) => Object.assign([...pieces], { raw: [...pieces] });
    const results = [];
    for (const c of cases) {
      const r = { id: c.id };
      try {
        const values = await decode(c.values);
        const out = await fake(template(c.template), ...values);
        r.command = out.command;
        r.received = out.stdout;
        r.fakeExit = out.exitCode;
        if (c.bash) {
          const ran = await real(template(c.template), ...values);
          const parts = ran.stdout.split('\0');
          parts.pop();
          r.argv = parts;
          r.exitCode = ran.exitCode;
        }
      } catch (e) {
        r.error = String(e && e.stack ? `${e.message}\n${e.stack}` : e);
      }
      results.push(r);
    }
    return { results };
  }),
] })] });
"#;

#[test]
fn every_shell_quoting_case_through_the_real_dollar() {
    let jsonl = std::fs::read_to_string(conformance_dir().join("shell-quoting.jsonl"))
        .expect("shell-quoting.jsonl");
    let cases: Vec<Value> = jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("case"))
        .collect();
    assert!(cases.len() >= 100, "only {} cases", cases.len());

    let ws = Workspace::new(WORKFLOW);
    std::fs::write(ws.dir.path().join("cases.jsonl"), &jsonl).expect("write cases");
    let fakebin = ws.dir.path().join("fakebin");
    std::fs::create_dir_all(&fakebin).expect("mkdir");
    // Prints the command string it was asked to run (`bash -c <command>`), nothing else.
    std::fs::write(fakebin.join("bash"), "#!/bin/sh\nprintf '%s' \"$2\"\n").expect("fake bash");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fakebin.join("bash"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }

    let (result, rec) = run(ws.request("quoting", "cases"));
    assert_eq!(
        result.status,
        Status::Success,
        "{result:?}\n{:#?}",
        rec.lines()
    );
    let results = result.outputs["quoting"]["results"]
        .as_array()
        .expect("results")
        .clone();
    assert_eq!(results.len(), cases.len());

    let mut failures = Vec::new();
    for (case, got) in cases.iter().zip(&results) {
        let id = case["id"].as_str().unwrap_or("?");
        assert_eq!(got["id"], case["id"]);
        if let Some(error) = got.get("error") {
            failures.push(format!("{id}: threw {}", error.as_str().unwrap_or("")));
            continue;
        }
        if got["command"] != case["command"] {
            failures.push(format!(
                "{id}: command {} expected {}",
                got["command"], case["command"]
            ));
        }
        if got["received"] != case["fullCommand"] || got["fakeExit"] != 0 {
            failures.push(format!(
                "{id}: bash received {} (exit {}) expected {}",
                got["received"], got["fakeExit"], case["fullCommand"]
            ));
        }
        if let Some(bash) = case.get("bash")
            && (got["argv"] != bash["argv"] || got["exitCode"] != bash["exitCode"])
        {
            failures.push(format!(
                "{id}: real bash gave argv {} exit {} expected {} exit {}",
                got["argv"], got["exitCode"], bash["argv"], bash["exitCode"]
            ));
        }
    }
    let roundtrips = cases.iter().filter(|c| c.get("bash").is_some()).count();
    assert!(roundtrips > 0, "no roundtrip cases");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
