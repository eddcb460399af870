//! TypeScript → JavaScript with oxc, keeping a way back to the original positions.
//!
//! oxc re-prints the module (comments and blank lines disappear), so positions that QuickJS
//! reports refer to the stripped code. [`Stripped::original_position`] maps them back through
//! the codegen source map, and [`Stripped::callee_at`] snaps a mapped position onto the callee
//! token of the call expression it belongs to, which is what `sourceLocation` records.

use std::path::Path;

use oxc_allocator::Allocator;
use oxc_ast::ast::{CallExpression, Expression};
use oxc_ast::AstKind;
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

/// The result of stripping one module.
pub struct Stripped {
    /// The JavaScript that QuickJS evaluates.
    pub code: String,
    /// Generated (0-based line, 0-based column) → original (0-based line, 0-based column),
    /// one sorted list per generated line.
    lines: Vec<Vec<(u32, u32, u32)>>,
    /// Callee tokens of every call expression in the original file, sorted by call start:
    /// (call start, call end, callee token position).
    calls: Vec<(Position, Position, Position)>,
}

/// Strips the types of a `.ts`/`.mts` module (or passes a `.js`/`.mjs` module through oxc so
/// that syntax errors are reported the same way).
pub fn strip(path: &Path, source: &str) -> Result<Stripped, Vec<SyntaxError>> {
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
            lines[line].push((token.get_dst_col(), token.get_src_line(), token.get_src_col()));
        }
    }
    for line in &mut lines {
        line.sort_unstable();
    }
    Ok(Stripped { code: generated.code, lines, calls })
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
        Some(Position { line: token.1 + 1, column: token.2 + delta + 1 })
    }

    /// The callee token of the innermost call expression that contains `position` (an
    /// original position), or `position` itself when no call contains it.
    pub fn callee_at(&self, position: Position) -> Position {
        self.calls
            .iter()
            .filter(|(start, end, _)| *start <= position && position < *end)
            .min_by_key(|(start, end, _)| span_len(*start, *end))
            .map(|(_, _, callee)| *callee)
            .unwrap_or(position)
    }
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

fn collect_calls(
    index: &LineIndex,
    semantic: &oxc_semantic::Semantic<'_>,
) -> Vec<(Position, Position, Position)> {
    let mut calls = Vec::new();
    for node in semantic.nodes().iter() {
        if let AstKind::CallExpression(call) = node.kind() {
            let span = call.span;
            calls.push((
                index.position(span.start),
                index.position(span.end),
                index.position(callee_token_offset(call)),
            ));
        }
    }
    calls.sort_unstable();
    calls
}

/// For `f(...)` the identifier, for `a.b(...)` the property name `b`, as the reference's call
/// sites record them.
fn callee_token_offset(call: &CallExpression<'_>) -> u32 {
    match &call.callee {
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
                position: index.position(u32::try_from(offset).unwrap_or(u32::MAX)),
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
        let line = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts[line] as usize;
        let end = (offset as usize).max(start);
        let text = self.source.get(start..end).unwrap_or("");
        let column = text.encode_utf16().count() as u32;
        Position { line: line as u32 + 1, column: column + 1 }
    }
}
