//! `cargo xtask bench`: end-to-end figures of the release `kici` binary.
//!
//! Each benchmark runs a whole `kici` process in a fixture git repository created in a temp
//! dir. The measuring is done by a fresh child of xtask (`xtask bench-one …`), which runs the
//! command 2 + N times (stdout to /dev/null) and then reads `getrusage(RUSAGE_CHILDREN)`: its
//! `ru_maxrss` is the largest resident set among that benchmark's processes and nobody else's.
//!
//! To add a benchmark, add a row to [`BENCHES`] (and, if it needs a new repository, a
//! [`Fixture`]); a figure computed from other benchmarks goes into [`DERIVED`].

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::bench_server::{self, SCENARIOS, Scenario, ScenarioOutcome};

/// The hidden subcommand that measures one benchmark in a fresh process.
pub const BENCH_ONE: &str = "bench-one";

const DEFAULT_RUNS: usize = 20;
const WARMUPS: usize = 2;
/// A single run taking longer than this is a hang: the benchmark is killed and reported.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes printed by the `output-100mb` step (decimal MB, as in the target).
const OUTPUT_BYTES: u64 = 100_000_000;

struct Group {
    id: &'static str,
    title: &'static str,
    intro: &'static str,
}

const GROUPS: &[Group] = &[
    Group {
        id: "issue-2",
        title: "Author toolchain (issue 2)",
        intro: "Targets from issue 2 and spec/README.md §7; the reference is KiCI 0.1.24 \
                on Node 20 / Node 24 on a 2-core machine like ours.",
    },
    Group {
        id: "issue-3",
        title: "`kici run local` and the executor (issue 3)",
        intro: "Targets from issue 3 and spec/README.md §7. The per-step overhead subtracts \
                bash's own start-up; the output throughput subtracts the 1-step run. Benchmarks \
                that need `kici run local` are skipped, with the reason, where \
                `kici run local --help` fails.",
    },
    Group {
        id: "issue-4",
        title: "Orchestrator (issue 4)",
        intro: "Targets from issue 4. The release `kici orchestrator` runs as a process on \
                127.0.0.1 with its defaults (JSON logs at info to a file); the simulated agent \
                is a WebSocket client in the driver that acks and finishes each job at once, \
                so the latency is the orchestrator's alone: webhook stored, inbox item claimed, \
                changed files read with `git diff` (the lock comes from the cache after the \
                first push of a commit), run planned, job enqueued, claimed for the idle agent \
                and written to its socket. PostgreSQL is 15 on 127.0.0.1 (`synchronous_commit \
                = on`), a fresh database per run; SQLite is the default file in the data dir.",
    },
    Group {
        id: "issue-5",
        title: "Agent, the whole loop (issue 5)",
        intro: "Targets from issue 5: a release `kici orchestrator` on SQLite and one release \
                `kici agent` (warm: registered, and 2 runs of each workflow before measuring), \
                both on 127.0.0.1. A run is timed from sending the push webhook to the run's \
                `completedAt`; the driver polls `GET runs?limit=1` every 10 ms to learn that a \
                run ended, so the polling does not add to the figure.",
    },
];

/// A repository the benchmarks run in (created once per `bench` invocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Fixture {
    /// No repository: the command runs in the scratch directory.
    None,
    /// The README's hello world: one workflow, one job, one step, push trigger.
    Hello,
    /// 20 workflow files, each with 2 jobs with a matrix of 2.
    Twenty,
    /// One job of this many steps, each `await $\`true\``.
    Steps(usize),
    /// One step printing [`OUTPUT_BYTES`] bytes in 100-byte lines.
    Output,
    /// build → test (matrix of 4) → report: 6 jobs of one `echo` step each.
    Pipeline,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Program {
    Kici,
    Bash,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    RunLocal,
}

struct Bench {
    name: &'static str,
    group: &'static str,
    /// What the row measures, for the table.
    what: &'static str,
    fixture: Fixture,
    program: Program,
    args: &'static [&'static str],
    needs: Needs,
    /// Fewer runs than `--runs` for slow benchmarks.
    max_runs: Option<usize>,
    target_ms: Option<f64>,
    target_rss_mib: Option<f64>,
    reference: &'static str,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "compile-1",
        group: "issue-2",
        what: "1 workflow: 1 job, 1 step, push trigger",
        fixture: Fixture::Hello,
        program: Program::Kici,
        args: &["compile"],
        needs: Needs::Nothing,
        max_runs: None,
        target_ms: Some(20.0),
        target_rss_mib: Some(30.0),
        reference: "1.21 s / 0.78 s, 200–225 MiB",
    },
    Bench {
        name: "compile-20",
        group: "issue-2",
        what: "20 workflow files, 2 jobs with a matrix of 2 each",
        fixture: Fixture::Twenty,
        program: Program::Kici,
        args: &["compile"],
        needs: Needs::Nothing,
        max_runs: None,
        target_ms: Some(50.0),
        target_rss_mib: Some(30.0),
        reference: "1.30 s / 0.85 s, 206–219 MiB",
    },
    Bench {
        name: "preview-push",
        group: "issue-2",
        what: "the 1-workflow repo",
        fixture: Fixture::Hello,
        program: Program::Kici,
        args: &["preview", "push", "--branch", "main"],
        needs: Needs::Nothing,
        max_runs: None,
        target_ms: Some(20.0),
        target_rss_mib: None,
        reference: "1.21 s / 0.80 s",
    },
    Bench {
        name: "compile-check",
        group: "issue-2",
        what: "the 20-workflow repo, lock in sync",
        fixture: Fixture::Twenty,
        program: Program::Kici,
        args: &["compile", "--check"],
        needs: Needs::Nothing,
        max_runs: None,
        target_ms: None,
        target_rss_mib: None,
        reference: "—",
    },
    Bench {
        name: "bash-startup",
        group: "issue-3",
        what: "bash's own start-up (subtracted from the per-step overhead)",
        fixture: Fixture::None,
        program: Program::Bash,
        args: &["-c", "true"],
        needs: Needs::Nothing,
        max_runs: None,
        target_ms: None,
        target_rss_mib: None,
        reference: "—",
    },
    Bench {
        name: "run-local-hello",
        group: "issue-3",
        what: "the 1-workflow repo",
        fixture: Fixture::Hello,
        program: Program::Kici,
        args: &["run", "local", "push"],
        needs: Needs::RunLocal,
        max_runs: None,
        target_ms: Some(40.0),
        target_rss_mib: Some(25.0),
        reference: "1.50 s / 1.04 s, 206 MiB",
    },
    Bench {
        name: "steps-1",
        group: "issue-3",
        what: "1 job of 1 step `` $`true` `` (baseline of steps-100)",
        fixture: Fixture::Steps(1),
        program: Program::Kici,
        args: &["run", "local", "push"],
        needs: Needs::RunLocal,
        max_runs: None,
        target_ms: None,
        target_rss_mib: None,
        reference: "—",
    },
    Bench {
        name: "steps-100",
        group: "issue-3",
        what: "1 job of 100 steps `` $`true` ``",
        fixture: Fixture::Steps(100),
        program: Program::Kici,
        args: &["run", "local", "push"],
        needs: Needs::RunLocal,
        max_runs: None,
        target_ms: None,
        target_rss_mib: None,
        reference: "—",
    },
    Bench {
        name: "output-100mb",
        group: "issue-3",
        what: "1 step printing 100 MB in 100-byte lines, one secret masked",
        fixture: Fixture::Output,
        program: Program::Kici,
        args: &[
            "run",
            "local",
            "push",
            "--secret",
            "BENCH_TOKEN=kici-bench-secret-7f3a9c21",
        ],
        needs: Needs::RunLocal,
        max_runs: Some(5),
        target_ms: None,
        target_rss_mib: None,
        reference: "—",
    },
];

/// A figure computed from the medians of other benchmarks.
struct Derived {
    name: &'static str,
    group: &'static str,
    formula: &'static str,
    inputs: &'static [&'static str],
    /// Gets the inputs' medians in milliseconds, in the order of `inputs`.
    compute: fn(&[f64]) -> f64,
    unit: &'static str,
    bound: Bound,
    reference: &'static str,
}

#[derive(Clone, Copy)]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

const DERIVED: &[Derived] = &[
    Derived {
        name: "per-step overhead",
        group: "issue-3",
        formula: "(steps-100 − steps-1) / 99 − bash-startup",
        inputs: &["steps-100", "steps-1", "bash-startup"],
        compute: |m| (m[0] - m[1]) / 99.0 - m[2],
        unit: "ms",
        bound: Bound::AtMost(2.0),
        reference: "not measured",
    },
    Derived {
        name: "output throughput",
        group: "issue-3",
        formula: "100 MB / (output-100mb − steps-1)",
        inputs: &["output-100mb", "steps-1"],
        compute: |m| OUTPUT_BYTES as f64 / 1e6 / ((m[0] - m[1]) / 1e3),
        unit: "MB/s",
        bound: Bound::AtLeast(100.0),
        reference: "not measured",
    },
];

// ---------------------------------------------------------------------------------------------
// The driver

struct Options {
    runs: usize,
    only: Option<Vec<String>>,
    write: bool,
    kici: Option<PathBuf>,
    list: bool,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: DEFAULT_RUNS,
        only: None,
        write: false,
        kici: None,
        list: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match flag {
            "--runs" => {
                let text = value()?;
                options.runs = text
                    .parse()
                    .with_context(|| format!("--runs {text}: not a number"))?;
                ensure!(options.runs >= 1, "--runs must be at least 1");
            }
            "--only" => {
                let names = value()?;
                options.only.get_or_insert_with(Vec::new).extend(
                    names
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(String::from),
                );
            }
            "--write" => options.write = true,
            "--kici" => options.kici = Some(PathBuf::from(value()?)),
            "--list" => options.list = true,
            _ => bail!("unknown option `{arg}` (see `cargo xtask help`)"),
        }
    }
    Ok(options)
}

/// What `--only` selects (everything without it), in table order: process benchmarks and
/// service scenarios (`bench_server`).
struct Selection {
    benches: Vec<&'static Bench>,
    scenarios: Vec<&'static Scenario>,
}

impl Selection {
    fn groups(&self) -> BTreeSet<&'static str> {
        self.benches
            .iter()
            .map(|b| b.group)
            .chain(self.scenarios.iter().map(|s| s.group))
            .collect()
    }
}

fn select(only: Option<&[String]>) -> Result<Selection> {
    let Some(names) = only else {
        return Ok(Selection {
            benches: BENCHES.iter().collect(),
            scenarios: SCENARIOS.iter().collect(),
        });
    };
    let mut wanted = BTreeSet::new();
    for name in names {
        let matched: Vec<_> = BENCHES
            .iter()
            .filter(|b| b.name == name || b.group == name)
            .map(|b| b.name)
            .chain(
                SCENARIOS
                    .iter()
                    .filter(|s| s.name == name || s.group == name)
                    .map(|s| s.name),
            )
            .collect();
        if matched.is_empty() {
            let known: Vec<_> = GROUPS
                .iter()
                .map(|g| g.id)
                .chain(BENCHES.iter().map(|b| b.name))
                .chain(SCENARIOS.iter().map(|s| s.name))
                .collect();
            bail!(
                "--only {name}: no such benchmark or group (known: {})",
                known.join(", ")
            );
        }
        wanted.extend(matched);
    }
    Ok(Selection {
        benches: BENCHES.iter().filter(|b| wanted.contains(b.name)).collect(),
        scenarios: SCENARIOS
            .iter()
            .filter(|s| wanted.contains(s.name))
            .collect(),
    })
}

pub fn main(args: &[String]) -> Result<()> {
    let options = parse_options(args)?;
    let selection = select(options.only.as_deref())?;
    if options.list {
        for bench in BENCHES {
            println!(
                "{:<22} {:<8} {}",
                bench.name,
                bench.group,
                command_line(bench)
            );
        }
        for scenario in SCENARIOS {
            println!(
                "{:<22} {:<8} {}",
                scenario.name, scenario.group, scenario.what
            );
        }
        return Ok(());
    }
    let selected = &selection.benches;
    if options.write {
        // A section is rewritten whole, so it must be measured whole.
        for group in GROUPS {
            let members = BENCHES.iter().filter(|b| b.group == group.id).count()
                + SCENARIOS.iter().filter(|s| s.group == group.id).count();
            let chosen = selected.iter().filter(|b| b.group == group.id).count()
                + selection
                    .scenarios
                    .iter()
                    .filter(|s| s.group == group.id)
                    .count();
            ensure!(
                chosen == 0 || chosen == members,
                "--write rewrites whole sections: select all of group {} (`--only {}`) or none of it",
                group.id,
                group.id
            );
        }
    }

    let root = crate::workspace_root();
    let kici = match &options.kici {
        Some(path) => {
            fs::canonicalize(path).with_context(|| format!("--kici {}", path.display()))?
        }
        None => build_kici(&root)?,
    };
    let run_local = if selected.iter().any(|b| b.needs == Needs::RunLocal) {
        run_local_available(&kici)?
    } else {
        Ok(())
    };
    let machine = Machine::probe();
    let load_before = load_average();
    eprintln!(
        "benchmarking {} with {} runs after {WARMUPS} warm-ups (load average {load_before})",
        kici.display(),
        options.runs
    );

    let mut scratch = tempfile::Builder::new().prefix("kici-bench-").tempdir()?;
    if std::env::var_os("XTASK_BENCH_KEEP").is_some() {
        // Keeps the fixtures and the orchestrator/agent logs for a look afterwards.
        scratch.disable_cleanup(true);
        eprintln!("keeping {}", scratch.path().display());
    }
    let mut fixtures: HashMap<Fixture, std::result::Result<PathBuf, String>> = HashMap::new();
    let mut results: Vec<(&Bench, Outcome)> = Vec::new();
    for bench in selected {
        let outcome = match (&run_local, bench.needs) {
            (Err(why), Needs::RunLocal) => Outcome::Skipped(why.clone()),
            _ => {
                let dir = fixtures
                    .entry(bench.fixture)
                    .or_insert_with(|| {
                        create_fixture(bench.fixture, scratch.path(), &kici)
                            .map_err(|e| format!("{e:#}"))
                    })
                    .clone();
                match dir {
                    Err(e) => Outcome::Failed(format!("fixture: {e}")),
                    Ok(dir) => {
                        let runs = bench
                            .max_runs
                            .map_or(options.runs, |max| max.min(options.runs));
                        match measure(bench, &kici, &dir, runs, scratch.path()) {
                            Ok(m) => Outcome::Measured(m),
                            Err(e) => Outcome::Failed(format!("{e:#}")),
                        }
                    }
                }
            }
        };
        eprintln!("  {:<16} {}", bench.name, outcome.summary());
        results.push((bench, outcome));
    }
    let mut services = Vec::new();
    for scenario in &selection.scenarios {
        eprintln!("  {:<16} running: {}", scenario.name, scenario.what);
        let ctx = bench_server::Ctx {
            kici: &kici,
            root: &root,
            scratch: scratch.path(),
            runs: options.runs,
        };
        let outcome = bench_server::run(scenario, &ctx);
        eprintln!("  {:<16} {}", scenario.name, scenario_summary(&outcome));
        services.push((*scenario, outcome));
    }
    let load_after = load_average();

    let report = Report {
        command: format!("cargo xtask bench {}", args.join(" "))
            .trim_end()
            .to_string(),
        date: utc_now(),
        commit: git_commit(&root),
        machine,
        load_before,
        load_after,
        runs: options.runs,
        results,
        services,
    };
    print!("{}", report.text_table());
    if options.write {
        let path = root.join("BENCHMARKS.md");
        let old = fs::read_to_string(&path).unwrap_or_default();
        let mut new = if old.trim().is_empty() {
            BENCHMARKS_HEADER.to_string()
        } else {
            old
        };
        let measured = selection.groups();
        for group in GROUPS {
            if measured.contains(group.id) {
                new = replace_section(&new, group.id, &report.markdown_section(group));
            }
        }
        fs::write(&path, new).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .map(|(b, _)| b.name)
        .chain(
            report
                .services
                .iter()
                .filter(|(_, o)| matches!(o, ScenarioOutcome::Failed(_)))
                .map(|(s, _)| s.name),
        )
        .collect();
    ensure!(
        failed.is_empty(),
        "benchmarks failed: {}",
        failed.join(", ")
    );
    Ok(())
}

fn build_kici(root: &Path) -> Result<PathBuf> {
    eprintln!("cargo build --release -p kici");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "kici",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    ensure!(
        output.status.success(),
        "cargo build --release -p kici failed ({})",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "kici"
            && let Some(exe) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo build did not report the kici executable")
}

/// `Ok` when `kici run local` exists; otherwise why the benchmarks that need it are skipped.
fn run_local_available(kici: &Path) -> Result<std::result::Result<(), String>> {
    let status = Command::new(kici)
        .args(["run", "local", "--help"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {}", kici.display()))?;
    Ok(if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`kici run local` does not exist yet (`kici run local --help`: {status})"
        ))
    })
}

fn command_line(bench: &Bench) -> String {
    let program = match bench.program {
        Program::Kici => "kici",
        Program::Bash => "bash",
    };
    let mut line = program.to_string();
    for arg in bench.args {
        line.push(' ');
        if arg.is_empty() || arg.contains([' ', '"', '\'', '$', '`']) {
            let _ = write!(line, "'{arg}'");
        } else {
            line.push_str(arg);
        }
    }
    line
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const HELLO_WORKFLOW: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

const greet = job('greet', {
  runsOn: 'kici:os:linux',
  steps: [
    step('say-hello', async ({ $, log }) => {
      log.info('Hello from KiCI');
      await $`echo "Hello, World!"`;
    }),
  ],
});

export const helloWorldWorkflow = workflow('hello-world', {
  description: 'Greets on every push',
  on: push(),
  jobs: [greet],
});
"#;

fn twenty_workflow(index: usize) -> String {
    format!(
        r#"import {{ workflow, job, step, push, pr }} from '@kici-dev/sdk';

const build = job('build', {{
  runsOn: 'kici:os:linux',
  matrix: {{ node: ['22', '24'] }},
  steps: [
    step('compile', async ({{ $, matrix }}) => {{
      await $`echo building service-{index} on node ${{matrix!.node!}}`;
    }}),
  ],
}});

const test = job('test', {{
  runsOn: 'kici:os:linux',
  needs: [build],
  matrix: ['shard-1', 'shard-2'],
  steps: [
    step('test', async ({{ $, matrix }}) => {{
      await $`echo testing service-{index} ${{matrix!.value!}}`;
    }}),
  ],
}});

export default workflow('service-{index:02}', {{
  on: [push({{ branches: ['main'], paths: ['services/{index:02}/**'] }}), pr()],
  jobs: [build, test],
}});
"#
    )
}

fn steps_workflow(count: usize) -> String {
    let mut text = String::from(
        "import { workflow, job, step, push } from '@kici-dev/sdk';\n\n\
         const many = job('many-steps', {\n  runsOn: 'kici:os:linux',\n  steps: [\n",
    );
    for i in 1..=count {
        let _ = writeln!(
            text,
            "    step('step-{i}', async ({{ $ }}) => {{ await $`true`; }}),"
        );
    }
    text.push_str("  ],\n});\n\nexport default workflow('steps', { on: push(), jobs: [many] });\n");
    text
}

fn output_workflow() -> String {
    // 99 characters and a newline per line. `yes` ends on SIGPIPE when `head` is done, which
    // pipefail would turn into a failure.
    let line: String = "abcdefghijklmnopqrstuvwxyz0123456789 "
        .chars()
        .cycle()
        .take(99)
        .collect();
    format!(
        r#"import {{ workflow, job, step, push }} from '@kici-dev/sdk';

const print = job('print', {{
  runsOn: 'kici:os:linux',
  steps: [
    step('print-100mb', async ({{ $ }}) => {{
      await $`set +o pipefail; yes '{line}' | head -c {OUTPUT_BYTES}`;
    }}),
  ],
}});

export default workflow('output', {{ on: push(), jobs: [print] }});
"#
    )
}

const PIPELINE_WORKFLOW: &str = r#"import { workflow, job, step, push } from '@kici-dev/sdk';

const build = job('build', {
  runsOn: 'kici:os:linux',
  steps: [step('compile', async ({ $ }) => { await $`echo build`; })],
});

const test = job('test', {
  runsOn: 'kici:os:linux',
  needs: [build],
  matrix: { shard: ['1', '2', '3', '4'] },
  steps: [step('test', async ({ $, matrix }) => { await $`echo test ${matrix!.shard!}`; })],
});

const report = job('report', {
  runsOn: 'kici:os:linux',
  needs: [test],
  steps: [step('report', async ({ $ }) => { await $`echo report`; })],
});

export default workflow('pipeline', { on: push(), jobs: [build, test, report] });
"#;

impl Fixture {
    fn files(self) -> Vec<(String, String)> {
        match self {
            Fixture::None => Vec::new(),
            Fixture::Hello => vec![("hello-world.ts".into(), HELLO_WORKFLOW.into())],
            Fixture::Twenty => (1..=20)
                .map(|i| (format!("service-{i:02}.ts"), twenty_workflow(i)))
                .collect(),
            Fixture::Steps(n) => vec![("steps.ts".into(), steps_workflow(n))],
            Fixture::Output => vec![("output.ts".into(), output_workflow())],
            Fixture::Pipeline => vec![("pipeline.ts".into(), PIPELINE_WORKFLOW.into())],
        }
    }

    pub(crate) fn dir_name(self) -> String {
        match self {
            Fixture::None => String::new(),
            Fixture::Hello => "hello".into(),
            Fixture::Twenty => "twenty".into(),
            Fixture::Steps(n) => format!("steps-{n}"),
            Fixture::Output => "output".into(),
            Fixture::Pipeline => "pipeline".into(),
        }
    }
}

/// Writes the fixture, commits it, compiles the lock with `kici` and commits that too, so the
/// lock is in sync and the tree is clean.
pub(crate) fn create_fixture(fixture: Fixture, scratch: &Path, kici: &Path) -> Result<PathBuf> {
    if fixture == Fixture::None {
        return Ok(scratch.to_path_buf());
    }
    let dir = scratch.join(fixture.dir_name());
    let workflows = dir.join(".kici/workflows");
    fs::create_dir_all(&workflows)?;
    for (name, text) in fixture.files() {
        fs::write(workflows.join(name), text)?;
    }
    fs::write(
        dir.join("README.md"),
        "A benchmark fixture of `cargo xtask bench`.\n",
    )?;
    git(&dir, &["init", "-q", "-b", "main"])?;
    git(&dir, &["add", "-A"])?;
    git(&dir, &["commit", "-q", "-m", "fixture"])?;
    let output = Command::new(kici)
        .arg("compile")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", kici.display()))?;
    ensure!(
        output.status.success(),
        "`kici compile` in {} failed ({}):\n{}",
        dir.display(),
        output.status,
        tail(&String::from_utf8_lossy(&output.stderr), 20)
    );
    git(&dir, &["add", "-A"])?;
    git(&dir, &["commit", "-q", "-m", "lock"])?;
    Ok(dir)
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=kici-bench",
            "-c",
            "user.email=bench@kici.invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running git")?;
    ensure!(
        output.status.success(),
        "git {} in {} failed: {}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Measuring

struct Measurement {
    /// Wall times of the measured runs, sorted.
    walls: Vec<Duration>,
    max_rss_kib: u64,
}

impl Measurement {
    fn median_ms(&self) -> f64 {
        let n = self.walls.len();
        let ms = |i: usize| self.walls[i].as_secs_f64() * 1e3;
        if n % 2 == 1 {
            ms(n / 2)
        } else {
            (ms(n / 2 - 1) + ms(n / 2)) / 2.0
        }
    }

    /// Nearest-rank 90th percentile.
    fn p90_ms(&self) -> f64 {
        let rank = (self.walls.len() * 9).div_ceil(10).max(1);
        self.walls[rank - 1].as_secs_f64() * 1e3
    }

    fn min_ms(&self) -> f64 {
        self.walls[0].as_secs_f64() * 1e3
    }

    fn rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }
}

enum Outcome {
    Measured(Measurement),
    Skipped(String),
    Failed(String),
}

impl Outcome {
    fn summary(&self) -> String {
        match self {
            Outcome::Measured(m) => format!(
                "median {}  p90 {}  min {}  peak RSS {:.1} MiB",
                fmt_ms(m.median_ms()),
                fmt_ms(m.p90_ms()),
                fmt_ms(m.min_ms()),
                m.rss_mib()
            ),
            Outcome::Skipped(why) => format!("skipped: {why}"),
            Outcome::Failed(why) => format!("FAILED: {why}"),
        }
    }
}

/// Measures one benchmark in a fresh `xtask bench-one` process (see the module docs).
fn measure(
    bench: &Bench,
    kici: &Path,
    dir: &Path,
    runs: usize,
    scratch: &Path,
) -> Result<Measurement> {
    let program: PathBuf = match bench.program {
        Program::Kici => kici.to_path_buf(),
        Program::Bash => "bash".into(),
    };
    let mut child = Command::new(std::env::current_exe()?)
        .arg(BENCH_ONE)
        .arg("--cwd")
        .arg(dir)
        .args([
            "--runs",
            &runs.to_string(),
            "--warmups",
            &WARMUPS.to_string(),
        ])
        .arg("--stderr")
        .arg(scratch.join(format!("{}.stderr", bench.name)))
        .arg("--")
        .arg(program)
        .args(bench.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("starting xtask bench-one")?;
    let deadline = Instant::now() + RUN_TIMEOUT * (runs + WARMUPS) as u32;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            bail!(
                "timed out (a run took more than {} s on average)",
                RUN_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading bench-one's report")?;
    let mut walls: Vec<Duration> = json["wall_ns"]
        .as_array()
        .context("bench-one report without wall_ns")?
        .iter()
        .map(|v| v.as_u64().map(Duration::from_nanos).context("wall_ns"))
        .collect::<Result<_>>()?;
    walls.sort();
    ensure!(!walls.is_empty(), "no runs measured");
    let max_rss_kib = json["max_rss_kib"]
        .as_u64()
        .context("bench-one report without max_rss_kib")?;
    Ok(Measurement { walls, max_rss_kib })
}

/// SIGINT to the benchmark's process group (kici cleans up its steps), SIGKILL 2 s later.
fn kill_group(pid: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGINT);
    std::thread::sleep(Duration::from_secs(2));
    let _ = killpg(group, Signal::SIGKILL);
}

/// `xtask bench-one --cwd DIR --runs N --warmups W --stderr FILE -- PROGRAM ARGS…`: runs the
/// command W + N times and prints `{"wall_ns": [...], "max_rss_kib": K}` on stdout.
pub fn bench_one_main(args: &[String]) -> Result<()> {
    let split = args
        .iter()
        .position(|a| a == "--")
        .context("bench-one: missing `--`")?;
    let (flags, command) = (&args[..split], &args[split + 1..]);
    let flag = |name: &str| -> Result<&str> {
        let i = flags
            .iter()
            .position(|a| a == name)
            .with_context(|| format!("bench-one: missing {name}"))?;
        flags
            .get(i + 1)
            .map(String::as_str)
            .with_context(|| format!("bench-one: {name} needs a value"))
    };
    let cwd = Path::new(flag("--cwd")?);
    let runs: usize = flag("--runs")?.parse()?;
    let warmups: usize = flag("--warmups")?.parse()?;
    let stderr_path = Path::new(flag("--stderr")?);
    let (program, program_args) = command.split_first().context("bench-one: no command")?;

    let mut walls = Vec::with_capacity(runs);
    for i in 0..warmups + runs {
        let stderr = fs::File::create(stderr_path)?;
        let start = Instant::now();
        let status = Command::new(program)
            .args(program_args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .status()
            .with_context(|| format!("running {program}"))?;
        let elapsed = start.elapsed();
        if !status.success() {
            let mut text = String::new();
            let _ = fs::File::open(stderr_path).and_then(|mut f| f.read_to_string(&mut text));
            bail!(
                "`{} {}` in {} failed ({status}):\n{}",
                program,
                program_args.join(" "),
                cwd.display(),
                tail(&text, 20)
            );
        }
        if i >= warmups {
            walls.push(elapsed.as_nanos() as u64);
        }
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    // Linux reports ru_maxrss in KiB.
    println!(
        "{}",
        serde_json::json!({ "wall_ns": walls, "max_rss_kib": usage.max_rss() })
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reporting

struct Machine {
    cores: usize,
    cpu: String,
    kernel: String,
}

impl Machine {
    fn probe() -> Machine {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.into());
        Machine { cores, cpu, kernel }
    }
}

/// The 1-minute load average, from /proc/loadavg.
fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown date".into())
}

fn git_commit(root: &Path) -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(commit) = run(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit} + uncommitted changes")
    } else {
        commit
    }
}

struct Report<'a> {
    command: String,
    date: String,
    commit: String,
    machine: Machine,
    load_before: f64,
    load_after: f64,
    runs: usize,
    results: Vec<(&'a Bench, Outcome)>,
    services: Vec<(&'a Scenario, ScenarioOutcome)>,
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1e3)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn fmt_target(bench: &Bench) -> String {
    let mut parts = Vec::new();
    if let Some(ms) = bench.target_ms {
        parts.push(format!("≤ {ms} ms"));
    }
    if let Some(mib) = bench.target_rss_mib {
        parts.push(format!("≤ {mib} MiB"));
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(", ")
    }
}

/// "yes", "no (…)" or "—" when the benchmark has no target.
fn verdict(bench: &Bench, m: &Measurement) -> String {
    let mut misses = Vec::new();
    if let Some(ms) = bench.target_ms
        && m.median_ms() > ms
    {
        misses.push("wall");
    }
    if let Some(mib) = bench.target_rss_mib
        && m.rss_mib() > mib
    {
        misses.push("RSS");
    }
    match (
        bench.target_ms.is_some() || bench.target_rss_mib.is_some(),
        misses.is_empty(),
    ) {
        (false, _) => "—".into(),
        (true, true) => "yes".into(),
        (true, false) => format!("**no** ({})", misses.join(", ")),
    }
}

impl Bound {
    fn text(self, unit: &str) -> String {
        match self {
            Bound::AtMost(v) => format!("≤ {v} {unit}"),
            Bound::AtLeast(v) => format!("≥ {v} {unit}"),
        }
    }

    fn holds(self, value: f64) -> bool {
        match self {
            Bound::AtMost(v) => value <= v,
            Bound::AtLeast(v) => value >= v,
        }
    }
}

impl Report<'_> {
    fn measured(&self, name: &str) -> Option<&Measurement> {
        self.results.iter().find_map(|(b, o)| match o {
            Outcome::Measured(m) if b.name == name => Some(m),
            _ => None,
        })
    }

    /// The derived figure, or why it is missing.
    fn derived(&self, d: &Derived) -> std::result::Result<f64, String> {
        let mut medians = Vec::new();
        for input in d.inputs {
            match self.measured(input) {
                Some(m) => medians.push(m.median_ms()),
                None => return Err(format!("needs {input}")),
            }
        }
        Ok((d.compute)(&medians))
    }

    fn busy(&self) -> bool {
        let cores = self.machine.cores.max(1) as f64;
        self.load_before.max(self.load_after) > 0.5 * cores
    }

    fn text_table(&self) -> String {
        let mut out = String::new();
        if !self.results.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<16} {:>10} {:>10} {:>10} {:>10}  {:<20} target met",
                "benchmark", "median", "p90", "min", "peak RSS", "target"
            );
        }
        for (bench, outcome) in &self.results {
            match outcome {
                Outcome::Measured(m) => {
                    let _ = writeln!(
                        out,
                        "{:<16} {:>10} {:>10} {:>10} {:>10}  {:<20} {}",
                        bench.name,
                        fmt_ms(m.median_ms()),
                        fmt_ms(m.p90_ms()),
                        fmt_ms(m.min_ms()),
                        format!("{:.1} MiB", m.rss_mib()),
                        fmt_target(bench),
                        verdict(bench, m).replace("**", "")
                    );
                }
                other => {
                    let _ = writeln!(out, "{:<16} {}", bench.name, other.summary());
                }
            }
        }
        for d in DERIVED {
            if !self.results.iter().any(|(b, _)| b.group == d.group) {
                continue;
            }
            match self.derived(d) {
                Ok(v) => {
                    let met = if d.bound.holds(v) { "yes" } else { "no" };
                    let _ = writeln!(
                        out,
                        "{:<16} {:>10.2} {:<5} ({}; target {}) met: {met}",
                        d.name,
                        v,
                        d.unit,
                        d.formula,
                        d.bound.text(d.unit)
                    );
                }
                Err(why) => {
                    let _ = writeln!(out, "{:<16} not computed ({why})", d.name);
                }
            }
        }
        for (scenario, outcome) in &self.services {
            let _ = writeln!(out, "\n{}:", scenario.name);
            match outcome {
                ScenarioOutcome::Measured(m) => {
                    for f in &m.figures {
                        let met = match f.met {
                            Some(true) => "met",
                            Some(false) => "NOT met",
                            None => "",
                        };
                        let _ = writeln!(
                            out,
                            "  {:<44} {}  (goal {}) {met}",
                            f.name.replace('`', ""),
                            f.result.replace("**", ""),
                            f.goal
                        );
                    }
                    for note in &m.notes {
                        for line in note.lines() {
                            let _ = writeln!(out, "  {line}");
                        }
                    }
                }
                other => {
                    let _ = writeln!(out, "  {}", scenario_summary(other));
                }
            }
        }
        let _ = writeln!(
            out,
            "\n{} cores, {}, {}; load average {:.2} before, {:.2} after{}",
            self.machine.cores,
            self.machine.cpu,
            self.machine.kernel,
            self.load_before,
            self.load_after,
            if self.busy() { " (busy machine)" } else { "" }
        );
        out
    }

    /// The section of a group of service scenarios (`bench_server`).
    fn service_section(&self, group: &Group) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {}\n", group.title);
        let _ = writeln!(out, "{}\n", group.intro);
        let _ = writeln!(
            out,
            "Produced by `{}` on {}, commit {}, release build.",
            self.command, self.date, self.commit
        );
        let _ = writeln!(
            out,
            "Machine: `nproc` {}, {}, {}. Load average (1 min) {:.2} before, {:.2} after.",
            self.machine.cores,
            self.machine.cpu,
            self.machine.kernel,
            self.load_before,
            self.load_after
        );
        if self.busy() {
            let _ = writeln!(
                out,
                "\n**Taken on a busy machine** (load above half the cores), so the figures are \
                 pessimistic; compare within one run."
            );
        }
        let _ = writeln!(out, "\n| figure | how | result | goal | met |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        let mut notes = Vec::new();
        for (scenario, outcome) in self.services.iter().filter(|(s, _)| s.group == group.id) {
            match outcome {
                ScenarioOutcome::Measured(m) => {
                    for f in &m.figures {
                        let met = match f.met {
                            Some(true) => "yes",
                            Some(false) => "**no**",
                            None => "—",
                        };
                        let _ = writeln!(
                            out,
                            "| {} | {} | {} | {} | {met} |",
                            f.name, f.how, f.result, f.goal
                        );
                    }
                    notes.extend(m.notes.iter().cloned());
                }
                other => {
                    let why = scenario_summary(other).replace('|', "\\|");
                    let why = why.lines().next().unwrap_or_default().to_string();
                    let _ = writeln!(
                        out,
                        "| `{}` | {} | {why} | | |",
                        scenario.name, scenario.what
                    );
                }
            }
        }
        for note in notes {
            let _ = write!(out, "\n{note}");
        }
        out
    }

    fn markdown_section(&self, group: &Group) -> String {
        if !BENCHES.iter().any(|b| b.group == group.id) {
            return self.service_section(group);
        }
        let mut out = String::new();
        let _ = writeln!(out, "## {}\n", group.title);
        let _ = writeln!(out, "{}\n", group.intro);
        let _ = writeln!(
            out,
            "Produced by `{}` on {}, commit {}: {} runs after {WARMUPS} warm-ups per benchmark \
             (fewer where noted), release build.",
            self.command, self.date, self.commit, self.runs
        );
        let _ = writeln!(
            out,
            "Machine: `nproc` {}, {}, {}. Load average (1 min) {:.2} before, {:.2} after.",
            self.machine.cores,
            self.machine.cpu,
            self.machine.kernel,
            self.load_before,
            self.load_after
        );
        if self.busy() {
            let _ = writeln!(
                out,
                "\n**Taken on a busy machine** (load above half the cores: other engineers' \
                 builds were running), so the figures are pessimistic; compare within one run."
            );
        }
        let _ = writeln!(
            out,
            "\n| benchmark | command | median | p90 | min | peak RSS | target | met | reference 0.1.24 (Node 20 / 24) |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---|---|---|");
        let mut notes: Vec<String> = Vec::new();
        for (bench, outcome) in self.results.iter().filter(|(b, _)| b.group == group.id) {
            let runs = match bench.max_runs {
                Some(max) if max < self.runs => format!(" ({max} runs)"),
                _ => String::new(),
            };
            let command = format!("`{}`: {}{runs}", command_line(bench), bench.what);
            match outcome {
                Outcome::Measured(m) => {
                    let _ = writeln!(
                        out,
                        "| `{}` | {} | {} | {} | {} | {:.1} MiB | {} | {} | {} |",
                        bench.name,
                        command,
                        fmt_ms(m.median_ms()),
                        fmt_ms(m.p90_ms()),
                        fmt_ms(m.min_ms()),
                        m.rss_mib(),
                        fmt_target(bench),
                        verdict(bench, m),
                        bench.reference
                    );
                }
                Outcome::Skipped(why) | Outcome::Failed(why) => {
                    let word = if matches!(outcome, Outcome::Skipped(_)) {
                        "skipped"
                    } else {
                        "failed"
                    };
                    let why = why.lines().next().unwrap_or_default().replace('|', "\\|");
                    if !notes.contains(&why) {
                        notes.push(why.clone());
                    }
                    let note = notes.iter().position(|n| *n == why).map_or(0, |i| i + 1);
                    let _ = writeln!(
                        out,
                        "| `{}` | {} | {word} [{note}] | | | | {} | | {} |",
                        bench.name,
                        command,
                        fmt_target(bench),
                        bench.reference
                    );
                }
            }
        }
        if !notes.is_empty() {
            out.push('\n');
            for (i, note) in notes.iter().enumerate() {
                let _ = writeln!(out, "[{}] {note}  ", i + 1);
            }
        }
        let derived: Vec<_> = DERIVED.iter().filter(|d| d.group == group.id).collect();
        if !derived.is_empty() {
            let _ = writeln!(
                out,
                "\n| derived figure | from the medians | value | target | met | reference |"
            );
            let _ = writeln!(out, "|---|---|---:|---|---|---|");
            for d in derived {
                let (value, met) = match self.derived(d) {
                    Ok(v) => (
                        format!("{v:.2} {}", d.unit),
                        if d.bound.holds(v) {
                            "yes".to_string()
                        } else {
                            "**no**".to_string()
                        },
                    ),
                    Err(why) => (format!("not computed ({why})"), String::new()),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {value} | {} | {met} | {} |",
                    d.name,
                    d.formula,
                    d.bound.text(d.unit),
                    d.reference
                );
            }
        }
        out
    }
}

fn scenario_summary(outcome: &ScenarioOutcome) -> String {
    match outcome {
        ScenarioOutcome::Measured(m) => m
            .figures
            .iter()
            .map(|f| {
                format!(
                    "{}: {}",
                    f.name.replace('`', ""),
                    f.result.replace("**", "")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        ScenarioOutcome::Skipped(why) => format!("skipped: {why}"),
        ScenarioOutcome::Failed(why) => format!("FAILED: {why}"),
    }
}

const BENCHMARKS_HEADER: &str = "# Benchmarks\n";

fn section_markers(group: &str) -> (String, String) {
    (
        format!("<!-- bench:{group} begin: generated by `cargo xtask bench --write` -->"),
        format!("<!-- bench:{group} end -->"),
    )
}

/// Replaces the marked section of `group` in `doc` (or appends it).
fn replace_section(doc: &str, group: &str, body: &str) -> String {
    let (begin, end) = section_markers(group);
    let block = format!("{begin}\n{body}{end}\n");
    if let (Some(start), Some(stop)) = (doc.find(&begin), doc.find(&end))
        && start < stop
    {
        let after = &doc[stop + end.len()..];
        let after = after.strip_prefix('\n').unwrap_or(after);
        return format!("{}{block}{after}", &doc[..start]);
    }
    let mut out = doc.trim_end().to_string();
    out.push_str("\n\n");
    out.push_str(&block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(ms: &[u64]) -> Measurement {
        let mut walls: Vec<_> = ms.iter().map(|&m| Duration::from_millis(m)).collect();
        walls.sort();
        Measurement {
            walls,
            max_rss_kib: 2048,
        }
    }

    #[test]
    fn statistics() {
        let m = measurement(&[5, 1, 4, 2, 3, 6, 7, 8, 9, 10]);
        assert_eq!(m.median_ms(), 5.5);
        assert_eq!(m.p90_ms(), 9.0);
        assert_eq!(m.min_ms(), 1.0);
        assert_eq!(m.rss_mib(), 2.0);
        let one = measurement(&[3]);
        assert_eq!((one.median_ms(), one.p90_ms()), (3.0, 3.0));
    }

    #[test]
    fn sections_are_replaced_in_place() {
        let doc = replace_section("# Benchmarks\n\nintro\n", "issue-2", "A\n");
        let doc = replace_section(&doc, "issue-3", "B\n");
        let doc = replace_section(&doc, "issue-2", "C\n");
        let (begin2, end2) = section_markers("issue-2");
        let (begin3, end3) = section_markers("issue-3");
        assert_eq!(
            doc,
            format!("# Benchmarks\n\nintro\n\n{begin2}\nC\n{end2}\n\n{begin3}\nB\n{end3}\n")
        );
    }

    #[test]
    fn benchmark_table_is_consistent() {
        let mut names = BTreeSet::new();
        for bench in BENCHES {
            assert!(
                names.insert(bench.name),
                "duplicate benchmark {}",
                bench.name
            );
            assert!(
                GROUPS.iter().any(|g| g.id == bench.group),
                "{}: unknown group",
                bench.name
            );
        }
        for d in DERIVED {
            for input in d.inputs {
                assert!(names.contains(input), "{}: unknown input {input}", d.name);
            }
        }
        for scenario in SCENARIOS {
            assert!(
                names.insert(scenario.name),
                "duplicate benchmark {}",
                scenario.name
            );
            assert!(
                GROUPS.iter().any(|g| g.id == scenario.group),
                "{}: unknown group",
                scenario.name
            );
        }
        let issue3 = select(Some(&["issue-3".into()])).unwrap();
        assert!(issue3.benches.iter().all(|b| b.group == "issue-3"));
        assert!(issue3.scenarios.is_empty());
        let issue4 = select(Some(&["issue-4".into()])).unwrap();
        assert!(issue4.benches.is_empty());
        assert_eq!(issue4.scenarios.len(), 3);
        assert!(select(Some(&["nope".into()])).is_err());
    }
}
