//! The step index space shared by `step.status` and `log.chunk` (`protocol.md` §7.3, ours:
//! the reference's ranges overlapped). Real steps are `0 … n-1` (flattened); pseudo-steps
//! live in disjoint ranges above one million.

/// The workflow "prepare" output (runner narration before the first step).
pub const PREPARE: i64 = -1;
const INIT_BASE: i64 = 1_000_000;
const STEP_HOOK_BASE: i64 = 2_000_000;
const JOB_HOOK_BASE: i64 = 3_000_000;
const STEP_LEVEL_HOOK_BASE: i64 = 4_000_000;
const CACHE_BASE: i64 = 5_000_000;
/// Width of each range; also bounds the real step index.
const RANGE: i64 = 1_000_000;

/// Job-level hooks, in index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobHook {
    OnSuccess,
    OnFailure,
    OnCancel,
    Cleanup,
}

/// Step-level hooks, in index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepHook {
    OnCancel,
    Cleanup,
}

/// What a step index denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepSlot {
    Prepare,
    Step(u32),
    Init(u32),
    BeforeStep(u32),
    AfterStep(u32),
    JobHook(JobHook),
    StepHook(u32, StepHook),
    /// [later] cache pseudo-steps; the offset within the range is not specified yet.
    Cache(u32),
}

impl StepSlot {
    /// The wire index; `None` when a step number is too large for its range.
    pub fn index(self) -> Option<i64> {
        let within = |n: u32, per: i64| -> Option<i64> {
            let offset = i64::from(n).checked_mul(per)?;
            (offset < RANGE).then_some(offset)
        };
        Some(match self {
            StepSlot::Prepare => PREPARE,
            StepSlot::Step(i) => within(i, 1)?,
            StepSlot::Init(k) => INIT_BASE + within(k, 1)?,
            StepSlot::BeforeStep(i) => STEP_HOOK_BASE + within(i, 2)?,
            StepSlot::AfterStep(i) => STEP_HOOK_BASE + within(i, 2)? + 1,
            StepSlot::JobHook(hook) => {
                JOB_HOOK_BASE
                    + match hook {
                        JobHook::OnSuccess => 0,
                        JobHook::OnFailure => 1,
                        JobHook::OnCancel => 2,
                        JobHook::Cleanup => 3,
                    }
            }
            StepSlot::StepHook(i, hook) => {
                STEP_LEVEL_HOOK_BASE
                    + within(i, 2)?
                    + match hook {
                        StepHook::OnCancel => 0,
                        StepHook::Cleanup => 1,
                    }
            }
            StepSlot::Cache(k) => CACHE_BASE + within(k, 1)?,
        })
    }

    /// The slot a wire index denotes; `None` for indices outside every range.
    pub fn from_index(index: i64) -> Option<StepSlot> {
        if index == PREPARE {
            return Some(StepSlot::Prepare);
        }
        if index < 0 {
            return None;
        }
        let base = index / RANGE * RANGE;
        let offset = index - base;
        // `offset < RANGE = 1_000_000`, so these conversions cannot fail.
        let n = u32::try_from(offset).ok()?;
        let half = u32::try_from(offset / 2).ok()?;
        let odd = offset % 2 == 1;
        match base {
            0 => Some(StepSlot::Step(n)),
            INIT_BASE => Some(StepSlot::Init(n)),
            STEP_HOOK_BASE if odd => Some(StepSlot::AfterStep(half)),
            STEP_HOOK_BASE => Some(StepSlot::BeforeStep(half)),
            JOB_HOOK_BASE => match offset {
                0 => Some(StepSlot::JobHook(JobHook::OnSuccess)),
                1 => Some(StepSlot::JobHook(JobHook::OnFailure)),
                2 => Some(StepSlot::JobHook(JobHook::OnCancel)),
                3 => Some(StepSlot::JobHook(JobHook::Cleanup)),
                _ => None,
            },
            STEP_LEVEL_HOOK_BASE if odd => Some(StepSlot::StepHook(half, StepHook::Cleanup)),
            STEP_LEVEL_HOOK_BASE => Some(StepSlot::StepHook(half, StepHook::OnCancel)),
            CACHE_BASE => Some(StepSlot::Cache(n)),
            _ => None,
        }
    }
}
