//! The SDK declarations under a real TypeScript 5 `tsc --noEmit`: the `init` scaffold and every
//! valid conformance workflow must type-check, wrong options must not.
//!
//! tsc is `$KICI_TSC` when set (run directly, or with `node` when it names a `.js` file), else
//! `<repo>/.tools/typescript/node_modules/typescript/bin/tsc` run with `node`; install it with
//! `npm install --prefix .tools/typescript typescript@5`. Without tsc these tests fail when
//! `CI` is set and are skipped loudly otherwise.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use kici_compiler::scaffold::{ScaffoldOptions, TYPES_VERSION, scaffold, write_types};

/// Valid conformance cases whose sources contain a genuine type error, with the reason.
/// The test fails if a listed case type-checks, so the list cannot go stale.
const EXPECTED_TYPE_ERRORS: &[(&str, &str)] = &[];

/// How to start tsc, or `None` (after a loud skip message) when it is not installed.
fn tsc(test: &str) -> Option<Command> {
    let (program, via_node) = match std::env::var_os("KICI_TSC") {
        Some(path) => {
            let path = PathBuf::from(path);
            let is_js = path
                .extension()
                .is_some_and(|ext| ext == "js" || ext == "cjs" || ext == "mjs");
            (path, is_js)
        }
        None => (
            crate::repo_root().join(".tools/typescript/node_modules/typescript/bin/tsc"),
            true,
        ),
    };
    let found = if via_node {
        program.is_file()
            && Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
    } else {
        program.is_file() || Command::new(&program).arg("--version").output().is_ok()
    };
    if !found {
        let hint = "install it with `npm install --prefix .tools/typescript typescript@5` \
                    or point KICI_TSC at a TypeScript 5 tsc";
        if std::env::var_os("CI").is_some() {
            panic!(
                "{test}: tsc not found at {} (CI is set); {hint}",
                program.display()
            );
        }
        eprintln!();
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!! SKIPPED {test}: tsc not found at {}", program.display());
        eprintln!("!! {hint}");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        return None;
    }
    Some(if via_node {
        let mut command = Command::new("node");
        command.arg(program);
        command
    } else {
        Command::new(program)
    })
}

/// Runs tsc in `cwd` with `args` (build mode needs `-b` first, so callers give the order)
/// plus `--pretty false`; returns whether it succeeded and its combined output.
fn run_tsc<I, S>(mut command: Command, cwd: &Path, args: I) -> (bool, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = command
        .args(args)
        .args(["--pretty", "false"])
        .current_dir(cwd)
        .output()
        .expect("start tsc");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn git_init(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create repo dir");
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .status()
        .expect("run git init");
    assert!(status.success(), "git init failed in {}", dir.display());
}

fn scaffolded_repo(dir: &Path) {
    git_init(dir);
    scaffold(
        dir,
        &ScaffoldOptions {
            default_branch: "main".to_owned(),
            ..Default::default()
        },
    )
    .expect("scaffold");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|err| panic!("read {}: {err}", from.display()))
    {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Groups tsc diagnostics by the first component of their path (relative to tsc's cwd).
/// Indented continuation lines belong to the diagnostic above; diagnostics without a path
/// (configuration errors) are grouped under `<global>`.
fn errors_by_project(output: &str) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = "<global>".to_owned();
    for line in output.lines().filter(|line| !line.trim().is_empty()) {
        if !line.starts_with(' ') {
            current = match line.find("): error TS") {
                Some(_) => line.split('/').next().unwrap_or("<global>").to_owned(),
                None => "<global>".to_owned(),
            };
        }
        groups
            .entry(current.clone())
            .or_default()
            .push(line.to_owned());
    }
    groups
}

/// Every SDK export and most option shapes, with the wrong usages marked
/// `@ts-expect-error` (tsc fails on a marker that has no error under it).
const SURFACE_TS: &str = r##"import * as kici from 'kici:sdk';
import {
  workflow, job, step, parallel, rule, skip, isEventType, evaluateRules,
  push, pr, tag, schedule, dispatch, release, comment, review, reviewComment, create, delete as del,
  status, workflowRun, fork, star, watch, webhook, genericWebhook, kiciEvent, workflowComplete,
  jobComplete, lifecycle, defineDispatchInputs, z, onCancel, cleanup, onSuccess, onFailure,
  beforeStep, afterStep, dynamicJob, dynamicGroup, fixture, defineEvent, idempotent, idempotentStep,
  checkStep, waitFor, waitForStep, WaitForTimeoutError, restartHost, waitForHostAlive,
  onlyOnFirstHost, onlyOnLastHost, onlyOnFanoutIndex, SecretNotFoundError, isMatrixJobOutputs,
  isHostJobOutputs, isDynamicJobFn, isDynamicGroupRef, isParallelGroup, flattenStepInputs,
  normalizeApproval, normalizeCacheSpecs, expandMatrix, applyIncludeExclude, isStaticArray,
  isStaticObject, isDynamicFunction, validateDag,
  type EventPayload, type StepContext, type Job, type Step,
} from '@kici-dev/sdk';
import { readFile } from 'node:fs/promises';
import fs from 'fs';
import path from 'node:path';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

// --- z subset and dispatch inputs
const inputs = defineDispatchInputs({
  env: z.enum(['dev', 'prod']),
  count: z.number().int().min(1).default(1),
  note: z.string().optional(),
});
const parsed = inputs.from({ dispatchInputs: {} });
const envName: 'dev' | 'prod' = parsed.env;
const count: number = parsed.count;
const note: string | undefined = parsed.note;
// @ts-expect-error optional() schemas have no min()
z.string().optional().min(1);
// @ts-expect-error arrays are not a dispatch input construct
defineDispatchInputs({ list: z.array(z.string()) });
// @ts-expect-error z has no date()
z.date();
const obj = z.object({ a: z.string(), b: z.number().optional() });
type Obj = z.infer<typeof obj>;
const o: Obj = { a: 'x' };
const r = obj.safeParse({});
if (!r.success) { r.error.issues[0]?.message; }

// --- steps and outputs
const version = step('version', {
  outputs: { version: z.string() },
  run: async ({ $ }) => ({ version: (await $`git describe`).stdout.trim() }),
});
const use = step('use', async ({ outputsOf, log }) => {
  const v: string = outputsOf(version).version;
  // @ts-expect-error unknown output field
  outputsOf(version).nope;
  log.info(v);
});
const retried = step('retried', { retry: { maxAttempts: 3, backoff: 'fixed' }, run: async () => {} });
// @ts-expect-error misspelled step option
step('typo', { runn: async () => {} });
// @ts-expect-error unknown backoff
step('bad', { retry: { maxAttempts: 2, backoff: 'linear' }, run: async () => {} });
// @ts-expect-error check needs summarize
step('check', { check: async () => null, run: async () => {} });
step('check-ok', { check: async () => ({ d: 1 }), summarize: (d) => String(d.d), run: async (_ctx, d) => d.d });

// --- shell
step('shell', async ({ $, signal }) => {
  const out = await $({ cwd: '/tmp', timeout: '5s', nothrow: true, signal })`ls ${['a b', 'c']}`;
  const lines: string[] = out.lines();
  const code: number | null = out.exitCode;
  await $`true`.quiet().nothrow().timeout(1000);
  // @ts-expect-error unknown duration unit
  await $`true`.timeout('5 minutes');
  void lines; void code;
});

// --- jobs
const build = job('build', {
  runsOn: { labels: ['kici:os:linux', /^gpu-/], exclude: 'flaky', pick: 'any' },
  matrix: { os: ['linux'], node: ['20', '22'] },
  include: [{ os: 'mac', node: '22' }],
  maxParallel: 2,
  failFast: true,
  env: (event) => ({ BRANCH: event.targetBranch }),
  environment: (event) => (isEventType(event, 'push') ? 'prod' : 'dev'),
  container: { image: 'node:24', env: { A: '1' } },
  init: [{ run: 'make setup', timeout: 1000 }],
  resources: { requests: { cpus: 2, memory: '4g' } },
  gracePeriod: 10,
  onFailure: onFailure(async ({ outcome }) => { outcome.failedStep; }),
  beforeStep: beforeStep(async () => {}),
  afterStep: { run: async () => {}, timeout: 1000 },
  steps: [version, use, retried, parallel([step('a', async () => {}), async () => {}], { maxParallel: 1 })],
});
// @ts-expect-error misspelled job option
job('x', { runsOn: 'l', stepz: [] });
// @ts-expect-error runsOn is required
job('x', { steps: [] });
// @ts-expect-error run and steps together
job('x', { runsOn: 'l', run: async () => {}, steps: [step('s', async () => {})] });
// @ts-expect-error environment and environments together
job('x', { runsOn: 'l', environment: 'a', environments: ['b'] });
// @ts-expect-error unknown needs condition
job('x', { runsOn: 'l', needs: [{ name: 'build', when: 'sometimes' }] });
// @ts-expect-error unknown memory unit
job('x', { runsOn: 'l', resources: { memory: '4GB' } });
// @ts-expect-error parallel groups cannot be nested
parallel([parallel([step('a', async () => {})])]);

const deploy: Job = job('deploy', {
  runsOn: 'kici:os:linux',
  needs: [build, 'build', { name: 'build', when: ['success', 'skipped'] }, dynamicGroup('gen', { when: 'always' }), { group: 'gen' }],
  rules: [rule('main', (ctx) => ctx.event.targetBranch === 'main'), skip('bot', async (ctx) => ctx.event.senderUsername === 'bot'), onlyOnFirstHost(), onlyOnLastHost(), onlyOnFanoutIndex(0)],
  run: async (ctx: StepContext) => {
    const token = await ctx.secrets.get('TOKEN');
    const { path: keyPath } = await ctx.secrets.mountFile({ sources: ['KEY'], mode: 0o600 });
    ctx.setEnv('A', token);
    ctx.addPath(keyPath);
    const up = ctx.jobOutputs(build);
    if (isMatrixJobOutputs(up)) { up.byMatrix; }
    const n = ctx.needs?.build;
    if (n && !Array.isArray(n)) { n.status; }
    await ctx.cache.restore({ key: 'k', paths: ['p'] });
    return { ok: true };
  },
});

const gen = dynamicJob('gen', async ({ ctx }) => [job(`g-${ctx.workflow.name}`, { runsOn: 'l', steps: [] })]);
const gen2 = dynamicJob('gen2', { needs: [build], generate: async ({ ctx }) => { ctx.needs; return []; } });

// --- triggers
const triggers = [
  push({ branches: ['main', /^rel/], tags: 'v*', paths: ['src/**'], repos: 'a/b', description: 'd' }),
  pr({ events: ['opened', 'labeled'], target: 'main', source: /^f/, paths: ['!docs/**'] }),
  tag({ patterns: ['v*'] }),
  schedule({ cron: '0 0 * * *', timezone: 'Europe/Berlin', inputs: { mode: z.string().default('x') } }),
  dispatch({ types: ['deploy'], inputs }),
  release({ actions: ['published'] }),
  comment({ actions: ['created'], source: 'pr', bodyMatch: /^\/ok/ }),
  review({ actions: ['submitted'], states: ['approved'] }),
  reviewComment({ actions: ['edited'] }),
  create({ refTypes: ['tag'], patterns: 'v*' }),
  del({ refTypes: ['branch'] }),
  status({ contexts: ['ci/*'], states: ['failure'] }),
  workflowRun({ actions: ['completed'], workflows: ['CI'], conclusions: ['failure'] }),
  fork(), star({ actions: ['created'] }), watch({ actions: ['started'] }),
  webhook({ events: ['deployment'], actions: ['created'] }),
  genericWebhook({ source: 's', events: ['e'], match: { '$.a': ['x', 'y'] }, auth: { method: 'api-key', secret: 'S' } }),
  kiciEvent({ name: 'n', not: { '$.dry': true } }),
  workflowComplete({ name: 'CI', status: ['failed'] }),
  jobComplete({ workflow: 'CI', job: 'b', status: ['skipped'] }),
  lifecycle({ events: ['job_failed'] }),
];
// @ts-expect-error misspelled trigger option
push({ branchez: ['main'] });
// @ts-expect-error unknown pr event
pr({ events: ['merged'] });
// @ts-expect-error comment source is issue or pr
comment({ source: 'commit' });
// @ts-expect-error schedule needs a cron
schedule({});
// @ts-expect-error hmac auth needs signatureHeader
genericWebhook({ source: 's', auth: { method: 'hmac-sha256', secret: 'S' } });
// @ts-expect-error paths are a list
push({ paths: 'src/**' });

export default workflow('surface', {
  on: triggers,
  description: 'all of it',
  timeout: 60_000,
  concurrency: { group: ({ branch, event }) => `${branch}-${event.type}`, cancelInProgress: false },
  rules: [rule('marker')],
  onSuccess: async ({ log }) => log.info('ok'),
  cleanup: cleanup({ run: async () => {}, timeout: 5 }),
  onCancel: onCancel(async () => {}),
  hashFiles: ['package.json'],
  registries: [{ url: 'https://npm.example', scope: '@acme', tokenSecret: 'env:NPM_TOKEN' }],
  installEnv: ['env:A'],
  approval: { when: 'always', approvers: [{ team: 'ops' }] },
  jobs: [build, deploy, gen, gen2, async () => []],
});
// @ts-expect-error misspelled workflow option
workflow('w', { jobs: [], trigger: push() });
// @ts-expect-error installEnv entries are env: references
workflow('w', { jobs: [], installEnv: ['A'] });

// --- events
function handle(e: EventPayload): string {
  if (isEventType(e, 'pull_request')) return String(e.payload.pull_request?.number);
  if (e.type === 'schedule') return e.payload.cronExpression ?? '';
  // @ts-expect-error not an event type
  if (e.type === 'merge') return '';
  return e.targetBranch;
}

// --- helpers and utilities
const fx = fixture('push-main', { event: push({ branches: ['main'] }) });
const ev = defineEvent('done', z.object({ env: z.string() }));
const idem = idempotent({ check: async () => null as { n: number } | null, apply: async (d) => d.n });
const idemStep = idempotentStep('idem', { check: async (ctx) => ctx.env.X ?? null, apply: async (_ctx, d) => d.length, timeout: 1000 });
const groupName: string = gen.group;
const a: 'a' = z.enum(['a', 'b']).enum.a;
const namedByOption = job({ name: 'j', runsOn: 'l', steps: [step({ name: 'n', run: async () => {} })] });
const chk = checkStep('chk', { check: async () => 1, apply: async (_c, d) => d + 1, summarize: String });
const waited = waitFor({ check: async () => 'ready', intervalMs: 10 });
const ws = waitForStep('w', { check: async () => true });
const rh = () => restartHost(); const wa = () => waitForHostAlive(async () => true);
const err = new WaitForTimeoutError('s', 1, 2); const snf = new SecretNotFoundError('K', ['A']);
const dag = validateDag([{ name: 'a', needs: ['b', { name: 'c' }] }]);
if (!dag.valid) dag.errors.join('\n');
const combos = applyIncludeExclude(expandMatrix({ a: ['1'] }), [{ a: '2' }], []);
void [fx, ev, idem, idemStep, groupName, a, namedByOption, chk, waited, ws, rh, wa, err, snf, combos, handle, envName, count, note, o,
  isHostJobOutputs, isDynamicJobFn, isDynamicGroupRef, isParallelGroup, flattenStepInputs, normalizeApproval(true),
  normalizeCacheSpecs(undefined), isStaticArray, isStaticObject, isDynamicFunction, evaluateRules, kici.workflow,
  onSuccess, afterStep, ws as Step<boolean>];

// --- the Node subset
async function nodeBits(): Promise<void> {
  const text: string = await readFile('x', 'utf8');
  fs.existsSync(path.join(os.tmpdir(), text));
  createHash('sha256').update('x').digest('hex');
  await sleep(10);
  fileURLToPath(import.meta.url);
  import.meta.dirname;
  process.env.X = '1';
  console.log(Buffer.from('x').toString('base64'), new URL('https://x').host, structuredClone({}));
  const res = await fetch('https://example.invalid', { method: 'POST', body: 'x', signal: AbortSignal.timeout(10) });
  await res.json();
  setTimeout(() => {}, 1);
  // @ts-expect-error not provided in KiCI workflows
  fs.createReadStream('x');
  // @ts-expect-error not provided in KiCI workflows
  require('x');
  // @ts-expect-error not provided in KiCI workflows
  __dirname;
}
void nodeBits;
"##;

const CHILD_PROCESS_TS: &str = r#"// @ts-expect-error child_process is not available in KiCI workflows
import { spawn } from 'node:child_process';
void spawn;
"#;

#[test]
fn init_scaffold_type_checks() {
    let Some(tsc) = tsc("init_scaffold_type_checks") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    scaffolded_repo(&tmp.path().join("init"));

    // The whole export surface, checked against the same scaffold.
    let surface = tmp.path().join("surface");
    scaffolded_repo(&surface);
    std::fs::write(surface.join(".kici/workflows/surface.ts"), SURFACE_TS)
        .expect("write surface.ts");
    std::fs::write(
        surface.join(".kici/workflows/child-process.ts"),
        CHILD_PROCESS_TS,
    )
    .expect("write");

    let (ok, output) = run_tsc(tsc, tmp.path(), ["-b", "init/.kici", "surface/.kici"]);
    assert!(
        ok,
        "tsc rejected the init scaffold or the SDK surface:\n{output}"
    );
}

#[test]
fn conformance_workflows_type_check() {
    let Some(tsc) = tsc("conformance_workflows_type_check") else {
        return;
    };
    let workflows = crate::conformance_dir().join("workflows");
    let mut cases: Vec<String> = std::fs::read_dir(&workflows)
        .unwrap_or_else(|err| panic!("conformance corpus {}: {err}", workflows.display()))
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| {
            // Cases 01–40 compile; 50 and up are rejected on purpose.
            name.get(..2)
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (1..=40).contains(&n))
                && name.as_bytes().get(2) == Some(&b'-')
        })
        .collect();
    cases.sort();
    assert_eq!(
        cases.len(),
        40,
        "expected cases 01–40 in {}: {cases:?}",
        workflows.display()
    );

    // Each case becomes its own repository with the scaffold's tsconfig and declarations,
    // checked in one tsc build-mode run (one Node start instead of forty).
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut projects = Vec::new();
    for case in &cases {
        let repo = tmp.path().join(case);
        copy_dir(&workflows.join(case).join(".kici"), &repo.join(".kici"));
        write_types(&repo, None, TYPES_VERSION).expect("write types");
        projects.push(format!("{case}/.kici"));
    }
    let (ok, output) = run_tsc(
        tsc,
        tmp.path(),
        std::iter::once("-b".to_owned()).chain(projects),
    );
    let errors = errors_by_project(&output);

    let mut problems = Vec::new();
    for (project, lines) in &errors {
        if !EXPECTED_TYPE_ERRORS.iter().any(|(case, _)| case == project) {
            problems.push(format!("{project}:\n  {}", lines.join("\n  ")));
        }
    }
    for (case, reason) in EXPECTED_TYPE_ERRORS {
        if !errors.contains_key(*case) {
            problems.push(format!(
                "{case} type-checks now; remove it from EXPECTED_TYPE_ERRORS ({reason})"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "tsc on the conformance workflows:\n{}",
        problems.join("\n")
    );
    assert!(
        ok || !errors.is_empty(),
        "tsc failed without diagnostics:\n{output}"
    );
}

#[test]
fn wrong_options_are_rejected() {
    let Some(tsc) = tsc("wrong_options_are_rejected") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo");
    scaffolded_repo(&repo);
    let wrong = [
        (
            "wrong-job.ts",
            "import { job } from '@kici-dev/sdk';\nexport const j = job('x', { runsOn: 'l', stepz: [] });\n",
            "'stepz' does not exist",
        ),
        (
            "wrong-trigger.ts",
            "import { workflow, job, push } from '@kici-dev/sdk';\n\
             export default workflow('w', {\n  on: push({ branchez: ['main'] }),\n  \
             jobs: [job('j', { runsOn: 'l', steps: [] })],\n});\n",
            "'branchez' does not exist",
        ),
    ];
    for (file, source, _) in &wrong {
        std::fs::write(repo.join(".kici/workflows").join(file), source)
            .expect("write wrong workflow");
    }

    let (ok, output) = run_tsc(tsc, tmp.path(), ["--noEmit", "-p", "repo/.kici"]);
    assert!(!ok, "tsc accepted wrong options:\n{output}");
    for (file, _, expected) in &wrong {
        let reported = output
            .lines()
            .any(|line| line.contains(&format!("{file}(")) && line.contains(expected));
        assert!(reported, "no `{expected}` error for {file}:\n{output}");
    }
    let other_files = output
        .lines()
        .filter(|line| line.contains("): error TS"))
        .filter(|line| {
            !wrong
                .iter()
                .any(|(file, _, _)| line.contains(&format!("{file}(")))
        })
        .collect::<Vec<_>>();
    assert!(
        other_files.is_empty(),
        "errors outside the wrong files: {other_files:#?}"
    );
}
