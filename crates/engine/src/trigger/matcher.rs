//! The matching algorithm of `triggers.md` §3.
//!
//! Check names, pattern renderings and values follow the reference's decision traces (the
//! conformance corpus), so `preview` output can be compared line by line.

use serde_json::{Map, Value};

use super::lock_trigger::Interpreted;
use super::patterns::{PatternList, compile_glob, compile_regex, match_paths};
use super::{
    ActionsTrigger, Check, CommentTrigger, Decision, GenericWebhookTrigger, JobCompleteTrigger,
    KiciEventTrigger, LifecycleTrigger, LockBranchPattern, LockTrigger, MatchError, PrTrigger,
    PushTrigger, RefTrigger, ReviewTrigger, ScheduleTrigger, StatusTrigger, TagTrigger,
    WebhookTrigger, WorkflowCompleteTrigger, WorkflowRunTrigger,
};
use crate::event::Event;
use crate::jsonpath;

/// Matches one workflow's triggers against an event: the first trigger whose checks all pass
/// wins. The returned decision has an empty `workflow_name`.
pub fn match_workflow(triggers: &[LockTrigger], event: &Event) -> Result<Decision, MatchError> {
    let mut trace = Trace {
        checks: Vec::new(),
        event,
    };
    let mut matched_trigger = None;
    for (index, trigger) in triggers.iter().enumerate() {
        let first_check = trace.checks.len();
        if trace.evaluate(trigger)? {
            matched_trigger = Some(index);
            // The reference reports only the winning trigger's checks for a match, and every
            // check tried when nothing matched.
            trace.checks.drain(..first_check);
            break;
        }
    }
    let summary = match matched_trigger {
        Some(i) => format!("Matched trigger {} ({})", i + 1, triggers[i].trigger_type()),
        None if triggers.is_empty() => "No triggers defined".to_string(),
        None => "No triggers matched".to_string(),
    };
    Ok(Decision {
        workflow_name: String::new(),
        matched: matched_trigger.is_some(),
        matched_trigger,
        checks: trace.checks,
        summary,
        error: None,
        inputs_error: None,
    })
}

/// Matches every workflow (given as `(name, triggers)` in lock order) independently. A
/// workflow whose matching fails is reported as not matched with `error` set, so one broken
/// workflow never hides the others.
pub fn match_all_workflows<'a, I>(workflows: I, event: &Event) -> Vec<Decision>
where
    I: IntoIterator<Item = (&'a str, &'a [LockTrigger])>,
{
    workflows
        .into_iter()
        .map(|(name, triggers)| {
            let mut decision = match_workflow(triggers, event).unwrap_or_else(|err| Decision {
                workflow_name: String::new(),
                matched: false,
                matched_trigger: None,
                checks: Vec::new(),
                summary: format!("Error: {err}"),
                error: Some(err.to_string()),
                inputs_error: None,
            });
            decision.workflow_name = name.to_string();
            decision
        })
        .collect()
}

/// JavaScript's `String(value)` for the values a payload field can hold, used where the
/// reference handed a non-string to `RegExp.prototype.test`.
fn js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => crate::json::json_number_to_js_string(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                if v.is_null() {
                    String::new()
                } else {
                    js_string(v)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_string(),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
    .to_string()
}

/// The checks executed so far for one workflow, and the event they run against.
struct Trace<'e> {
    checks: Vec<Check>,
    event: &'e Event,
}

impl<'e> Trace<'e> {
    fn record(&mut self, check: &str, pattern: String, value: Option<Value>, passed: bool) -> bool {
        self.checks.push(Check {
            check: check.to_string(),
            pattern,
            value,
            passed,
            reason: None,
        });
        passed
    }

    fn record_with_reason(
        &mut self,
        check: &str,
        pattern: String,
        value: Option<Value>,
        passed: bool,
        reason: Option<&str>,
    ) -> bool {
        self.checks.push(Check {
            check: check.to_string(),
            pattern,
            value,
            passed,
            reason: reason.map(str::to_string),
        });
        passed
    }

    fn payload(&self) -> Result<&'e Map<String, Value>, MatchError> {
        let event: &'e Event = self.event;
        match &event.payload {
            Value::Object(map) => Ok(map),
            _ => Err(MatchError::MissingPayload),
        }
    }

    /// A payload field by path; `None` when any step is missing or not an object.
    fn payload_field(&self, path: &[&str]) -> Result<Option<&'e Value>, MatchError> {
        let mut node = self.payload()?.get(path[0]);
        for key in &path[1..] {
            node = node.and_then(|n| n.as_object()).and_then(|m| m.get(*key));
        }
        Ok(node)
    }

    /// `payload.a.b ?? ''` as the reference read it.
    fn payload_or_empty(&self, path: &[&str]) -> Result<Value, MatchError> {
        Ok(match self.payload_field(path)? {
            None | Some(Value::Null) => Value::String(String::new()),
            Some(v) => v.clone(),
        })
    }

    fn event_type(&mut self, expected: &str) -> bool {
        let actual = self.event.event_type.clone();
        let passed = actual == expected;
        self.record(
            "event type",
            expected.to_string(),
            Some(Value::String(actual)),
            passed,
        )
    }

    /// Exact membership of a string in a list; an empty list is no filter.
    fn membership(&mut self, check: &str, allowed: &[String], value: Value) -> bool {
        if allowed.is_empty() {
            return true;
        }
        let passed = value
            .as_str()
            .is_some_and(|v| allowed.iter().any(|a| a == v));
        self.record(check, allowed.join("|"), Some(value), passed)
    }

    fn action(&mut self, check: &str, allowed: &[String]) -> bool {
        let action = Value::String(self.event.action_or_empty().to_string());
        self.membership(check, allowed, action)
    }

    /// Exact equality with an expected string.
    fn equals(&mut self, check: &str, expected: &str, value: Value) -> bool {
        let passed = value.as_str() == Some(expected);
        self.record(check, expected.to_string(), Some(value), passed)
    }

    /// A glob/regex pattern list against a value that should be a string. A missing value
    /// fails the check (documented non-match where the reference threw); a non-string value is
    /// an error because globs cannot test it.
    fn pattern_list(
        &mut self,
        check: &str,
        patterns: &[LockBranchPattern],
        value: Option<&Value>,
        field: &str,
    ) -> Result<bool, MatchError> {
        if patterns.is_empty() {
            return Ok(true);
        }
        let rendered = patterns
            .iter()
            .map(LockBranchPattern::pattern)
            .collect::<Vec<_>>()
            .join("|");
        let list = PatternList::from_lock(patterns)?;
        self.string_against_list(check, rendered, &list, value, field)
    }

    fn string_against_list(
        &mut self,
        check: &str,
        rendered: String,
        list: &PatternList,
        value: Option<&Value>,
        field: &str,
    ) -> Result<bool, MatchError> {
        match value {
            None => Ok(self.record(check, rendered, None, false)),
            Some(Value::String(s)) => {
                let passed = list.matches(s);
                Ok(self.record(check, rendered, Some(Value::String(s.clone())), passed))
            }
            Some(other) => Err(MatchError::NotAString {
                field: field.to_string(),
                found: describe(other),
            }),
        }
    }

    fn target_branch(&self) -> Option<Value> {
        self.event.target_branch.clone().map(Value::String)
    }

    fn repos(&mut self, repos: &[LockBranchPattern]) -> Result<bool, MatchError> {
        if repos.is_empty() {
            return Ok(true);
        }
        let Some(repo) = self.event.source_repo.clone() else {
            return Ok(self.record(
                "repo",
                "required".to_string(),
                Some(Value::from("(missing)")),
                false,
            ));
        };
        let list = PatternList::from_lock(repos)?;
        let passed = list.matches(&repo);
        Ok(self.record(
            "repo",
            list.render_compact(),
            Some(Value::String(repo)),
            passed,
        ))
    }

    fn paths(&mut self, paths: &[String]) -> Result<bool, MatchError> {
        if paths.is_empty() {
            return Ok(true);
        }
        let list = PatternList::from_globs(paths)?;
        let files = self.event.changed_files.as_deref();
        let shown = format!("[{}]", files.unwrap_or_default().join(", "));
        let outcome = match_paths(&list, files, self.event.changed_files_truncated);
        Ok(self.record_with_reason(
            "paths",
            list.render_spaced(),
            Some(Value::String(shown)),
            outcome.passed,
            outcome.reason,
        ))
    }

    fn json_filter(
        &mut self,
        check: &str,
        filter: Option<&Map<String, Value>>,
        root: Option<&Value>,
        negate: bool,
    ) -> Result<bool, MatchError> {
        let Some(filter) = filter.filter(|f| !f.is_empty()) else {
            return Ok(true);
        };
        let to_error = |e: jsonpath::JsonPathError| MatchError::InvalidJsonPath {
            path: e.path,
            message: e.message,
        };
        let passed = if negate {
            !jsonpath::matches_any(filter, root).map_err(to_error)?
        } else {
            jsonpath::matches_all(filter, root).map_err(to_error)?
        };
        let rendered = crate::json::to_string_compact(&Value::Object(filter.clone()));
        Ok(self.record(check, rendered, Some(Value::from("(payload)")), passed))
    }

    /// Runs one trigger's checks in order, stopping at the first failure.
    fn evaluate(&mut self, trigger: &LockTrigger) -> Result<bool, MatchError> {
        let interpreted = trigger.interpret();
        let trigger = match &interpreted {
            Interpreted::Typed(t) => t,
            Interpreted::Lenient(t) => t.as_ref(),
            Interpreted::UnknownType => return Ok(false),
            Interpreted::Malformed(message) => {
                return Err(MatchError::InvalidTrigger {
                    trigger_type: trigger.trigger_type().to_string(),
                    message: message.clone(),
                });
            }
        };
        match trigger {
            LockTrigger::Push(t) => self.push(t),
            LockTrigger::Pr(t) => self.pr(t),
            LockTrigger::Tag(t) => self.tag(t),
            LockTrigger::Comment(t) => self.comment(t),
            LockTrigger::Review(t) => self.review(t),
            LockTrigger::ReviewComment(t) => self.actions_only("review_comment", t),
            LockTrigger::Release(t) => self.actions_only("release", t),
            LockTrigger::Star(t) => self.actions_only("star", t),
            LockTrigger::Watch(t) => self.actions_only("watch", t),
            LockTrigger::Dispatch(t) => Ok(self.event_type("dispatch")
                && self.action("dispatch type", &t.types)
                && self.repos(&t.repos)?),
            LockTrigger::Create(t) => self.reference("create", t),
            LockTrigger::Delete(t) => self.reference("delete", t),
            LockTrigger::Status(t) => self.status(t),
            LockTrigger::WorkflowRun(t) => self.workflow_run(t),
            LockTrigger::Fork(t) => Ok(self.event_type("fork") && self.repos(&t.repos)?),
            LockTrigger::Webhook(t) => self.webhook(t),
            LockTrigger::GenericWebhook(t) => self.generic_webhook(t),
            LockTrigger::Schedule(t) => self.schedule(t),
            LockTrigger::KiciEvent(t) => self.kici_event(t),
            LockTrigger::WorkflowComplete(t) => self.workflow_complete(t),
            LockTrigger::JobComplete(t) => self.job_complete(t),
            LockTrigger::Lifecycle(t) => self.lifecycle(t),
            LockTrigger::Unknown(_) => Ok(false),
        }
    }

    fn push(&mut self, t: &PushTrigger) -> Result<bool, MatchError> {
        if !self.event_type("push") {
            return Ok(false);
        }
        let branch = self.target_branch();
        Ok(
            self.pattern_list("branch", &t.branches, branch.as_ref(), "targetBranch")?
                && self.paths(&t.paths)?
                && self.repos(&t.repos)?,
        )
    }

    fn pr(&mut self, t: &PrTrigger) -> Result<bool, MatchError> {
        if !self.event_type("pull_request") || !self.action("action", &t.events) {
            return Ok(false);
        }
        let target = self.target_branch();
        if !self.pattern_list(
            "target branch",
            &t.target_branches,
            target.as_ref(),
            "targetBranch",
        )? {
            return Ok(false);
        }
        if !t.source_branches.is_empty() {
            let Some(source) = self.event.source_branch.clone() else {
                let rendered = t
                    .source_branches
                    .iter()
                    .map(LockBranchPattern::pattern)
                    .collect::<Vec<_>>()
                    .join("|");
                // Compile anyway so a broken pattern is reported consistently.
                PatternList::from_lock(&t.source_branches)?;
                self.record_with_reason(
                    "source branch",
                    rendered,
                    Some(Value::from("(missing)")),
                    false,
                    Some("Event has no sourceBranch but trigger requires source branch filtering"),
                );
                return Ok(false);
            };
            let source = Value::String(source);
            if !self.pattern_list(
                "source branch",
                &t.source_branches,
                Some(&source),
                "sourceBranch",
            )? {
                return Ok(false);
            }
        }
        Ok(self.paths(&t.paths)? && self.repos(&t.repos)?)
    }

    fn tag(&mut self, t: &TagTrigger) -> Result<bool, MatchError> {
        if !self.event_type("tag") {
            return Ok(false);
        }
        let tag = self.target_branch();
        Ok(
            self.pattern_list("tag pattern", &t.patterns, tag.as_ref(), "targetBranch")?
                && self.repos(&t.repos)?,
        )
    }

    fn comment(&mut self, t: &CommentTrigger) -> Result<bool, MatchError> {
        if !self.event_type("comment") || !self.action("action", &t.actions) {
            return Ok(false);
        }
        if let Some(source) = &t.source {
            let issue = self.payload_field(&["issue"])?;
            let is_pr = issue
                .and_then(Value::as_object)
                .is_some_and(|i| i.contains_key("pull_request"));
            let actual = if is_pr { "pr" } else { "issue" };
            if !self.equals("source", source, Value::from(actual)) {
                return Ok(false);
            }
        }
        if let Some(body_match) = &t.body_match {
            let body = self.payload_or_empty(&["comment", "body"])?;
            if !self.body_match(body_match, body)? {
                return Ok(false);
            }
        }
        self.repos(&t.repos)
    }

    fn body_match(
        &mut self,
        body_match: &LockBranchPattern,
        body: Value,
    ) -> Result<bool, MatchError> {
        match body_match {
            LockBranchPattern::Glob { pattern } => {
                let Value::String(text) = &body else {
                    return Err(MatchError::NotAString {
                        field: "payload.comment.body".to_string(),
                        found: describe(&body),
                    });
                };
                let passed = compile_glob(pattern)?.is_match(text);
                Ok(self.record("bodyMatch (glob)", pattern.clone(), Some(body), passed))
            }
            LockBranchPattern::Regex { pattern, flags } => {
                let regex = compile_regex(pattern, flags.as_deref())?;
                let passed = regex.test(&js_string(&body));
                Ok(self.record("bodyMatch (regex)", pattern.clone(), Some(body), passed))
            }
        }
    }

    fn review(&mut self, t: &ReviewTrigger) -> Result<bool, MatchError> {
        if !self.event_type("review") || !self.action("action", &t.actions) {
            return Ok(false);
        }
        if !t.states.is_empty() {
            let state = self.payload_or_empty(&["review", "state"])?;
            if !self.membership("state", &t.states, state) {
                return Ok(false);
            }
        }
        self.repos(&t.repos)
    }

    fn actions_only(&mut self, event_type: &str, t: &ActionsTrigger) -> Result<bool, MatchError> {
        Ok(self.event_type(event_type)
            && self.action("action", &t.actions)
            && self.repos(&t.repos)?)
    }

    fn reference(&mut self, event_type: &str, t: &RefTrigger) -> Result<bool, MatchError> {
        if !self.event_type(event_type) {
            return Ok(false);
        }
        if !t.ref_types.is_empty() {
            let ref_type = self.payload_field(&["ref_type"])?.cloned();
            let passed = ref_type
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|v| t.ref_types.iter().any(|a| a == v));
            if !self.record("ref type", t.ref_types.join("|"), ref_type, passed) {
                return Ok(false);
            }
        }
        let reference = self.payload_field(&["ref"])?.cloned();
        Ok(self.pattern_list(
            "ref pattern",
            &t.patterns,
            reference.as_ref(),
            "payload.ref",
        )? && self.repos(&t.repos)?)
    }

    fn status(&mut self, t: &StatusTrigger) -> Result<bool, MatchError> {
        if !self.event_type("status") {
            return Ok(false);
        }
        if !t.contexts.is_empty() {
            let context = self.payload_or_empty(&["context"])?;
            let list = PatternList::from_globs(&t.contexts)?;
            if !self.string_against_list(
                "context",
                t.contexts.join("|"),
                &list,
                Some(&context),
                "payload.context",
            )? {
                return Ok(false);
            }
        }
        if !t.states.is_empty() {
            let state = self.payload_or_empty(&["state"])?;
            if !self.membership("state", &t.states, state) {
                return Ok(false);
            }
        }
        self.repos(&t.repos)
    }

    fn workflow_run(&mut self, t: &WorkflowRunTrigger) -> Result<bool, MatchError> {
        if !self.event_type("workflow_run") || !self.action("action", &t.actions) {
            return Ok(false);
        }
        if !t.workflows.is_empty() {
            let name = self.payload_or_empty(&["workflow_run", "name"])?;
            if !self.membership("workflow name", &t.workflows, name) {
                return Ok(false);
            }
        }
        if !t.conclusions.is_empty() {
            let conclusion = self.payload_or_empty(&["workflow_run", "conclusion"])?;
            if !self.membership("conclusion", &t.conclusions, conclusion) {
                return Ok(false);
            }
        }
        self.repos(&t.repos)
    }

    fn webhook(&mut self, t: &WebhookTrigger) -> Result<bool, MatchError> {
        let actual = Value::String(self.event.event_type.clone());
        let passed = t.events.contains(&self.event.event_type);
        if !self.record("event type", t.events.join("|"), Some(actual), passed) {
            return Ok(false);
        }
        Ok(self.action("action", &t.actions) && self.repos(&t.repos)?)
    }

    fn generic_webhook(&mut self, t: &GenericWebhookTrigger) -> Result<bool, MatchError> {
        if !self.event_type("generic_webhook") {
            return Ok(false);
        }
        let source = self.payload_or_empty(&["source"])?;
        if !self.equals("source", &t.source, source) {
            return Ok(false);
        }
        if let Some(events) = t.events.as_deref().filter(|e| !e.is_empty()) {
            let event_type = match self.payload_field(&["eventType"])? {
                Some(v) if !v.is_null() => v.clone(),
                _ => Value::String(self.event.action_or_empty().to_string()),
            };
            if !self.membership("event type filter", events, event_type) {
                return Ok(false);
            }
        }
        let event: &'e Event = self.event;
        let root = Some(&event.payload);
        Ok(
            self.json_filter("jsonpath match", t.match_filter.as_ref(), root, false)?
                && self.json_filter("jsonpath not", t.not_filter.as_ref(), root, true)?,
        )
    }

    fn schedule(&mut self, t: &ScheduleTrigger) -> Result<bool, MatchError> {
        if !self.event_type("schedule") {
            return Ok(false);
        }
        let cron = self.payload_or_empty(&["cronExpression"])?;
        Ok(self.equals("cron expression", &t.cron_expression, cron))
    }

    /// An optional exact-string filter against a payload field (`?? ''`); absent or empty
    /// filters are no filter.
    fn optional_equals(
        &mut self,
        check: &str,
        expected: Option<&str>,
        path: &[&str],
    ) -> Result<bool, MatchError> {
        let Some(expected) = expected.filter(|e| !e.is_empty()) else {
            return Ok(true);
        };
        let value = self.payload_or_empty(path)?;
        Ok(self.equals(check, expected, value))
    }

    fn kici_event(&mut self, t: &KiciEventTrigger) -> Result<bool, MatchError> {
        if !self.event_type("kici_event") {
            return Ok(false);
        }
        let name = self.payload_or_empty(&["eventName"])?;
        if !self.equals("event name", &t.event_name, name) {
            return Ok(false);
        }
        let inner = self.payload_field(&["payload"])?;
        if !self.json_filter("jsonpath match", t.match_filter.as_ref(), inner, false)?
            || !self.json_filter("jsonpath not", t.not_filter.as_ref(), inner, true)?
        {
            return Ok(false);
        }
        self.optional_equals("source", t.source.as_deref(), &["sourceRepo"])
    }

    fn completion_status(&mut self, status: Option<&[String]>) -> Result<bool, MatchError> {
        let Some(status) = status.filter(|s| !s.is_empty()) else {
            return Ok(true);
        };
        let value = self.payload_or_empty(&["status"])?;
        Ok(self.membership("status", status, value))
    }

    fn workflow_complete(&mut self, t: &WorkflowCompleteTrigger) -> Result<bool, MatchError> {
        Ok(self.event_type("workflow_complete")
            && self.optional_equals("workflow name", t.name.as_deref(), &["workflowName"])?
            && self.completion_status(t.status.as_deref())?
            && self.optional_equals("source", t.source.as_deref(), &["sourceRepo"])?)
    }

    fn job_complete(&mut self, t: &JobCompleteTrigger) -> Result<bool, MatchError> {
        Ok(self.event_type("job_complete")
            && self.optional_equals("workflow name", t.workflow.as_deref(), &["workflowName"])?
            && self.optional_equals("job name", t.job.as_deref(), &["jobName"])?
            && self.completion_status(t.status.as_deref())?
            && self.optional_equals("source", t.source.as_deref(), &["sourceRepo"])?)
    }

    fn lifecycle(&mut self, t: &LifecycleTrigger) -> Result<bool, MatchError> {
        if !self.event_type("lifecycle") {
            return Ok(false);
        }
        if !t.events.is_empty() {
            let event = self.payload_or_empty(&["lifecycleEvent"])?;
            if !self.membership("lifecycle event", &t.events, event) {
                return Ok(false);
            }
        }
        if let Some(sources) = t.sources.as_deref().filter(|s| !s.is_empty()) {
            let source = self.payload_or_empty(&["sourceRepo"])?;
            if !self.membership("source", sources, source) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
