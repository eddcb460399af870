//! Terminal conventions shared by the author commands: banner, colours, diagnostics.

use std::io::IsTerminal;
use std::path::Path;

use kici_compiler::diagnostic::{Diagnostic, Severity};

use super::GlobalArgs;
use super::repo::display_path;

pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn for_stderr(global: &GlobalArgs) -> Self {
        let color = !global.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stderr().is_terminal();
        Self { color }
    }

    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn ok(&self, text: &str) -> String {
        self.paint("32", &format!("✓ {text}"))
    }

    pub fn fail(&self, text: &str) -> String {
        self.paint("31", &format!("✗ {text}"))
    }
}

/// `kici v<version>` on stderr for humans at a terminal (cli.md §1).
pub fn banner(global: &GlobalArgs) {
    if !global.json && !global.quiet && std::io::stderr().is_terminal() {
        eprintln!("kici v{}", env!("CARGO_PKG_VERSION"));
    }
}

/// Prints diagnostics to stderr: file paths relative to the current directory, a source
/// excerpt with a caret at a terminal.
pub fn print_diagnostics(diagnostics: &[Diagnostic], git_root: &Path, style: &Style, quiet: bool) {
    for diagnostic in diagnostics {
        if quiet && diagnostic.severity == Severity::Warning {
            continue;
        }
        let mut shown = diagnostic.clone();
        let source = diagnostic.file.as_ref().and_then(|file| {
            let absolute = git_root.join(file);
            shown.file = Some(display_path(&absolute));
            if style.color {
                std::fs::read_to_string(&absolute).ok()
            } else {
                None
            }
        });
        let text = shown.render(source.as_deref());
        let colored = match diagnostic.severity {
            Severity::Error => text.replacen(
                " error [",
                &format!(" {} [", style.paint("31;1", "error")),
                1,
            ),
            Severity::Warning => text.replacen(
                " warning [",
                &format!(" {} [", style.paint("33;1", "warning")),
                1,
            ),
        };
        eprintln!("{colored}");
    }
}
