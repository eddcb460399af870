//! The pure core of KiCI: the vocabulary and the logic that needs no outside world.
//!
//! `kici-engine` owns the lock-file model, trigger matching with decision traces,
//! picomatch-compatible globs, matrix expansion, labels, shell quoting and the
//! ECMAScript-compatible JSON printer. It does no IO: no files, sockets, clock,
//! randomness, environment or async runtime. Anything of that kind comes in as an
//! argument, so every tier (compiler, orchestrator, agent) can reuse it and plain data
//! tests it.

pub mod api;
pub mod collate;
pub mod event;
pub mod glob;
pub mod json;
pub mod jsonpath;
pub mod labels;
pub mod lock;
pub mod matrix;
pub mod protocol;
pub mod provider;
pub mod shell;
pub mod signature;
pub mod simulate;
pub mod state;
pub mod trigger;
pub mod validate;
