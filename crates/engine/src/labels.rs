//! Agent label matching (`orchestrator.md` §9.2) and the reserved `kici:` namespace
//! (`protocol.md` §2, rule 4, and §9.1).
//!
//! One function decides whether an agent may take a job; the agent registry, the queue's
//! SQL pre-filter (which evaluates the exact-label part in SQL and calls this for the
//! regex part) and later the scalers all use it, so they can never disagree.
//! Labels compare case-sensitively (ours; the reference's scaler did not).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::lock::LabelMatcher;
use crate::trigger::{EcmaRegex, RegexError};

/// The reserved label prefix.
pub const RESERVED_PREFIX: &str = "kici:";

/// The label every container job implicitly requires (§9.2 rule 6, ours).
pub const CONTAINER_CAPABILITY: &str = "kici:capability:container";

/// A regex label matcher as stored on a queue row (`dispatch_queue.patterns`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelPattern {
    pub source: String,
    pub flags: String,
}

/// The regex half of a job's requirements, as stored in `dispatch_queue.patterns` (JSON).
/// The exact half lives in `dispatch_queue_labels` so SQL can pre-filter on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelPatterns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<LabelPattern>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<LabelPattern>,
}

impl LabelPatterns {
    pub fn is_empty(&self) -> bool {
        self.require.is_empty() && self.exclude.is_empty()
    }
}

/// What a job asks of an agent: the job's `runsOn` and `excludeLabels`, split into exact
/// labels and regexes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLabels {
    pub require: Vec<String>,
    pub exclude: Vec<String>,
    pub patterns: LabelPatterns,
}

impl JobLabels {
    /// From the lock's matchers; `container` adds the container capability (§9.2 rule 6).
    pub fn from_matchers(
        runs_on: &[LabelMatcher],
        exclude: &[LabelMatcher],
        container: bool,
    ) -> JobLabels {
        let mut labels = JobLabels::default();
        for matcher in runs_on {
            match matcher {
                LabelMatcher::Exact { value } => push_unique(&mut labels.require, value),
                LabelMatcher::Regex { source, flags } => {
                    labels.patterns.require.push(LabelPattern {
                        source: source.clone(),
                        flags: flags.clone(),
                    })
                }
            }
        }
        for matcher in exclude {
            match matcher {
                LabelMatcher::Exact { value } => push_unique(&mut labels.exclude, value),
                LabelMatcher::Regex { source, flags } => {
                    labels.patterns.exclude.push(LabelPattern {
                        source: source.clone(),
                        flags: flags.clone(),
                    })
                }
            }
        }
        if container {
            push_unique(&mut labels.require, CONTAINER_CAPABILITY);
        }
        labels
    }

    /// Compiles the regexes once, for repeated matching.
    pub fn compile(&self) -> Result<CompiledJobLabels, RegexError> {
        Ok(CompiledJobLabels {
            require: self.require.clone(),
            exclude: self.exclude.clone(),
            patterns: CompiledPatterns::new(&self.patterns)?,
        })
    }
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|existing| existing == value) {
        list.push(value.to_string());
    }
}

/// [`LabelPatterns`] with the regexes compiled.
#[derive(Debug, Clone)]
pub struct CompiledPatterns {
    require: Vec<EcmaRegex>,
    exclude: Vec<EcmaRegex>,
}

impl CompiledPatterns {
    pub fn new(patterns: &LabelPatterns) -> Result<CompiledPatterns, RegexError> {
        let compile = |list: &[LabelPattern]| {
            list.iter()
                .map(|p| EcmaRegex::new(&p.source, &p.flags))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(CompiledPatterns {
            require: compile(&patterns.require)?,
            exclude: compile(&patterns.exclude)?,
        })
    }

    /// Rules 2 and 4 of §9.2: every required regex matches some agent label, no exclude
    /// regex matches any.
    pub fn matches(&self, agent_labels: &[String]) -> bool {
        self.require
            .iter()
            .all(|re| agent_labels.iter().any(|label| re.test(label)))
            && !self
                .exclude
                .iter()
                .any(|re| agent_labels.iter().any(|label| re.test(label)))
    }
}

#[derive(Debug, Clone)]
pub struct CompiledJobLabels {
    require: Vec<String>,
    exclude: Vec<String>,
    patterns: CompiledPatterns,
}

/// What the matcher needs to know about an agent.
#[derive(Debug, Clone, Copy)]
pub struct AgentLabels<'a> {
    /// The agent's effective labels.
    pub labels: &'a [String],
    /// The taints: labels from the agent's token or scaler that every job it takes must
    /// require explicitly.
    pub mandatory: &'a [String],
}

/// §9.2: whether an agent may take a job.
pub fn agent_matches(job: &CompiledJobLabels, agent: AgentLabels<'_>) -> bool {
    exact_rules_match(&job.require, &job.exclude, agent) && job.patterns.matches(agent.labels)
}

/// Rules 1, 3 and 5 of §9.2 (the part the queue evaluates in SQL).
pub fn exact_rules_match(require: &[String], exclude: &[String], agent: AgentLabels<'_>) -> bool {
    let has = |label: &String| agent.labels.contains(label);
    require.iter().all(has)
        && !exclude.iter().any(has)
        && agent.mandatory.iter().all(|taint| require.contains(taint))
}

/// Whether a label is in the reserved namespace (case-insensitive, so `KICI:x` cannot
/// sneak past).
pub fn is_reserved(label: &str) -> bool {
    label
        .get(..RESERVED_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(RESERVED_PREFIX))
}

/// Reserved labels an agent may report about itself (`protocol.md` §2 rule 4, §9.1).
pub fn is_self_reported(label: &str) -> bool {
    ["kici:os:", "kici:arch:", "kici:host:", "kici:role:"]
        .iter()
        .any(|prefix| label.starts_with(prefix))
        || label == CONTAINER_CAPABILITY
}

/// `protocol.md` §2 rule 4: the advertised reserved labels that are neither self-reported,
/// nor granted by the token's label list, nor allowed by an ephemeral (scaler) token.
/// Empty means the registration passes this rule.
pub fn disallowed_reserved_labels(
    advertised: &[String],
    token_labels: Option<&[String]>,
    ephemeral_token: bool,
) -> Vec<String> {
    if ephemeral_token {
        return Vec::new();
    }
    let granted: BTreeSet<&str> = token_labels
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    advertised
        .iter()
        .filter(|label| {
            is_reserved(label) && !is_self_reported(label) && !granted.contains(label.as_str())
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn exact(value: &str) -> LabelMatcher {
        LabelMatcher::Exact {
            value: value.to_string(),
        }
    }

    fn regex(source: &str, flags: &str) -> LabelMatcher {
        LabelMatcher::Regex {
            source: source.to_string(),
            flags: flags.to_string(),
        }
    }

    fn matches(job: &JobLabels, labels: &[&str], mandatory: &[&str]) -> bool {
        let labels = strings(labels);
        let mandatory = strings(mandatory);
        agent_matches(
            &job.compile().unwrap(),
            AgentLabels {
                labels: &labels,
                mandatory: &mandatory,
            },
        )
    }

    #[test]
    fn empty_runs_on_matches_any_untainted_agent() {
        let job = JobLabels::default();
        assert!(matches(&job, &[], &[]));
        assert!(matches(&job, &["linux"], &[]));
        assert!(!matches(&job, &["gpu"], &["gpu"]));
    }

    #[test]
    fn exact_labels_are_all_required_and_case_sensitive() {
        let job = JobLabels::from_matchers(&[exact("linux"), exact("large")], &[], false);
        assert!(matches(&job, &["large", "linux", "x"], &[]));
        assert!(!matches(&job, &["linux"], &[]));
        assert!(!matches(&job, &["Linux", "large"], &[]));
    }

    #[test]
    fn regex_requirements_need_some_matching_label() {
        let job = JobLabels::from_matchers(&[regex("^pool-(a|b)$", "")], &[], false);
        assert!(matches(&job, &["pool-b"], &[]));
        assert!(!matches(&job, &["pool-c"], &[]));
        let insensitive = JobLabels::from_matchers(&[regex("^POOL", "i")], &[], false);
        assert!(matches(&insensitive, &["pool-x"], &[]));
    }

    #[test]
    fn excludes_exact_and_regex() {
        let job = JobLabels::from_matchers(&[], &[exact("slow"), regex("^arm", "")], false);
        assert!(matches(&job, &["fast", "x64"], &[]));
        assert!(!matches(&job, &["slow"], &[]));
        assert!(!matches(&job, &["arm64"], &[]));
    }

    #[test]
    fn taints_must_be_required_exactly() {
        let gpu = JobLabels::from_matchers(&[exact("gpu")], &[], false);
        let any_gpu = JobLabels::from_matchers(&[regex("gpu", "")], &[], false);
        assert!(matches(&gpu, &["gpu"], &["gpu"]));
        // A regex that happens to match the taint does not opt in.
        assert!(!matches(&any_gpu, &["gpu"], &["gpu"]));
        assert!(!matches(&JobLabels::default(), &["gpu"], &["gpu"]));
    }

    #[test]
    fn container_jobs_require_the_container_capability() {
        let job = JobLabels::from_matchers(&[exact("linux")], &[], true);
        assert!(!matches(&job, &["linux"], &[]));
        assert!(matches(&job, &["linux", CONTAINER_CAPABILITY], &[]));
    }

    #[test]
    fn duplicate_exact_labels_are_stored_once() {
        let job = JobLabels::from_matchers(&[exact("a"), exact("a")], &[], false);
        assert_eq!(job.require, strings(&["a"]));
    }

    #[test]
    fn patterns_serialise_without_empty_lists() {
        let job = JobLabels::from_matchers(&[regex("^a$", "i")], &[], false);
        assert_eq!(
            serde_json::to_string(&job.patterns).unwrap(),
            r#"{"require":[{"source":"^a$","flags":"i"}]}"#
        );
        assert!(JobLabels::default().patterns.is_empty());
    }

    #[test]
    fn invalid_regex_is_an_error_not_a_panic() {
        let job = JobLabels::from_matchers(&[regex("(", "")], &[], false);
        assert!(job.compile().is_err());
    }

    #[test]
    fn reserved_namespace() {
        assert!(is_reserved("kici:os:linux"));
        assert!(is_reserved("KICI:privileged:root"));
        assert!(!is_reserved("kici"));
        assert!(!is_reserved("linux"));
        assert!(!is_reserved("ki"));
        let advertised = strings(&[
            "linux",
            "kici:os:linux",
            "kici:host:b1",
            "kici:capability:container",
            "kici:privileged:root",
            "Kici:scaler:x",
            "kici:agent:docker",
        ]);
        assert_eq!(
            disallowed_reserved_labels(&advertised, None, false),
            strings(&["kici:privileged:root", "Kici:scaler:x", "kici:agent:docker"])
        );
        let granted = strings(&["kici:privileged:root"]);
        assert_eq!(
            disallowed_reserved_labels(&advertised, Some(&granted), false),
            strings(&["Kici:scaler:x", "kici:agent:docker"])
        );
        assert!(disallowed_reserved_labels(&advertised, None, true).is_empty());
    }
}
