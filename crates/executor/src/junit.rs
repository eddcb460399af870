//! The result of a local run as data: the `--json` document of `cli.md` §6.4 and the
//! `--junit` XML report of §6.5.
//!
//! The types are plain data filled in by the scheduler; serialising a [`RunResult`] with
//! serde gives the spec's JSON shape (camelCase keys, optional keys omitted, key order as in
//! the spec). [`RunResult::to_junit_xml`] writes the JUnit report: one `<testsuite>` per
//! workflow, one `<testcase>` per job.
//!
//! ```ignore
//! let result = RunResult::new(workflows, total_ms);
//! println!("{}", result.to_json_pretty());
//! std::fs::write(path, result.to_junit_xml(JUNIT_SUITES_NAME))?;
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `name` of the `<testsuites>` element for `kici run local`.
pub const JUNIT_SUITES_NAME: &str = "kici-local";

/// Terminal status of a workflow, job or step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Failed,
    Skipped,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
        }
    }
}

/// Why a job was skipped (`skipReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    JobRules,
    WorkflowRules,
    /// An upstream job's status is not in the edge's `when` set.
    Upstream,
    /// Another job failed and fail-fast skipped the pending ones.
    FailFast,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::JobRules => "job_rules",
            SkipReason::WorkflowRules => "workflow_rules",
            SkipReason::Upstream => "upstream",
            SkipReason::FailFast => "fail_fast",
        }
    }
}

/// The whole `--json` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub workflows: Vec<WorkflowResult>,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowResult {
    pub name: String,
    pub status: Status,
    pub duration_ms: u64,
    /// Workflow rule results; omitted when the workflow has no rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_results: Vec<RuleResult>,
    pub jobs: Vec<JobResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    /// Display name, with the matrix suffix (`test (shard-1)`).
    pub name: String,
    pub status: Status,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_values: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// Failure message (already masked), or for skipped jobs an optional human reason such
    /// as `upstream test (shard-1) failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_results: Vec<RuleResult>,
    pub steps: Vec<StepResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub name: String,
    pub status: Status,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Present (as `true`) only for a failed step whose failure was tolerated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continued_on_error: bool,
}

/// One evaluated rule (`{label, passed, durationMs, error?}`), as the runtime reports it.
pub use kici_runtime::job::RuleResult;

/// Workflow counts. A cancelled workflow counts as failed, so that `passed + failed +
/// skipped = totalWorkflows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub total_workflows: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub total_duration_ms: u64,
}

impl RunResult {
    /// The result with its summary computed from `workflows`.
    pub fn new(workflows: Vec<WorkflowResult>, total_duration_ms: u64) -> Self {
        let count = |pred: fn(Status) -> bool| workflows.iter().filter(|w| pred(w.status)).count();
        let summary = Summary {
            total_workflows: workflows.len(),
            passed: count(|s| s == Status::Success),
            failed: count(|s| matches!(s, Status::Failed | Status::Cancelled)),
            skipped: count(|s| s == Status::Skipped),
            total_duration_ms,
        };
        RunResult { workflows, summary }
    }

    /// The `Status:` line of the human summary: failed if any workflow failed, else
    /// cancelled if any was, else skipped if every workflow was skipped, else success
    /// (also for an empty run).
    pub fn overall_status(&self) -> Status {
        let any = |s: Status| self.workflows.iter().any(|w| w.status == s);
        if any(Status::Failed) {
            Status::Failed
        } else if any(Status::Cancelled) {
            Status::Cancelled
        } else if !self.workflows.is_empty()
            && self.workflows.iter().all(|w| w.status == Status::Skipped)
        {
            Status::Skipped
        } else {
            Status::Success
        }
    }

    /// False when any workflow failed or was cancelled (`cli.md` §6.6: exit 1).
    pub fn succeeded(&self) -> bool {
        !self
            .workflows
            .iter()
            .any(|w| matches!(w.status, Status::Failed | Status::Cancelled))
    }

    /// The `--json` text: two-space indentation, as `JSON.stringify(v, null, 2)`.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The JUnit XML report (`cli.md` §6.5), `suites_name` being [`JUNIT_SUITES_NAME`] for
    /// local runs. Cancelled jobs are reported as failures (JUnit has no cancelled state).
    pub fn to_junit_xml(&self, suites_name: &str) -> String {
        let jobs = || self.workflows.iter().flat_map(|w| &w.jobs);
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        xml.push_str(&format!(
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">\n",
            escape_attr(suites_name),
            jobs().count(),
            jobs().filter(|j| is_failure(j.status)).count(),
            jobs().filter(|j| j.status == Status::Skipped).count(),
            seconds(self.summary.total_duration_ms),
        ));
        for workflow in &self.workflows {
            write_suite(&mut xml, workflow);
        }
        xml.push_str("</testsuites>\n");
        xml
    }
}

fn is_failure(status: Status) -> bool {
    matches!(status, Status::Failed | Status::Cancelled)
}

fn write_suite(xml: &mut String, workflow: &WorkflowResult) {
    let name = escape_attr(&workflow.name);
    xml.push_str(&format!(
        "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\"",
        workflow.jobs.len(),
        workflow
            .jobs
            .iter()
            .filter(|j| is_failure(j.status))
            .count(),
        workflow
            .jobs
            .iter()
            .filter(|j| j.status == Status::Skipped)
            .count(),
        seconds(workflow.duration_ms),
    ));
    if workflow.jobs.is_empty() {
        xml.push_str("/>\n");
        return;
    }
    xml.push_str(">\n");
    for job in &workflow.jobs {
        xml.push_str(&format!(
            "    <testcase classname=\"{name}\" name=\"{}\" time=\"{}\"",
            escape_attr(&job.name),
            seconds(job.duration_ms),
        ));
        match job.status {
            Status::Success => xml.push_str("/>\n"),
            Status::Skipped => {
                let reason = job
                    .error
                    .clone()
                    .or_else(|| job.skip_reason.map(|r| r.as_str().to_owned()))
                    .unwrap_or_else(|| "skipped".to_owned());
                xml.push_str(&format!(
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    escape_attr(&reason)
                ));
            }
            Status::Failed | Status::Cancelled => {
                let (message, body) = failure_text(job);
                xml.push_str(&format!(
                    ">\n      <failure message=\"{}\"",
                    escape_attr(&message)
                ));
                if body.is_empty() {
                    xml.push_str("/>\n");
                } else {
                    xml.push('>');
                    xml.push_str(&escape_text(&body));
                    xml.push_str("</failure>\n");
                }
                xml.push_str("    </testcase>\n");
            }
        }
    }
    xml.push_str("  </testsuite>\n");
}

/// The failure `message` (the job's error, else the first failed step's) and the body: one
/// `<step>: <error>` line per failed or cancelled step.
fn failure_text(job: &JobResult) -> (String, String) {
    let failed: Vec<&StepResult> = job.steps.iter().filter(|s| is_failure(s.status)).collect();
    let message = job
        .error
        .clone()
        .or_else(|| {
            failed
                .first()
                .map(|s| format!("{}: {}", s.name, step_error(s)))
        })
        .unwrap_or_else(|| format!("job {}", job.status.as_str()));
    let body = failed
        .iter()
        .map(|s| {
            let suffix = if s.continued_on_error {
                " (continued on error)"
            } else {
                ""
            };
            format!("{}: {}{suffix}", s.name, step_error(s))
        })
        .collect::<Vec<_>>()
        .join("\n");
    (message, body)
}

fn step_error(step: &StepResult) -> &str {
    step.error
        .as_deref()
        .unwrap_or_else(|| step.status.as_str())
}

/// Milliseconds as seconds with three decimals (`1234` → `1.234`).
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Escapes an attribute value for double quotes. Line breaks and tabs become character
/// references, because XML parsers normalise literal ones in attributes to spaces.
pub fn escape_attr(s: &str) -> String {
    escape(s, true)
}

/// Escapes element text.
pub fn escape_text(s: &str) -> String {
    escape(s, false)
}

fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\'' if attr => out.push_str("&apos;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            // A literal CR is normalised away by parsers, in text too.
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' => out.push(c),
            // Colour codes from step output: drop the whole CSI sequence rather than leave
            // `[31m` behind (ESC itself is not allowed in XML 1.0).
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    while let Some(&p) = chars.peek() {
                        chars.next();
                        if ('\u{40}'..='\u{7e}').contains(&p) {
                            break;
                        }
                    }
                }
            }
            // Characters XML 1.0 cannot represent at all, not even as references.
            c if (c < ' ') || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(name: &str, status: Status, ms: u64) -> StepResult {
        StepResult {
            name: name.into(),
            status,
            duration_ms: ms,
            attempts: None,
            error: None,
            continued_on_error: false,
        }
    }

    fn job(name: &str, status: Status, ms: u64, steps: Vec<StepResult>) -> JobResult {
        JobResult {
            name: name.into(),
            status,
            duration_ms: ms,
            matrix_values: None,
            skip_reason: None,
            error: None,
            rule_results: Vec::new(),
            steps,
        }
    }

    fn spec_example() -> RunResult {
        let mut test = job(
            "test (shard-1)",
            Status::Success,
            10,
            vec![StepResult {
                attempts: Some(1),
                ..step("run-shard", Status::Success, 8)
            }],
        );
        test.matrix_values = Some(json!({"value": "shard-1"}).as_object().unwrap().clone());
        RunResult::new(
            vec![WorkflowResult {
                name: "pipeline".into(),
                status: Status::Success,
                duration_ms: 36,
                rule_results: vec![RuleResult {
                    label: "docs only".into(),
                    passed: true,
                    duration_ms: 0,
                    error: None,
                }],
                jobs: vec![test],
            }],
            36,
        )
    }

    #[test]
    fn json_matches_the_spec_example() {
        let value = serde_json::to_value(spec_example()).unwrap();
        assert_eq!(
            value,
            json!({
              "workflows": [
                { "name": "pipeline", "status": "success", "durationMs": 36,
                  "ruleResults": [ { "label": "docs only", "passed": true, "durationMs": 0 } ],
                  "jobs": [
                    { "name": "test (shard-1)", "status": "success", "durationMs": 10,
                      "matrixValues": { "value": "shard-1" },
                      "steps": [ { "name": "run-shard", "status": "success", "durationMs": 8, "attempts": 1 } ] }
                  ] }
              ],
              "summary": { "totalWorkflows": 1, "passed": 1, "failed": 0, "skipped": 0, "totalDurationMs": 36 }
            })
        );
        // Key order follows the spec.
        let text = spec_example().to_json_pretty();
        let order = [
            "\"name\"",
            "\"status\"",
            "\"durationMs\"",
            "\"ruleResults\"",
            "\"jobs\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.starts_with("{\n  \"workflows\": [\n    {\n      \"name\": \"pipeline\","));
        let back: RunResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec_example());
    }

    #[test]
    fn optional_fields_appear_only_when_set() {
        let mut j = job("deploy", Status::Skipped, 0, vec![]);
        j.skip_reason = Some(SkipReason::FailFast);
        let mut s = step("lint", Status::Failed, 3);
        s.error = Some("exit code 1".into());
        s.continued_on_error = true;
        let mut failed = job("lint", Status::Failed, 5, vec![s]);
        failed.error = Some("boom".into());
        assert_eq!(
            serde_json::to_value(&j).unwrap(),
            json!({"name": "deploy", "status": "skipped", "durationMs": 0,
                   "skipReason": "fail_fast", "steps": []})
        );
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"name": "lint", "status": "failed", "durationMs": 5, "error": "boom",
                   "steps": [{"name": "lint", "status": "failed", "durationMs": 3,
                              "error": "exit code 1", "continuedOnError": true}]})
        );
        for (reason, text) in [
            (SkipReason::JobRules, "job_rules"),
            (SkipReason::WorkflowRules, "workflow_rules"),
            (SkipReason::Upstream, "upstream"),
            (SkipReason::FailFast, "fail_fast"),
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), json!(text));
            assert_eq!(reason.as_str(), text);
        }
    }

    #[test]
    fn summary_and_overall_status() {
        let wf = |status| WorkflowResult {
            name: "w".into(),
            status,
            duration_ms: 1,
            rule_results: vec![],
            jobs: vec![],
        };
        let r = RunResult::new(
            vec![
                wf(Status::Success),
                wf(Status::Failed),
                wf(Status::Cancelled),
                wf(Status::Skipped),
            ],
            9,
        );
        assert_eq!(
            r.summary,
            Summary {
                total_workflows: 4,
                passed: 1,
                failed: 2,
                skipped: 1,
                total_duration_ms: 9
            }
        );
        assert_eq!(r.overall_status(), Status::Failed);
        assert!(!r.succeeded());
        let r = RunResult::new(vec![wf(Status::Success), wf(Status::Cancelled)], 0);
        assert_eq!(r.overall_status(), Status::Cancelled);
        let r = RunResult::new(vec![wf(Status::Skipped), wf(Status::Skipped)], 0);
        assert_eq!(r.overall_status(), Status::Skipped);
        assert!(r.succeeded());
        let r = RunResult::new(vec![wf(Status::Skipped), wf(Status::Success)], 0);
        assert_eq!(r.overall_status(), Status::Success);
        assert_eq!(RunResult::new(vec![], 0).overall_status(), Status::Success);
    }

    fn mixed_run() -> RunResult {
        let mut failing = step("run-shard", Status::Failed, 10);
        failing.error = Some("exit code 1 <stderr> & \"quotes\"".into());
        let mut tolerated = step("lint", Status::Failed, 1);
        tolerated.continued_on_error = true;
        let mut report = job("report", Status::Skipped, 0, vec![]);
        report.skip_reason = Some(SkipReason::Upstream);
        report.error = Some("upstream test (shard-1) failed".into());
        let mut rules = job("rules", Status::Skipped, 0, vec![]);
        rules.skip_reason = Some(SkipReason::JobRules);
        let mut cancelled = job("slow", Status::Cancelled, 1500, vec![]);
        cancelled.steps = vec![step("wait", Status::Cancelled, 1499)];
        RunResult::new(
            vec![
                WorkflowResult {
                    name: "pipe<line>".into(),
                    status: Status::Failed,
                    duration_ms: 31,
                    rule_results: vec![],
                    jobs: vec![
                        job(
                            "build",
                            Status::Success,
                            5,
                            vec![step("compile", Status::Success, 4)],
                        ),
                        job(
                            "test (shard-1)",
                            Status::Failed,
                            11,
                            vec![tolerated, failing],
                        ),
                        report,
                        rules,
                        cancelled,
                    ],
                },
                WorkflowResult {
                    name: "empty".into(),
                    status: Status::Skipped,
                    duration_ms: 0,
                    rule_results: vec![],
                    jobs: vec![],
                },
            ],
            43,
        )
    }

    #[test]
    fn junit_exact_output() {
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="kici-local" tests="5" failures="2" skipped="2" time="0.043">
  <testsuite name="pipe&lt;line&gt;" tests="5" failures="2" skipped="2" time="0.031">
    <testcase classname="pipe&lt;line&gt;" name="build" time="0.005"/>
    <testcase classname="pipe&lt;line&gt;" name="test (shard-1)" time="0.011">
      <failure message="lint: failed">lint: failed (continued on error)
run-shard: exit code 1 &lt;stderr&gt; &amp; "quotes"</failure>
    </testcase>
    <testcase classname="pipe&lt;line&gt;" name="report" time="0.000">
      <skipped message="upstream test (shard-1) failed"/>
    </testcase>
    <testcase classname="pipe&lt;line&gt;" name="rules" time="0.000">
      <skipped message="job_rules"/>
    </testcase>
    <testcase classname="pipe&lt;line&gt;" name="slow" time="1.500">
      <failure message="wait: cancelled">wait: cancelled</failure>
    </testcase>
  </testsuite>
  <testsuite name="empty" tests="0" failures="0" skipped="0" time="0.000"/>
</testsuites>
"#;
        assert_eq!(mixed_run().to_junit_xml(JUNIT_SUITES_NAME), expected);
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape_attr("a&b<c>\"d'\ne\tf\rg"),
            "a&amp;b&lt;c&gt;&quot;d&apos;&#10;e&#9;f&#13;g"
        );
        assert_eq!(
            escape_text("a&b<c>\"'\n\t\r"),
            "a&amp;b&lt;c&gt;\"'\n\t&#13;"
        );
        assert_eq!(escape_text("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(escape_text("nul\0bell\u{7}"), "nul\u{fffd}bell\u{fffd}");
        assert_eq!(escape_text("\u{fffe}ü😀"), "\u{fffd}ü😀");
        assert_eq!(escape_text("trailing esc \u{1b}"), "trailing esc ");
    }

    #[test]
    fn junit_is_well_formed_for_hostile_names() {
        let hostile = "]]> <!-- & \"' \u{1b}[1m\u{0}\n\r\t <![CDATA[ x ]]> </testsuites>";
        let mut j = job(hostile, Status::Failed, 7, vec![]);
        j.error = Some(hostile.into());
        j.steps = vec![StepResult {
            error: Some(hostile.into()),
            ..step(hostile, Status::Failed, 1)
        }];
        let mut skipped = job(hostile, Status::Skipped, 0, vec![]);
        skipped.error = Some(hostile.into());
        let run = RunResult::new(
            vec![WorkflowResult {
                name: hostile.into(),
                status: Status::Failed,
                duration_ms: 7,
                rule_results: vec![],
                jobs: vec![j, skipped],
            }],
            u64::MAX,
        );
        let xml = run.to_junit_xml(hostile);
        let root = parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(root.name, "testsuites");
        assert_eq!(root.children.len(), 1);
        let suite = &root.children[0];
        assert_eq!(suite.attr("tests"), Some("2"));
        let case = &suite.children[0];
        assert_eq!(case.name, "testcase");
        assert_eq!(case.children[0].name, "failure");
        // Attribute values round-trip (minus the characters XML cannot carry).
        let expected = hostile.replace("\u{1b}[1m", "").replace('\0', "\u{fffd}");
        assert_eq!(case.attr("name"), Some(expected.as_str()));
        assert_eq!(case.children[0].attr("message"), Some(expected.as_str()));
        assert_eq!(suite.children[1].children[0].name, "skipped");
        assert!(xml.contains("time=\"18446744073709551.615\""));
    }

    #[test]
    fn well_formedness_checker_rejects_broken_xml() {
        for bad in [
            "<a>",
            "<a></b>",
            "<a x=\"1></a>",
            "<a>&bogus;</a>",
            "<a>x < y</a>",
            "<a x=\"<\"/>",
            "<a/><b/>",
            "<a>\u{1}</a>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse("<?xml version=\"1.0\"?>\n<a x='1' y=\"&amp;&#10;\"><b/>t&lt;</a>\n").is_ok()
        );
    }

    /// A minimal XML parser for the tests: elements, attributes, text, the five entities and
    /// numeric character references, an optional declaration. Errors on anything malformed.
    #[derive(Debug)]
    struct Element {
        name: String,
        attrs: Vec<(String, String)>,
        children: Vec<Element>,
    }

    impl Element {
        fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn parse(xml: &str) -> Result<Element, String> {
        let mut p = Parser {
            s: xml.as_bytes(),
            i: 0,
        };
        if p.s[p.i..].starts_with(b"<?xml") {
            let end = xml.find("?>").ok_or("unterminated declaration")?;
            p.i = end + 2;
        }
        p.ws();
        let root = p.element()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("content after the root element at {}", p.i));
        }
        Ok(root)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }
        fn ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
                self.i += 1;
            }
        }
        fn expect(&mut self, b: u8) -> Result<(), String> {
            if self.peek() == Some(b) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", b as char, self.i))
            }
        }
        fn name(&mut self) -> Result<String, String> {
            let start = self.i;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b':')
            {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!("expected a name at {}", self.i));
            }
            Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
        }
        fn chars_until(&mut self, stop: &[u8], in_attr: bool) -> Result<String, String> {
            let mut out = Vec::new();
            while let Some(c) = self.peek() {
                if stop.contains(&c) {
                    break;
                }
                match c {
                    b'<' => return Err(format!("raw '<' at {}", self.i)),
                    b'&' => {
                        let end = self.s[self.i..]
                            .iter()
                            .position(|&b| b == b';')
                            .ok_or("unterminated reference")?;
                        let ent = std::str::from_utf8(&self.s[self.i + 1..self.i + end])
                            .map_err(|e| e.to_string())?;
                        let ch = match ent {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            _ if ent.starts_with('#') => ent[1..]
                                .parse::<u32>()
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or(format!("bad reference &{ent};"))?,
                            _ => return Err(format!("unknown entity &{ent};")),
                        };
                        let mut buf = [0; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        self.i += end + 1;
                    }
                    c if c < 0x20 && !matches!(c, b'\n' | b'\t' | b'\r') => {
                        return Err(format!("control character at {}", self.i));
                    }
                    b'\n' | b'\t' if in_attr => {
                        out.push(b' ');
                        self.i += 1;
                    }
                    c => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
            String::from_utf8(out).map_err(|e| e.to_string())
        }
        fn element(&mut self) -> Result<Element, String> {
            self.expect(b'<')?;
            let name = self.name()?;
            let mut attrs = Vec::new();
            loop {
                self.ws();
                match self.peek() {
                    Some(b'/') => {
                        self.i += 1;
                        self.expect(b'>')?;
                        return Ok(Element {
                            name,
                            attrs,
                            children: vec![],
                        });
                    }
                    Some(b'>') => {
                        self.i += 1;
                        break;
                    }
                    _ => {
                        let key = self.name()?;
                        self.expect(b'=')?;
                        let quote = self.peek().ok_or("eof")?;
                        if quote != b'"' && quote != b'\'' {
                            return Err(format!("unquoted attribute at {}", self.i));
                        }
                        self.i += 1;
                        let value = self.chars_until(&[quote], true)?;
                        self.expect(quote)?;
                        attrs.push((key, value));
                    }
                }
            }
            let mut children = Vec::new();
            loop {
                self.chars_until(b"<", false)?;
                if self.peek().is_none() {
                    return Err(format!("unclosed <{name}>"));
                }
                if self.s[self.i..].starts_with(b"</") {
                    self.i += 2;
                    let close = self.name()?;
                    if close != name {
                        return Err(format!("</{close}> closes <{name}>"));
                    }
                    self.ws();
                    self.expect(b'>')?;
                    return Ok(Element {
                        name,
                        attrs,
                        children,
                    });
                }
                children.push(self.element()?);
            }
        }
    }
}
