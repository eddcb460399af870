//! Embedded JavaScript for workflow code: oxc type stripping with position mapping, the
//! rquickjs module loader (relative imports, the SDK under both names, Node shims), the
//! embedded SDK, and the safety valves (memory limit, load deadline).
//!
//! The compiler calls [`Evaluator::load_workflow_file`] once per entry file. Positions that
//! leave this crate (diagnostics, `sourceLocation`) always refer to the original `.ts` file.
//! This crate never opens a socket or a database.

mod evaluator;
pub mod inline;
pub mod job;
mod modules;
pub mod purity;
mod sdk;
mod shims;
mod stack;
pub mod strip;

use std::fmt;

pub use evaluator::{Evaluator, EvaluatorOptions, LoadedFile, LoweredWorkflow};

/// A position in a file of the repository: path relative to the git root, 1-based line and
/// column of the original source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl SourcePosition {
    pub fn start_of(file: String) -> Self {
        Self {
            file,
            line: 1,
            column: 1,
        }
    }
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What went wrong while loading or lowering workflow code. The compiler maps each kind to
/// its diagnostic code (spec/validation.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The TypeScript could not be parsed or failed a semantic check (E002).
    Syntax,
    /// An import could not be resolved or read (E005).
    Import,
    /// Module code threw while loading, e.g. an SDK factory rejected its options (E003).
    Throw,
    /// Loading did not finish within the deadline (an endless loop at top level).
    Timeout,
    /// The module exceeded the memory limit.
    OutOfMemory,
    /// Turning a workflow object into its lock form failed (a generator error).
    Lowering,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    pub kind: LoadErrorKind,
    pub message: String,
    /// Where it happened, when known (the throwing call for E003).
    pub position: Option<SourcePosition>,
    /// The JavaScript stack with positions mapped to the original sources, when there is one.
    pub stack: Option<String>,
}
