//! Test harnesses shared by the integration tests of several crates. Only ever a
//! dev-dependency (checked by the tidy tests in `xtask`).

pub mod db;
