//! Globs with the semantics of picomatch 4.0.4 under default options (`triggers.md` §4).
//!
//! Rather than re-deriving picomatch's many special cases, this module ports its translator
//! (glob → ECMAScript regex source) step by step, so that both the matching behaviour and the
//! regex text (`makeRe(glob).source`, which label matchers embed in the lock) agree with the
//! reference. The regex is compiled once with `regress` (ECMAScript semantics, non-unicode
//! mode like `new RegExp(source)`).
//!
//! Matching is `value === pattern || regex.test(value)`, as picomatch does; the empty value
//! never matches.

use std::fmt;

use crate::trigger::EcmaRegex;

/// picomatch refuses patterns longer than this many UTF-16 code units.
const MAX_LENGTH: usize = 1024 * 64;

const DOT_LITERAL: &str = "\\.";
const PLUS_LITERAL: &str = "\\+";
const SLASH_LITERAL: &str = "\\/";
const ONE_CHAR: &str = "(?=.)";
const QMARK: &str = "[^/]";
const NO_DOT: &str = "(?!\\.)";
const NO_DOT_SLASH: &str = "(?!\\.{0,1}(?:\\/|$))";
const QMARK_NO_DOT: &str = "[^.\\/]";
const STAR: &str = "[^/]*?";
/// `globstar(opts)` of picomatch with `dot: false` and no capture.
const GLOBSTAR: &str = "(?:(?:(?!(?:^|\\/)\\.).)*?)";

/// A glob that could not be compiled. picomatch throws only for these two cases; every other
/// pattern compiles (a translation that is not a valid regex never matches, as in picomatch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("glob pattern must be a non-empty string")]
    Empty,
    #[error("glob pattern is {len} characters long, more than the maximum of {MAX_LENGTH}")]
    TooLong { len: usize },
}

/// A compiled glob pattern.
#[derive(Clone)]
pub struct Glob {
    pattern: String,
    source: String,
    /// `None` when the translated source is not a valid regex: picomatch then uses `/$^/`,
    /// which matches nothing (string equality with the pattern still applies).
    regex: Option<EcmaRegex>,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Glob")
            .field("pattern", &self.pattern)
            .field("source", &self.source)
            .finish()
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Glob {
    /// Compiles `pattern` (picomatch default options).
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let translated = make_re_source(pattern)?;
        let regex = EcmaRegex::new(&translated, "").ok();
        // picomatch falls back to `/$^/` when its translation is not a valid regex.
        let source = if regex.is_some() {
            escape_source_like_v8(&translated)
        } else {
            "$^".to_string()
        };
        Ok(Glob {
            pattern: pattern.to_string(),
            source,
            regex,
        })
    }

    /// The pattern text as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The text of picomatch's `makeRe(pattern).source`, including the escaping V8 applies
    /// to a regex's `source` (`/` and line terminators).
    pub fn regex_source(&self) -> &str {
        &self.source
    }

    /// Whether `value` matches, as `picomatch(pattern)(value)`.
    pub fn is_match(&self, value: &str) -> bool {
        if value.is_empty() {
            return false;
        }
        if value == self.pattern {
            return true;
        }
        self.regex.as_ref().is_some_and(|re| re.test(value))
    }
}

/// The regex picomatch's `makeRe(pattern)` constructs under default options, as the string
/// passed to `new RegExp` (see [`Glob::regex_source`] for the `.source` text).
pub fn make_re_source(pattern: &str) -> Result<String, GlobError> {
    if pattern.is_empty() {
        return Err(GlobError::Empty);
    }
    let len = pattern.encode_utf16().count();
    if len > MAX_LENGTH {
        return Err(GlobError::TooLong { len });
    }
    let first = pattern.chars().next();
    let fast = if matches!(first, Some('.') | Some('*')) {
        fastpaths(pattern)
    } else {
        None
    };
    let (output, negated) = match fast {
        Some(output) => (output, false),
        None => {
            let state = Parser::parse(pattern, true);
            (state.output, state.negated)
        }
    };
    let mut source = format!("^(?:{output})$");
    if negated {
        source = format!("^(?!{source}).*$");
    }
    Ok(source)
}

/// `RegExp.prototype.source` as V8 renders it: `/` outside character classes and line
/// terminators are escaped so the text could sit between slashes.
fn escape_source_like_v8(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut in_class = false;
    let mut escaped = false;
    for c in source.chars() {
        if escaped {
            escaped = false;
            match c {
                '\n' => out.push('n'),
                '\r' => out.push('r'),
                '\u{2028}' => out.push_str("u2028"),
                '\u{2029}' => out.push_str("u2029"),
                _ => out.push(c),
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                out.push(c);
            }
            '/' if !in_class => out.push_str("\\/"),
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

/// picomatch's `REPLACEMENTS`: equivalent shorter globs.
fn replacement(input: &str) -> &str {
    match input {
        "***" => "*",
        "**/**" | "**/**/**" => "**",
        other => other,
    }
}

fn is_js_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_js_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// `utils.escapeRegex`: backslash before each of `-*+?.^${}(|)[]`.
fn escape_regex(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 4);
    for c in input.chars() {
        if "-*+?.^${}(|)[]".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `utils.hasRegexChars`.
fn has_regex_chars(input: &str) -> bool {
    input.chars().any(|c| "-*+?.^${}(|)[]".contains(c))
}

/// `utils.escapeLast`: escapes the last unescaped occurrence of `ch` (an ASCII character).
fn escape_last(input: &str, ch: char, last_idx: Option<usize>) -> String {
    let bytes = input.as_bytes();
    let limit = last_idx.map_or(bytes.len(), |i| (i + 1).min(bytes.len()));
    let Some(idx) = bytes[..limit].iter().rposition(|&b| b == ch as u8) else {
        return input.to_string();
    };
    if idx > 0 && bytes[idx - 1] == b'\\' {
        // JS `lastIndexOf(ch, -1)` still inspects index 0, hence the saturating step back.
        return escape_last(input, ch, Some(idx.saturating_sub(1)));
    }
    format!("{}\\{}", &input[..idx], &input[idx..])
}

/// JS `s.slice(0, -n)`: note that `n == 0` gives the empty string. Never splits a character.
fn slice_neg(s: &str, n: usize) -> String {
    if n == 0 {
        return String::new();
    }
    let mut end = s.len().saturating_sub(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The first `n` bytes of `s`, shortened to a character boundary.
fn byte_prefix(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// JS `String(x)` for an optional token output, as used in `+=`/`+` on possibly undefined
/// properties.
fn js_str(opt: &Option<String>) -> &str {
    opt.as_deref().unwrap_or("undefined")
}

/// picomatch's `parse.fastpaths` for globs starting with `.` or `*`.
fn fastpaths(input: &str) -> Option<String> {
    let input = replacement(input);
    let output = input.strip_prefix("./").unwrap_or(input);
    let mut source = fastpath_create(output)?;
    source.push_str(SLASH_LITERAL);
    source.push('?');
    Some(source)
}

fn fastpath_create(s: &str) -> Option<String> {
    let globstar = GLOBSTAR;
    Some(match s {
        "*" => format!("{NO_DOT}{ONE_CHAR}{STAR}"),
        ".*" => format!("{DOT_LITERAL}{ONE_CHAR}{STAR}"),
        "*.*" => format!("{NO_DOT}{STAR}{DOT_LITERAL}{ONE_CHAR}{STAR}"),
        "*/*" => format!("{NO_DOT}{STAR}{SLASH_LITERAL}{ONE_CHAR}{NO_DOT}{STAR}"),
        "**" => format!("{NO_DOT}{globstar}"),
        "**/*" => format!("(?:{NO_DOT}{globstar}{SLASH_LITERAL})?{NO_DOT}{ONE_CHAR}{STAR}"),
        "**/*.*" => format!(
            "(?:{NO_DOT}{globstar}{SLASH_LITERAL})?{NO_DOT}{STAR}{DOT_LITERAL}{ONE_CHAR}{STAR}"
        ),
        "**/.*" => format!("(?:{NO_DOT}{globstar}{SLASH_LITERAL})?{DOT_LITERAL}{ONE_CHAR}{STAR}"),
        _ => {
            // `/^(.*?)\.(\w+)$/`: the first dot after which only word characters remain.
            let (head, ext) = split_word_extension(s)?;
            let source = fastpath_create(head)?;
            format!("{source}{DOT_LITERAL}{ext}")
        }
    })
}

fn split_word_extension(s: &str) -> Option<(&str, &str)> {
    for (i, c) in s.char_indices() {
        if is_js_line_terminator(c) {
            return None;
        }
        if c == '.' {
            let ext = &s[i + 1..];
            if !ext.is_empty() && ext.chars().all(is_js_word) {
                return Some((&s[..i], ext));
            }
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bos,
    Text,
    Paren,
    Bracket,
    Brace,
    Comma,
    Slash,
    Dot,
    Dots,
    Qmark,
    Negate,
    Plus,
    At,
    Star,
    Globstar,
    MaybeSlash,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    value: String,
    output: Option<String>,
    prev: Option<usize>,
    extglob: bool,
    star: bool,
    posix: bool,
    comma: bool,
    dots: bool,
    output_index: usize,
    tokens_index: usize,
}

impl Token {
    fn new(kind: Kind, value: impl Into<String>, output: Option<String>) -> Self {
        Token {
            kind,
            value: value.into(),
            output,
            prev: None,
            extglob: false,
            star: false,
            posix: false,
            comma: false,
            dots: false,
            output_index: 0,
            tokens_index: 0,
        }
    }

    /// `token.output != null ? token.output : token.value`
    fn rendered(&self) -> &str {
        self.output.as_deref().unwrap_or(&self.value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtglobKind {
    Negate,
    Qmark,
    Plus,
    Star,
}

#[derive(Debug, Clone)]
struct Extglob {
    kind: ExtglobKind,
    close: String,
    inner: String,
    parens: i64,
    output: String,
    start_index: usize,
    tokens_index: usize,
}

/// The result of `parse()`: the regex body and whether the glob was negated with `!`.
struct ParseState {
    output: String,
    negated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Parens,
    Brackets,
    Braces,
}

/// A port of picomatch's `parse()` tokenizer. Tokens live in an arena (`arena`) because
/// picomatch keeps references to tokens it has already removed from the token list; `tokens`
/// is the ordered list of live token ids.
struct Parser {
    input: Vec<char>,
    index: isize,
    start: isize,
    consumed: String,
    output: String,
    backtrack: bool,
    negated: bool,
    brackets: i64,
    braces: i64,
    parens: i64,
    quotes: i64,
    arena: Vec<Token>,
    tokens: Vec<usize>,
    extglobs: Vec<Extglob>,
    brace_stack: Vec<usize>,
    stack: Vec<Counter>,
    prev: usize,
}

const BOS: usize = 0;

impl Parser {
    fn parse(pattern: &str, fastpaths_enabled: bool) -> ParseState {
        let replaced = replacement(pattern);
        let stripped = replaced.strip_prefix("./").unwrap_or(replaced);
        let mut parser = Parser {
            input: stripped.chars().collect(),
            index: -1,
            start: 0,
            consumed: String::new(),
            output: String::new(),
            backtrack: false,
            negated: false,
            brackets: 0,
            braces: 0,
            parens: 0,
            quotes: 0,
            arena: vec![Token::new(Kind::Bos, "", Some(String::new()))],
            tokens: vec![BOS],
            extglobs: Vec::new(),
            brace_stack: Vec::new(),
            stack: Vec::new(),
            prev: BOS,
        };
        if fastpaths_enabled && let Some(output) = parse_fastpath(stripped) {
            return ParseState {
                output,
                negated: false,
            };
        }
        parser.run();
        ParseState {
            output: parser.output,
            negated: parser.negated,
        }
    }

    fn len(&self) -> isize {
        self.input.len() as isize
    }

    fn eos(&self) -> bool {
        self.index == self.len() - 1
    }

    fn peek(&self, n: isize) -> Option<char> {
        let i = self.index + n;
        if i < 0 {
            None
        } else {
            self.input.get(i as usize).copied()
        }
    }

    fn advance(&mut self) -> String {
        self.index += 1;
        self.peek(0).map(String::from).unwrap_or_default()
    }

    fn remaining(&self) -> String {
        let from = (self.index + 1).max(0) as usize;
        self.input
            .get(from..)
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    fn consume(&mut self, value: &str, num: isize) {
        self.consumed.push_str(value);
        self.index += num;
    }

    fn tok(&self, id: usize) -> &Token {
        &self.arena[id]
    }

    fn tok_mut(&mut self, id: usize) -> &mut Token {
        &mut self.arena[id]
    }

    fn prev_tok(&self) -> &Token {
        &self.arena[self.prev]
    }

    fn counter(&mut self, which: Counter) -> &mut i64 {
        match which {
            Counter::Parens => &mut self.parens,
            Counter::Brackets => &mut self.brackets,
            Counter::Braces => &mut self.braces,
        }
    }

    fn increment(&mut self, which: Counter) {
        *self.counter(which) += 1;
        self.stack.push(which);
    }

    fn decrement(&mut self, which: Counter) {
        *self.counter(which) -= 1;
        self.stack.pop();
    }

    fn append_value(&mut self, value: &str) {
        self.output.push_str(value);
        self.consumed.push_str(value);
    }

    fn push(&mut self, mut tok: Token) {
        if self.prev_tok().kind == Kind::Globstar {
            let is_brace = self.braces > 0 && matches!(tok.kind, Kind::Comma | Kind::Brace);
            let is_extglob = tok.extglob || (!self.extglobs.is_empty() && tok.kind == Kind::Paren);
            if tok.kind != Kind::Slash && tok.kind != Kind::Paren && !is_brace && !is_extglob {
                let cut = js_str(&self.prev_tok().output).len();
                self.output = slice_neg(&self.output, cut);
                let prev = self.prev;
                let p = self.tok_mut(prev);
                p.kind = Kind::Star;
                p.value = "*".to_string();
                p.output = Some(STAR.to_string());
                self.output.push_str(STAR);
            }
        }

        if tok.kind != Kind::Paren
            && let Some(ext) = self.extglobs.last_mut()
        {
            ext.inner.push_str(&tok.value);
        }

        if !tok.value.is_empty() || tok.output.as_deref().is_some_and(|o| !o.is_empty()) {
            let rendered = tok.rendered().to_string();
            self.output.push_str(&rendered);
            self.consumed.push_str(&tok.value);
        }

        if self.prev_tok().kind == Kind::Text && tok.kind == Kind::Text {
            let prev = self.prev;
            let p = self.tok_mut(prev);
            let base = match &p.output {
                Some(o) if !o.is_empty() => o.clone(),
                _ => p.value.clone(),
            };
            p.output = Some(base + &tok.value);
            p.value.push_str(&tok.value);
            return;
        }

        tok.prev = Some(self.prev);
        let id = self.arena.len();
        self.arena.push(tok);
        self.tokens.push(id);
        self.prev = id;
    }

    fn extglob_open(&mut self, kind: Kind, ext_kind: ExtglobKind, value: &str) {
        let (open, close) = match ext_kind {
            ExtglobKind::Negate => ("(?:(?!(?:", format!("))){STAR})")),
            ExtglobKind::Qmark => ("(?:", ")?".to_string()),
            ExtglobKind::Plus => ("(?:", ")+".to_string()),
            ExtglobKind::Star => ("(?:", ")*".to_string()),
        };
        let ext = Extglob {
            kind: ext_kind,
            close,
            inner: String::new(),
            parens: self.parens,
            output: self.output.clone(),
            start_index: self.index.max(0) as usize,
            tokens_index: self.tokens.len(),
        };
        self.increment(Counter::Parens);
        let first_output = if self.output.is_empty() { ONE_CHAR } else { "" };
        self.push(Token::new(kind, value, Some(first_output.to_string())));
        let paren_value = self.advance();
        let mut paren = Token::new(Kind::Paren, paren_value, Some(open.to_string()));
        paren.extglob = true;
        self.push(paren);
        self.extglobs.push(ext);
    }

    fn extglob_close(&mut self, mut ext: Extglob, value: &str) {
        let idx = self.index.max(0) as usize;
        let literal: String = self.input[ext.start_index..=idx.min(self.input.len() - 1)]
            .iter()
            .collect();
        let body: String = self
            .input
            .get(ext.start_index + 2..idx)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let analysis = analyze_repeated_extglob(&body);

        if matches!(ext.kind, ExtglobKind::Plus | ExtglobKind::Star) && analysis.risky {
            let safe_output = analysis.safe_output.map(|safe| {
                let lead = if ext.output.is_empty() { ONE_CHAR } else { "" };
                format!("{lead}{safe}")
            });
            let open_id = self.tokens.get(ext.tokens_index).copied();
            let open_output = safe_output.unwrap_or_else(|| escape_regex(&literal));
            if let Some(open_id) = open_id {
                let open = self.tok_mut(open_id);
                open.kind = Kind::Text;
                open.value = literal.clone();
                open.output = Some(open_output.clone());
                for i in ext.tokens_index + 1..self.tokens.len() {
                    let id = self.tokens[i];
                    let t = self.tok_mut(id);
                    t.value = String::new();
                    t.output = Some(String::new());
                }
            }
            self.output = format!("{}{}", ext.output, open_output);
            self.backtrack = true;
            let mut paren = Token::new(Kind::Paren, value, Some(String::new()));
            paren.extglob = true;
            self.push(paren);
            self.decrement(Counter::Parens);
            return;
        }

        let mut output = ext.close.clone();
        if ext.kind == ExtglobKind::Negate {
            let mut extglob_star = STAR.to_string();
            if ext.inner.chars().count() > 1 && ext.inner.contains('/') {
                extglob_star = GLOBSTAR.to_string();
            }
            let rest = self.remaining();
            let only_parens = !rest.is_empty() && rest.chars().all(|c| c == ')');
            if extglob_star != STAR || self.eos() || only_parens {
                ext.close = format!(")$)){extglob_star}");
                output = ext.close.clone();
            }
            if ext.inner.contains('*') && is_dot_extension(&rest) {
                let expression = Parser::parse(&rest, false).output;
                ext.close = format!("){expression}){extglob_star})");
                output = ext.close.clone();
            }
        }
        let mut paren = Token::new(Kind::Paren, value, Some(output));
        paren.extglob = true;
        self.push(paren);
        self.decrement(Counter::Parens);
    }

    fn negate(&mut self) -> bool {
        let mut count = 1;
        while self.peek(1) == Some('!') && (self.peek(2) != Some('(') || self.peek(3) == Some('?'))
        {
            self.advance();
            self.start += 1;
            count += 1;
        }
        if count % 2 == 0 {
            return false;
        }
        self.negated = true;
        self.start += 1;
        true
    }

    fn run(&mut self) {
        while !self.eos() {
            let mut value = self.advance();

            if value == "\u{0}" {
                continue;
            }

            if value == "\\" {
                let next = self.peek(1);
                if next == Some('/') || next == Some('.') || next == Some(';') {
                    continue;
                }
                let Some(_) = next else {
                    value.push('\\');
                    self.push(Token::new(Kind::Text, value, None));
                    continue;
                };
                let rest = self.remaining();
                let run = rest.chars().take_while(|&c| c == '\\').count();
                if run > 2 {
                    self.index += run as isize;
                    if run % 2 != 0 {
                        value.push('\\');
                    }
                }
                let next = self.advance();
                value.push_str(&next);
                if self.brackets == 0 {
                    self.push(Token::new(Kind::Text, value, None));
                    continue;
                }
            }

            if self.brackets > 0
                && (value != "]" || self.prev_tok().value == "[" || self.prev_tok().value == "[^")
            {
                if value == ":" && self.bracket_posix_class() {
                    continue;
                }
                let next = self.peek(1);
                if (value == "[" && next != Some(':')) || (value == "-" && next == Some(']')) {
                    value = format!("\\{value}");
                }
                if value == "]" && (self.prev_tok().value == "[" || self.prev_tok().value == "[^") {
                    value = format!("\\{value}");
                }
                let prev = self.prev;
                self.tok_mut(prev).value.push_str(&value);
                self.append_value(&value);
                continue;
            }

            if self.quotes == 1 && value != "\"" {
                let escaped = escape_regex(&value);
                let prev = self.prev;
                self.tok_mut(prev).value.push_str(&escaped);
                self.append_value(&escaped);
                continue;
            }

            if value == "\"" {
                self.quotes = if self.quotes == 1 { 0 } else { 1 };
                continue;
            }

            if value == "(" {
                self.increment(Counter::Parens);
                self.push(Token::new(Kind::Paren, value, None));
                continue;
            }

            if value == ")" {
                let closes_extglob = self
                    .extglobs
                    .last()
                    .is_some_and(|ext| self.parens == ext.parens + 1);
                if closes_extglob {
                    let ext = self.extglobs.pop().expect("checked above");
                    self.extglob_close(ext, &value);
                    continue;
                }
                let output = if self.parens != 0 { ")" } else { "\\)" };
                self.push(Token::new(Kind::Paren, value, Some(output.to_string())));
                self.decrement(Counter::Parens);
                continue;
            }

            if value == "[" {
                if !self.remaining().contains(']') {
                    value = "\\[".to_string();
                } else {
                    self.increment(Counter::Brackets);
                }
                self.push(Token::new(Kind::Bracket, value, None));
                continue;
            }

            if value == "]" {
                self.close_bracket();
                continue;
            }

            if value == "{" {
                self.increment(Counter::Braces);
                let mut open = Token::new(Kind::Brace, value, Some("(".to_string()));
                open.output_index = self.output.len();
                open.tokens_index = self.tokens.len();
                let id = self.arena.len();
                self.brace_stack.push(id);
                self.push(open);
                continue;
            }

            if value == "}" {
                self.close_brace();
                continue;
            }

            if value == "|" {
                self.push(Token::new(Kind::Text, value, None));
                continue;
            }

            if value == "," {
                let mut output = value.clone();
                if let Some(&brace) = self.brace_stack.last()
                    && self.stack.last() == Some(&Counter::Braces)
                {
                    self.tok_mut(brace).comma = true;
                    output = "|".to_string();
                }
                self.push(Token::new(Kind::Comma, value, Some(output)));
                continue;
            }

            if value == "/" {
                if self.prev_tok().kind == Kind::Dot && self.index == self.start + 1 {
                    self.start = self.index + 1;
                    self.consumed.clear();
                    self.output.clear();
                    self.tokens.pop();
                    self.prev = BOS;
                    continue;
                }
                self.push(Token::new(
                    Kind::Slash,
                    value,
                    Some(SLASH_LITERAL.to_string()),
                ));
                continue;
            }

            if value == "." {
                if self.braces > 0 && self.prev_tok().kind == Kind::Dot {
                    let prev = self.prev;
                    let p = self.tok_mut(prev);
                    if p.value == "." {
                        p.output = Some(DOT_LITERAL.to_string());
                    }
                    p.kind = Kind::Dots;
                    let out = js_str(&p.output).to_string();
                    p.output = Some(out + &value);
                    p.value.push_str(&value);
                    if let Some(&brace) = self.brace_stack.last() {
                        self.tok_mut(brace).dots = true;
                    }
                    continue;
                }
                let kind = self.prev_tok().kind;
                if self.braces + self.parens == 0 && kind != Kind::Bos && kind != Kind::Slash {
                    self.push(Token::new(Kind::Text, value, Some(DOT_LITERAL.to_string())));
                    continue;
                }
                self.push(Token::new(Kind::Dot, value, Some(DOT_LITERAL.to_string())));
                continue;
            }

            if value == "?" {
                let is_group = self.prev_tok().value == "(";
                if !is_group && self.peek(1) == Some('(') && self.peek(2) != Some('?') {
                    self.extglob_open(Kind::Qmark, ExtglobKind::Qmark, &value);
                    continue;
                }
                if self.prev_tok().kind == Kind::Paren {
                    let next = self.peek(1);
                    let next_is_special = next.is_some_and(|c| "!=<:".contains(c));
                    let mut output = value.clone();
                    if (self.prev_tok().value == "(" && !next_is_special)
                        || (next == Some('<') && !is_lookbehind_or_named_group(&self.remaining()))
                    {
                        output = format!("\\{value}");
                    }
                    self.push(Token::new(Kind::Text, value, Some(output)));
                    continue;
                }
                if matches!(self.prev_tok().kind, Kind::Slash | Kind::Bos) {
                    self.push(Token::new(
                        Kind::Qmark,
                        value,
                        Some(QMARK_NO_DOT.to_string()),
                    ));
                    continue;
                }
                self.push(Token::new(Kind::Qmark, value, Some(QMARK.to_string())));
                continue;
            }

            if value == "!" {
                if self.peek(1) == Some('(')
                    && (self.peek(2) != Some('?')
                        || !self.peek(3).is_some_and(|c| "!=<:".contains(c)))
                {
                    self.extglob_open(Kind::Negate, ExtglobKind::Negate, &value);
                    continue;
                }
                if self.index == 0 {
                    self.negate();
                    continue;
                }
            }

            if value == "+" {
                if self.peek(1) == Some('(') && self.peek(2) != Some('?') {
                    self.extglob_open(Kind::Plus, ExtglobKind::Plus, &value);
                    continue;
                }
                if self.prev_tok().value == "(" {
                    self.push(Token::new(
                        Kind::Plus,
                        value,
                        Some(PLUS_LITERAL.to_string()),
                    ));
                    continue;
                }
                let kind = self.prev_tok().kind;
                if matches!(kind, Kind::Bracket | Kind::Paren | Kind::Brace) || self.parens > 0 {
                    self.push(Token::new(Kind::Plus, value, None));
                    continue;
                }
                self.push(Token::new(Kind::Plus, PLUS_LITERAL, None));
                continue;
            }

            if value == "@" {
                if self.peek(1) == Some('(') && self.peek(2) != Some('?') {
                    let mut at = Token::new(Kind::At, value, Some(String::new()));
                    at.extglob = true;
                    self.push(at);
                    continue;
                }
                self.push(Token::new(Kind::Text, value, None));
                continue;
            }

            if value != "*" {
                if value == "$" || value == "^" {
                    value = format!("\\{value}");
                }
                let rest = self.remaining();
                let plain: String = rest
                    .chars()
                    .take_while(|&c| !is_special_for_text(c))
                    .collect();
                if !plain.is_empty() {
                    self.index += plain.chars().count() as isize;
                    value.push_str(&plain);
                }
                self.push(Token::new(Kind::Text, value, None));
                continue;
            }

            self.star(value);
        }

        while self.brackets > 0 {
            self.output = escape_last(&self.output, '[', None);
            self.decrement(Counter::Brackets);
        }
        while self.parens > 0 {
            self.output = escape_last(&self.output, '(', None);
            self.decrement(Counter::Parens);
        }
        while self.braces > 0 {
            self.output = escape_last(&self.output, '{', None);
            self.decrement(Counter::Braces);
        }

        if matches!(self.prev_tok().kind, Kind::Star | Kind::Bracket) {
            self.push(Token::new(
                Kind::MaybeSlash,
                "",
                Some(format!("{SLASH_LITERAL}?")),
            ));
        }

        if self.backtrack {
            let mut output = String::new();
            for &id in &self.tokens {
                output.push_str(self.tok(id).rendered());
            }
            self.output = output;
        }
    }

    /// `[:name:]` inside a bracket expression. Returns true when the character was consumed.
    fn bracket_posix_class(&mut self) -> bool {
        let prev = self.prev;
        let prev_value = self.tok(prev).value.clone();
        let inner: String = prev_value.chars().skip(1).collect();
        if !inner.contains('[') {
            return false;
        }
        self.tok_mut(prev).posix = true;
        if !inner.contains(':') {
            return false;
        }
        let idx = prev_value.rfind('[').expect("inner contains '['");
        let pre = &prev_value[..idx];
        let name = prev_value.get(idx + 2..).unwrap_or("");
        let Some(class) = posix_class(name) else {
            return false;
        };
        let new_value = format!("{pre}{class}");
        self.tok_mut(prev).value = new_value;
        self.backtrack = true;
        self.advance();
        if self.tok(BOS).output.as_deref().unwrap_or("").is_empty()
            && self.tokens.iter().position(|&t| t == prev) == Some(1)
        {
            self.tok_mut(BOS).output = Some(ONE_CHAR.to_string());
        }
        true
    }

    fn close_bracket(&mut self) {
        let value = "]".to_string();
        let prev_is_lone_bracket =
            self.prev_tok().kind == Kind::Bracket && self.prev_tok().value.chars().count() == 1;
        if prev_is_lone_bracket || self.brackets == 0 {
            self.push(Token::new(Kind::Text, value, Some("\\]".to_string())));
            return;
        }
        self.decrement(Counter::Brackets);

        let prev = self.prev;
        let prev_value: String = self.tok(prev).value.chars().skip(1).collect();
        let mut closing = value;
        if !self.tok(prev).posix && prev_value.starts_with('^') && !prev_value.contains('/') {
            closing = format!("/{closing}");
        }
        self.tok_mut(prev).value.push_str(&closing);
        self.append_value(&closing);

        if has_regex_chars(&prev_value) {
            return;
        }
        // A bracket without regex-special characters matches either itself literally or as a
        // class: `[x]` matches `x` and `[x]`.
        let whole = self.tok(prev).value.clone();
        let escaped = escape_regex(&whole);
        self.output = slice_neg(&self.output, whole.len());
        let alternative = format!("(?:{escaped}|{whole})");
        self.tok_mut(prev).value = alternative.clone();
        self.output.push_str(&alternative);
    }

    fn close_brace(&mut self) {
        let mut value = "}".to_string();
        let Some(&brace) = self.brace_stack.last() else {
            self.push(Token::new(Kind::Text, value.clone(), Some(value)));
            return;
        };
        let mut output = ")".to_string();

        if self.tok(brace).dots {
            let mut range: Vec<String> = Vec::new();
            while let Some(id) = self.tokens.pop() {
                let t = self.tok(id);
                if t.kind == Kind::Brace {
                    break;
                }
                if t.kind != Kind::Dots {
                    range.insert(0, t.value.clone());
                }
            }
            output = expand_range(range);
            self.backtrack = true;
        }

        let (comma, dots) = (self.tok(brace).comma, self.tok(brace).dots);
        if !comma && !dots {
            let (output_index, tokens_index) =
                (self.tok(brace).output_index, self.tok(brace).tokens_index);
            let mut out = byte_prefix(&self.output, output_index).to_string();
            let b = self.tok_mut(brace);
            b.value = "\\{".to_string();
            b.output = Some("\\{".to_string());
            value = "\\}".to_string();
            output = "\\}".to_string();
            let from = tokens_index.min(self.tokens.len());
            for &id in &self.tokens[from..] {
                let t = self.tok(id);
                match &t.output {
                    Some(o) if !o.is_empty() => out.push_str(o),
                    _ => out.push_str(&t.value),
                }
            }
            self.output = out;
        }

        self.push(Token::new(Kind::Brace, value, Some(output)));
        self.decrement(Counter::Braces);
        self.brace_stack.pop();
    }

    fn star(&mut self, value: String) {
        let prev = self.prev;
        if self.tok(prev).kind == Kind::Globstar || self.tok(prev).star {
            let p = self.tok_mut(prev);
            p.kind = Kind::Star;
            p.star = true;
            p.value.push_str(&value);
            p.output = Some(STAR.to_string());
            self.backtrack = true;
            self.consume(&value, 0);
            return;
        }

        let mut rest = self.remaining();
        {
            let mut it = rest.chars();
            if it.next() == Some('(') && it.next().is_some_and(|c| c != '?') {
                self.extglob_open(Kind::Star, ExtglobKind::Star, &value);
                return;
            }
        }

        if self.tok(prev).kind == Kind::Star {
            let prior = self.tok(prev).prev.unwrap_or(BOS);
            let prior_kind = self.tok(prior).kind;
            let before = self.tok(prior).prev;
            let is_start = matches!(prior_kind, Kind::Slash | Kind::Bos);
            let after_star =
                before.is_some_and(|b| matches!(self.tok(b).kind, Kind::Star | Kind::Globstar));
            let is_brace = self.braces > 0 && matches!(prior_kind, Kind::Comma | Kind::Brace);
            let is_extglob = !self.extglobs.is_empty() && prior_kind == Kind::Paren;
            if !is_start && prior_kind != Kind::Paren && !is_brace && !is_extglob {
                self.push(Token::new(Kind::Star, value, Some(String::new())));
                return;
            }

            while rest.starts_with("/**") {
                let after = self.peek(4);
                if after.is_some_and(|c| c != '/') {
                    break;
                }
                rest = rest[3..].to_string();
                self.consume("/**", 3);
            }

            let prior_prev_is_bos = self
                .tok(prior)
                .prev
                .is_some_and(|p| self.tok(p).kind == Kind::Bos);

            if prior_kind == Kind::Bos && self.eos() {
                let p = self.tok_mut(prev);
                p.kind = Kind::Globstar;
                p.value.push_str(&value);
                p.output = Some(GLOBSTAR.to_string());
                self.output = GLOBSTAR.to_string();
                self.consume(&value, 0);
                return;
            }

            if prior_kind == Kind::Slash && !prior_prev_is_bos && !after_star && self.eos() {
                let cut = format!(
                    "{}{}",
                    js_str(&self.tok(prior).output),
                    js_str(&self.tok(prev).output)
                );
                self.output = slice_neg(&self.output, cut.len());
                let prior_output = format!("(?:{}", js_str(&self.tok(prior).output));
                self.tok_mut(prior).output = Some(prior_output.clone());
                let prev_output = format!("{GLOBSTAR}|$)");
                let p = self.tok_mut(prev);
                p.kind = Kind::Globstar;
                p.output = Some(prev_output.clone());
                p.value.push_str(&value);
                self.output.push_str(&prior_output);
                self.output.push_str(&prev_output);
                self.consume(&value, 0);
                return;
            }

            if prior_kind == Kind::Slash && !prior_prev_is_bos && rest.starts_with('/') {
                let end = if rest.chars().nth(1).is_some() {
                    "|$"
                } else {
                    ""
                };
                let cut = format!(
                    "{}{}",
                    js_str(&self.tok(prior).output),
                    js_str(&self.tok(prev).output)
                );
                self.output = slice_neg(&self.output, cut.len());
                let prior_output = format!("(?:{}", js_str(&self.tok(prior).output));
                self.tok_mut(prior).output = Some(prior_output.clone());
                let prev_output = format!("{GLOBSTAR}{SLASH_LITERAL}|{SLASH_LITERAL}{end})");
                let p = self.tok_mut(prev);
                p.kind = Kind::Globstar;
                p.output = Some(prev_output.clone());
                p.value.push_str(&value);
                self.output.push_str(&prior_output);
                self.output.push_str(&prev_output);
                let next = self.advance();
                self.consume(&format!("{value}{next}"), 0);
                self.push(Token::new(Kind::Slash, "/", Some(String::new())));
                return;
            }

            if prior_kind == Kind::Bos && rest.starts_with('/') {
                let prev_output = format!("(?:^|{SLASH_LITERAL}|{GLOBSTAR}{SLASH_LITERAL})");
                let p = self.tok_mut(prev);
                p.kind = Kind::Globstar;
                p.value.push_str(&value);
                p.output = Some(prev_output.clone());
                self.output = prev_output;
                let next = self.advance();
                self.consume(&format!("{value}{next}"), 0);
                self.push(Token::new(Kind::Slash, "/", Some(String::new())));
                return;
            }

            let cut = js_str(&self.tok(prev).output).len();
            self.output = slice_neg(&self.output, cut);
            let p = self.tok_mut(prev);
            p.kind = Kind::Globstar;
            p.output = Some(GLOBSTAR.to_string());
            p.value.push_str(&value);
            self.output.push_str(GLOBSTAR);
            self.consume(&value, 0);
            return;
        }

        let token = Token::new(Kind::Star, value, Some(STAR.to_string()));
        let prev_kind = self.tok(prev).kind;
        if self.index == self.start || prev_kind == Kind::Slash || prev_kind == Kind::Dot {
            let guard = if prev_kind == Kind::Dot {
                NO_DOT_SLASH
            } else {
                NO_DOT
            };
            self.output.push_str(guard);
            let out = format!("{}{guard}", js_str(&self.tok(prev).output));
            self.tok_mut(prev).output = Some(out);
            if self.peek(1) != Some('*') {
                self.output.push_str(ONE_CHAR);
                let out = format!("{}{ONE_CHAR}", js_str(&self.tok(prev).output));
                self.tok_mut(prev).output = Some(out);
            }
        }
        self.push(token);
    }
}

/// `REGEX_NON_SPECIAL_CHARS` excludes these from runs of plain text.
fn is_special_for_text(c: char) -> bool {
    "@![].,$*+?^{}()|\\/".contains(c)
}

/// `/<([!=]|\w+>)/.test(remaining)`
fn is_lookbehind_or_named_group(rest: &str) -> bool {
    let chars: Vec<char> = rest.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c != '<' {
            continue;
        }
        match chars.get(i + 1) {
            Some('!') | Some('=') => return true,
            Some(&w) if is_js_word(w) => {
                let mut j = i + 1;
                while j < chars.len() && is_js_word(chars[j]) {
                    j += 1;
                }
                if chars.get(j) == Some(&'>') {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// `/^\.[^\\/.]+$/`
fn is_dot_extension(rest: &str) -> bool {
    let Some(tail) = rest.strip_prefix('.') else {
        return false;
    };
    !tail.is_empty() && tail.chars().all(|c| !matches!(c, '\\' | '/' | '.'))
}

fn posix_class(name: &str) -> Option<&'static str> {
    Some(match name {
        "alnum" => "a-zA-Z0-9",
        "alpha" => "a-zA-Z",
        "ascii" => "\\x00-\\x7F",
        "blank" => " \\t",
        "cntrl" => "\\x00-\\x1F\\x7F",
        "digit" => "0-9",
        "graph" => "\\x21-\\x7E",
        "lower" => "a-z",
        "print" => "\\x20-\\x7E ",
        "punct" => "\\-!\"#$%&'()\\*+,./:;<=>?@[\\]^_`{|}~",
        "space" => " \\t\\r\\n\\v\\f",
        "upper" => "A-Z",
        "word" => "A-Za-z0-9_",
        "xdigit" => "A-Fa-f0-9",
        _ => return None,
    })
}

/// `{a..b}` becomes the character class `[a-b]` (bounds sorted as JS sorts strings); when that
/// is not a valid regex, the escaped bounds joined by `..`.
fn expand_range(mut args: Vec<String>) -> String {
    args.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
    let value = format!("[{}]", args.join("-"));
    if EcmaRegex::new(&value, "").is_ok() {
        return value;
    }
    args.iter()
        .map(|a| escape_regex(a))
        .collect::<Vec<_>>()
        .join("..")
}

/// The fast path inside `parse()` for globs without `/()[]{}"` that do not start with `*`
/// or `!`: special characters are translated one run at a time.
fn parse_fastpath(input: &str) -> Option<String> {
    let starts_special = matches!(input.chars().next(), Some('*') | Some('!'));
    if starts_special || input.chars().any(|c| "/()[]{}\"".contains(c)) {
        return None;
    }
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len() * 2);
    let mut backslashes = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // `(\\?)((\W)(\3*))`: an optional backslash, then a run of one non-word character.
        let (esc, first_pos) = if c == '\\' && chars.get(i + 1).is_some_and(|&n| !is_js_word(n)) {
            (true, i + 1)
        } else if !is_js_word(c) {
            (false, i)
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        let first = chars[first_pos];
        let mut end = first_pos + 1;
        while end < chars.len() && chars[end] == first {
            end += 1;
        }
        let run_len = end - first_pos;
        let rest_len = run_len - 1;
        let whole: String = chars[i..end].iter().collect();
        match first {
            '\\' => {
                backslashes = true;
                out.push_str(&whole);
            }
            '?' => {
                if esc {
                    out.push_str("\\?");
                    out.push_str(&QMARK.repeat(rest_len));
                } else if i == 0 {
                    out.push_str(QMARK_NO_DOT);
                    out.push_str(&QMARK.repeat(rest_len));
                } else {
                    out.push_str(&QMARK.repeat(run_len));
                }
            }
            '.' => out.push_str(&DOT_LITERAL.repeat(run_len)),
            '*' => {
                if esc {
                    out.push_str("\\*");
                    if rest_len > 0 {
                        out.push_str(STAR);
                    }
                } else {
                    out.push_str(STAR);
                }
            }
            _ => {
                if !esc {
                    out.push('\\');
                }
                out.push_str(&whole);
            }
        }
        i = end;
    }

    if backslashes {
        // `.replace(/\\+/g, …)`: an even run of backslashes becomes two, an odd run one.
        let mut collapsed = String::with_capacity(out.len());
        let mut chars = out.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                collapsed.push(c);
                continue;
            }
            let mut run = 1;
            while chars.peek() == Some(&'\\') {
                chars.next();
                run += 1;
            }
            collapsed.push_str(if run % 2 == 0 { "\\\\" } else { "\\" });
        }
        out = collapsed;
    }

    Some(format!("^(?:{out})$"))
}

struct ExtglobAnalysis {
    risky: bool,
    safe_output: Option<String>,
}

/// picomatch 4.0.4's guard against catastrophic backtracking in `+(...)`/`*(...)`: risky
/// bodies are matched literally (or by a simplified equivalent).
fn analyze_repeated_extglob(body: &str) -> ExtglobAnalysis {
    let branches: Vec<String> = split_top_level(body)
        .iter()
        .map(|b| js_trim(b).to_string())
        .collect();
    if branches.len() > 1
        && (branches.iter().any(|b| b.is_empty())
            || branches
                .iter()
                .any(|b| b.chars().all(|c| c == '*' || c == '?'))
            || has_repeated_char_prefix_overlap(&branches))
    {
        return ExtglobAnalysis {
            risky: true,
            safe_output: None,
        };
    }
    for branch in &branches {
        if let Some(safe) = star_extglob_sequence_output(branch) {
            return ExtglobAnalysis {
                risky: true,
                safe_output: Some(safe),
            };
        }
        // DEFAULT_MAX_EXTGLOB_RECURSION is 0: any nested repetition is risky.
        if repeated_extglob_recursion(branch) > 0 {
            return ExtglobAnalysis {
                risky: true,
                safe_output: None,
            };
        }
    }
    ExtglobAnalysis {
        risky: false,
        safe_output: None,
    }
}

/// JS `String.prototype.trim` (whitespace and line terminators).
fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

fn split_top_level(input: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut bracket, mut paren, mut quote) = (0i64, 0i64, false);
    let mut value = String::new();
    let mut escaped = false;
    for ch in input.chars() {
        if escaped {
            value.push(ch);
            escaped = false;
            continue;
        }
        if ch == '\\' {
            value.push(ch);
            escaped = true;
            continue;
        }
        if ch == '"' {
            quote = !quote;
            value.push(ch);
            continue;
        }
        if !quote {
            if ch == '[' {
                bracket += 1;
            } else if ch == ']' && bracket > 0 {
                bracket -= 1;
            } else if bracket == 0 {
                if ch == '(' {
                    paren += 1;
                } else if ch == ')' && paren > 0 {
                    paren -= 1;
                } else if ch == '|' && paren == 0 {
                    parts.push(std::mem::take(&mut value));
                    continue;
                }
            }
        }
        value.push(ch);
    }
    parts.push(value);
    parts
}

fn is_plain_branch(branch: &str) -> bool {
    let mut escaped = false;
    for ch in branch.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        if ch == '\\' {
            escaped = true;
            continue;
        }
        if "?*+@!()[]{}".contains(ch) {
            return false;
        }
    }
    true
}

fn normalize_simple_branch(branch: &str) -> Option<String> {
    let mut value = js_trim(branch).to_string();
    // `/^@\([^\\()[\]{}|]+\)$/`, unwrapped repeatedly.
    loop {
        let unwrapped = value
            .strip_prefix("@(")
            .and_then(|v| v.strip_suffix(')'))
            .filter(|inner| !inner.is_empty() && !inner.chars().any(|c| "\\()[]{}|".contains(c)));
        match unwrapped {
            Some(inner) => value = inner.to_string(),
            None => break,
        }
    }
    if !is_plain_branch(&value) {
        return None;
    }
    // `.replace(/\\(.)/g, '$1')`
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && !is_js_line_terminator(n)
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    Some(out)
}

fn has_repeated_char_prefix_overlap(branches: &[String]) -> bool {
    let values: Vec<String> = branches
        .iter()
        .filter_map(|b| normalize_simple_branch(b))
        .filter(|v| !v.is_empty())
        .collect();
    for i in 0..values.len() {
        for j in i + 1..values.len() {
            let (a, b) = (&values[i], &values[j]);
            let Some(ch) = a.chars().next() else { continue };
            if !a.chars().all(|c| c == ch) || !b.chars().all(|c| c == ch) {
                continue;
            }
            if a == b || a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                return true;
            }
        }
    }
    false
}

struct RepeatedExtglob {
    kind: char,
    body: String,
    end: usize,
}

/// Recognises `+(...)` / `*(...)` at the start of `pattern` (indices are char positions).
fn parse_repeated_extglob(pattern: &[char], require_end: bool) -> Option<RepeatedExtglob> {
    if !matches!(pattern.first(), Some('+') | Some('*')) || pattern.get(1) != Some(&'(') {
        return None;
    }
    let (mut bracket, mut paren, mut quote) = (0i64, 0i64, false);
    let mut escaped = false;
    for i in 1..pattern.len() {
        let ch = pattern[i];
        if escaped {
            escaped = false;
            continue;
        }
        if ch == '\\' {
            escaped = true;
            continue;
        }
        if ch == '"' {
            quote = !quote;
            continue;
        }
        if quote {
            continue;
        }
        if ch == '[' {
            bracket += 1;
            continue;
        }
        if ch == ']' && bracket > 0 {
            bracket -= 1;
            continue;
        }
        if bracket > 0 {
            continue;
        }
        if ch == '(' {
            paren += 1;
            continue;
        }
        if ch == ')' {
            paren -= 1;
            if paren == 0 {
                if require_end && i != pattern.len() - 1 {
                    return None;
                }
                return Some(RepeatedExtglob {
                    kind: pattern[0],
                    body: pattern[2..i].iter().collect(),
                    end: i,
                });
            }
        }
    }
    None
}

fn star_extglob_sequence_output(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut index = 0;
    let mut seq: Vec<String> = Vec::new();
    while index < chars.len() {
        let m = parse_repeated_extglob(&chars[index..], false)?;
        if m.kind != '*' {
            return None;
        }
        let branches = split_top_level(&m.body);
        if branches.len() != 1 {
            return None;
        }
        let branch = normalize_simple_branch(js_trim(&branches[0]))?;
        if branch.chars().count() != 1 {
            return None;
        }
        seq.push(branch);
        index += m.end + 1;
    }
    if seq.is_empty() {
        return None;
    }
    let source = if seq.len() == 1 {
        escape_regex(&seq[0])
    } else {
        format!(
            "[{}]",
            seq.iter().map(|c| escape_regex(c)).collect::<String>()
        )
    };
    Some(format!("{source}*"))
}

fn repeated_extglob_recursion(pattern: &str) -> usize {
    let mut depth = 0;
    let mut value = js_trim(pattern).to_string();
    while let Some(m) = parse_repeated_extglob(&value.chars().collect::<Vec<_>>(), true) {
        depth += 1;
        value = js_trim(&m.body).to_string();
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, yes: &[&str], no: &[&str]) {
        let glob = Glob::new(pattern).unwrap();
        for value in yes {
            assert!(
                glob.is_match(value),
                "{pattern:?} should match {value:?} (re {})",
                glob.regex_source()
            );
        }
        for value in no {
            assert!(
                !glob.is_match(value),
                "{pattern:?} should not match {value:?} (re {})",
                glob.regex_source()
            );
        }
    }

    /// `triggers.md` §11.5.
    #[test]
    fn glob_primitives() {
        check("*", &["a", "main"], &["", ".env", "a/b"]);
        check(".*", &[".env"], &[]);
        check("?", &["a"], &["ab"]);
        check("a?c", &["abc"], &["a/c"]);
        check("**", &["a/b/c", "main", "release/v1"], &[".github/x"]);
        check("**/*", &["a"], &[]);
        check("*/**", &[], &["a"]);
        check("**/x", &["x"], &[]);
        check("a/**/b", &["a/b", "a/x/y/b"], &["a/.x/b"]);
        check("**/.x/**", &["a/.x/b"], &[]);
        check("a**b", &["axxb"], &["ax/xb"]);
        check("*.{js,ts}", &["a.ts"], &["a.rs"]);
        check("v{1..3}", &["v2"], &["v4"]);
        check("[a-c]x", &["bx"], &[]);
        check("[^a-c]x", &["dx"], &[]);
        check("[!a-c]x", &["bx", "!x"], &["dx"]);
        check("[[:digit:]]x", &["1x"], &[]);
        check("@(a|b)", &["a"], &["c"]);
        check("!(a|b)", &["c"], &["a"]);
        check("+(a)", &["aaa"], &[]);
        check("?(a)b", &["b"], &[]);
        check("\\*", &["*"], &["a"]);
        check("!main", &["dev", "a/b"], &["main"]);
        check("./src/*.ts", &["src/a.ts"], &[]);
        check("src/*.ts", &[], &["./src/a.ts"]);
        check("a/*", &["a/b/"], &[]);
        check("*.TXT", &[], &["a.txt"]);
        check("foo", &[], &["FOO"]);
        check("deploy*", &[], &["/deploy production"]);
        check("/deploy*", &["/deploy production"], &[]);
        check("a\\b", &["a\\b"], &["ab"]);
        check("a\\*", &["a*"], &["ab"]);
        check("[x]", &["x", "[x]"], &[]);
        check("src/**/*.test.ts", &["src/a.test.ts"], &[]);
    }

    /// Sources from `lockfile.md` §5.3 (picomatch `makeRe(glob).source`).
    #[test]
    fn regex_sources_match_picomatch() {
        let cases = [
            ("deploy-*", "^(?:^(?:deploy\\-[^/]*?)$)$"),
            ("kici:os:*", "^(?:^(?:kici\\:os\\:[^/]*?)$)$"),
            ("linux-*-x64", "^(?:^(?:linux\\-[^/]*?\\-x64)$)$"),
            ("team.a-*", "^(?:^(?:team\\.a\\-[^/]*?)$)$"),
            ("a+b*", "^(?:^(?:a\\+b[^/]*?)$)$"),
            ("arm64*", "^(?:^(?:arm64[^/]*?)$)$"),
            ("gpu-?", "^(?:^(?:gpu\\-[^/])$)$"),
            ("*-linux", "^(?:(?!\\.)(?=.)[^/]*?-linux)$"),
            ("*", "^(?:(?!\\.)(?=.)[^/]*?\\/?)$"),
            ("pool-{a,b}", "^(?:pool-(a|b))$"),
            ("{linux,macos}", "^(?:(linux|macos))$"),
            ("runner-[0-9]", "^(?:runner-[0-9]\\/?)$"),
            ("a/**", "^(?:a(?:\\/(?!\\.)(?:(?:(?!(?:^|\\/)\\.).)*?)|$))$"),
            ("!main", "^(?!^(?:main)$).*$"),
            ("[[:digit:]]x", "^(?:(?=.)[0-9]x)$"),
        ];
        for (glob, source) in cases {
            assert_eq!(make_re_source(glob).unwrap(), source, "glob {glob:?}");
        }
    }

    #[test]
    fn empty_pattern_is_an_error() {
        assert_eq!(Glob::new("").unwrap_err(), GlobError::Empty);
    }

    #[test]
    fn odd_patterns_never_panic() {
        for p in [
            "[",
            "]",
            "(",
            ")",
            "{",
            "}",
            "\\",
            "!",
            "!!",
            "!(",
            "+(",
            "*(",
            "@(",
            "?(",
            "[[:",
            "{1..}",
            "{..}",
            "a{",
            "**(",
            "\\\\\\",
            "[z-a]",
            "(?<x>a)",
            "\"a",
            "*(*(a))",
            "+(a|aa)",
            "!(*.d).ts",
            "./",
            "./!x",
            "é*",
            "😀?",
        ] {
            let glob = Glob::new(p).unwrap();
            let _ = glob.is_match("a");
            let _ = glob.is_match(p);
        }
    }
}
