//! Status vocabularies and the transition rules of `orchestrator.md` §6.
//!
//! The reference had an 11-state machine that nothing used, so its status strings were
//! written ad hoc (fix F17). Here every status write the store performs is first passed
//! through [`transition`] (jobs), [`run_transition`] (runs) or [`step_transition`]
//! (steps); whatever these refuse is never written.
//!
//! Two layers for jobs: [`transition_base`] is the reference's table (§6.1) and knows
//! nothing of the two job-only terminals; [`transition`] adds the explicit job extensions
//! of §6.2. [`apply`] wraps [`transition`] with the two no-op rules the spec states
//! (a repeated identical terminal status, `CANCEL_GRACEFUL` on a `cancelling` job) so a
//! caller can tell "nothing to do" from "refused".

use std::fmt;

use serde::{Deserialize, Serialize};

/// A job state (and, restricted to the first eleven, the reference's generic state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Queued,
    Running,
    Recovering,
    Cancelling,
    Held,
    Waiting,
    Success,
    Failed,
    Cancelled,
    Skipped,
    /// Job-only terminal (§6.2): stale heartbeat or queue expiry.
    TimedOutStale,
    /// Job-only terminal (§6.2) [later]: a dynamic job disappeared.
    DriftDropped,
}

impl State {
    pub const ALL: [State; 13] = [
        State::Pending,
        State::Queued,
        State::Running,
        State::Recovering,
        State::Cancelling,
        State::Held,
        State::Waiting,
        State::Success,
        State::Failed,
        State::Cancelled,
        State::Skipped,
        State::TimedOutStale,
        State::DriftDropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Queued => "queued",
            State::Running => "running",
            State::Recovering => "recovering",
            State::Cancelling => "cancelling",
            State::Held => "held",
            State::Waiting => "waiting",
            State::Success => "success",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Skipped => "skipped",
            State::TimedOutStale => "timed_out_stale",
            State::DriftDropped => "drift_dropped",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Success
                | State::Failed
                | State::Cancelled
                | State::Skipped
                | State::TimedOutStale
                | State::DriftDropped
        )
    }

    /// Whether the state belongs to the reference's 11-state machine (§6.1).
    pub fn is_base(self) -> bool {
        !matches!(self, State::TimedOutStale | State::DriftDropped)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state-machine event: the 16 of §6.1 plus the job extensions `STALE` and `DROP` (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    Enqueue,
    Start,
    Succeed,
    Fail,
    Cancel,
    CancelGraceful,
    CancelForce,
    Complete,
    Skip,
    Recover,
    Hold,
    Approve,
    Reject,
    Expire,
    Wait,
    TimerDone,
    /// Job-only (§6.2).
    Stale,
    /// Job-only (§6.2) [later].
    Drop,
}

impl Event {
    pub const ALL: [Event; 18] = [
        Event::Enqueue,
        Event::Start,
        Event::Succeed,
        Event::Fail,
        Event::Cancel,
        Event::CancelGraceful,
        Event::CancelForce,
        Event::Complete,
        Event::Skip,
        Event::Recover,
        Event::Hold,
        Event::Approve,
        Event::Reject,
        Event::Expire,
        Event::Wait,
        Event::TimerDone,
        Event::Stale,
        Event::Drop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Enqueue => "ENQUEUE",
            Event::Start => "START",
            Event::Succeed => "SUCCEED",
            Event::Fail => "FAIL",
            Event::Cancel => "CANCEL",
            Event::CancelGraceful => "CANCEL_GRACEFUL",
            Event::CancelForce => "CANCEL_FORCE",
            Event::Complete => "COMPLETE",
            Event::Skip => "SKIP",
            Event::Recover => "RECOVER",
            Event::Hold => "HOLD",
            Event::Approve => "APPROVE",
            Event::Reject => "REJECT",
            Event::Expire => "EXPIRE",
            Event::Wait => "WAIT",
            Event::TimerDone => "TIMER_DONE",
            Event::Stale => "STALE",
            Event::Drop => "DROP",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|event| event.as_str() == s)
    }

    pub fn is_base(self) -> bool {
        !matches!(self, Event::Stale | Event::Drop)
    }

    /// The terminal state this event leads to from every state where it is terminal, if
    /// any. Used to recognise a repeated identical terminal report.
    fn terminal_target(self) -> Option<State> {
        match self {
            Event::Succeed => Some(State::Success),
            Event::Fail => Some(State::Failed),
            Event::Skip => Some(State::Skipped),
            Event::Stale => Some(State::TimedOutStale),
            Event::Drop => Some(State::DriftDropped),
            Event::Cancel
            | Event::CancelForce
            | Event::Complete
            | Event::Reject
            | Event::Expire => Some(State::Cancelled),
            _ => None,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the spec does not allow. The write must not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid transition: {event} from {from}")]
pub struct InvalidTransition {
    pub from: State,
    pub event: Event,
}

/// The reference's 11-state machine (§6.1). The job-only states and events are refused.
pub fn transition_base(current: State, event: Event) -> Result<State, InvalidTransition> {
    use Event as E;
    use State as S;
    let to = match (current, event) {
        (S::Pending, E::Enqueue) => S::Queued,
        (S::Pending, E::Cancel) => S::Cancelled,
        (S::Pending, E::Skip) => S::Skipped,
        (S::Pending, E::Hold) => S::Held,
        (S::Pending, E::Wait) => S::Waiting,

        (S::Queued, E::Start) => S::Running,
        (S::Queued, E::Fail) => S::Failed,
        (S::Queued, E::Cancel) => S::Cancelled,

        (S::Running, E::Succeed) => S::Success,
        (S::Running, E::Fail) => S::Failed,
        (S::Running, E::Cancel) => S::Cancelled,
        (S::Running, E::CancelGraceful) => S::Cancelling,
        (S::Running, E::Recover) => S::Recovering,

        (S::Recovering, E::Start) => S::Running,
        (S::Recovering, E::Fail) => S::Failed,
        (S::Recovering, E::Cancel) => S::Cancelled,

        (S::Cancelling, E::CancelForce) => S::Cancelled,
        (S::Cancelling, E::Complete) => S::Cancelled,
        (S::Cancelling, E::Fail) => S::Failed,

        (S::Held, E::Approve) => S::Queued,
        (S::Held, E::Reject) => S::Cancelled,
        (S::Held, E::Expire) => S::Cancelled,
        (S::Held, E::Cancel) => S::Cancelled,

        (S::Waiting, E::TimerDone) => S::Queued,
        (S::Waiting, E::Cancel) => S::Cancelled,

        _ => {
            return Err(InvalidTransition {
                from: current,
                event,
            });
        }
    };
    Ok(to)
}

/// The job machine: §6.1 plus the explicit job extensions of §6.2.
pub fn transition(current: State, event: Event) -> Result<State, InvalidTransition> {
    use Event as E;
    use State as S;
    let extension = match (current, event) {
        (S::Running | S::Recovering | S::Queued, E::Stale) => Some(S::TimedOutStale),
        (S::Pending | S::Queued, E::Drop) => Some(S::DriftDropped),
        (S::Running, E::Skip) => Some(S::Skipped),
        (S::Cancelling, E::Succeed) => Some(S::Success),
        (S::Recovering, E::Succeed) => Some(S::Success),
        (S::Recovering, E::Complete) => Some(S::Cancelled),
        (S::Queued, E::Skip) => Some(S::Skipped),
        (S::Pending, E::Fail) => Some(S::Failed),
        _ => None,
    };
    match extension {
        Some(to) => Ok(to),
        None => transition_base(current, event),
    }
}

/// What a job status write should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Write `to` (compare-and-set on the current state).
    Move(State),
    /// Nothing to write, and nothing wrong: a repeated identical terminal status, or
    /// `CANCEL_GRACEFUL` on a job that is already `cancelling` (§6.2, §6.3).
    Unchanged,
}

/// [`transition`] plus the spec's silent no-ops.
pub fn apply(current: State, event: Event) -> Result<Outcome, InvalidTransition> {
    if current.is_terminal() && event.terminal_target() == Some(current) {
        return Ok(Outcome::Unchanged);
    }
    if current == State::Cancelling && event == Event::CancelGraceful {
        return Ok(Outcome::Unchanged);
    }
    transition(current, event).map(Outcome::Move)
}

/// The event an agent-reported job state maps to (§6.3), given the job's current state.
/// `None` for a state an agent never reports.
pub fn agent_report_event(current: State, reported: State) -> Option<Event> {
    match reported {
        State::Running => Some(Event::Start),
        State::Cancelling => Some(Event::CancelGraceful),
        State::Success => Some(Event::Succeed),
        State::Failed => Some(Event::Fail),
        State::Skipped => Some(Event::Skip),
        State::Cancelled => Some(match current {
            State::Cancelling | State::Recovering => Event::Complete,
            _ => Event::Cancel,
        }),
        _ => None,
    }
}

/// A run status (§6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Cancelling,
    /// [later] approvals.
    Held,
    Success,
    Failed,
    Cancelled,
    Skipped,
}

impl RunStatus {
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Cancelling,
        RunStatus::Held,
        RunStatus::Success,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Cancelling => "cancelling",
            RunStatus::Held => "held",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Success | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Skipped
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What moves a run (§6.4): the lifecycle there is its own, smaller than the job machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// The first job started.
    Start,
    /// A cancel was requested while jobs are active.
    CancelRequested,
    /// Every job is terminal; the terminal status comes from [`derive_run_status`].
    Finish(RunStatus),
    /// [later] approvals.
    Hold,
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid run transition: {event:?} from {from}")]
pub struct InvalidRunTransition {
    pub from: RunStatus,
    pub event: RunEvent,
}

/// Run lifecycle: `pending → running → cancelling → terminal` (§6.4), where a run may
/// finish from any non-terminal status (a run whose jobs all fail at planning never runs).
pub fn run_transition(
    current: RunStatus,
    event: RunEvent,
) -> Result<RunStatus, InvalidRunTransition> {
    use RunStatus as R;
    let refused = Err(InvalidRunTransition {
        from: current,
        event,
    });
    match (current, event) {
        (R::Pending, RunEvent::Start) => Ok(R::Running),
        (R::Pending | R::Running | R::Held, RunEvent::CancelRequested) => Ok(R::Cancelling),
        (R::Pending, RunEvent::Hold) => Ok(R::Held),
        (R::Held, RunEvent::Release) => Ok(R::Pending),
        (from, RunEvent::Finish(to)) if !from.is_terminal() && to.is_terminal() => Ok(to),
        _ => refused,
    }
}

/// The terminal run status once every job is terminal (§6.4); `None` while a job is not.
/// `workflow_timeout` is whether the run's `failure_reason` is `workflow_timeout`.
pub fn derive_run_status(jobs: &[State], workflow_timeout: bool) -> Option<RunStatus> {
    if jobs.iter().any(|job| !job.is_terminal()) {
        return None;
    }
    let any = |wanted: &[State]| jobs.iter().any(|job| wanted.contains(job));
    if jobs.is_empty()
        || workflow_timeout
        || any(&[State::Failed, State::TimedOutStale, State::DriftDropped])
    {
        return Some(RunStatus::Failed);
    }
    if any(&[State::Cancelled]) {
        return Some(RunStatus::Cancelled);
    }
    if jobs.iter().all(|job| *job == State::Skipped) {
        return Some(RunStatus::Skipped);
    }
    Some(RunStatus::Success)
}

/// A step status (§6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Success,
    Failed,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub const ALL: [StepStatus; 6] = [
        StepStatus::Pending,
        StepStatus::Running,
        StepStatus::Success,
        StepStatus::Failed,
        StepStatus::Skipped,
        StepStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Success => "success",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<StepStatus> {
        StepStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Running)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid step transition: {from} -> {to}")]
pub struct InvalidStepTransition {
    pub from: StepStatus,
    pub to: StepStatus,
}

/// Steps move forward only: `pending → running → terminal`, and a step may end without
/// having run (skipped by a rule, cancelled before it began). A terminal status is final.
/// `Ok(None)` means the write is a repeat of the current status and changes nothing.
pub fn step_transition(
    current: StepStatus,
    to: StepStatus,
) -> Result<Option<StepStatus>, InvalidStepTransition> {
    if current == to {
        return Ok(None);
    }
    let allowed = match current {
        StepStatus::Pending => true,
        StepStatus::Running => to.is_terminal(),
        _ => false,
    };
    if allowed {
        Ok(Some(to))
    } else {
        Err(InvalidStepTransition { from: current, to })
    }
}

/// A dispatch-queue row status (§6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    Pending,
    Dispatched,
    Recovering,
    Completed,
    Failed,
    Expired,
}

impl QueueStatus {
    pub const ALL: [QueueStatus; 6] = [
        QueueStatus::Pending,
        QueueStatus::Dispatched,
        QueueStatus::Recovering,
        QueueStatus::Completed,
        QueueStatus::Failed,
        QueueStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Pending => "pending",
            QueueStatus::Dispatched => "dispatched",
            QueueStatus::Recovering => "recovering",
            QueueStatus::Completed => "completed",
            QueueStatus::Failed => "failed",
            QueueStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<QueueStatus> {
        QueueStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            QueueStatus::Completed | QueueStatus::Failed | QueueStatus::Expired
        )
    }

    /// The row status that goes with a terminal job status (§6.5).
    pub fn for_terminal_job(job: State) -> QueueStatus {
        match job {
            State::Failed | State::TimedOutStale | State::DriftDropped => QueueStatus::Failed,
            _ => QueueStatus::Completed,
        }
    }
}

impl fmt::Display for QueueStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use State as S;

    /// §6.1, row by row.
    const BASE: &[(State, Event, State)] = &[
        (S::Pending, E::Enqueue, S::Queued),
        (S::Pending, E::Cancel, S::Cancelled),
        (S::Pending, E::Skip, S::Skipped),
        (S::Pending, E::Hold, S::Held),
        (S::Pending, E::Wait, S::Waiting),
        (S::Queued, E::Start, S::Running),
        (S::Queued, E::Fail, S::Failed),
        (S::Queued, E::Cancel, S::Cancelled),
        (S::Running, E::Succeed, S::Success),
        (S::Running, E::Fail, S::Failed),
        (S::Running, E::Cancel, S::Cancelled),
        (S::Running, E::CancelGraceful, S::Cancelling),
        (S::Running, E::Recover, S::Recovering),
        (S::Recovering, E::Start, S::Running),
        (S::Recovering, E::Fail, S::Failed),
        (S::Recovering, E::Cancel, S::Cancelled),
        (S::Cancelling, E::CancelForce, S::Cancelled),
        (S::Cancelling, E::Complete, S::Cancelled),
        (S::Cancelling, E::Fail, S::Failed),
        (S::Held, E::Approve, S::Queued),
        (S::Held, E::Reject, S::Cancelled),
        (S::Held, E::Expire, S::Cancelled),
        (S::Held, E::Cancel, S::Cancelled),
        (S::Waiting, E::TimerDone, S::Queued),
        (S::Waiting, E::Cancel, S::Cancelled),
    ];

    /// §6.2, row by row.
    const EXTENSIONS: &[(State, Event, State)] = &[
        (S::Running, E::Stale, S::TimedOutStale),
        (S::Recovering, E::Stale, S::TimedOutStale),
        (S::Queued, E::Stale, S::TimedOutStale),
        (S::Pending, E::Drop, S::DriftDropped),
        (S::Queued, E::Drop, S::DriftDropped),
        (S::Running, E::Skip, S::Skipped),
        (S::Cancelling, E::Succeed, S::Success),
        (S::Recovering, E::Succeed, S::Success),
        (S::Recovering, E::Complete, S::Cancelled),
        (S::Queued, E::Skip, S::Skipped),
        (S::Pending, E::Fail, S::Failed),
    ];

    fn lookup(table: &[(State, Event, State)], from: State, event: Event) -> Option<State> {
        table
            .iter()
            .find(|(f, e, _)| *f == from && *e == event)
            .map(|(_, _, to)| *to)
    }

    #[test]
    fn base_machine_allows_exactly_its_table() {
        let mut failures = Vec::new();
        for from in State::ALL {
            for event in Event::ALL {
                let expected = lookup(BASE, from, event);
                let got = transition_base(from, event).ok();
                if expected != got {
                    failures.push(format!(
                        "{from} {event}: expected {expected:?}, got {got:?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn job_machine_is_base_plus_extensions_and_nothing_else() {
        let mut failures = Vec::new();
        for from in State::ALL {
            for event in Event::ALL {
                let expected = lookup(EXTENSIONS, from, event).or(lookup(BASE, from, event));
                let got = transition(from, event).ok();
                if expected != got {
                    failures.push(format!(
                        "{from} {event}: expected {expected:?}, got {got:?}"
                    ));
                }
                if got.is_none() {
                    assert_eq!(
                        transition(from, event),
                        Err(InvalidTransition { from, event })
                    );
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert_eq!(BASE.len() + EXTENSIONS.len(), 36);
    }

    #[test]
    fn tables_have_no_duplicate_rows_and_extensions_do_not_shadow_the_base() {
        for (i, (f, e, _)) in BASE.iter().chain(EXTENSIONS).enumerate() {
            for (g, d, _) in BASE.iter().chain(EXTENSIONS).skip(i + 1) {
                assert!(!(f == g && e == d), "duplicate row {f} {e}");
            }
        }
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for from in State::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in Event::ALL {
                assert!(transition(from, event).is_err(), "{from} {event}");
            }
        }
    }

    #[test]
    fn the_base_machine_never_reaches_a_job_only_state() {
        for (from, _, to) in BASE {
            assert!(from.is_base() && to.is_base());
        }
        for event in Event::ALL.into_iter().filter(|e| !e.is_base()) {
            for from in State::ALL {
                assert!(transition_base(from, event).is_err());
            }
        }
    }

    #[test]
    fn apply_treats_a_repeated_terminal_status_and_a_second_graceful_cancel_as_no_ops() {
        assert_eq!(apply(S::Success, E::Succeed), Ok(Outcome::Unchanged));
        assert_eq!(apply(S::Failed, E::Fail), Ok(Outcome::Unchanged));
        assert_eq!(apply(S::Cancelled, E::Complete), Ok(Outcome::Unchanged));
        assert_eq!(apply(S::Cancelled, E::Cancel), Ok(Outcome::Unchanged));
        assert_eq!(apply(S::TimedOutStale, E::Stale), Ok(Outcome::Unchanged));
        assert_eq!(
            apply(S::Cancelling, E::CancelGraceful),
            Ok(Outcome::Unchanged)
        );
        // A different terminal report is still refused.
        assert!(apply(S::Success, E::Fail).is_err());
        assert!(apply(S::Cancelled, E::Succeed).is_err());
        assert_eq!(apply(S::Running, E::Succeed), Ok(Outcome::Move(S::Success)));
        // `apply` agrees with `transition` everywhere it does not return a no-op.
        for from in State::ALL {
            for event in Event::ALL {
                match apply(from, event) {
                    Ok(Outcome::Move(to)) => assert_eq!(transition(from, event), Ok(to)),
                    Ok(Outcome::Unchanged) => {}
                    Err(e) => assert_eq!(transition(from, event), Err(e)),
                }
            }
        }
    }

    #[test]
    fn agent_reports_map_to_events() {
        assert_eq!(agent_report_event(S::Queued, S::Running), Some(E::Start));
        assert_eq!(
            agent_report_event(S::Cancelling, S::Cancelled),
            Some(E::Complete)
        );
        assert_eq!(
            agent_report_event(S::Recovering, S::Cancelled),
            Some(E::Complete)
        );
        assert_eq!(
            agent_report_event(S::Running, S::Cancelled),
            Some(E::Cancel)
        );
        assert_eq!(
            agent_report_event(S::Running, S::Cancelling),
            Some(E::CancelGraceful)
        );
        assert_eq!(agent_report_event(S::Running, S::Queued), None);
    }

    #[test]
    fn status_strings_round_trip_through_serde_and_parse() {
        for state in State::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        for event in Event::ALL {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(Event::parse(event.as_str()), Some(event));
        }
        for status in RunStatus::ALL {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        for status in StepStatus::ALL {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        for status in QueueStatus::ALL {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
            assert_eq!(QueueStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(State::parse("timed_out_stale"), Some(S::TimedOutStale));
        assert_eq!(Event::parse("TIMER_DONE"), Some(E::TimerDone));
        assert_eq!(State::parse("Running"), None);
    }

    #[test]
    fn run_status_derivation_follows_the_spec_order() {
        use RunStatus as R;
        assert_eq!(derive_run_status(&[S::Success, S::Running], false), None);
        assert_eq!(derive_run_status(&[], false), Some(R::Failed));
        assert_eq!(
            derive_run_status(&[S::Success, S::Cancelled, S::Failed], false),
            Some(R::Failed)
        );
        assert_eq!(
            derive_run_status(&[S::Success, S::TimedOutStale], false),
            Some(R::Failed)
        );
        assert_eq!(
            derive_run_status(&[S::DriftDropped], false),
            Some(R::Failed)
        );
        assert_eq!(
            derive_run_status(&[S::Success, S::Cancelled, S::Skipped], false),
            Some(R::Cancelled)
        );
        assert_eq!(
            derive_run_status(&[S::Skipped, S::Skipped], false),
            Some(R::Skipped)
        );
        assert_eq!(
            derive_run_status(&[S::Skipped, S::Success], false),
            Some(R::Success)
        );
        assert_eq!(
            derive_run_status(&[S::Success, S::Cancelled], true),
            Some(R::Failed)
        );
    }

    #[test]
    fn run_lifecycle() {
        use RunStatus as R;
        assert_eq!(run_transition(R::Pending, RunEvent::Start), Ok(R::Running));
        assert_eq!(
            run_transition(R::Running, RunEvent::CancelRequested),
            Ok(R::Cancelling)
        );
        assert_eq!(
            run_transition(R::Cancelling, RunEvent::Finish(R::Cancelled)),
            Ok(R::Cancelled)
        );
        assert_eq!(
            run_transition(R::Pending, RunEvent::Finish(R::Failed)),
            Ok(R::Failed)
        );
        assert!(run_transition(R::Running, RunEvent::Start).is_err());
        assert!(run_transition(R::Cancelling, RunEvent::CancelRequested).is_err());
        assert!(run_transition(R::Running, RunEvent::Finish(R::Running)).is_err());
        for terminal in R::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in [
                RunEvent::Start,
                RunEvent::CancelRequested,
                RunEvent::Finish(R::Success),
                RunEvent::Hold,
                RunEvent::Release,
            ] {
                assert!(run_transition(terminal, event).is_err());
            }
        }
    }

    #[test]
    fn steps_only_move_forward() {
        use StepStatus as T;
        assert_eq!(
            step_transition(T::Pending, T::Running),
            Ok(Some(T::Running))
        );
        assert_eq!(
            step_transition(T::Running, T::Success),
            Ok(Some(T::Success))
        );
        assert_eq!(
            step_transition(T::Pending, T::Skipped),
            Ok(Some(T::Skipped))
        );
        assert_eq!(step_transition(T::Success, T::Success), Ok(None));
        assert!(step_transition(T::Running, T::Pending).is_err());
        assert!(step_transition(T::Success, T::Failed).is_err());
        assert!(step_transition(T::Cancelled, T::Running).is_err());
    }

    #[test]
    fn queue_row_status_for_a_terminal_job() {
        assert_eq!(
            QueueStatus::for_terminal_job(S::Success),
            QueueStatus::Completed
        );
        assert_eq!(
            QueueStatus::for_terminal_job(S::Skipped),
            QueueStatus::Completed
        );
        assert_eq!(
            QueueStatus::for_terminal_job(S::Cancelled),
            QueueStatus::Completed
        );
        assert_eq!(
            QueueStatus::for_terminal_job(S::Failed),
            QueueStatus::Failed
        );
        assert_eq!(
            QueueStatus::for_terminal_job(S::TimedOutStale),
            QueueStatus::Failed
        );
    }
}
