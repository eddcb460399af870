//! Runs one job — and, for `kici run local`, a whole event's worth of jobs — with the same
//! semantics locally and on an agent: isolated workspace, steps in the embedded runtime,
//! `$` processes in their own process group, secret masking, outputs, timeouts and hooks.
//!
//! It never opens a database or a server socket; logs leave through a sink the caller owns.

pub mod junit;
pub mod mask;
pub mod process;
pub mod workspace;
