//! The author toolchain: `.kici/workflows/*.ts` → `.kici/kici.lock.json`.
//!
//! Discovery, loading through `kici-runtime`, lowering by the embedded SDK, hashing,
//! validation (`kici_engine::validate`), diagnostics with real `file:line:col`, drift checks,
//! `preview` rendering and the `init` scaffold. It never opens a socket or a database.

pub mod compile;
pub mod diagnostic;
pub mod lockfile;
pub mod preview;
pub mod scaffold;
