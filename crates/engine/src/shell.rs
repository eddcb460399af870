//! Building the command string of zx 8's `$` tagged template (`sdk.md` §18.2).
//!
//! The command a step runs is built exactly as zx 8.8.5 builds it: literal template pieces
//! are copied verbatim, each interpolated value is converted to a string (ProcessOutput-like
//! objects contribute their `stdout` minus one trailing newline) and quoted for bash with
//! `$'…'` unless it consists only of safe characters. Arrays interpolate element by element,
//! joined with single spaces.

use serde_json::{Map, Value};

use crate::json::number_to_js_string;

/// What zx hands to bash before the command.
pub const BASH_PREFIX: &str = "set -euo pipefail;";

/// A JavaScript value interpolated into a `$` template.
#[derive(Debug, Clone, PartialEq)]
pub enum ShellValue {
    String(String),
    /// Any double, including NaN, ±Infinity and -0.
    Number(f64),
    /// A BigInt, as its decimal digits (`10n` → `"10"`).
    BigInt(String),
    Bool(bool),
    Null,
    Undefined,
    Array(Vec<ShellValue>),
    /// A plain object. One with a string `stdout` property is treated like a ProcessOutput.
    Object(Map<String, Value>),
    /// The result of an earlier `$` call.
    ProcessOutput {
        stdout: String,
        /// stdout and stderr interleaved; what `toString()` returns.
        stdall: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// zx's "Malformed command": the template must have exactly one more piece than values.
    #[error("malformed command: {pieces} template pieces for {values} values")]
    Malformed { pieces: usize, values: usize },
}

/// `ProcessPromise.cmd`: the command built from template pieces (cooked strings) and values.
pub fn build_command<S: AsRef<str>>(
    pieces: &[S],
    values: &[ShellValue],
) -> Result<String, ShellError> {
    if pieces.len() != values.len() + 1 {
        return Err(ShellError::Malformed {
            pieces: pieces.len(),
            values: values.len(),
        });
    }
    let mut cmd = String::from(pieces[0].as_ref());
    for (value, piece) in values.iter().zip(&pieces[1..]) {
        cmd.push_str(&interpolate(value));
        cmd.push_str(piece.as_ref());
    }
    Ok(cmd)
}

/// What bash receives for a built command (`prefix + cmd`, empty postfix).
pub fn full_command(cmd: &str) -> String {
    format!("{BASH_PREFIX}{cmd}")
}

/// The text one interpolated value contributes.
pub fn interpolate(value: &ShellValue) -> String {
    match value {
        ShellValue::Array(items) => items
            .iter()
            .map(|item| quote(&substitute(item)))
            .collect::<Vec<_>>()
            .join(" "),
        other => quote(&substitute(other)),
    }
}

/// zx's `substitute`: ProcessOutput-like values give `stdout` with one trailing `\n`
/// removed, everything else `String(value)`.
pub fn substitute(value: &ShellValue) -> String {
    match value {
        ShellValue::ProcessOutput { stdout, .. } => strip_one_newline(stdout),
        ShellValue::Object(map) => match map.get("stdout") {
            Some(Value::String(stdout)) => strip_one_newline(stdout),
            _ => "[object Object]".to_owned(),
        },
        other => js_to_string(other),
    }
}

/// zx's bash `quote`: `$''` for the empty string, safe strings verbatim, else ANSI-C quoting
/// with only `\ ' \f \n \r \t \v \0` escaped.
pub fn quote(arg: &str) -> String {
    if arg.is_empty() {
        return "$''".to_owned();
    }
    // JavaScript's `\w` is ASCII-only, so non-ASCII always gets quoted.
    let safe = arg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_/.-@:=".contains(&b));
    if safe {
        return arg.to_owned();
    }
    let mut out = String::with_capacity(arg.len() + 3);
    out.push_str("$'");
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn strip_one_newline(s: &str) -> String {
    s.strip_suffix('\n').unwrap_or(s).to_owned()
}

/// `String(value)` (template-literal conversion).
fn js_to_string(value: &ShellValue) -> String {
    match value {
        ShellValue::String(s) => s.clone(),
        ShellValue::Number(n) => number_to_js_string(*n),
        ShellValue::BigInt(digits) => digits.clone(),
        ShellValue::Bool(b) => b.to_string(),
        ShellValue::Null => "null".to_owned(),
        ShellValue::Undefined => "undefined".to_owned(),
        // Array.prototype.join: null and undefined elements become empty strings.
        ShellValue::Array(items) => items
            .iter()
            .map(|item| match item {
                ShellValue::Null | ShellValue::Undefined => String::new(),
                other => js_to_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        ShellValue::Object(_) => "[object Object]".to_owned(),
        ShellValue::ProcessOutput { stdall, .. } => stdall.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ShellValue {
        ShellValue::String(v.to_owned())
    }

    #[test]
    fn quoting_table_of_the_spec() {
        assert_eq!(quote(""), "$''");
        assert_eq!(quote("main"), "main");
        assert_eq!(quote("a/b-c@d:e=f"), "a/b-c@d:e=f");
        assert_eq!(quote("a b"), "$'a b'");
        assert_eq!(quote("it's"), "$'it\\'s'");
        assert_eq!(quote("$HOME"), "$'$HOME'");
        assert_eq!(quote("ü"), "$'ü'");
        assert_eq!(quote("l1\nl2"), "$'l1\\nl2'");
        assert_eq!(quote("\\\u{0}\u{b}\u{c}\r\t"), "$'\\\\\\0\\v\\f\\r\\t'");
    }

    #[test]
    fn values_and_templates() {
        let cmd = build_command(
            &["echo ", " ", " ", " ", ""],
            &[
                ShellValue::Array(vec![s("a b"), s("c")]),
                ShellValue::Number(-0.0),
                ShellValue::Array(vec![
                    ShellValue::Array(vec![s("x"), ShellValue::Null]),
                    ShellValue::Undefined,
                ]),
                ShellValue::ProcessOutput {
                    stdout: "out\n\n".into(),
                    stdall: "out\n\n".into(),
                },
            ],
        )
        .unwrap();
        assert_eq!(cmd, "echo $'a b' c 0 $'x,' undefined $'out\\n'");
        assert_eq!(full_command("true"), "set -euo pipefail;true");
        assert!(build_command(&["a"], &[s("x")]).is_err());
        assert_eq!(
            build_command(&["printf '%s\\0' "], &[]).unwrap(),
            "printf '%s\\0' "
        );
    }
}
