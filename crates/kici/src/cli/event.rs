//! The event arguments `preview` and `run local` share (spec/cli.md §5, §6): one definition,
//! so that every event form `preview` explains is one `run local` runs.

use clap::Args;
use serde_json::Value;

use kici_compiler::preview::PreviewArgs as ReportArgs;

#[derive(Debug, Clone, Args)]
pub struct EventArgs {
    /// The event: push, pr:open, tag:v1.2.3, schedule[:<cron>], dispatch[:<type>], …
    pub event: Option<String>,
    /// Target branch (push/tag name default; PR base).
    #[arg(long)]
    pub branch: Option<String>,
    /// Commit SHA (default: HEAD).
    #[arg(long)]
    pub sha: Option<String>,
    /// Only this workflow (exit 1 when it did not match).
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only this job (a matrix base name selects all children).
    #[arg(long)]
    pub job: Option<String>,
    /// Changed files (comma-separated, repeatable); default: computed from git.
    #[arg(long)]
    pub files: Vec<String>,
    /// A JSON webhook body to use instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub payload: Option<String>,
    /// Dispatch or schedule input, K=V (repeatable).
    #[arg(long = "input", value_name = "K=V")]
    pub inputs: Vec<String>,
}

impl EventArgs {
    /// The plain options the preview report is built from.
    pub fn report_args(&self, event: &str, json: bool, debug: bool) -> ReportArgs {
        ReportArgs {
            event: Some(event.to_string()),
            branch: self.branch.clone(),
            sha: self.sha.clone(),
            workflow: self.workflow.clone(),
            job: self.job.clone(),
            files: self.files.clone(),
            payload: self.payload.clone(),
            inputs: self.inputs.clone(),
            eval_rules: false,
            json,
            kici_dir: None,
            debug,
        }
    }

    /// The `--payload` file, parsed; the error names the file and what is wrong with it.
    pub fn read_payload(&self) -> Result<Option<Value>, String> {
        let Some(path) = &self.payload else {
            return Ok(None);
        };
        std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}")))
            .map(Some)
            .map_err(|e| format!("--payload {path}: {e}"))
    }
}
