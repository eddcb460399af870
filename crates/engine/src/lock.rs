//! The typed lock file, `.kici/kici.lock.json` schema 29 (`lockfile.md` §2–§7).
//!
//! Passive data with public fields. Struct field order is the lock's emission order and
//! optional fields are omitted when absent, so `serde_json::to_value` followed by
//! [`crate::json::to_string_pretty`] reproduces a reference lock byte for byte. Unknown keys
//! are ignored when reading (`lockfile.md` §11).
//!
//! Flags the reference only ever emits as `true` (`hasOnCancel`, …) are plain `bool`s that
//! are omitted when `false`; options the author may set to `false` (`continueOnError`,
//! `checkout`, `failFast`, …) are `Option<bool>` so an explicit `false` survives a round trip.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::json;
use crate::trigger::LockTrigger;

/// `schemaVersion` of the lock file.
pub const SCHEMA_VERSION: u32 = 29;
/// Per-workflow `compileSchemaVersion`; also the prefix of the workflow content hash.
pub const COMPILE_SCHEMA_VERSION: u32 = 5;

fn is_false(b: &bool) -> bool {
    !*b
}

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockFile {
    pub schema_version: u32,
    /// A copy of the first workflow's `source`.
    pub source: LockSource,
    /// [`lock_content_hash`] of this lock.
    pub content_hash: String,
    /// [later] dependency-cache key for npm dependencies in `.kici/` (§7.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockfile_hash: Option<String>,
    pub workflows: Vec<LockWorkflow>,
}

/// Where a workflow (or the first workflow of a lock) comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSource {
    /// Git-root-relative POSIX path of the entry file.
    pub file: String,
    /// `#default`, `#default[<i>]` or `#<exportName>`.
    pub export: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockWorkflow {
    pub name: String,
    pub source: LockSource,
    /// [`workflow_content_hash`] of the entry file and `resolvedHashFiles`.
    pub content_hash: String,
    pub compile_schema_version: u32,
    pub triggers: Vec<LockTrigger>,
    pub jobs: Vec<LockJobEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<LockRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The author's globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_files: Option<Vec<String>>,
    /// Sorted files that feed the content hash (globs matches plus the import closure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_hash_files: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registries: Option<Vec<LockRegistry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_cancel: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_cleanup: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_success: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_failure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<LockWorkflowConcurrency>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<LockApproval>,
    /// Allowed by the reference's type, never emitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Vec<String>>,
}

/// An npm registry for `.kici/` dependencies [later runtime].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRegistry {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub token_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_auth: Option<bool>,
}

/// Workflow-level `concurrency`; the group itself is a function evaluated at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockWorkflowConcurrency {
    pub has_group: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_in_progress: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// An element of a workflow's `jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "_type")]
pub enum LockJobEntry {
    #[serde(rename = "static")]
    Static(Box<LockJob>),
    #[serde(rename = "dynamic")]
    Dynamic(LockDynamicJobFn),
}

impl LockJobEntry {
    /// The static job, if this entry is one.
    pub fn as_static(&self) -> Option<&LockJob> {
        match self {
            LockJobEntry::Static(job) => Some(job),
            LockJobEntry::Dynamic(_) => None,
        }
    }
}

/// `_type: "static"` (§5.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockJob {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<Vec<LabelMatcher>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_labels: Option<Vec<LabelMatcher>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on_pick: Option<RunsOnPick>,
    /// [later runtime]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on_all: Option<LockRunsOnAll>,
    /// [later runtime]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unreachable: Option<String>,
    /// [later runtime]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_uninitialized: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
    #[serde(default)]
    pub needs: Vec<LockNeed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on_groups: Option<Vec<String>>,
    #[serde(default)]
    pub steps: Vec<LockStepEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<LockMatrix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Map<String, Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<Map<String, Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<LockRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Vec<CacheSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<LockContainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<LockEnvironment>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dynamic_env: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<LockEnv>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dynamic_concurrency_group: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_group: Option<StringOrInline>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_cancel: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_cleanup: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_success: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_failure: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_before_step: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_after_step: bool,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<u64>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// As given by the author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
    /// The SDK value verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<LockApproval>,
}

/// `_type: "dynamic"` (§5.2): a job generator evaluated at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockDynamicJobFn {
    pub source: LockJobSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<LockNeed>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_aware: Option<bool>,
}

/// `{file, index}`: `index` is the position in `workflow.jobs` (dynamic jobs) or the rule
/// index scheme of `sdk.md` §7 (rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockJobSource {
    pub file: String,
    pub index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunsOnPick {
    Deterministic,
    Any,
}

/// Agent label selector (§5.3). Globs are stored as their picomatch regex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LabelMatcher {
    Exact {
        value: String,
    },
    /// `flags` is always present, `""` when none.
    Regex {
        source: String,
        flags: String,
    },
}

/// `runsOnAll` [later runtime].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRunsOnAll {
    pub include: Vec<Vec<LabelMatcher>>,
    pub exclude: Vec<LabelMatcher>,
}

/// An element of `needs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LockNeed {
    /// `Job` object or string form: waits for success.
    Name(String),
    /// `{group, runOn}`: a dynamic job group.
    Group {
        group: String,
        #[serde(rename = "runOn")]
        run_on: Vec<String>,
    },
    /// `{name, runOn}`: the object form, with the statuses that release the dependent.
    Job {
        name: String,
        #[serde(rename = "runOn")]
        run_on: Vec<String>,
    },
}

impl LockNeed {
    /// The DAG node this need points at: the job name, or `__group:<name>` for groups
    /// (the synthetic node name of the reference's validator).
    pub fn dag_node(&self) -> String {
        match self {
            LockNeed::Name(name) | LockNeed::Job { name, .. } => name.clone(),
            LockNeed::Group { group, .. } => format!("__group:{group}"),
        }
    }
}

/// `matrix` of a static job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "_type")]
pub enum LockMatrix {
    /// Stored unexpanded, in the author's key order.
    #[serde(rename = "static")]
    Static { values: StaticMatrixValues },
    #[serde(rename = "dynamic")]
    Dynamic { source: LockMatrixSource },
}

/// `string[]` or `Record<string, string[]>`. Values are strings when written by the SDK,
/// but a lock may carry any JSON value (they are compared with `===`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StaticMatrixValues {
    List(Vec<Value>),
    /// Dimension name → values (each should be an array).
    Dimensions(Map<String, Value>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockMatrixSource {
    pub file: String,
    pub job_name: String,
}

/// `_type` of rules: always `"dynamic"` (the code runs from the `.ts` source).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleType {
    #[default]
    #[serde(rename = "dynamic")]
    Dynamic,
}

/// `{_type: "dynamic", label, source: {file, index}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRule {
    #[serde(rename = "_type")]
    pub rule_type: RuleType,
    pub label: String,
    pub source: LockJobSource,
}

/// `_type` of inline values: always `"inline"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InlineType {
    #[default]
    #[serde(rename = "inline")]
    Inline,
}

/// A pure JS function stored as source text (§6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInlineValue {
    #[serde(rename = "_type")]
    pub value_type: InlineType,
    pub expression: String,
}

impl LockInlineValue {
    pub fn new(expression: impl Into<String>) -> Self {
        LockInlineValue {
            value_type: InlineType::Inline,
            expression: expression.into(),
        }
    }
}

/// A static string or the inline form of a pure function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StringOrInline {
    Inline(LockInlineValue),
    Static(String),
}

/// Job `env`: the inline form must be tried first, since `{_type, expression}` is also a
/// valid string map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LockEnv {
    Inline(LockInlineValue),
    Static(Map<String, Value>),
}

/// An element of `environments`: `{value: "prod", dynamic: false}`, `{value: <inline>,
/// dynamic: true}` or, for an impure function, `{value: "", dynamic: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEnvironment {
    pub value: StringOrInline,
    pub dynamic: bool,
}

/// `container`: an image name or `{image, env?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LockContainer {
    Image(String),
    Spec {
        image: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<Map<String, Value>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    pub key: String,
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_keys: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockApproval {
    pub clauses: Vec<ApprovalClause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    pub when: ApprovalWhen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApprovalClause {
    Team { team: String },
    User { user: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalWhen {
    Always,
    Drift,
}

/// A step entry: a step, or a parallel group (`kind: "parallel"`).
#[derive(Debug, Clone, PartialEq)]
pub enum LockStepEntry {
    Step(LockStep),
    Parallel(LockParallelStep),
}

impl LockStepEntry {
    pub fn name(&self) -> &str {
        match self {
            LockStepEntry::Step(s) => &s.name,
            LockStepEntry::Parallel(p) => &p.name,
        }
    }
}

impl Serialize for LockStepEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LockStepEntry::Step(step) => step.serialize(serializer),
            LockStepEntry::Parallel(group) => group.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for LockStepEntry {
    // Dispatch on `kind` explicitly: an untagged enum would hide the real field error.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        let is_parallel = raw.get("kind").and_then(Value::as_str) == Some("parallel");
        if is_parallel {
            serde_json::from_value(raw)
                .map(LockStepEntry::Parallel)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_value(raw)
                .map(LockStepEntry::Step)
                .map_err(serde::de::Error::custom)
        }
    }
}

/// A sequential step (§5.4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockStep {
    pub name: String,
    /// The step declares a non-empty `outputs` schema map.
    #[serde(default)]
    pub has_outputs: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on_error: Option<bool>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<LockRetry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Vec<CacheSpec>>,
    /// Absent for bare-function steps and the `run` shorthand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_location: Option<SourceLocation>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_rules: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<LockRule>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_on_cancel: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_cleanup: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_check: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_when_in_sync: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<LockApproval>,
}

/// The `kind` marker of a parallel group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParallelKind {
    #[default]
    #[serde(rename = "parallel")]
    Parallel,
}

/// `{kind: "parallel", name, failFast, maxParallel?, children}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockParallelStep {
    pub kind: ParallelKind,
    pub name: String,
    pub fail_fast: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u64>,
    pub children: Vec<LockStep>,
}

/// Normalised retry policy; all four keys are always present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRetry {
    pub max_attempts: u64,
    pub delay_ms: u64,
    pub backoff: Backoff,
    pub max_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Fixed,
    Exponential,
}

/// Call site of `step()`: 1-based line and column of the callee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLocation {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

/// §7.1: `sha256("5:" + EOL(entryText) [+ "\0" + EOL(assetDigest)])` in lowercase hex.
///
/// `assets` are the `resolvedHashFiles` with their contents (`None` when the file could not
/// be read, which contributes only its name). They are sorted by byte order here, so callers
/// may pass them in any order.
pub fn workflow_content_hash(entry_text: &str, assets: &[(String, Option<String>)]) -> String {
    let mut sorted: Vec<&(String, Option<String>)> = assets.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut digest = String::new();
    for (file, content) in sorted {
        digest.push_str(file);
        digest.push('\n');
        if let Some(content) = content {
            digest.push_str(content);
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(format!("{COMPILE_SCHEMA_VERSION}:").as_bytes());
    hasher.update(normalize_eol(entry_text).as_bytes());
    if !digest.is_empty() {
        hasher.update(b"\0");
        hasher.update(normalize_eol(&digest).as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// `\r\n`, then lone `\r`, become `\n`.
fn normalize_eol(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// §7.3: `sha256(JSON.stringify({schemaVersion, source, workflows}))`.
pub fn lock_content_hash(lock: &LockFile) -> Result<String, LockError> {
    let mut covered = Map::new();
    covered.insert("schemaVersion".into(), Value::from(lock.schema_version));
    covered.insert("source".into(), serde_json::to_value(&lock.source)?);
    covered.insert("workflows".into(), serde_json::to_value(&lock.workflows)?);
    let text = json::to_string_compact(&Value::Object(covered));
    Ok(hex::encode(Sha256::digest(text.as_bytes())))
}

impl LockFile {
    /// Builds a lock from workflows in discovery order, computing `source` and `contentHash`.
    pub fn new(workflows: Vec<LockWorkflow>) -> Result<Self, LockError> {
        let source = workflows
            .first()
            .map(|w| w.source.clone())
            .unwrap_or_else(|| LockSource {
                file: ".kici/workflows".into(),
                export: "#default".into(),
            });
        let mut lock = LockFile {
            schema_version: SCHEMA_VERSION,
            source,
            content_hash: String::new(),
            lockfile_hash: None,
            workflows,
        };
        lock.content_hash = lock_content_hash(&lock)?;
        Ok(lock)
    }

    /// Parses lock JSON text.
    pub fn from_json(text: &str) -> Result<Self, LockError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The file's exact bytes: `JSON.stringify(lock, null, 2)`, no trailing newline.
    pub fn to_json_pretty(&self) -> Result<String, LockError> {
        Ok(json::to_string_pretty(&serde_json::to_value(self)?))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("invalid lock JSON: {0}")]
    Json(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_vectors() {
        assert_eq!(
            workflow_content_hash("export default 1;\r\nconst a = 2;\r", &[]),
            "d5e05b33edc857bf142d001848318b7041fcb277e189c5d058a72936dca91308"
        );
        let assets = vec![
            (
                "lib/util.ts".to_string(),
                Some("export const x = 1;\n".to_string()),
            ),
            ("config.json".to_string(), Some("{\"a\":1}\n".to_string())),
        ];
        assert_eq!(
            workflow_content_hash("export default 1;\r\nconst a = 2;\r", &assets),
            "a97f4df4c8ad9665fbf3057315155c7ae75d3cd6e74b94c03499b9901350a213"
        );
    }

    #[test]
    fn lockfile_hash_vector_formula() {
        // §7.4: the [later] lockfileHash is a plain sha256 over "<pm>\n" + text.
        let digest = hex::encode(Sha256::digest(b"pnpm\nlockfileVersion: 9.0\n"));
        assert_eq!(
            digest,
            "e73e60e18a48b0fa64b5a95497467efa1b96f1ffe3db1e673c049805cc958eb8"
        );
    }

    #[test]
    fn step_entries_dispatch_on_kind() {
        let entry: LockStepEntry = serde_json::from_str(
            r#"{"kind":"parallel","name":"checks","failFast":true,"maxParallel":2,
                "children":[{"name":"step-1","hasOutputs":false}]}"#,
        )
        .unwrap();
        assert!(matches!(entry, LockStepEntry::Parallel(ref p) if p.children.len() == 1));
        let entry: LockStepEntry =
            serde_json::from_str(r#"{"name":"a","hasOutputs":true,"continueOnError":false}"#)
                .unwrap();
        assert!(matches!(entry, LockStepEntry::Step(ref s) if s.continue_on_error == Some(false)));
    }

    #[test]
    fn inline_env_is_not_mistaken_for_a_string_map() {
        let env: LockEnv =
            serde_json::from_str(r#"{"_type":"inline","expression":"e=>({A:\"1\"})"}"#).unwrap();
        assert!(matches!(env, LockEnv::Inline(_)));
        let env: LockEnv = serde_json::from_str(r#"{"A":"1"}"#).unwrap();
        assert!(matches!(env, LockEnv::Static(_)));
    }
}
