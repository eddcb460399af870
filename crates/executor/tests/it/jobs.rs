//! Steps, outputs, rules, retries, hooks and timeouts.

use kici_executor::Status;

use crate::support::{Workspace, run, run_after};

#[test]
fn hello_world_step_output_reaches_the_sink() {
    let ws = Workspace::new(
        "import { workflow, job, step, push } from '@kici-dev/sdk';\n\
         export default workflow('hello', { on: push(), jobs: [job('greet', { runsOn: 'x', steps: [\n\
           step('say', async ({ $, log }) => { await $`echo hello from bash`; log.info('from log'); console.log('from console'); return { n: 1 }; }),\n\
         ] })] });\n",
    );
    let (result, rec) = run(ws.request("hello", "greet"));
    assert_eq!(
        result.status,
        Status::Success,
        "{result:?}\n{:?}",
        rec.lines()
    );
    let lines = rec.lines();
    assert!(
        lines.contains(&"say|hello from bash".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"say|from log".to_string()), "{lines:?}");
    assert!(lines.contains(&"say|from console".to_string()), "{lines:?}");
    assert_eq!(result.outputs["say"], serde_json::json!({"n": 1}));
}

const HELLO: &str = "import { workflow, job, step, push } from '@kici-dev/sdk';\n\
     export default workflow('hello', { on: push(), jobs: [job('greet', { runsOn: 'x', steps: [\n\
       step('say', async ({ log }) => { log.info('hello'); }),\n\
     ] })] });\n";

/// The agent checks out while the engine starts: the workflow file appears only when the
/// workspace is ready, and the job still loads it.
#[test]
fn the_workflow_loads_once_the_workspace_is_ready() {
    let ws = Workspace::new("");
    let entry = ws.dir.path().join(".kici/workflows/w.ts");
    std::fs::remove_file(&entry).expect("no workflow yet");
    let ready = async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        std::fs::write(&entry, HELLO).map_err(|e| e.to_string())
    };
    let (result, rec) = run_after(ws.request("hello", "greet"), ready);
    assert_eq!(result.status, Status::Success, "{result:?}");
    assert_eq!(rec.lines(), vec!["say|hello".to_string()]);
}

/// A workspace that cannot be prepared (a failed clone, lock drift) fails the job with its
/// reason and runs nothing.
#[test]
fn a_workspace_that_fails_to_prepare_fails_the_job_before_any_step() {
    let ws = Workspace::new(HELLO);
    let ready = async { Err("clone failed: repository not found".to_string()) };
    let (result, rec) = run_after(ws.request("hello", "greet"), ready);
    assert_eq!(result.status, Status::Failed);
    assert_eq!(
        result.error.as_deref(),
        Some("clone failed: repository not found")
    );
    assert!(rec.lines().is_empty(), "{:?}", rec.lines());
    assert!(result.steps.is_empty(), "{:?}", result.steps);
}

#[test]
fn parity_env_rules_continue_on_error_timeout_and_hooks() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push, rule } from '@kici-dev/sdk';
const j = job('parity', {
  runsOn: 'x',
  env: { JOB_LEVEL: 'from-job' },
  onSuccess: async ({ log }) => log.info('HOOK onSuccess'),
  onFailure: async ({ log, outcome }) => log.info(`HOOK onFailure failedStep=${outcome.failedStep}`),
  cleanup: async ({ log }) => log.info('HOOK cleanup'),
  beforeStep: async ({ log }) => log.info('HOOK beforeStep'),
  afterStep: async ({ log }) => log.info('HOOK afterStep'),
  steps: [
    step('env', async ({ $, env }) => { const o = await $`echo $JOB_LEVEL`; if (o.stdout.trim() !== 'from-job' || env.JOB_LEVEL !== 'from-job') throw new Error('no job env'); }),
    step('ruled-out', { rules: [rule('never', () => false)], run: async () => { throw new Error('must not run'); } }),
    step('soft-fail', { continueOnError: true, run: async () => { throw new Error('soft failure'); } }),
    step('retried', { retry: { maxAttempts: 3, delayMs: 1 }, run: async ({ $ }) => { await $`test -f marker || { touch marker; exit 1; }`; } }),
    step('slow', { timeout: 300, cleanup: async ({ log }) => log.info('HOOK step cleanup'), run: async ({ $ }) => { await $`sleep 5`; } }),
    step('after-failure', async () => {}),
  ],
});
export default workflow('parity', { on: push(), jobs: [j] });
"#,
    );
    let started = std::time::Instant::now();
    let (result, rec) = run(ws.request("parity", "parity"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "timeout did not kill the step"
    );
    let lines = rec.lines();
    let status: Vec<(&str, Status)> = result
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        status,
        vec![
            ("env", Status::Success),
            ("ruled-out", Status::Skipped),
            ("soft-fail", Status::Failed),
            ("retried", Status::Success),
            ("slow", Status::Failed),
            ("after-failure", Status::Skipped),
        ],
        "{lines:#?}"
    );
    assert!(result.steps[2].continued_on_error);
    assert_eq!(result.steps[3].attempts, Some(2));
    assert!(
        result.steps[4]
            .error
            .as_deref()
            .unwrap_or("")
            .starts_with("step_timeout: step exceeded its timeout of 300ms"),
        "{:?}",
        result.steps[4]
    );
    assert_eq!(result.status, Status::Failed);
    let hooks: Vec<&String> = lines.iter().filter(|l| l.contains("HOOK")).collect();
    let texts: Vec<&str> = hooks
        .iter()
        .map(|l| l.split('|').nth(1).unwrap_or(""))
        .collect();
    assert!(texts.contains(&"HOOK step cleanup"), "{texts:?}");
    assert_eq!(
        texts.iter().filter(|t| **t == "HOOK beforeStep").count(),
        4,
        "{texts:?}"
    );
    let tail: Vec<&str> = texts.iter().rev().take(2).rev().copied().collect();
    assert_eq!(
        tail,
        vec!["HOOK onFailure failedStep=slow", "HOOK cleanup"],
        "{texts:?}"
    );
    assert!(!texts.contains(&"HOOK onSuccess"));
}

#[test]
fn job_rules_skip_the_job_without_hooks() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push, rule } from '@kici-dev/sdk';
export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', rules: [rule('no', () => false)],
  onFailure: async ({ log }) => log.info('HOOK'), cleanup: async ({ log }) => log.info('HOOK'),
  steps: [step('s', async () => {})] })] });
"#,
    );
    let (result, rec) = run(ws.request("w", "j"));
    assert_eq!(result.status, Status::Skipped);
    assert_eq!(
        result.skip_reason,
        Some(kici_executor::SkipReason::JobRules)
    );
    assert!(!rec.lines().iter().any(|l| l.contains("HOOK")));
}

#[test]
fn thrown_error_fails_with_message_and_ts_stack() {
    let ws = Workspace::new(
        "import { workflow, job, step, push } from '@kici-dev/sdk';\n\
         // a comment that the stripper removes\n\
         type T = { a: number };\n\
         export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', steps: [\n\
           step('boom', async () => {\n\
             const t: T = { a: 1 };\n\
             throw new Error(`kaboom ${t.a}`);\n\
           }),\n\
         ] })] });\n",
    );
    let (result, rec) = run(ws.request("w", "j"));
    assert_eq!(result.status, Status::Failed);
    let step = &result.steps[0];
    assert_eq!(step.error.as_deref(), Some("kaboom 1"));
    let stack = step.stack.clone().unwrap_or_default();
    assert!(
        stack.contains(".kici/workflows/w.ts:7:"),
        "{stack}\n{:?}",
        rec.lines()
    );
}

#[test]
fn node_shims_fs_os_process_timers_work_in_steps() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push } from '@kici-dev/sdk';
import { readdir, writeFile, readFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', steps: [
  step('shims', async ({ setEnv, $ }) => {
    await mkdir('out/sub', { recursive: true });
    await writeFile(path.join('out', 'a.txt'), 'hé');
    const entries = await readdir('out', { withFileTypes: true });
    const kinds = entries.map((e) => `${e.name}:${e.isFile() ? 'f' : e.isDirectory() ? 'd' : '?'}`).join(',');
    await sleep(5);
    setEnv('FROM_STEP', 'yes');
    const seen = (await $`echo $FROM_STEP`).stdout.trim();
    const u = new URL('https://example.com/a/b?x=1#h');
    const enc = new TextDecoder().decode(new TextEncoder().encode('ü'));
    const ac = new AbortController(); ac.abort();
    return { kinds, text: await readFile('out/a.txt', 'utf8'), exists: existsSync('out/a.txt'), cpus: os.cpus().length > 0,
      cwd: process.cwd() === process.env.KICI_WS, seen, host: u.host, q: u.searchParams.get('x'), enc, aborted: ac.signal.aborted,
      uuid: crypto.randomUUID().length, b64: btoa('hi'), platform: process.platform };
  }),
] })] });
"#,
    );
    let mut req = ws.request("w", "j");
    req.env.push((
        "KICI_WS".into(),
        ws.dir.path().to_string_lossy().into_owned(),
    ));
    let (result, rec) = run(req);
    assert_eq!(
        result.status,
        Status::Success,
        "{result:?} {:?}",
        rec.lines()
    );
    let o = &result.outputs["shims"];
    assert_eq!(o["kinds"], "a.txt:f,sub:d");
    assert_eq!(o["text"], "hé");
    assert_eq!(o["exists"], true);
    assert_eq!(o["cwd"], true);
    assert_eq!(o["seen"], "yes");
    assert_eq!(o["host"], "example.com");
    assert_eq!(o["q"], "1");
    assert_eq!(o["enc"], "ü");
    assert_eq!(o["aborted"], true);
    assert_eq!(o["uuid"], 36);
    assert_eq!(o["b64"], "aGk=");
}

#[test]
fn parallel_children_run_concurrently() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push, parallel } from '@kici-dev/sdk';
export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', steps: [
  parallel([ step('a', async ({ $ }) => { await $`sleep 0.4`; }), step('b', async ({ $ }) => { await $`sleep 0.4`; }), step('c', async ({ $ }) => { await $`sleep 0.4`; }) ]),
] })] });
"#,
    );
    let started = std::time::Instant::now();
    let (result, _rec) = run(ws.request("w", "j"));
    assert_eq!(result.status, Status::Success);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1100),
        "{:?}",
        started.elapsed()
    );
}
