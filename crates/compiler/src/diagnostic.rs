//! Compile diagnostics as values (spec/validation.md §1), and their two renderings.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One error or warning, at a real position of the original `.ts` source when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    pub severity: Severity,
    /// `E###` or `W###`.
    pub code: String,
    pub message: String,
    /// Path relative to the git root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code: code.to_string(),
            message: message.into(),
            file: None,
            line: None,
            column: None,
            suggestion: None,
        }
    }

    pub fn warning(code: &str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    pub fn at(mut self, file: impl Into<String>, line: u32, column: u32) -> Self {
        self.file = Some(file.into());
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn with_suggestion(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `<file>:<line>:<col> error [E102]: <message>` plus an indented suggestion line, as
    /// validation.md §1.1 gives it. `source` is the text of `file`, for the excerpt with a
    /// caret (pass `None` to leave it out).
    pub fn render(&self, source: Option<&str>) -> String {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        match (&self.file, self.line, self.column) {
            (Some(file), Some(line), Some(column)) => {
                out.push_str(&format!("{file}:{line}:{column} "));
            }
            (Some(file), _, _) => out.push_str(&format!("{file} ")),
            _ => {}
        }
        out.push_str(&format!("{severity} [{}]: {}", self.code, self.message));
        if let (Some(text), Some(line), Some(column)) = (source, self.line, self.column)
            && let Some(excerpt) = text.lines().nth(line.saturating_sub(1) as usize)
        {
            let gutter = line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_pad: String = excerpt
                .chars()
                .take(column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("\n {gutter} | {excerpt}\n {pad} | {caret_pad}^"));
        }
        if let Some(suggestion) = &self.suggestion {
            out.push_str(&format!("\n  Suggestion: {suggestion}"));
        }
        out
    }
}
