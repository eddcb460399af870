//! Process groups, timeouts, cancel and exit codes with real bash.

use std::time::Duration;

use kici_executor::{Cancel, Status};

use crate::support::{Workspace, run, run_with_cancel};

fn pid_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

fn wait_dead(pid: i32) -> bool {
    for _ in 0..100 {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn step_timeout_kills_a_grandchild_sleep() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push } from '@kici-dev/sdk';
export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', steps: [
  step('spawner', { timeout: 500, run: async ({ $ }) => { await $`bash -c 'sleep 30 & echo $! > grandchild.pid; wait'`; } }),
] })] });
"#,
    );
    let (result, _rec) = run(ws.request("w", "j"));
    assert_eq!(result.status, Status::Failed);
    let pid: i32 = std::fs::read_to_string(ws.dir.path().join("grandchild.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(wait_dead(pid), "grandchild {pid} survived the step timeout");
}

#[test]
fn graceful_cancel_kills_processes_and_runs_cancel_hooks() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push } from '@kici-dev/sdk';
export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x',
  onCancel: async ({ log }) => log.info('HOOK job onCancel'),
  steps: [
  step('long', { onCancel: async ({ log }) => log.info('HOOK step onCancel'), run: async ({ $ }) => { await $`echo $$ > shell.pid; sleep 30`; } }),
] })] });
"#,
    );
    let (result, rec) = run_with_cancel(
        ws.request("w", "j"),
        Some((Duration::from_millis(600), Cancel::Graceful)),
    );
    assert_eq!(result.status, Status::Cancelled, "{:?}", rec.lines());
    let lines = rec.lines().join("\n");
    assert!(
        lines.contains("HOOK step onCancel") && lines.contains("HOOK job onCancel"),
        "{lines}"
    );
    let pid: i32 = std::fs::read_to_string(ws.dir.path().join("shell.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(wait_dead(pid));
}

#[test]
fn command_not_found_shows_127_and_the_command() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push } from '@kici-dev/sdk';
export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', steps: [
  step('missing', async ({ $ }) => { await $`kici-no-such-command --flag`; }),
] })] });
"#,
    );
    let (result, _rec) = run(ws.request("w", "j"));
    let error = result.steps[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("exit code: 127 (Command not found)"),
        "{error}"
    );
    assert!(error.contains("kici-no-such-command"), "{error}");
    assert!(error.contains("at .kici/workflows/w.ts:3:"), "{error}");
    assert_eq!(result.steps[0].exit_code(), Some(127));
}

#[test]
fn nothrow_quiet_and_process_output_members() {
    let ws = Workspace::new(
        r#"import { workflow, job, step, push } from '@kici-dev/sdk';
export default workflow('w', { on: push(), jobs: [job('j', { runsOn: 'x', steps: [
  step('s', async ({ $ }) => {
    const r = await $`echo out; echo err >&2; exit 3`.nothrow();
    const q = await $`echo quiet-line`.quiet();
    const j = await $`echo '{"a":[1,2]}'`;
    const w = await $({ cwd: '/', env: { ...process.env, X: 'y z' }, input: 'from-stdin' })`cat; echo " $X $PWD"`;
    const arg = "it's $HOME";
    const e = await $`printf '%s' ${arg} ${['a b', 'c']}`;
    return { code: r.exitCode, ok: r.ok, stdout: r.stdout, stderr: r.stderr, q: q.text(), a: j.json().a.length,
      lines: (await $`printf 'x\ny\n'`).lines(), w: w.stdout, e: e.stdout };
  }),
] })] });
"#,
    );
    let (result, rec) = run(ws.request("w", "j"));
    assert_eq!(result.status, Status::Success, "{result:?}");
    let o = &result.outputs["s"];
    assert_eq!(o["code"], 3);
    assert_eq!(o["ok"], false);
    assert_eq!(o["stdout"], "out\n");
    assert_eq!(o["stderr"], "err\n");
    assert_eq!(o["q"], "quiet-line\n");
    assert_eq!(o["a"], 2);
    assert_eq!(o["lines"], serde_json::json!(["x", "y"]));
    assert_eq!(o["w"], "from-stdin y z /\n");
    assert_eq!(o["e"], "it's $HOMEa bc");
    assert!(!rec.lines().iter().any(|l| l.contains("quiet-line")));
    assert!(rec.lines().iter().any(|l| l == "s|out"));
}
