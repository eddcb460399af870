//! TypeScript → JavaScript with oxc, keeping a way back to the original positions.
//!
//! oxc re-prints the module (comments and blank lines disappear), so positions that QuickJS
//! reports refer to the stripped code. [`Stripped::original_position`] maps them back through
//! the codegen source map, and [`Stripped::callee_at`] snaps a mapped position onto the callee
//! token of the call expression it belongs to, which is what `sourceLocation` records.

use std::path::Path;

use oxc_allocator::Allocator;
use oxc_ast::AstKind;
use oxc_ast::ast::{CallExpression, Expression};
use oxc_codegen::{Codegen, CodegenOptions};
use oxc_parser::Parser;
use oxc_semantic::SemanticBuilder;
use oxc_span::{GetSpan, SourceType};
use oxc_transformer::{TransformOptions, Transformer};

/// A 1-based line and column in a source file (columns count UTF-16 code units, as editors and
/// JavaScript engines do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// A syntax or semantic error found while stripping, at its position in the original file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub position: Position,
}

/// A call expression of the original source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    start: Position,
    end: Position,
    /// The callee token (`f` in `f()`, `b` in `a.b()`).
    callee: Position,
    /// Its name, when the callee is an identifier or a static member.
    name: Option<String>,
}

/// The result of stripping one module.
pub struct Stripped {
    /// The JavaScript that QuickJS evaluates.
    pub code: String,
    /// Generated (0-based line, 0-based column) → original (0-based line, 0-based column),
    /// one sorted list per generated line.
    lines: Vec<Vec<(u32, u32, u32)>>,
    /// Every call expression in the original file, sorted by start.
    calls: Vec<Call>,
}

/// Strips the types of a `.ts`/`.mts` module (or passes a `.js`/`.mjs` module through oxc so
/// that syntax errors are reported the same way).
///
/// oxc asserts some invariants with panics; the loader calls this from inside QuickJS, where
/// a panic would abort the process, so a panic becomes a syntax error at the file start.
pub fn strip(path: &Path, source: &str) -> Result<Stripped, Vec<SyntaxError>> {
    std::panic::catch_unwind(|| strip_unchecked(path, source)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown failure".to_string());
        Err(vec![SyntaxError {
            message: format!("the TypeScript transform failed: {detail}"),
            position: Position { line: 1, column: 1 },
        }])
    })
}

/// Deeper bracket nesting than this is refused before parsing: oxc's recursive-descent parser
/// would exhaust the thread's stack (and abort the process) long before any real workflow
/// gets near it.
const MAX_NESTING: usize = 1000;

fn strip_unchecked(path: &Path, source: &str) -> Result<Stripped, Vec<SyntaxError>> {
    if let Some(offset) = nesting_exceeded(source, MAX_NESTING) {
        let index = LineIndex::new(source);
        return Err(vec![SyntaxError {
            message: format!("brackets are nested more than {MAX_NESTING} levels deep"),
            position: index.position(offset),
        }]);
    }
    let allocator = Allocator::default();
    let source_type = source_type_for(path);
    let parsed = Parser::new(&allocator, source, source_type).parse();
    let index = LineIndex::new(source);
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err(to_syntax_errors(&index, parsed.diagnostics.iter()));
    }
    let mut program = parsed.program;
    let semantic = SemanticBuilder::new()
        .with_check_syntax_error(true)
        .with_build_nodes(true)
        .with_enum_eval(true)
        .build(&program);
    if semantic.diagnostics.has_errors() {
        return Err(to_syntax_errors(&index, semantic.diagnostics.iter()));
    }
    let calls = collect_calls(&index, &semantic.semantic);
    let scoping = semantic.semantic.into_scoping();
    let options = TransformOptions::default();
    let transformed =
        Transformer::new(&allocator, path, &options).build_with_scoping(scoping, &mut program);
    if transformed.diagnostics.has_errors() {
        return Err(to_syntax_errors(&index, transformed.diagnostics.iter()));
    }
    let generated = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(path.to_path_buf()),
            ..CodegenOptions::default()
        })
        .build(&program);
    let mut lines: Vec<Vec<(u32, u32, u32)>> = Vec::new();
    if let Some(map) = &generated.map {
        for token in map.get_tokens() {
            let line = token.get_dst_line() as usize;
            if lines.len() <= line {
                lines.resize_with(line + 1, Vec::new);
            }
            lines[line].push((
                token.get_dst_col(),
                token.get_src_line(),
                token.get_src_col(),
            ));
        }
    }
    for line in &mut lines {
        line.sort_unstable();
    }
    Ok(Stripped {
        code: generated.code,
        lines,
        calls,
    })
}

impl Stripped {
    /// Maps a 1-based position in the stripped code to the original file. Falls back to the
    /// closest earlier mapped token on the same line, then to the start of the line's first
    /// token, so that a position inside a re-printed expression still lands on its statement.
    pub fn original_position(&self, generated: Position) -> Option<Position> {
        let line = self.lines.get(generated.line.checked_sub(1)? as usize)?;
        let column = generated.column.saturating_sub(1);
        let token = match line.partition_point(|t| t.0 <= column) {
            0 => line.first()?,
            n => &line[n - 1],
        };
        // Keep the distance from the token when the generated text after it is unchanged
        // (identifiers, property names), so `a.b` lands on `b` and not on `a`.
        let delta = column - token.0.min(column);
        Some(Position {
            line: token.1 + 1,
            column: token.2 + delta + 1,
        })
    }

    /// The callee token of the call expression that `position` (an original position) belongs
    /// to. QuickJS attributes a call to the last token it evaluated before the call, which can
    /// lie inside the arguments (`step('a', { run: rule(...) })`), so when the caller knows
    /// the callee's name (`hint`), the innermost enclosing call of that name wins; otherwise
    /// the innermost enclosing call. `position` itself when no call contains it.
    pub fn callee_at(&self, position: Position, hint: Option<&str>) -> Position {
        let containing = || {
            self.calls
                .iter()
                .filter(|c| c.start <= position && position < c.end)
        };
        let innermost = |calls: &mut dyn Iterator<Item = &Call>| {
            calls
                .min_by_key(|c| span_len(c.start, c.end))
                .map(|c| c.callee)
        };
        hint.and_then(|name| {
            innermost(&mut containing().filter(|c| c.name.as_deref() == Some(name)))
        })
        .or_else(|| innermost(&mut containing()))
        .unwrap_or(position)
    }
}

/// Byte offset of the first bracket that opens level `limit + 1`, skipping strings, template
/// text and comments (approximately: good enough to bound recursion, not a tokenizer).
fn nesting_exceeded(source: &str, limit: usize) -> Option<u32> {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return u32::try_from(i).ok();
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn span_len(start: Position, end: Position) -> (u32, u32) {
    (end.line - start.line, end.column.wrapping_sub(start.column))
}

fn source_type_for(path: &Path) -> SourceType {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "js" | "mjs" => SourceType::mjs(),
        // `.mts` and `.ts` are both module TypeScript without JSX.
        _ => SourceType::ts(),
    }
}

fn collect_calls(index: &LineIndex, semantic: &oxc_semantic::Semantic<'_>) -> Vec<Call> {
    let mut calls = Vec::new();
    for node in semantic.nodes().iter() {
        if let AstKind::CallExpression(call) = node.kind() {
            let span = call.span;
            let name = match call.callee.without_parentheses() {
                Expression::Identifier(id) => Some(id.name.to_string()),
                Expression::StaticMemberExpression(member) => {
                    Some(member.property.name.to_string())
                }
                _ => None,
            };
            calls.push(Call {
                start: index.position(span.start),
                end: index.position(span.end),
                callee: index.position(callee_token_offset(call)),
                name,
            });
        }
    }
    calls.sort_unstable();
    calls
}

/// For `f(...)` the identifier, for `a.b(...)` the property name `b`, as the reference's call
/// sites record them.
fn callee_token_offset(call: &CallExpression<'_>) -> u32 {
    match call.callee.without_parentheses() {
        Expression::StaticMemberExpression(member) => member.property.span.start,
        Expression::ComputedMemberExpression(member) => member.expression.span().start,
        Expression::PrivateFieldExpression(member) => member.field.span.start,
        callee => callee.span().start,
    }
}

fn to_syntax_errors<'d>(
    index: &LineIndex,
    diagnostics: impl Iterator<Item = &'d oxc_diagnostics::OxcDiagnostic>,
) -> Vec<SyntaxError> {
    diagnostics
        .map(|d| {
            let offset = d.labels.first().map(|l| l.offset()).unwrap_or(0);
            SyntaxError {
                message: d.message.to_string(),
                position: index.position(offset),
            }
        })
        .collect()
}

/// Byte offsets → 1-based line and UTF-16 column.
pub struct LineIndex<'s> {
    source: &'s str,
    starts: Vec<u32>,
}

impl<'s> LineIndex<'s> {
    pub fn new(source: &'s str) -> Self {
        let mut starts = vec![0];
        for (i, b) in source.bytes().enumerate() {
            if b == b'\n' {
                starts.push(u32::try_from(i + 1).unwrap_or(u32::MAX));
            }
        }
        Self { source, starts }
    }

    pub fn position(&self, offset: u32) -> Position {
        let offset = offset.min(u32::try_from(self.source.len()).unwrap_or(u32::MAX));
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts[line] as usize;
        let end = (offset as usize).max(start);
        let text = self.source.get(start..end).unwrap_or("");
        let column = text.encode_utf16().count() as u32;
        Position {
            line: line as u32 + 1,
            column: column + 1,
        }
    }
}
