//! The JSONPath subset used by `match`/`not` trigger filters (`triggers.md` §7), with the
//! result semantics of jsonpath-plus 10.
//!
//! Supported: `$`, `.name`, `['name']`/`["name"]`, `[n]`, `[*]`/`.*`, unions `[a,b]`,
//! recursive descent `..name`/`..*`/`..[…]`, and filters `[?(…)]` whose expression is a small
//! JavaScript subset (`@`-relative paths, literals, comparisons, `!`, `&&`, `||`,
//! parentheses).

use serde_json::{Map, Value};

use crate::trigger::EcmaRegex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?}: {message}")]
pub struct JsonPathError {
    pub path: String,
    pub message: String,
}

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Child(Selector),
    Descendant(Selector),
}

#[derive(Debug, Clone, PartialEq)]
enum Selector {
    Name(String),
    Index(i64),
    Wildcard,
    Union(Vec<Selector>),
    Filter(Expr),
}

impl JsonPath {
    pub fn parse(path: &str) -> Result<JsonPath, JsonPathError> {
        PathParser {
            path,
            chars: path.chars().collect(),
            pos: 0,
        }
        .parse()
    }

    /// Every node the path selects under `root`, in document order.
    pub fn query<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for segment in &self.segments {
            let mut next = Vec::new();
            for node in current {
                match segment {
                    Segment::Child(selector) => select(selector, node, &mut next),
                    Segment::Descendant(selector) => {
                        let mut all = Vec::new();
                        collect_descendants(node, &mut all);
                        for n in all {
                            select(selector, n, &mut next);
                        }
                    }
                }
            }
            current = next;
        }
        current
    }
}

/// The node itself, then every descendant, depth first.
fn collect_descendants<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(node);
    match node {
        Value::Array(items) => items.iter().for_each(|v| collect_descendants(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_descendants(v, out)),
        _ => {}
    }
}

fn children(node: &Value) -> Vec<&Value> {
    match node {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => Vec::new(),
    }
}

fn select<'a>(selector: &Selector, node: &'a Value, out: &mut Vec<&'a Value>) {
    match selector {
        Selector::Name(name) => match node {
            Value::Object(map) => out.extend(map.get(name)),
            Value::Array(items) => {
                if let Ok(index) = name.parse::<usize>()
                    && index.to_string() == *name
                {
                    out.extend(items.get(index));
                }
            }
            _ => {}
        },
        Selector::Index(index) => match node {
            Value::Array(items) => {
                if let Ok(i) = usize::try_from(*index) {
                    out.extend(items.get(i));
                }
            }
            Value::Object(map) => out.extend(map.get(&index.to_string())),
            _ => {}
        },
        Selector::Wildcard => out.extend(children(node)),
        Selector::Union(parts) => parts.iter().for_each(|p| select(p, node, out)),
        Selector::Filter(expr) => {
            for child in children(node) {
                if truthy(&expr.eval(child)) {
                    out.push(child);
                }
            }
        }
    }
}

struct PathParser<'p> {
    path: &'p str,
    chars: Vec<char>,
    pos: usize,
}

impl PathParser<'_> {
    fn error(&self, message: impl Into<String>) -> JsonPathError {
        JsonPathError {
            path: self.path.to_string(),
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn parse(mut self) -> Result<JsonPath, JsonPathError> {
        let mut segments = Vec::new();
        if self.peek() == Some('$') {
            self.pos += 1;
        } else if self.peek().is_some_and(|c| c != '.' && c != '[') {
            // jsonpath-plus treats a path without `$` as relative to the root.
            segments.push(Segment::Child(Selector::Name(self.name()?)));
        }
        while let Some(c) = self.peek() {
            match c {
                '.' if self.chars.get(self.pos + 1) == Some(&'.') => {
                    self.pos += 2;
                    let selector = match self.peek() {
                        Some('[') => self.bracket()?,
                        Some('*') => {
                            self.pos += 1;
                            Selector::Wildcard
                        }
                        Some(_) => Selector::Name(self.name()?),
                        None => return Err(self.error("path ends after '..'")),
                    };
                    segments.push(Segment::Descendant(selector));
                }
                '.' => {
                    self.pos += 1;
                    let selector = match self.peek() {
                        Some('*') => {
                            self.pos += 1;
                            Selector::Wildcard
                        }
                        Some('[') => self.bracket()?,
                        Some(_) => Selector::Name(self.name()?),
                        None => return Err(self.error("path ends after '.'")),
                    };
                    segments.push(Segment::Child(selector));
                }
                '[' => {
                    let selector = self.bracket()?;
                    segments.push(Segment::Child(selector));
                }
                other => return Err(self.error(format!("unexpected {other:?} at {}", self.pos))),
            }
        }
        Ok(JsonPath { segments })
    }

    fn name(&mut self) -> Result<String, JsonPathError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c != '.' && c != '[') {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error(format!("expected a property name at {start}")));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    /// Parses `[ … ]` starting at `[`.
    fn bracket(&mut self) -> Result<Selector, JsonPathError> {
        let open = self.pos;
        self.pos += 1;
        let end = matching_close(&self.chars, self.pos, ']')
            .ok_or_else(|| self.error(format!("unclosed '[' at {open}")))?;
        let inner: String = self.chars[self.pos..end].iter().collect();
        self.pos = end + 1;
        let inner = inner.trim();
        if let Some(filter) = inner.strip_prefix('?') {
            let filter = filter.trim();
            let body = filter
                .strip_prefix('(')
                .and_then(|f| f.strip_suffix(')'))
                .ok_or_else(|| self.error("a filter must look like [?(…)]"))?;
            let expr = Expr::parse(body).map_err(|m| self.error(m))?;
            return Ok(Selector::Filter(expr));
        }
        let parts = split_union(inner);
        let mut selectors = Vec::new();
        for part in &parts {
            selectors.push(self.bracket_part(part.trim())?);
        }
        Ok(if selectors.len() == 1 {
            selectors.remove(0)
        } else {
            Selector::Union(selectors)
        })
    }

    fn bracket_part(&self, part: &str) -> Result<Selector, JsonPathError> {
        if part == "*" {
            return Ok(Selector::Wildcard);
        }
        if let Some(s) = unquote(part) {
            return Ok(Selector::Name(s));
        }
        if let Ok(index) = part.parse::<i64>() {
            return Ok(Selector::Index(index));
        }
        if part.is_empty() || part.contains(':') || part.starts_with('(') {
            return Err(self.error(format!("unsupported selector [{part}]")));
        }
        Ok(Selector::Name(part.to_string()))
    }
}

/// Index of the `close` character matching an already consumed opener, skipping quoted
/// strings and nested brackets/parentheses.
fn matching_close(chars: &[char], from: usize, close: char) -> Option<usize> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut i = from;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == '\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
        } else if c == '\'' || c == '"' {
            quote = Some(c);
        } else if c == '[' || c == '(' {
            depth += 1;
        } else if (c == ']' || c == ')') && depth > 0 {
            depth -= 1;
        } else if c == close && depth == 0 {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn split_union(inner: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                current.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                current.push(c);
            }
            None if c == ',' => parts.push(std::mem::take(&mut current)),
            None => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// `'text'` or `"text"` with backslash escapes removed.
fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    if (q != '\'' && q != '"') || s.len() < 2 || !s.ends_with(q) {
        return None;
    }
    let body = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A filter expression (JavaScript subset), evaluated with `@` bound to a child node.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Current(Vec<String>),
    Literal(Option<Value>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, CompareOp, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareOp {
    StrictEq,
    StrictNe,
    LooseEq,
    LooseNe,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `None` is JavaScript's `undefined`.
type JsValue = Option<Value>;

impl Expr {
    fn parse(text: &str) -> Result<Expr, String> {
        let tokens = tokenize(text)?;
        let mut parser = ExprParser { tokens, pos: 0 };
        let expr = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(format!(
                "unexpected {:?} in filter",
                parser.tokens[parser.pos]
            ));
        }
        Ok(expr)
    }

    fn eval(&self, current: &Value) -> JsValue {
        match self {
            Expr::Current(path) => {
                let mut node = current;
                for key in path {
                    let next = match node {
                        Value::Object(map) => map.get(key),
                        Value::Array(items) if key == "length" => {
                            return Some(Value::from(items.len()));
                        }
                        Value::String(s) if key == "length" => {
                            return Some(Value::from(s.encode_utf16().count()));
                        }
                        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                        _ => None,
                    };
                    node = next?;
                }
                Some(node.clone())
            }
            Expr::Literal(v) => v.clone(),
            Expr::Not(e) => Some(Value::Bool(!truthy(&e.eval(current)))),
            Expr::And(a, b) => {
                let left = a.eval(current);
                if truthy(&left) { b.eval(current) } else { left }
            }
            Expr::Or(a, b) => {
                let left = a.eval(current);
                if truthy(&left) { left } else { b.eval(current) }
            }
            Expr::Compare(a, op, b) => Some(Value::Bool(compare(
                &a.eval(current),
                *op,
                &b.eval(current),
            ))),
        }
    }
}

fn truthy(v: &JsValue) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
    }
}

fn to_number(v: &JsValue) -> f64 {
    match v {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                0.0
            } else {
                t.parse::<f64>().unwrap_or(f64::NAN)
            }
        }
        Some(_) => f64::NAN,
    }
}

fn compare(a: &JsValue, op: CompareOp, b: &JsValue) -> bool {
    match op {
        CompareOp::StrictEq => strict_equals(a, b),
        CompareOp::StrictNe => !strict_equals(a, b),
        CompareOp::LooseEq => loose_equals(a, b),
        CompareOp::LooseNe => !loose_equals(a, b),
        CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => {
            if let (Some(Value::String(x)), Some(Value::String(y))) = (a, b) {
                let ord = x.encode_utf16().cmp(y.encode_utf16());
                return match op {
                    CompareOp::Lt => ord.is_lt(),
                    CompareOp::Le => ord.is_le(),
                    CompareOp::Gt => ord.is_gt(),
                    _ => ord.is_ge(),
                };
            }
            let (x, y) = (to_number(a), to_number(b));
            match op {
                CompareOp::Lt => x < y,
                CompareOp::Le => x <= y,
                CompareOp::Gt => x > y,
                _ => x >= y,
            }
        }
    }
}

/// JavaScript `===` for JSON values: objects and arrays are never equal (distinct objects).
pub fn strict_equals(a: &JsValue, b: &JsValue) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Value::Null), Some(Value::Null)) => true,
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x == y,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(Value::String(x)), Some(Value::String(y))) => x == y,
        _ => false,
    }
}

fn loose_equals(a: &JsValue, b: &JsValue) -> bool {
    match (a, b) {
        (None | Some(Value::Null), None | Some(Value::Null)) => true,
        (None | Some(Value::Null), _) | (_, None | Some(Value::Null)) => false,
        (Some(Value::Array(_) | Value::Object(_)), _)
        | (_, Some(Value::Array(_) | Value::Object(_))) => false,
        (Some(Value::String(x)), Some(Value::String(y))) => x == y,
        _ => to_number(a) == to_number(b),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    At,
    Dot,
    Ident(String),
    Str(String),
    Num(f64),
    LBracket,
    RBracket,
    LParen,
    RParen,
    Not,
    And,
    Or,
    Op(CompareOp),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let starts = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (tok, len) = if starts(i, "===") {
            (Tok::Op(CompareOp::StrictEq), 3)
        } else if starts(i, "!==") {
            (Tok::Op(CompareOp::StrictNe), 3)
        } else if starts(i, "==") {
            (Tok::Op(CompareOp::LooseEq), 2)
        } else if starts(i, "!=") {
            (Tok::Op(CompareOp::LooseNe), 2)
        } else if starts(i, "<=") {
            (Tok::Op(CompareOp::Le), 2)
        } else if starts(i, ">=") {
            (Tok::Op(CompareOp::Ge), 2)
        } else if starts(i, "&&") {
            (Tok::And, 2)
        } else if starts(i, "||") {
            (Tok::Or, 2)
        } else {
            match c {
                '@' => (Tok::At, 1),
                '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => (Tok::Dot, 1),
                '[' => (Tok::LBracket, 1),
                ']' => (Tok::RBracket, 1),
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                '!' => (Tok::Not, 1),
                '<' => (Tok::Op(CompareOp::Lt), 1),
                '>' => (Tok::Op(CompareOp::Gt), 1),
                '\'' | '"' => {
                    let mut j = i + 1;
                    let mut s = String::new();
                    while j < chars.len() && chars[j] != c {
                        if chars[j] == '\\' && j + 1 < chars.len() {
                            j += 1;
                        }
                        s.push(chars[j]);
                        j += 1;
                    }
                    if j >= chars.len() {
                        return Err("unterminated string in filter".to_string());
                    }
                    (Tok::Str(s), j + 1 - i)
                }
                d if d.is_ascii_digit() || d == '.' || d == '-' => {
                    let mut j = i + 1;
                    while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                        j += 1;
                    }
                    let text: String = chars[i..j].iter().collect();
                    let n = text
                        .parse::<f64>()
                        .map_err(|_| format!("bad number {text:?} in filter"))?;
                    (Tok::Num(n), j - i)
                }
                a if a.is_alphabetic() || a == '_' || a == '$' => {
                    let mut j = i + 1;
                    while j < chars.len()
                        && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$')
                    {
                        j += 1;
                    }
                    (Tok::Ident(chars[i..j].iter().collect()), j - i)
                }
                other => return Err(format!("unsupported character {other:?} in filter")),
            }
        };
        tokens.push(tok);
        i += len;
    }
    Ok(tokens)
}

struct ExprParser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl ExprParser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.comparison()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.comparison()?));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.unary()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let right = self.unary()?;
            return Ok(Expr::Compare(Box::new(left), op, Box::new(right)));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::LParen) => {
                let inner = self.or()?;
                if self.next() != Some(Tok::RParen) {
                    return Err("missing ')' in filter".to_string());
                }
                Ok(inner)
            }
            Some(Tok::At) => {
                let mut path = Vec::new();
                loop {
                    match self.peek() {
                        Some(Tok::Dot) => {
                            self.pos += 1;
                            match self.next() {
                                Some(Tok::Ident(name)) => path.push(name),
                                other => {
                                    return Err(format!(
                                        "expected a name after '.', got {other:?}"
                                    ));
                                }
                            }
                        }
                        Some(Tok::LBracket) => {
                            self.pos += 1;
                            let key = match self.next() {
                                Some(Tok::Str(s)) => s,
                                Some(Tok::Num(n)) => crate::json::number_to_js_string(n),
                                other => return Err(format!("unsupported key {other:?}")),
                            };
                            if self.next() != Some(Tok::RBracket) {
                                return Err("missing ']' in filter".to_string());
                            }
                            path.push(key);
                        }
                        _ => break,
                    }
                }
                Ok(Expr::Current(path))
            }
            Some(Tok::Str(s)) => Ok(Expr::Literal(Some(Value::String(s)))),
            Some(Tok::Num(n)) => Ok(Expr::Literal(Some(
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            ))),
            Some(Tok::Ident(word)) => match word.as_str() {
                "true" => Ok(Expr::Literal(Some(Value::Bool(true)))),
                "false" => Ok(Expr::Literal(Some(Value::Bool(false)))),
                "null" => Ok(Expr::Literal(Some(Value::Null))),
                "undefined" => Ok(Expr::Literal(None)),
                other => Err(format!("unsupported identifier {other:?} in filter")),
            },
            other => Err(format!("unexpected {other:?} in filter")),
        }
    }
}

/// How one expected value of a `match`/`not` filter is compared with the selected nodes.
enum Expected<'a> {
    /// `"/re/flags"`: only string nodes can match.
    Regex(EcmaRegex),
    /// An array: any element strictly equal.
    AnyOf(&'a [Value]),
    /// A primitive (strict equality, type included); objects never equal anything.
    Equal(&'a Value),
}

impl<'a> Expected<'a> {
    fn new(value: &'a Value) -> Self {
        match value {
            Value::String(s) => match regex_literal(s) {
                Some(re) => Expected::Regex(re),
                None => Expected::Equal(value),
            },
            Value::Array(items) => Expected::AnyOf(items),
            other => Expected::Equal(other),
        }
    }

    fn accepts(&self, node: &Value) -> bool {
        match self {
            Expected::Regex(re) => node.as_str().is_some_and(|s| re.test(s)),
            Expected::AnyOf(items) => items
                .iter()
                .any(|item| strict_equals(&Some(item.clone()), &Some(node.clone()))),
            Expected::Equal(value) => strict_equals(&Some((*value).clone()), &Some(node.clone())),
        }
    }
}

/// `"/source/flags"` as a regex; anything else (including an invalid regex or unknown flags)
/// is compared as a plain string.
fn regex_literal(s: &str) -> Option<EcmaRegex> {
    let body = s.strip_prefix('/')?;
    let close = body.rfind('/')?;
    let (source, flags) = (&body[..close], &body[close + 1..]);
    if source.is_empty() {
        return None;
    }
    EcmaRegex::new(source, flags).ok()
}

/// The nodes `path` selects in `root` (`None` = the value is absent).
fn resolve<'a>(path: &str, root: Option<&'a Value>) -> Result<Vec<&'a Value>, JsonPathError> {
    let parsed = JsonPath::parse(path)?;
    Ok(root.map(|r| parsed.query(r)).unwrap_or_default())
}

/// `match`: every path resolves to at least one node and some node equals its expected value.
pub fn matches_all(
    filter: &Map<String, Value>,
    root: Option<&Value>,
) -> Result<bool, JsonPathError> {
    for (path, expected) in filter {
        let nodes = resolve(path, root)?;
        let expected = Expected::new(expected);
        if !nodes.iter().any(|n| expected.accepts(n)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `not`: true when some path resolves to a node equal to its expected value (the trigger is
/// then excluded). Unresolved paths are ignored.
pub fn matches_any(
    filter: &Map<String, Value>,
    root: Option<&Value>,
) -> Result<bool, JsonPathError> {
    for (path, expected) in filter {
        let nodes = resolve(path, root)?;
        let expected = Expected::new(expected);
        if nodes.iter().any(|n| expected.accepts(n)) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(path: &str, doc: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap()
            .query(doc)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn selectors() {
        let doc = json!({"a": {"b": [1, 2, {"c": "x"}]}, "key with space": "v", "tags": ["ci", "deploy"]});
        assert_eq!(q("$.a.b[0]", &doc), vec![json!(1)]);
        assert_eq!(q("$['key with space']", &doc), vec![json!("v")]);
        assert_eq!(q("$[\"key with space\"]", &doc), vec![json!("v")]);
        assert_eq!(q("$.tags[*]", &doc), vec![json!("ci"), json!("deploy")]);
        assert_eq!(q("$.tags.*", &doc), vec![json!("ci"), json!("deploy")]);
        assert_eq!(q("$..c", &doc), vec![json!("x")]);
        assert_eq!(q("$.a.b[0,1]", &doc), vec![json!(1), json!(2)]);
        assert!(q("$.missing.x", &doc).is_empty());
    }

    #[test]
    fn filters() {
        let doc = json!({"items": [{"n": 1, "id": "a"}, {"n": 2, "id": "b"}, {"n": 3, "id": "c", "on": true}]});
        assert_eq!(
            q("$.items[?(@.n>1)].id", &doc),
            vec![json!("b"), json!("c")]
        );
        assert_eq!(q("$.items[?(@.n >= 2 && @.on)].id", &doc), vec![json!("c")]);
        assert_eq!(
            q("$.items[?(@.id === 'a' || @.n == '2')].id", &doc),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(
            q("$.items[?(!@.on)].id", &doc),
            vec![json!("a"), json!("b")]
        );
    }

    #[test]
    fn match_and_not_semantics() {
        let payload = json!({"count": 42, "active": true, "data": null, "env": "staging", "version": "v2.3.1"});
        let f = |v: Value| v.as_object().unwrap().clone();
        assert!(
            matches_all(
                &f(json!({"$.count": 42, "$.active": true, "$.data": null})),
                Some(&payload)
            )
            .unwrap()
        );
        assert!(!matches_all(&f(json!({"$.count": "42"})), Some(&payload)).unwrap());
        assert!(matches_all(&f(json!({"$.env": ["prod", "staging"]})), Some(&payload)).unwrap());
        assert!(matches_all(&f(json!({"$.version": "/^v\\d+\\./"})), Some(&payload)).unwrap());
        assert!(!matches_all(&f(json!({"$.nonexistent": "x"})), Some(&payload)).unwrap());
        assert!(!matches_any(&f(json!({"$.nonexistent": "x"})), Some(&payload)).unwrap());
        assert!(!matches_all(&f(json!({"$.env": "staging"})), None).unwrap());
        assert!(JsonPath::parse("$.a[").is_err());
    }
}
