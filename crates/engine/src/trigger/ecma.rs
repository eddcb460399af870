//! ECMAScript regular expressions as `new RegExp(source, flags).test(value)` evaluates them,
//! on top of `regress`.

use std::fmt;

/// Why a regex was rejected (the cases where `new RegExp` throws a `SyntaxError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression /{pattern}/{flags}: {message}")]
pub struct RegexError {
    pub pattern: String,
    pub flags: String,
    pub message: String,
}

/// A compiled ECMAScript regex. `g` and `y` are accepted but have no effect: every test
/// starts at index 0 and keeps no state (`triggers.md` §4.2).
#[derive(Clone)]
pub struct EcmaRegex {
    source: String,
    flags: String,
    regex: regress::Regex,
}

impl fmt::Debug for EcmaRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/{}", self.source, self.flags)
    }
}

impl EcmaRegex {
    pub fn new(source: &str, flags: &str) -> Result<EcmaRegex, RegexError> {
        let error = |message: String| RegexError {
            pattern: source.to_string(),
            flags: flags.to_string(),
            message,
        };
        let mut seen = String::new();
        for flag in flags.chars() {
            if !"dgimsuvy".contains(flag) || seen.contains(flag) {
                return Err(error(format!(
                    "Invalid flags supplied to RegExp constructor '{flags}'"
                )));
            }
            seen.push(flag);
        }
        if seen.contains('u') && seen.contains('v') {
            return Err(error(format!(
                "Invalid flags supplied to RegExp constructor '{flags}'"
            )));
        }
        let engine_flags: String = seen.chars().filter(|f| "imsuv".contains(*f)).collect();
        let unicode = seen.contains('u') || seen.contains('v');
        let pattern = rewrite_backreferences(source, unicode).map_err(error)?;
        let regex = regress::Regex::with_flags(&pattern, engine_flags.as_str())
            .map_err(|e| error(e.to_string()))?;
        Ok(EcmaRegex {
            source: source.to_string(),
            flags: flags.to_string(),
            regex,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn flags(&self) -> &str {
        &self.flags
    }

    /// `RegExp.prototype.test` on a fresh regex (unanchored unless the pattern anchors
    /// itself). With `y` the match must start at index 0, as a new sticky regex's would.
    pub fn test(&self, value: &str) -> bool {
        match self.regex.find(value) {
            Some(m) if self.flags.contains('y') => m.start() == 0,
            Some(_) => true,
            None => false,
        }
    }
}

/// `regress` accepts a backreference to a group that does not exist and then fails at match
/// time. ECMAScript says: with `u`/`v` that is a syntax error; without, Annex B reads `\N`
/// (N above the group count) as a legacy octal escape, or `\8`/`\9` as the digit itself. We
/// rewrite such escapes into `\xHH` / the digit so the engine never sees a dangling reference.
fn rewrite_backreferences(source: &str, unicode: bool) -> Result<String, String> {
    let chars: Vec<char> = source.chars().collect();
    let groups = count_capture_groups(&chars);
    let mut out = String::with_capacity(source.len());
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                out.push(c);
                i += 1;
                continue;
            };
            if !in_class && next.is_ascii_digit() && next != '0' {
                let mut end = i + 1;
                while end < chars.len() && chars[end].is_ascii_digit() {
                    end += 1;
                }
                let digits: String = chars[i + 1..end].iter().collect();
                let number: usize = digits.parse().unwrap_or(usize::MAX);
                if number <= groups {
                    out.push('\\');
                    out.push_str(&digits);
                    i = end;
                    continue;
                }
                if unicode {
                    return Err("Invalid escape".to_string());
                }
                let (replacement, used) = legacy_octal(&chars[i + 1..end]);
                out.push_str(&replacement);
                i += 1 + used;
                continue;
            }
            if !unicode
                && let Some(text) = annex_b_identity_escape(&chars[i + 1..], in_class, groups)
            {
                out.push_str(&text);
                i += 2;
                continue;
            }
            out.push(c);
            out.push(next);
            i += 2;
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            }
        } else if c == '[' {
            in_class = true;
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

/// Escapes that Annex B reads as the plain character (or, for `\c`, a literal backslash)
/// when they are incomplete, which `regress` rejects: `\x` without two hex digits, `\u`
/// without four, `\c` without a control letter, `\k` in a pattern without named groups.
fn annex_b_identity_escape(after: &[char], in_class: bool, groups: usize) -> Option<String> {
    let hex = |n: usize| after.len() > n && after[1..=n].iter().all(|c| c.is_ascii_hexdigit());
    match after[0] {
        'x' if !hex(2) => Some("x".to_string()),
        'u' if !hex(4) => Some("u".to_string()),
        'c' => {
            let control = after.get(1).is_some_and(|c| {
                c.is_ascii_alphabetic() || (in_class && (c.is_ascii_digit() || *c == '_'))
            });
            if control {
                None
            } else {
                Some("\\\\c".to_string())
            }
        }
        'k' if groups == 0 => Some("k".to_string()),
        _ => None,
    }
}

/// Annex B `LegacyOctalEscapeSequence` (or an identity escape for `8`/`9`) at the start of
/// `digits`; returns the replacement text and how many digits it consumed.
fn legacy_octal(digits: &[char]) -> (String, usize) {
    let octal = |c: &char| ('0'..='7').contains(c);
    if !digits.first().is_some_and(octal) {
        return (digits[0].to_string(), 1);
    }
    let mut value = 0u32;
    let mut used = 0;
    for d in digits.iter().take(3) {
        if !octal(d) {
            break;
        }
        let next = value * 8 + d.to_digit(8).unwrap_or(0);
        if next > 0o377 {
            break;
        }
        value = next;
        used += 1;
    }
    (format!("\\x{value:02x}"), used)
}

fn count_capture_groups(chars: &[char]) -> usize {
    let mut count = 0;
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => {
                let named = chars.get(i + 1) == Some(&'?')
                    && chars.get(i + 2) == Some(&'<')
                    && !matches!(chars.get(i + 3), Some('=') | Some('!'));
                if chars.get(i + 1) != Some(&'?') || named {
                    count += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanchored_with_flags() {
        assert!(EcmaRegex::new("release", "").unwrap().test("pre-release-x"));
        assert!(EcmaRegex::new("^FEATURE", "i").unwrap().test("feature-123"));
        assert!(EcmaRegex::new("MAIN", "gi").unwrap().test("main"));
        assert!(
            EcmaRegex::new("^lgtm$", "m")
                .unwrap()
                .test("ok\nlgtm\nthanks")
        );
    }

    #[test]
    fn sticky_anchors_at_the_start() {
        assert!(!EcmaRegex::new("ma", "y").unwrap().test("xmain"));
        assert!(EcmaRegex::new("ma", "y").unwrap().test("main"));
        assert!(EcmaRegex::new("ma", "g").unwrap().test("xmain"));
    }

    #[test]
    fn invalid_patterns_and_flags_are_errors() {
        assert!(EcmaRegex::new("(", "").is_err());
        assert!(EcmaRegex::new("[", "").is_err());
        assert!(EcmaRegex::new("a", "x").is_err());
        assert!(EcmaRegex::new("a", "gg").is_err());
        assert!(EcmaRegex::new("\\1", "u").is_err());
    }

    #[test]
    fn incomplete_escapes_are_literals() {
        assert!(EcmaRegex::new("^\\x$", "").unwrap().test("x"));
        assert!(EcmaRegex::new("^\\u1$", "").unwrap().test("u1"));
        assert!(EcmaRegex::new("^\\c$", "").unwrap().test("\\c"));
        assert!(EcmaRegex::new("^\\x41$", "").unwrap().test("A"));
        assert!(EcmaRegex::new("^\\x$", "u").is_err());
    }

    #[test]
    fn dangling_backreferences_are_octal_escapes() {
        let re = EcmaRegex::new("^\\1$", "").unwrap();
        assert!(re.test("\u{1}"));
        assert!(!re.test("1"));
        assert!(EcmaRegex::new("^\\8$", "").unwrap().test("8"));
        assert!(EcmaRegex::new("^(a)\\1$", "").unwrap().test("aa"));
    }
}
