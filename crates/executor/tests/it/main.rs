//! Integration tests of the job executor: real QuickJS, real bash.

mod support;

mod fetch;
mod jobs;
mod leaf;
mod processes;
mod quoting;
mod secrets;
