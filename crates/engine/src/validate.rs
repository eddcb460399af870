//! Compile-time validation of the collected workflows (`validation.md` §2): E101–E107, plus
//! our lock-level extensions E105 and E108.
//!
//! Two modes:
//!
//! * [`ValidationMode::Reference`] reproduces the reference's `validateConfig` exactly: the
//!   same diagnostics, messages, suggestions and order — E107 for every repeated workflow
//!   name first, then per workflow in discovery order: E106 for every repeated static job
//!   name, at most one DAG error (self-reference, else the first missing dependency, else a
//!   cycle listing every node Kahn's algorithm could not order), then E104 per job.
//! * [`ValidationMode::Ours`] applies `fixes.md` F58 (every self-reference and every unknown
//!   need is reported; a cycle is reported as an actual path), our suggestions, and the
//!   lock-level checks the reference did not have (E105 label overlap and parallel
//!   `maxParallel`, E108 duplicate step names).
//!
//! Diagnostics carry the workflow index and job name they concern so that callers can attach
//! real source positions; the reference printed every one at `<workflows dir>:1:1`.

use std::collections::{HashMap, HashSet};

use crate::lock::{LabelMatcher, LockJob, LockJobEntry, LockMatrix, LockStepEntry, LockWorkflow};
use crate::matrix::{MAX_MATRIX_JOBS, static_job_count};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValidationMode {
    /// Byte-compatible with the reference's compile output.
    #[default]
    Reference,
    /// The project's documented behaviour (`validation.md`, `fixes.md` F58).
    Ours,
}

/// One validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// `E101` … `E108`.
    pub code: &'static str,
    pub message: String,
    pub suggestion: String,
    /// Index of the workflow concerned in the validated slice (for E107, the repeat).
    pub workflow: usize,
    /// The job the diagnostic is about, when there is one.
    pub job: Option<String>,
}

impl Diagnostic {
    /// The reference's text without the logger's `error: ` prefix: `<location> error
    /// [<code>]: <message>`, then `  Suggestion: <suggestion>`. The reference's location of
    /// validator errors is always `<workflows dir>:1:1`.
    pub fn to_human(&self, location: &str) -> String {
        format!(
            "{location} error [{}]: {}\n  Suggestion: {}",
            self.code, self.message, self.suggestion
        )
    }
}

/// Validates in [`ValidationMode::Reference`].
pub fn validate(workflows: &[LockWorkflow]) -> Vec<Diagnostic> {
    validate_with(workflows, ValidationMode::Reference)
}

pub fn validate_with(workflows: &[LockWorkflow], mode: ValidationMode) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (index, workflow) in workflows.iter().enumerate() {
        if !seen.insert(workflow.name.as_str()) {
            out.push(Diagnostic {
                code: "E107",
                message: format!("Duplicate workflow name: \"{}\"", workflow.name),
                suggestion: match mode {
                    ValidationMode::Reference => "Each workflow must have a unique name".into(),
                    ValidationMode::Ours => {
                        "Workflow names must be unique in the repository".into()
                    }
                },
                workflow: index,
                job: None,
            });
        }
    }
    for (index, workflow) in workflows.iter().enumerate() {
        validate_workflow(index, workflow, mode, &mut out);
    }
    out
}

fn validate_workflow(
    index: usize,
    workflow: &LockWorkflow,
    mode: ValidationMode,
    out: &mut Vec<Diagnostic>,
) {
    let w = &workflow.name;
    let diag = |code, message: String, suggestion: String, job: Option<&str>| Diagnostic {
        code,
        message,
        suggestion,
        workflow: index,
        job: job.map(str::to_owned),
    };
    let jobs: Vec<&LockJob> = workflow
        .jobs
        .iter()
        .filter_map(LockJobEntry::as_static)
        .collect();

    let mut names: HashSet<&str> = HashSet::new();
    for job in &jobs {
        if !names.insert(job.name.as_str()) {
            let suggestion = match mode {
                ValidationMode::Reference => "Each job in a workflow must have a unique name",
                ValidationMode::Ours => "Job names must be unique within a workflow",
            };
            out.push(diag(
                "E106",
                format!("Duplicate job name \"{}\" in workflow \"{w}\"", job.name),
                suggestion.into(),
                Some(&job.name),
            ));
        }
    }

    let nodes = dag_nodes(workflow, &jobs);
    match mode {
        ValidationMode::Reference => {
            if let Some(d) = reference_dag_error(w, &nodes) {
                out.push(diag(d.code, d.message, d.suggestion, d.job.as_deref()));
            }
        }
        ValidationMode::Ours => {
            for d in complete_dag_errors(w, &nodes) {
                out.push(diag(d.code, d.message, d.suggestion, d.job.as_deref()));
            }
        }
    }

    for job in &jobs {
        if let Some(LockMatrix::Static { values }) = &job.matrix {
            let include_len = job.include.as_ref().map_or(0, Vec::len);
            let count = static_job_count(values, include_len);
            if count > MAX_MATRIX_JOBS as u64 {
                let suggestion = match mode {
                    ValidationMode::Reference => {
                        "Reduce matrix dimensions or use exclude patterns to limit combinations"
                    }
                    ValidationMode::Ours => "Reduce dimensions or use exclude",
                };
                out.push(diag(
                    "E104",
                    format!(
                        "Static matrix for job \"{}\" in workflow \"{w}\" would generate {count} jobs (max: {MAX_MATRIX_JOBS})",
                        job.name
                    ),
                    suggestion.into(),
                    Some(&job.name),
                ));
            }
        }
        if mode == ValidationMode::Ours {
            for (code, message, suggestion) in job_extensions(w, job) {
                out.push(diag(code, message, suggestion, Some(&job.name)));
            }
        }
    }
}

/// A DAG node: a static job (duplicates kept, as the reference does) or the synthetic
/// `__group:<name>` node of a dynamic job group.
struct Node {
    id: String,
    needs: Vec<String>,
}

fn dag_nodes(workflow: &LockWorkflow, jobs: &[&LockJob]) -> Vec<Node> {
    let mut nodes: Vec<Node> = jobs
        .iter()
        .map(|job| Node {
            id: job.name.clone(),
            needs: job.needs.iter().map(|n| n.dag_node()).collect(),
        })
        .collect();
    let mut groups: Vec<&str> = Vec::new();
    for entry in &workflow.jobs {
        if let LockJobEntry::Dynamic(dynamic) = entry
            && let Some(group) = &dynamic.group
            && !groups.contains(&group.as_str())
        {
            groups.push(group);
        }
    }
    nodes.extend(groups.into_iter().map(|g| Node {
        id: format!("__group:{g}"),
        needs: Vec::new(),
    }));
    nodes
}

struct DagDiagnostic {
    code: &'static str,
    message: String,
    suggestion: String,
    job: Option<String>,
}

fn self_reference(w: &str, job: &str, mode: ValidationMode) -> DagDiagnostic {
    DagDiagnostic {
        code: "E103",
        message: format!("Job \"{job}\" in workflow \"{w}\" depends on itself"),
        suggestion: match mode {
            ValidationMode::Reference => "Remove the self-dependency".into(),
            ValidationMode::Ours => format!("Remove \"{job}\" from its own needs"),
        },
        job: Some(job.to_owned()),
    }
}

fn missing_dependency(
    w: &str,
    job: &str,
    dep: &str,
    mode: ValidationMode,
    nodes: &[Node],
) -> DagDiagnostic {
    let suggestion = match mode {
        ValidationMode::Reference => {
            format!("Create a job named \"{dep}\" or fix the dependency name")
        }
        ValidationMode::Ours => {
            let mut existing: Vec<&str> = Vec::new();
            for n in nodes {
                if !n.id.starts_with("__group:") && !existing.contains(&n.id.as_str()) {
                    existing.push(&n.id);
                }
            }
            format!(
                "Check the job name in needs; existing jobs: {}",
                existing.join(", ")
            )
        }
    };
    DagDiagnostic {
        code: "E101",
        message: format!("Job \"{job}\" in workflow \"{w}\" depends on non-existent job \"{dep}\""),
        suggestion,
        job: Some(job.to_owned()),
    }
}

fn cycle(w: &str, path: &[&str]) -> DagDiagnostic {
    DagDiagnostic {
        code: "E102",
        message: format!(
            "Circular dependency in workflow \"{w}\": {}",
            path.join(" -> ")
        ),
        suggestion: "Break the cycle by removing one of the dependencies".into(),
        job: None,
    }
}

/// The reference's `validateDag`: the first self-reference, else the first missing
/// dependency, else the nodes Kahn's algorithm leaves with a positive in-degree.
fn reference_dag_error(w: &str, nodes: &[Node]) -> Option<DagDiagnostic> {
    let mode = ValidationMode::Reference;
    if nodes.is_empty() {
        return None;
    }
    if let Some(node) = nodes.iter().find(|n| n.needs.contains(&n.id)) {
        return Some(self_reference(w, &node.id, mode));
    }
    let ids: HashSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    for node in nodes {
        if let Some(dep) = node.needs.iter().find(|d| !ids.contains(d.as_str())) {
            return Some(missing_dependency(w, &node.id, dep, mode, nodes));
        }
    }
    let remaining = kahn_remainder(nodes);
    // A repeated job name makes the ordered count fall short of the node count even without
    // a cycle; the reference then reports a cycle with whatever has a positive in-degree,
    // possibly nothing.
    let ordered_all = remaining.sorted_count == nodes.len();
    if ordered_all {
        None
    } else {
        Some(cycle(w, &remaining.unresolved))
    }
}

struct KahnResult<'a> {
    sorted_count: usize,
    /// Node ids (first-insertion order) left with a positive in-degree.
    unresolved: Vec<&'a str>,
}

/// Kahn's algorithm over name-keyed maps that keep first-insertion order, like the
/// reference's `Map`s (a repeated name shares one entry).
fn kahn_remainder(nodes: &[Node]) -> KahnResult<'_> {
    let mut order: Vec<&str> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    for node in nodes {
        if !slot.contains_key(node.id.as_str()) {
            slot.insert(&node.id, order.len());
            order.push(&node.id);
        }
    }
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
    let mut in_degree: Vec<i64> = vec![0; order.len()];
    for node in nodes {
        let Some(&me) = slot.get(node.id.as_str()) else {
            continue;
        };
        for dep in &node.needs {
            // Missing dependencies were reported before we get here.
            if let Some(&d) = slot.get(dep.as_str()) {
                dependents[d].push(me);
                in_degree[me] += 1;
            }
        }
    }
    let mut queue: std::collections::VecDeque<usize> =
        (0..order.len()).filter(|i| in_degree[*i] == 0).collect();
    let mut sorted_count = 0;
    while let Some(current) = queue.pop_front() {
        sorted_count += 1;
        for &next in &dependents[current] {
            in_degree[next] -= 1;
            if in_degree[next] == 0 {
                queue.push_back(next);
            }
        }
    }
    let unresolved = (0..order.len())
        .filter(|i| in_degree[*i] > 0)
        .map(|i| order[i])
        .collect();
    KahnResult {
        sorted_count,
        unresolved,
    }
}

/// F58: every self-reference and every unknown need, in job order; a cycle only when there
/// is neither, as a closed path from the byte-wise smallest job name on a cycle.
fn complete_dag_errors(w: &str, nodes: &[Node]) -> Vec<DagDiagnostic> {
    let mode = ValidationMode::Ours;
    let ids: HashSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let mut out = Vec::new();
    for node in nodes {
        let mut reported: HashSet<&str> = HashSet::new();
        for dep in &node.needs {
            if !reported.insert(dep.as_str()) {
                continue;
            }
            if *dep == node.id {
                out.push(self_reference(w, &node.id, mode));
            } else if !ids.contains(dep.as_str()) {
                out.push(missing_dependency(w, &node.id, dep, mode, nodes));
            }
        }
    }
    if out.is_empty()
        && let Some(path) = find_cycle(nodes)
    {
        out.push(cycle(w, &path));
    }
    out
}

/// A dependency cycle as `[a, b, …, a]` in execution direction (each node is needed by the
/// next), starting from the byte-wise smallest name among the nodes that lie on a cycle.
fn find_cycle(nodes: &[Node]) -> Option<Vec<&str>> {
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for node in nodes {
        dependents.entry(node.id.as_str()).or_default();
    }
    for node in nodes {
        for dep in &node.needs {
            if let Some(list) = dependents.get_mut(dep.as_str())
                && !list.contains(&node.id.as_str())
            {
                list.push(&node.id);
            }
        }
    }
    let mut names: Vec<&str> = dependents.keys().copied().collect();
    names.sort_unstable();
    for start in names {
        if let Some(path) = path_back_to(start, &dependents) {
            return Some(path);
        }
    }
    None
}

/// Shortest path `start -> … -> start` along `edges` (breadth-first; neighbours in job
/// order, so the result is deterministic).
fn path_back_to<'a>(
    start: &'a str,
    edges: &HashMap<&'a str, Vec<&'a str>>,
) -> Option<Vec<&'a str>> {
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(current) = queue.pop_front() {
        for &next in edges.get(current).map(Vec::as_slice).unwrap_or_default() {
            if next == start {
                let mut path = vec![start];
                let mut at = current;
                let mut back = vec![];
                while at != start {
                    back.push(at);
                    match parent.get(at) {
                        Some(previous) => at = previous,
                        None => break,
                    }
                }
                back.reverse();
                path.extend(back);
                path.push(start);
                return Some(path);
            }
            if !parent.contains_key(next) && edges.contains_key(next) {
                parent.insert(next, current);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Our lock-level checks of one job: E105 (exact labels both required and excluded,
/// parallel `maxParallel` < 1) and E108 (repeated step names).
fn job_extensions(w: &str, job: &LockJob) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let required: Vec<&str> = exact_labels(job.runs_on.as_deref());
    let overlap: Vec<&str> = exact_labels(job.exclude_labels.as_deref())
        .into_iter()
        .filter(|l| required.contains(l))
        .collect();
    if !overlap.is_empty() {
        out.push((
            "E105",
            format!(
                "Job \"{}\": labels and exclude overlap on [{}]. A label cannot be both required and excluded.",
                job.name,
                overlap.join(", ")
            ),
            "Remove the label from either runsOn labels or exclude".into(),
        ));
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for entry in &job.steps {
        let steps: Vec<&str> = match entry {
            LockStepEntry::Step(step) => vec![step.name.as_str()],
            LockStepEntry::Parallel(group) => {
                if group.max_parallel == Some(0) {
                    out.push((
                        "E105",
                        format!(
                            "parallel group \"{}\": maxParallel must be >= 1",
                            group.name
                        ),
                        "Set maxParallel to 1 or more, or leave it out".into(),
                    ));
                }
                group.children.iter().map(|c| c.name.as_str()).collect()
            }
        };
        for name in steps {
            if !seen.insert(name) {
                out.push((
                    "E108",
                    format!(
                        "Duplicate step name \"{name}\" in job \"{}\" of workflow \"{w}\"",
                        job.name
                    ),
                    "Step names must be unique within a job".into(),
                ));
            }
        }
    }
    out
}

fn exact_labels(matchers: Option<&[LabelMatcher]>) -> Vec<&str> {
    matchers
        .unwrap_or_default()
        .iter()
        .filter_map(|m| match m {
            LabelMatcher::Exact { value } => Some(value.as_str()),
            LabelMatcher::Regex { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{LockDynamicJobFn, LockJobSource, LockNeed, LockSource, StaticMatrixValues};
    use serde_json::json;

    fn job(name: &str, needs: &[&str]) -> LockJobEntry {
        LockJobEntry::Static(Box::new(LockJob {
            name: name.into(),
            needs: needs.iter().map(|n| LockNeed::Name((*n).into())).collect(),
            ..LockJob::default()
        }))
    }

    fn matrix_job(name: &str, values: serde_json::Value, include: usize) -> LockJobEntry {
        let values: StaticMatrixValues = serde_json::from_value(values).unwrap();
        LockJobEntry::Static(Box::new(LockJob {
            name: name.into(),
            matrix: Some(LockMatrix::Static { values }),
            include: (include > 0).then(|| {
                (0..include)
                    .map(|i| serde_json::from_value(json!({"extra": i.to_string()})).unwrap())
                    .collect()
            }),
            ..LockJob::default()
        }))
    }

    fn workflow(name: &str, jobs: Vec<LockJobEntry>) -> LockWorkflow {
        LockWorkflow {
            name: name.into(),
            source: LockSource {
                file: ".kici/workflows/x.ts".into(),
                export: "#default".into(),
            },
            content_hash: String::new(),
            compile_schema_version: 5,
            triggers: vec![],
            jobs,
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

    fn lines(diags: &[Diagnostic]) -> Vec<String> {
        diags
            .iter()
            .map(|d| format!("{} {} | {}", d.code, d.message, d.suggestion))
            .collect()
    }

    #[test]
    fn duplicate_jobs_give_e106_and_an_empty_cycle() {
        let w = workflow(
            "duplicate-jobs",
            vec![job("build", &[]), job("build", &[]), job("build", &[])],
        );
        assert_eq!(
            lines(&validate(&[w])),
            [
                "E106 Duplicate job name \"build\" in workflow \"duplicate-jobs\" | Each job in a workflow must have a unique name",
                "E106 Duplicate job name \"build\" in workflow \"duplicate-jobs\" | Each job in a workflow must have a unique name",
                "E102 Circular dependency in workflow \"duplicate-jobs\":  | Break the cycle by removing one of the dependencies",
            ]
        );
    }

    #[test]
    fn human_text_of_the_reference() {
        let w = workflow("self-dependency", vec![job("loop", &["loop"])]);
        assert_eq!(
            validate(&[w])[0].to_human("<REPO>/.kici/workflows:1:1"),
            "<REPO>/.kici/workflows:1:1 error [E103]: Job \"loop\" in workflow \"self-dependency\" depends on itself\n  Suggestion: Remove the self-dependency"
        );
    }

    #[test]
    fn only_the_first_missing_dependency() {
        let w = workflow("missing-needs", vec![job("test", &["build", "lint"])]);
        assert_eq!(
            lines(&validate(&[w])),
            [
                "E101 Job \"test\" in workflow \"missing-needs\" depends on non-existent job \"build\" | Create a job named \"build\" or fix the dependency name"
            ]
        );
    }

    #[test]
    fn self_dependency() {
        let w = workflow("self-dependency", vec![job("loop", &["loop"])]);
        assert_eq!(
            lines(&validate(&[w])),
            [
                "E103 Job \"loop\" in workflow \"self-dependency\" depends on itself | Remove the self-dependency"
            ]
        );
    }

    #[test]
    fn cycle_lists_the_kahn_remainder() {
        let w = workflow(
            "cycle",
            vec![
                job("root", &[]),
                job("a", &["root", "c"]),
                job("b", &["a"]),
                job("c", &["b"]),
                job("downstream", &["c"]),
            ],
        );
        assert_eq!(
            lines(&validate(std::slice::from_ref(&w))),
            [
                "E102 Circular dependency in workflow \"cycle\": a -> b -> c -> downstream | Break the cycle by removing one of the dependencies"
            ]
        );
        assert_eq!(
            lines(&validate_with(&[w], ValidationMode::Ours)),
            [
                "E102 Circular dependency in workflow \"cycle\": a -> b -> c -> a | Break the cycle by removing one of the dependencies"
            ]
        );
    }

    #[test]
    fn matrix_counts_include_entries() {
        let sixteen: Vec<String> = (0..16).map(|i| i.to_string()).collect();
        let w = workflow(
            "include-over-limit",
            vec![matrix_job("full", json!({"a": sixteen, "b": sixteen}), 1)],
        );
        assert_eq!(
            lines(&validate(&[w])),
            [
                "E104 Static matrix for job \"full\" in workflow \"include-over-limit\" would generate 257 jobs (max: 256) | Reduce matrix dimensions or use exclude patterns to limit combinations"
            ]
        );
    }

    #[test]
    fn multiple_errors_in_reference_order() {
        let many: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let two_hundred: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let workflows = vec![
            workflow("first", vec![job("ok", &[])]),
            workflow("first", vec![job("x", &[]), job("x", &["ghost"])]),
            workflow(
                "second",
                vec![job("p", &["q"]), job("q", &["p"]), job("me", &["me"])],
            ),
            workflow(
                "third",
                vec![
                    matrix_job("m1", json!(many), 0),
                    matrix_job("m2", json!({"a": ["1", "2"], "b": two_hundred}), 0),
                ],
            ),
        ];
        let codes: Vec<(&str, usize)> = validate(&workflows)
            .iter()
            .map(|d| (d.code, d.workflow))
            .collect();
        assert_eq!(
            codes,
            [
                ("E107", 1),
                ("E106", 1),
                ("E101", 1),
                ("E103", 2),
                ("E104", 3),
                ("E104", 3),
            ]
        );
        let messages: Vec<String> = validate(&workflows)
            .into_iter()
            .map(|d| d.message)
            .collect();
        assert_eq!(messages[0], "Duplicate workflow name: \"first\"");
        assert_eq!(
            messages[5],
            "Static matrix for job \"m2\" in workflow \"third\" would generate 400 jobs (max: 256)"
        );
        // Ours: the cycle p <-> q is hidden by the self-reference, both E101 are reported.
        let ours: Vec<&str> = validate_with(&workflows, ValidationMode::Ours)
            .iter()
            .map(|d| d.code)
            .collect();
        assert_eq!(ours, ["E107", "E106", "E101", "E103", "E104", "E104"]);
    }

    #[test]
    fn dynamic_groups_are_dag_nodes() {
        let mut w = workflow("g", vec![job("after", &[])]);
        w.jobs.push(LockJobEntry::Dynamic(LockDynamicJobFn {
            source: LockJobSource {
                file: "x".into(),
                index: 1,
            },
            group: Some("shards".into()),
            needs: None,
            result_aware: None,
        }));
        if let LockJobEntry::Static(j) = &mut w.jobs[0] {
            j.needs.push(LockNeed::Group {
                group: "shards".into(),
                run_on: vec!["success".into()],
            });
            j.needs.push(LockNeed::Group {
                group: "nope".into(),
                run_on: vec!["success".into()],
            });
        }
        let diags = validate(&[w]);
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].message,
            "Job \"after\" in workflow \"g\" depends on non-existent job \"__group:nope\""
        );
    }

    #[test]
    fn ours_extensions() {
        let mut w = workflow("ext", vec![job("a", &["ghost", "ghost2"])]);
        if let LockJobEntry::Static(j) = &mut w.jobs[0] {
            j.runs_on = Some(vec![
                LabelMatcher::Exact {
                    value: "docker".into(),
                },
                LabelMatcher::Exact {
                    value: "gpu".into(),
                },
            ]);
            j.exclude_labels = Some(vec![
                LabelMatcher::Exact {
                    value: "gpu".into(),
                },
                LabelMatcher::Exact {
                    value: "docker".into(),
                },
            ]);
            j.steps = serde_json::from_value(json!([
                {"name": "s", "hasOutputs": false},
                {"kind": "parallel", "name": "g", "failFast": true, "maxParallel": 0,
                 "children": [{"name": "s", "hasOutputs": false}]}
            ]))
            .unwrap();
        }
        let got = lines(&validate_with(
            std::slice::from_ref(&w),
            ValidationMode::Ours,
        ));
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].starts_with("E101 Job \"a\" in workflow \"ext\" depends on non-existent job \"ghost\" | Check the job name in needs; existing jobs: a"));
        assert!(got[1].contains("\"ghost2\""));
        assert!(got[2].starts_with("E105 Job \"a\": labels and exclude overlap on [gpu, docker]."));
        assert!(got[3].starts_with("E105 parallel group \"g\": maxParallel must be >= 1"));
        assert!(
            got[4].starts_with("E108 Duplicate step name \"s\" in job \"a\" of workflow \"ext\"")
        );
        // The reference has none of the extensions.
        assert_eq!(validate(&[w]).len(), 1);
    }
}
